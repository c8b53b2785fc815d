"""One Kapacitor connection: answer the protocol, score points in micro-batches.

Two threads per connection. The reader answers every request at once (Info,
Init, Keepalive, Snapshot, Restore) and queues points; it never waits on HTTP,
so keepalives are answered even while the API is slow. The scorer takes up to
`batchSize` points or whatever arrived within `maxWait`, scores them with one
`/predict` call and writes them back in arrival order. The queue is bounded:
when it is full the reader stops reading (Kapacitor then waits) and sends
heartbeats, which reset Kapacitor's keepalive timer.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from dataclasses import dataclass, field

from tickml.udf import udf_pb2
from tickml.udf.client import PredictClient, Score, Unscored, score_rows
from tickml.udf.framing import FrameReader, ProtocolError, encode_frame
from tickml.udf.options import OptionsError, ScoringOptions, describe_options, parse_options
from tickml.udf.points import read_features, result_point

log = logging.getLogger(__name__)
HEARTBEAT_SECONDS = 1.0
_END = object()  # queued after the last point: flush and stop


@dataclass
class PendingPoint:
    point: udf_pb2.Point
    row: list[float] | str  # its features, or why it cannot be scored


@dataclass
class ConnectionStats:
    points_in: int = 0
    scored: int = 0
    unscored: int = 0
    batches: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


class ConnectionHandler:
    """Serves one Kapacitor connection until it closes."""

    def __init__(self, sock: socket.socket, defaults: ScoringOptions, name: str = "conn") -> None:
        self.sock = sock
        self.defaults = defaults
        self.name = name
        self.options = defaults
        self.stats = ConnectionStats()
        self._reader = FrameReader(sock)
        self._write_lock = threading.Lock()
        self._queue: queue.Queue = queue.Queue(maxsize=defaults.max_pending)
        self._scorer: threading.Thread | None = None
        self._broken = threading.Event()

    # -- reading ---------------------------------------------------------------------
    def run(self) -> None:
        """Read requests until EOF, then flush pending points and close."""
        try:
            self._read_loop()
        except (ProtocolError, OSError) as exc:
            log.error("%s: connection error: %s", self.name, exc)
        finally:
            self._finish()

    def _read_loop(self) -> None:
        while not self._broken.is_set():
            request = self._reader.read_request()
            if request is None:
                return
            kind = request.WhichOneof("message")
            if kind == "point":
                self._accept_point(request.point)
            elif kind == "keepalive":
                self._answer_keepalive(request.keepalive.time)
            elif kind == "info":
                self._answer_info()
            elif kind == "init":
                self._answer_init(request.init)
            elif kind == "snapshot":
                self._answer_snapshot()
            elif kind == "restore":
                self._answer_restore()
            else:
                # A batch edge: our Info declares stream only, so Kapacitor refuses such
                # a TICKscript at define time. Never echo Begin/End: an End without a
                # Begin crashes kapacitord.
                log.warning("%s: ignoring unexpected %r message", self.name, kind)

    def _answer_info(self) -> None:
        response = udf_pb2.Response()
        response.info.wants = udf_pb2.STREAM
        response.info.provides = udf_pb2.STREAM
        describe_options(response.info)
        self._send(response)

    def _answer_init(self, init: udf_pb2.InitRequest) -> None:
        response = udf_pb2.Response()
        try:
            self.options = parse_options(list(init.options), self.defaults)
        except OptionsError as exc:
            log.error("%s: task %s: %s", self.name, init.taskID, exc)
            response.init.success = False
            response.init.error = str(exc)
            self._send(response)
            return
        self.name = f"{init.taskID}/{init.nodeID}" if init.taskID else self.name
        self._queue = queue.Queue(maxsize=self.options.max_pending)
        log.info("%s: scoring with %s", self.name, self.options)
        response.init.success = True
        self._send(response)

    def _answer_keepalive(self, sent: int) -> None:
        response = udf_pb2.Response()
        response.keepalive.time = sent
        self._send(response)

    def _answer_snapshot(self) -> None:
        # The agent keeps no state worth restoring: pending points are re-sent by
        # `tickml rescore` if a task dies. An empty snapshot must still be marked
        # present, or the Response would carry no message at all.
        response = udf_pb2.Response()
        response.snapshot.SetInParent()
        self._send(response)

    def _answer_restore(self) -> None:
        response = udf_pb2.Response()
        response.restore.success = True
        self._send(response)

    def _accept_point(self, point: udf_pb2.Point) -> None:
        if self._scorer is None:
            self._scorer = threading.Thread(target=self._score_loop, name=f"score-{self.name}",
                                             daemon=True)
            self._scorer.start()
        self.stats.points_in += 1
        self._put(PendingPoint(point, read_features(point)))

    def _put(self, item: object) -> None:
        """Queue an item; while the queue is full, keep Kapacitor's keepalive timer fed."""
        while not self._broken.is_set():
            try:
                self._queue.put(item, timeout=HEARTBEAT_SECONDS)
                return
            except queue.Full:
                self._answer_keepalive(time.time_ns())

    # -- scoring ---------------------------------------------------------------------
    def _score_loop(self) -> None:
        client = PredictClient(self.options.url, self.options.timeout, self.options.retry_for)
        try:
            while not self._broken.is_set():
                batch, finished = self._next_batch()
                if batch:
                    self._emit(batch, client)
                if finished:
                    return
        finally:
            client.close()

    def _next_batch(self) -> tuple[list[PendingPoint], bool]:
        """Up to batch_size points, waiting at most max_wait after the first one."""
        first = self._wait_for_first()
        if first is _END:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.options.max_wait
        while len(batch) < self.options.batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else \
                    self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                return batch, True
            batch.append(item)
        return batch, False

    def _wait_for_first(self) -> object:
        while not self._broken.is_set():
            try:
                return self._queue.get(timeout=HEARTBEAT_SECONDS)
            except queue.Empty:
                continue
        return _END

    def _emit(self, batch: list[PendingPoint], client: PredictClient) -> None:
        outcomes = score_rows(client, [p.row for p in batch], self.options.threshold)
        now = time.time_ns()
        self.stats.batches += 1
        for outcome in outcomes:
            self._count(outcome)
        # one write for the whole batch, in arrival order
        self._send(*(result_point(pending.point, outcome.fields(), now)
                     for pending, outcome in zip(batch, outcomes, strict=True)))

    def _count(self, outcome: Score | Unscored) -> None:
        if isinstance(outcome, Score):
            self.stats.scored += 1
            return
        self.stats.unscored += 1
        self.stats.reasons[outcome.reason] = self.stats.reasons.get(outcome.reason, 0) + 1

    # -- writing and closing ---------------------------------------------------------
    def _send(self, *responses: udf_pb2.Response) -> None:
        if any(r.WhichOneof("message") is None for r in responses):
            # An empty Response crashes kapacitord itself, not just the task.
            raise ValueError("refusing to send a Response without a message")
        frames = b"".join(encode_frame(r) for r in responses)
        with self._write_lock:
            if self._broken.is_set():
                return
            try:
                self.sock.sendall(frames)
            except OSError as exc:
                log.error("%s: Kapacitor went away: %s", self.name, exc)
                self._broken.set()

    def _finish(self) -> None:
        if self._scorer is not None:
            self._put(_END)
            budget = self.options.retry_for + self.options.timeout + 5
            self._scorer.join(timeout=budget)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.sock.close()
        log.info("%s: closed after %d points (%d scored, %d unscored%s)", self.name,
                 self.stats.points_in, self.stats.scored, self.stats.unscored,
                 f": {self.stats.reasons}" if self.stats.reasons else "")

