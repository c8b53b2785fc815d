"""`tickml bench abuse`: the API under slow clients and large bodies, before and after.

One run starts `tickml serve` once per configuration, on free ports, with the same
model: `before` is the earlier deployment (gthread workers, 16 MiB bodies, no cap on
large bodies at once), `after` the current defaults (gevent workers, the current body
limit, one large body per worker). Each is measured the same way:

- slow clients: `/health` and `/predict` are timed with no other client, then while
  16 connections each send a request line and one header line a second, never
  finishing the request. A request that gets no answer within the timeout counts as
  blocked; two blocked requests end that series.
- memory: the RSS of every worker (psutil) before, at its peak while, and after one
  16 MiB body of empty objects (`{"instances": [{}, {}, ...]}`), then four such bodies
  at once, then four bodies of empty objects at the configuration's own body limit.
"""

from __future__ import annotations

import dataclasses
import http.client
import os
import platform
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import psutil

from tickml import schema
from tickml.config import Settings
from tickml.stack.process import Service
from tickml.stack.programs import api_program, free_port
from tickml.stack.services import start_program

SLOW_CLIENTS = 16
MIB = 1024 * 1024
#: The deployment before the remedies, for comparison in the same run.
BEFORE = {"api_worker_class": "gthread", "api_max_body_bytes": 16 * MIB,
          "api_large_bodies": 1_000}


class SlowClients:
    """Connections that send a request's headers one line a second and never finish."""

    def __init__(self, port: int, count: int = SLOW_CLIENTS, interval: float = 1.0) -> None:
        self.port = port
        self.count = count
        self.interval = interval
        self.sockets: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> SlowClients:
        for n in range(self.count):
            conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            conn.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         + f"X-Slow-{n}: 0\r\n".encode())
            self.sockets.append(conn)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self.sockets:
            conn.close()

    def still_connected(self) -> int:
        """How many of the connections the server has not closed."""
        open_ = 0
        for conn in self.sockets:
            conn.setblocking(False)
            try:
                open_ += conn.recv(1, socket.MSG_PEEK) != b""  # b"": closed by the server
            except BlockingIOError:
                open_ += 1  # nothing to read, still open
            except OSError:
                pass
            finally:
                conn.setblocking(True)
        return open_

    def _trickle(self) -> None:
        line = 1
        while not self._stop.wait(self.interval):
            for n, conn in enumerate(self.sockets):
                with suppress(OSError):  # the server closed it; still_connected() tells
                    conn.sendall(f"X-Slow-{n}-{line}: {line}\r\n".encode())
            line += 1


def empty_objects_body(size: int) -> bytes:
    """`{"instances": [{},{},...]}` of `size` bytes: the most objects per byte."""
    head, tail = b'{"instances":[', b"{}]}"
    count = (size - len(head) - len(tail)) // 3
    return head + b"{}," * count + tail


def transaction_body() -> bytes:
    """One all-zero transaction: a valid `/predict` body."""
    return orjson.dumps(dict.fromkeys(schema.FEATURES, 0.0))


def run_abuse_benchmark(settings: Settings, *, requests: int, timeout: float,
                        workers: int) -> dict[str, Any]:
    """Measure `before` and `after` in one run and return every figure."""
    after = {"api_worker_class": settings.api_worker_class,
             "api_max_body_bytes": settings.api_max_body_bytes,
             "api_large_bodies": settings.api_large_bodies}
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "workers": workers, "slow_clients": SLOW_CLIENTS, "timeout_s": timeout,
    }
    for label, overrides in (("before", BEFORE), ("after", after)):
        config = {**overrides, "api_workers": workers}
        with serving(settings, config) as (service, port):
            results[label] = {"config": overrides,
                              "slow_clients": measure_slow_clients(port, requests, timeout),
                              "memory": measure_memory(service, port, overrides)}
    return results


@contextmanager
def serving(settings: Settings, overrides: dict[str, Any]) -> Iterator[tuple[Service, int]]:
    """`tickml serve` with `overrides` on a free port; its log stays in a temp folder."""
    port = free_port()
    served = dataclasses.replace(settings, api_bind=f"127.0.0.1:{port}",
                                 api_url=f"http://127.0.0.1:{port}", **overrides)
    service = start_program(api_program(served), Path(tempfile.mkdtemp(
        prefix="tickml-bench-abuse-")), served)
    try:
        yield service, port
    finally:
        service.stop()


def measure_slow_clients(port: int, requests: int, timeout: float) -> dict[str, Any]:
    """/health and /predict, alone and with 16 slow clients holding connections."""
    health = lambda: request(port, "GET", "/health", None, timeout)  # noqa: E731
    predict = lambda: request(port, "POST", "/predict", transaction_body(), timeout)  # noqa: E731
    figures: dict[str, Any] = {"alone": {"health": series(health, requests),
                                         "predict": series(predict, requests)}}
    with SlowClients(port) as slow:
        time.sleep(2.0)  # every slow client connected and two header lines in
        figures["with_slow_clients"] = {"health": series(health, requests),
                                        "predict": series(predict, requests)}
        figures["slow_clients_still_connected"] = slow.still_connected()
    return figures


