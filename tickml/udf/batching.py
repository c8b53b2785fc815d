"""Micro-batching with back-pressure: a bounded queue that hands points out in batches.

The reader of a connection `put`s points; the scorer takes `next_batch`es. A batch
holds up to `batch_size` points, or whatever arrived within `max_wait` after its
first one. When the queue is full `put` waits, calling `while_full` every
`heartbeat` seconds (the handler sends Kapacitor a keepalive, which resets its
timer), so nothing is dropped and Kapacitor is held back instead.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
HEARTBEAT_SECONDS = 1.0
_END = object()  # queued after the last item: flush and stop


class MicroBatcher(Generic[T]):
    """A bounded queue of items, taken out in micro-batches, until `close()`."""

    def __init__(self, batch_size: int, max_wait: float, max_pending: int,
                 heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_pending = max_pending
        self.heartbeat = heartbeat
        self.stopped = threading.Event()  # set to abandon waiting (the connection broke)
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)

    def put(self, item: T, while_full: Callable[[], None] = lambda: None) -> None:
        """Queue `item`; while the queue is full, call `while_full` every heartbeat."""
        self._put(item, while_full)

    def close(self, while_full: Callable[[], None] = lambda: None) -> None:
        """Mark the end: the batch after the last item comes back with `finished` set."""
        self._put(_END, while_full)

    def _put(self, item: object, while_full: Callable[[], None]) -> None:
        while not self.stopped.is_set():
            try:
                self._queue.put(item, timeout=self.heartbeat)
                return
            except queue.Full:
                while_full()

    def next_batch(self) -> tuple[list[T], bool]:
        """Up to batch_size items, waiting at most max_wait after the first; and whether
        the end was reached (nothing will follow)."""
        first = self._wait_for_first()
        if first is _END:
            return [], True
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.batch_size:
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
        while not self.stopped.is_set():
            try:
                return self._queue.get(timeout=self.heartbeat)
            except queue.Empty:
                continue
        return _END
