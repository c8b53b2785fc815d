"""One Kapacitor connection: read requests, answer the protocol, send scored points.

Two threads per connection. The reader answers every request at once (Info,
Init, Keepalive, Snapshot, Restore) and hands points to a `MicroBatcher`; it never
waits on HTTP, so keepalives are answered even while the API is slow. The scorer
thread takes the batcher's batches, has a `BatchScorer` score each with one
API call and writes the points back in arrival order. When the batcher is
full the reader stops reading (Kapacitor then waits) and sends heartbeats.

End of stream means Kapacitor is stopping the task, and it holds every other task
change until this connection closes. The points still pending are answered at once:
a call that fails is not retried, and after one failure the rest go out unscored
(the watchdog's sweep scores them later), so a disable during an API outage takes
one request's timeout, not `retryFor`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

from tickml.udf import udf_pb2
from tickml.udf.batching import MicroBatcher
from tickml.udf.client import PredictClient
from tickml.udf.framing import FrameReader, ProtocolError, encode_frame
from tickml.udf.options import OptionsError, ScoringOptions, describe_options, parse_options
from tickml.udf.scoring import BatchScorer, ConnectionStats

log = logging.getLogger(__name__)


class ConnectionHandler:
    """Serves one Kapacitor connection until it closes."""

    def __init__(self, sock: socket.socket, defaults: ScoringOptions, name: str = "conn",
                 allowed_urls: tuple[str, ...] = ()) -> None:
        self.sock = sock
        self.defaults = defaults
        self.allowed_urls = allowed_urls  # beside defaults.url, what `.url()` may name
        self.name = name
        self.options = defaults
        self.stats = ConnectionStats()
        self._reader = FrameReader(sock)
        self._write_lock = threading.Lock()
        self.batcher = self._batcher(defaults)
        self._scorer: threading.Thread | None = None
        self._broken = threading.Event()
        self._stopping = threading.Event()  # end of stream: stop retrying the API

    @staticmethod
    def _batcher(options: ScoringOptions) -> MicroBatcher[udf_pb2.Point]:
        return MicroBatcher(options.batch_size, options.max_wait, options.max_pending)

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
            self.options = parse_options(list(init.options), self.defaults,
                                         self.allowed_urls)
        except OptionsError as exc:
            log.error("%s: task %s: %s", self.name, init.taskID, exc)
            response.init.success = False
            response.init.error = str(exc)
            self._send(response)
            return
        self.name = f"{init.taskID}/{init.nodeID}" if init.taskID else self.name
        self.batcher = self._batcher(self.options)
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
        self.batcher.put(point, while_full=self._heartbeat)

    def _heartbeat(self) -> None:
        self._answer_keepalive(time.time_ns())

    # -- scoring ---------------------------------------------------------------------
    def _score_loop(self) -> None:
        client = PredictClient(self.options.url, self.options.timeout, self.options.retry_for,
                               give_up=self._stopping,
                               resolve_interval=self.options.resolve_interval)
        scorer = BatchScorer(client, self.options.threshold, self.stats,
                             self.options.keep_features)
        try:
            while not self._broken.is_set():
                batch, finished = self.batcher.next_batch()
                if batch:
                    # one write for the whole batch, in arrival order
                    self._send_frames(scorer.score(batch))
                if finished:
                    return
        finally:
            client.close()

    # -- writing and closing ---------------------------------------------------------
    def _send(self, *responses: udf_pb2.Response) -> None:
        if any(r.WhichOneof("message") is None for r in responses):
            # An empty Response crashes kapacitord itself, not just the task.
            raise ValueError("refusing to send a Response without a message")
        self._send_frames(b"".join(encode_frame(r) for r in responses))

    def _send_frames(self, frames: bytes) -> None:
        with self._write_lock:
            if self._broken.is_set():
                return
            try:
                self.sock.sendall(frames)
            except OSError as exc:
                log.error("%s: Kapacitor went away: %s", self.name, exc)
                self._broken.set()
                self.batcher.stopped.set()

    def _finish(self) -> None:
        self._stopping.set()
        if self._scorer is not None:
            self.batcher.close(while_full=self._heartbeat)
            # One call in flight may take its timeout; nothing is retried any more.
            budget = self.options.timeout + 5
            self._scorer.join(timeout=budget)
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_WR)
        self.sock.close()
        log.info("%s: closed after %d points (%d scored, %d unscored%s)", self.name,
                 self.stats.points_in, self.stats.scored, self.stats.unscored,
                 f": {self.stats.reasons}" if self.stats.reasons else "")