def request(port: int, method: str, path: str, body: bytes | None,
            timeout: float) -> tuple[int, float]:
    """One request on a new connection: (status, seconds), status 0 when it timed out."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        connection.request(method, path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    except (TimeoutError, OSError):
        return 0, time.perf_counter() - started
    finally:
        connection.close()


def series(call: Callable[[], tuple[int, float]], requests: int) -> dict[str, Any]:
    """Latencies of up to `requests` calls; two timeouts end the series as blocked."""
    seconds, statuses, blocked = [], [], 0
    for _ in range(requests):
        status, elapsed = call()
        statuses.append(status)
        if status == 0:
            blocked += 1
            if blocked == 2:
                break
        else:
            seconds.append(elapsed)
    return {"answered": len(seconds), "blocked": blocked,
            "statuses": sorted(set(statuses)),
            "p50_ms": 1e3 * statistics.median(seconds) if seconds else None,
            "max_ms": 1e3 * max(seconds) if seconds else None}


def measure_memory(service: Service, port: int, config: dict[str, Any]) -> dict[str, Any]:
    """Worker RSS around one and four empty-objects bodies: 16 MiB, then at the limit."""
    big = empty_objects_body(16 * MIB)
    at_limit = empty_objects_body(config["api_max_body_bytes"])
    return {
        "one_16mib": bodies_rss(service, port, [big]),
        "four_16mib_at_once": bodies_rss(service, port, [big] * 4),
        "four_at_limit_at_once": bodies_rss(service, port, [at_limit] * 4),
    }


def bodies_rss(service: Service, port: int, bodies: list[bytes]) -> dict[str, Any]:
    """Send `bodies` at once; the workers' RSS growth (MB) at peak and after, statuses."""
    workers = psutil.Process(service.process.pid).children()
    before = {w.pid: w.memory_info().rss for w in workers}
    peak = dict(before)
    statuses: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            for worker in workers:
                with suppress(psutil.NoSuchProcess):
                    peak[worker.pid] = max(peak[worker.pid], worker.memory_info().rss)
            time.sleep(0.01)

    def send(body: bytes) -> None:
        statuses.append(post_raw(port, body))

    watcher = threading.Thread(target=watch)
    senders = [threading.Thread(target=send, args=(body,)) for body in bodies]
    watcher.start()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    time.sleep(0.5)  # the last response sent, the worker back to idle
    done.set()
    watcher.join()
    after = {w.pid: w.memory_info().rss for w in workers if w.is_running()}
    return {"body_mib": round(len(bodies[0]) / MIB, 2), "bodies": len(bodies),
            "statuses": sorted(statuses),
            "peak_growth_mb": max((peak[p] - before[p]) / 1e6 for p in before),
            "retained_growth_mb": max((after.get(p, before[p]) - before[p]) / 1e6
                                      for p in before)}


def post_raw(port: int, body: bytes) -> str:
    """POST `body` to /predict; "<status> <error code>", or "closed" without an answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        answer = response.read()
    except OSError:  # refused unread: the server may close before the body is sent
        return "closed"
    finally:
        connection.close()
    try:
        return f"{response.status} {orjson.loads(answer)['error']['code']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return str(response.status)


def format_results(results: dict[str, Any]) -> str:
    """The figures as plain lines, before and after side by side."""
    lines = [f"{SLOW_CLIENTS} slow clients, {results['workers']} workers, "
             f"timeout {results['timeout_s']:.0f} s"]
    for label in ("before", "after"):
        run = results[label]
        config = run["config"]
        lines.append(f"{label}: {config['api_worker_class']}, body limit "
                     f"{config['api_max_body_bytes'] / MIB:.0f} MiB, large bodies at once "
                     f"{config['api_large_bodies']}")
        slow = run["slow_clients"]
        for when in ("alone", "with_slow_clients"):
            for endpoint in ("health", "predict"):
                s = slow[when][endpoint]
                p50 = "-" if s["p50_ms"] is None else f"{s['p50_ms']:.1f}"
                worst = "-" if s["max_ms"] is None else f"{s['max_ms']:.1f}"
                lines.append(f"  {endpoint:<8}{when:<18} p50 {p50:>8} ms  max {worst:>8} ms  "
                             f"answered {s['answered']}, blocked {s['blocked']}")
        for name, m in run["memory"].items():
            lines.append(f"  {name:<22} {m['bodies']} x {m['body_mib']:.1f} MiB: worker RSS "
                         f"+{m['peak_growth_mb']:.0f} MB at peak, +{m['retained_growth_mb']:.0f}"
                         f" MB after; statuses {m['statuses']}")
    return "\n".join(lines)
