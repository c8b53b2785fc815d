"""Micro-batching with back-pressure: a bounded queue that hands points out in batches.

The reader of a connection `put`s points; the scorer takes `next_batch`es. A batch
holds up to `batch_size` points, or whatever arrived within `max_wait` after its
first one. When the queue is full `put` waits, calling `while_full` every
`heartbeat` seconds (the handler sends Kapacitor a keepalive, which resets its
timer), so nothing is dropped and Kapacitor is held back instead.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
HEARTBEAT_SECONDS = 1.0
_END = object()  # queued after the last item: flush and stop


class MicroBatcher(Generic[T]):
    """A bounded queue of items, taken out in micro-batches, until `close()`.

    A deque under one condition rather than `queue.Queue`: the scorer takes a whole
    batch per lock, and either side is woken only while the other waits for it, which
    cut the hand-over from about 12 to about 1 µs of CPU per item here.
    """

    def __init__(self, batch_size: int, max_wait: float, max_pending: int,
                 heartbeat: float = HEARTBEAT_SECONDS) -> None:
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.max_pending = max_pending
        self.heartbeat = heartbeat
        self.stopped = threading.Event()  # set to abandon waiting (the connection broke)
        self._items: deque[object] = deque()
        self._changed = threading.Condition(threading.Lock())
        self._taker_waits = False
        self._putter_waits = False

    def put(self, item: T, while_full: Callable[[], None] = lambda: None) -> None:
        """Queue `item`; while the queue is full, call `while_full` every heartbeat."""
        self._put(item, while_full)

    def close(self, while_full: Callable[[], None] = lambda: None) -> None:
        """Mark the end: the batch after the last item comes back with `finished` set."""
        self._put(_END, while_full)

    def _put(self, item: object, while_full: Callable[[], None]) -> None:
        while not self.stopped.is_set():
            with self._changed:
                if len(self._items) < self.max_pending:
                    self._items.append(item)
                    if self._taker_waits:
                        self._changed.notify_all()
                    return
                self._putter_waits = True
                room = self._changed.wait(self.heartbeat)
                self._putter_waits = False
            if not room:
                while_full()

    def next_batch(self) -> tuple[list[T], bool]:
        """Up to batch_size items, waiting at most max_wait after the first; and whether
        the end was reached (nothing will follow)."""
        batch: list[T] = []
        deadline = 0.0
        with self._changed:
            while True:
                had = len(batch)
                if self._take(batch):
                    return batch, True
                if len(batch) >= self.batch_size:
                    return batch, False
                if not batch:
                    if self.stopped.is_set():
                        return batch, True
                    self._wait(self.heartbeat)
                    continue
                if had == 0:  # the first item arrived: max_wait runs from now
                    deadline = time.monotonic() + self.max_wait
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch, False
                self._wait(remaining)

    def _take(self, batch: list[T]) -> bool:
        """Move queued items into `batch` up to batch_size; True when the end was taken."""
        items = self._items
        took = bool(items)
        try:
            while items and len(batch) < self.batch_size:
                item = items.popleft()
                if item is _END:
                    return True
                batch.append(item)  # type: ignore[arg-type]
            return False
        finally:
            if took and self._putter_waits:
                self._changed.notify_all()

    def _wait(self, seconds: float) -> None:
        self._taker_waits = True
        self._changed.wait(seconds)
        self._taker_waits = False
