"""`tickml bench api`: the API against in-process scoring, same model, same run."""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from tickml import schema
from tickml.api import validation
from tickml.config import Settings
from tickml.data.synthetic import generate_transactions
from tickml.loader import load_production
from tickml.registry import ModelRegistry
from tickml.stack.programs import api_program, free_port
from tickml.stack.services import start_program

BATCH_ROWS = 1_000
CONCURRENCY = (1, 8, 32)


def run_benchmark(settings: Settings, *, requests_per_level: int, batches: int, workers: int,
                  threads: int, worker_class: str) -> dict[str, Any]:
    """Measure in-process scoring, then the API, and return every figure."""
    model = load_production(ModelRegistry(settings.models_dir))
    matrix = sample_matrix(BATCH_ROWS)
    results: dict[str, Any] = {
        "model": str(model.ref),
        "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                    "python": platform.python_version()},
        "server": {"workers": workers, "threads": threads, "worker_class": worker_class},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    single = timings(lambda: model.predict_proba(matrix[:1]), max(200, requests_per_level // 2))
    batch = timings(lambda: model.predict_proba(matrix), batches)
    # The floor of a JSON batch: the API's own parsing and validation of the very body the
    # API is sent, then the model, with no HTTP, Flask or response in between.
    body = batch_json(matrix)
    parsed = timings(lambda: model.predict_proba(
        validation.predict_matrix(body, settings.api_max_instances)[0]), batches)
    results["in_process"] = {
        "single_row": summary(single),
        "batch_1000": {**summary(batch), "rows_per_s": BATCH_ROWS / statistics.median(batch)},
        "json_parse_validate_score_1000": {**summary(parsed),
                                           "rows_per_s": BATCH_ROWS / statistics.median(parsed)},
    }
    port = free_port()
    served = dataclasses.replace(settings, api_bind=f"127.0.0.1:{port}",
                                 api_url=f"http://127.0.0.1:{port}", api_workers=workers,
                                 api_threads=threads)
    # The server's log stays behind in the temporary folder, for a look after a bad run.
    server = start_program(api_program(served, "--worker-class", worker_class),
                           Path(tempfile.mkdtemp(prefix="tickml-bench-api-")), served)
    try:
        results["api"] = measure_api(port, matrix, requests_per_level, batches)
    finally:
        server.stop()
    results["ratios"] = ratios(results)
    return results


def sample_matrix(rows: int) -> np.ndarray:
    """Realistic transactions (the synthetic stand-in) in schema order."""
    frame = generate_transactions(max(rows, 2_000), seed=11).head(rows)
    return frame.loc[:, list(schema.FEATURES)].to_numpy(dtype=np.float64)


def batch_json(matrix: np.ndarray) -> bytes:
    """A `/predict` body with one transaction object per row of `matrix`."""
    return orjson.dumps({"instances": [dict(zip(schema.FEATURES, row, strict=True))
                                       for row in matrix.tolist()]})


def measure_api(port: int, matrix: np.ndarray, requests_per_level: int,
                batches: int) -> dict[str, Any]:
    """/health, then single rows at each concurrency level, then batches of 1,000 rows."""
    singles = [orjson.dumps(dict(zip(schema.FEATURES, row, strict=True)))
               for row in matrix.tolist()]
    batch_body = batch_json(matrix)
    post(port, [singles[0]] * 20, [])  # warm both workers' code paths
    figures: dict[str, Any] = {}
    # The floor of a single-row request: the same keep-alive round trip, nothing scored.
    latencies: list[float] = []
    send(port, "GET", "/health", [b""] * requests_per_level, latencies)
    figures["health_c1"] = summary(latencies)
    for concurrency in CONCURRENCY:
        latencies, elapsed = load(port, singles, requests_per_level, concurrency)
        figures[f"single_row_c{concurrency}"] = {**summary(latencies),
                                                  "requests_per_s": len(latencies) / elapsed}
    for concurrency in (1, 2):
        latencies, elapsed = load(port, [batch_body], batches, concurrency)
        figures[f"batch_1000_c{concurrency}"] = {
            **summary(latencies), "rows_per_s": BATCH_ROWS * len(latencies) / elapsed}
    path, v2_body, headers = v2_binary_request(port, matrix)
    latencies, elapsed = load(port, [v2_body], batches, 1, path, headers)
    figures["v2_binary_batch_1000_c1"] = {
        **summary(latencies), "rows_per_s": BATCH_ROWS * len(latencies) / elapsed}
    return figures


def v2_binary_request(port: int, matrix: np.ndarray) -> tuple[str, bytes, dict[str, str]]:
    """An Open Inference Protocol request carrying `matrix` as a binary FP64 tensor."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/model")
        name = json.loads(connection.getresponse().read())["name"]
    finally:
        connection.close()
    data = np.ascontiguousarray(matrix, dtype="<f8").tobytes()
    header = orjson.dumps({
        "inputs": [{"name": "transactions", "shape": list(matrix.shape), "datatype": "FP64",
                    "parameters": {"binary_data_size": len(data)}}],
        "outputs": [{"name": "probability", "parameters": {"binary_data": True}}]})
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": str(len(header))}
    return f"/v2/models/{name}/infer", header + data, headers


def load(port: int, bodies: list[bytes], total: int, concurrency: int,
         path: str = "/predict", headers: dict[str, str] | None = None
         ) -> tuple[list[float], float]:
    """Send `total` requests over `concurrency` keep-alive connections."""
    # round-robin, so every request is sent even when total is not a multiple
    per_thread = [[bodies[n % len(bodies)] for n in range(t, total, concurrency)]
                  for t in range(concurrency)]
    latencies: list[float] = []
    workers = [threading.Thread(target=post, args=(port, share, latencies, path, headers))
               for share in per_thread]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return latencies, time.perf_counter() - started


def post(port: int, bodies: list[bytes], latencies: list[float], path: str = "/predict",
         headers: dict[str, str] | None = None) -> None:
    """POST each body to `path` on one connection, appending each latency."""
    send(port, "POST", path, bodies, latencies, headers or {"Content-Type": "application/json"})


def send(port: int, method: str, path: str, bodies: list[bytes], latencies: list[float],
         headers: dict[str, str] | None = None) -> None:
    """One request per body (GET: send `b""`) on one connection, appending each latency."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = headers or {}
    try:
        for body in bodies:
            started = time.perf_counter()
            connection.request(method, path, body or None, headers)
            response = connection.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)  # list.append is thread-safe
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
    finally:
        connection.close()


def timings(call: Callable[[], object], repeat: int) -> list[float]:
    """Seconds per call, after a few warm-up calls."""
    for _ in range(3):
        call()
    seconds = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - started)
    return seconds


def summary(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 in milliseconds, and the number of samples."""
    return {"p50_ms": 1e3 * float(np.percentile(seconds, 50)),
            "p99_ms": 1e3 * float(np.percentile(seconds, 99)), "samples": len(seconds)}


def ratios(results: dict[str, Any]) -> dict[str, float]:
    """Each API figure over its floor from the same run, and the older gap figures.

    single-row p50 over `/health` p50 (HTTP alone), JSON batch rows/s over the in-process
    parse + validate + score of the same body, V2 binary batch rows/s over in-process
    scoring of the matrix.
    """
    inproc, api = results["in_process"], results["api"]
    return {
        "single_row_p50_over_health_p50":
            api["single_row_c1"]["p50_ms"] / api["health_c1"]["p50_ms"],
        "json_batch_over_in_process_parse_validate_score":
            api["batch_1000_c1"]["rows_per_s"]
            / inproc["json_parse_validate_score_1000"]["rows_per_s"],
        "batch_throughput_api_over_in_process":
            api["batch_1000_c1"]["rows_per_s"] / inproc["batch_1000"]["rows_per_s"],
        "batch_throughput_api_c2_over_in_process":
            api["batch_1000_c2"]["rows_per_s"] / inproc["batch_1000"]["rows_per_s"],
        "v2_binary_batch_throughput_over_in_process":
            api["v2_binary_batch_1000_c1"]["rows_per_s"] / inproc["batch_1000"]["rows_per_s"],
        "single_row_p50_gap_ms":
            api["single_row_c1"]["p50_ms"] - inproc["single_row"]["p50_ms"],
    }


def print_results(results: dict[str, Any]) -> None:
    """The figures as a table on stdout."""
    table = Table(title=f"{results['model']}: API ({results['server']['worker_class']}, "
                        f"{results['server']['workers']} workers) vs in-process")
    for column in ("measurement", "p50 ms", "p99 ms", "requests/s", "rows/s"):
        table.add_column(column, justify="right" if column != "measurement" else "left")
    rows = [("in-process, 1 row", results["in_process"]["single_row"]),
            ("in-process, 1,000 rows", results["in_process"]["batch_1000"]),
            ("in-process, JSON 1,000 rows: parse, validate, score",
             results["in_process"]["json_parse_validate_score_1000"]),
            ("API, GET /health, concurrency 1", results["api"]["health_c1"])]
    rows += [(f"API, 1 row, concurrency {c}", results["api"][f"single_row_c{c}"])
             for c in CONCURRENCY]
    rows += [(f"API, 1,000 rows, concurrency {c}", results["api"][f"batch_1000_c{c}"])
             for c in (1, 2)]
    rows.append(("V2 binary tensor, 1,000 rows, concurrency 1",
                 results["api"]["v2_binary_batch_1000_c1"]))
    for name, figures in rows:
        table.add_row(name, f"{figures['p50_ms']:.2f}", f"{figures['p99_ms']:.2f}",
                      _optional(figures, "requests_per_s"), _optional(figures, "rows_per_s"))
    Console().print(table)
    r = results["ratios"]
    Console().print(
        f"single-row p50 / /health p50: {r['single_row_p50_over_health_p50']:.2f}; JSON batch / "
        f"in-process parse+validate+score: "
        f"{r['json_batch_over_in_process_parse_validate_score']:.0%}; "
        f"batch throughput, API / in-process: {r['batch_throughput_api_over_in_process']:.0%} "
        f"(concurrency 2: {r['batch_throughput_api_c2_over_in_process']:.0%}; V2 binary "
        f"tensor: {r['v2_binary_batch_throughput_over_in_process']:.0%}); single-row p50 "
        f"gap: {r['single_row_p50_gap_ms']:+.2f} ms")


def _optional(figures: dict[str, float], key: str) -> str:
    return f"{figures[key]:,.0f}" if key in figures else ""
