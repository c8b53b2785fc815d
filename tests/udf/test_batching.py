"""The micro-batcher on its own: batch size, waiting, the end of the stream, back-pressure."""

from __future__ import annotations

import threading
import time

from tickml.udf.batching import MicroBatcher


def test_a_full_batch_is_handed_out_without_waiting() -> None:
    batcher = MicroBatcher(batch_size=3, max_wait=10.0, max_pending=10)
    for i in range(5):
        batcher.put(i)
    started = time.monotonic()
    assert batcher.next_batch() == ([0, 1, 2], False)
    assert time.monotonic() - started < 1.0


def test_a_partial_batch_goes_out_after_max_wait() -> None:
    batcher = MicroBatcher(batch_size=100, max_wait=0.05, max_pending=10)
    batcher.put("a")
    batcher.put("b")
    assert batcher.next_batch() == (["a", "b"], False)


def test_close_flushes_what_is_left_and_reports_the_end() -> None:
    batcher = MicroBatcher(batch_size=100, max_wait=10.0, max_pending=10)
    batcher.put("a")
    batcher.close()
    assert batcher.next_batch() == (["a"], True)


def test_an_empty_closed_batcher_ends_at_once() -> None:
    batcher = MicroBatcher(batch_size=2, max_wait=10.0, max_pending=10)
    batcher.close()
    assert batcher.next_batch() == ([], True)


def test_a_full_queue_calls_while_full_until_there_is_room() -> None:
    batcher = MicroBatcher(batch_size=1, max_wait=0.0, max_pending=1, heartbeat=0.05)
    batcher.put("first")
    beats = []
    putter = threading.Thread(target=batcher.put, args=("second",),
                              kwargs={"while_full": lambda: beats.append(1)})
    putter.start()
    time.sleep(0.3)
    assert putter.is_alive() and len(beats) >= 2, "held back, with heartbeats"
    assert batcher.next_batch() == (["first"], False)
    putter.join(timeout=5)
    assert batcher.next_batch() == (["second"], False)


def test_a_stopped_batcher_stops_waiting() -> None:
    batcher = MicroBatcher(batch_size=1, max_wait=0.0, max_pending=1, heartbeat=0.05)
    batcher.stopped.set()
    assert batcher.next_batch() == ([], True)
