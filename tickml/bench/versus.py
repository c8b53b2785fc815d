"""`tickml bench api --against mlserver`: tickml's API beside MLServer, same model, same client.

Both serve the registry's production model through tickml's loader (MLServer through
tickml's runtime), each as one process, and are measured in the same run by the same
keep-alive client over the Open Inference Protocol: one row (p50, p99), batches of
1,000 rows as JSON (rows/s), and as a binary tensor where the server takes one.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tickml.bench.api import BATCH_ROWS, load, sample_matrix, summary, v2_binary_request
from tickml.config import Settings
from tickml.registry import ModelRegistry
from tickml.stack.programs import api_program, free_port, mlserver_program
from tickml.stack.services import start_program

JSON = {"Content-Type": "application/json"}
#: Why a figure is missing for MLServer.
NO_BINARY = "not supported: MLServer's REST server has no binary tensor extension"


def v2_json(matrix: np.ndarray) -> bytes:
    """A V2 request carrying `matrix` as a JSON FP64 tensor."""
    return orjson.dumps({"inputs": [{"name": "transactions", "shape": list(matrix.shape),
                                     "datatype": "FP64", "data": matrix.ravel().tolist()}]})


def measure_v2(port: int, model: str, matrix: np.ndarray, singles: int, batches: int,
               binary: bool) -> dict[str, Any]:
    """One row, then 1,000-row JSON batches, then (when `binary`) binary-tensor batches."""
    path = f"/v2/models/{model}/infer"
    one = v2_json(matrix[:1])
    load(port, [one], 20, 1, path, JSON)  # warm-up
    latencies, elapsed = load(port, [one], singles, 1, path, JSON)
    figures: dict[str, Any] = {"single_row_c1": {**summary(latencies),
                                                 "requests_per_s": len(latencies) / elapsed}}
    latencies, elapsed = load(port, [v2_json(matrix)], batches, 1, path, JSON)
    figures["json_batch_1000_c1"] = {**summary(latencies),
                                     "rows_per_s": BATCH_ROWS * len(latencies) / elapsed}
    if binary:
        binary_path, body, headers = v2_binary_request(port, matrix)
        latencies, elapsed = load(port, [body], batches, 1, binary_path, headers)
        figures["binary_batch_1000_c1"] = {**summary(latencies),
                                           "rows_per_s": BATCH_ROWS * len(latencies) / elapsed}
    else:
        figures["binary_batch_1000_c1"] = NO_BINARY
    return figures


def run_versus_mlserver(settings: Settings, singles: int, batches: int) -> dict[str, Any]:
    """tickml's API (one gunicorn worker) and MLServer (one process), measured in turn."""
    model = ModelRegistry(settings.models_dir).require_production().name
    matrix = sample_matrix(BATCH_ROWS)
    directory = Path(tempfile.mkdtemp(prefix="tickml-bench-versus-"))
    port = free_port()
    served = dataclasses.replace(settings, api_bind=f"127.0.0.1:{port}",
                                 api_url=f"http://127.0.0.1:{port}", api_workers=1)
    results: dict[str, Any] = {"model": model, "processes": "one each: tickml with 1 gunicorn "
                               "worker, MLServer with parallel_workers 0"}
    server = start_program(api_program(served), directory, served)
    try:
        results["tickml"] = measure_v2(port, model, matrix, singles, batches, binary=True)
    finally:
        server.stop()
    mlserver_port = free_port()
    program = mlserver_program(settings, directory / "mlserver", mlserver_port, free_port(),
                               model)
    server = start_program(program, directory, settings)
    try:
        results["mlserver"] = measure_v2(mlserver_port, model, matrix, singles, batches,
                                         binary=False)
    finally:
        server.stop()
    results["tickml_over_mlserver"] = compare(results["tickml"], results["mlserver"])
    return results


def compare(tickml: dict[str, Any], mlserver: dict[str, Any]) -> dict[str, float | None]:
    """tickml's figure over MLServer's: above 1 means tickml does better."""
    def rows(figures: dict[str, Any], key: str) -> float | None:
        return figures[key]["rows_per_s"] if isinstance(figures[key], dict) else None

    binary_t = rows(tickml, "binary_batch_1000_c1")
    json_m = rows(mlserver, "json_batch_1000_c1")
    return {
        "single_row_p50_speedup":
            mlserver["single_row_c1"]["p50_ms"] / tickml["single_row_c1"]["p50_ms"],
        "json_batch_throughput": tickml["json_batch_1000_c1"]["rows_per_s"] / json_m,
        # MLServer takes no binary tensor: its best 1,000-row form is JSON.
        "best_batch_throughput": max(binary_t or 0.0,
                                     tickml["json_batch_1000_c1"]["rows_per_s"]) / json_m,
    }


def format_table(results: dict[str, Any]) -> str:
    """The two servers' figures side by side, as Markdown."""
    lines = [f"model {results['model']}; {results['processes']}",
             "| figure | tickml API | MLServer | tickml / MLServer |",
             "| --- | ---: | ---: | ---: |"]
    t, m, r = results["tickml"], results["mlserver"], results["tickml_over_mlserver"]
    lines.append(f"| one row, p50 ms | {t['single_row_c1']['p50_ms']:.2f} | "
                 f"{m['single_row_c1']['p50_ms']:.2f} | {r['single_row_p50_speedup']:.2f}× "
                 "faster |")
    lines.append(f"| 1,000 rows JSON, rows/s | {t['json_batch_1000_c1']['rows_per_s']:,.0f} | "
                 f"{m['json_batch_1000_c1']['rows_per_s']:,.0f} | "
                 f"{r['json_batch_throughput']:.2f}× |")
    binary = t["binary_batch_1000_c1"]
    lines.append(f"| 1,000 rows binary tensor, rows/s | {binary['rows_per_s']:,.0f} | "
                 f"n/a ({NO_BINARY.split(': ', 1)[1]}) | "
                 f"{r['best_batch_throughput']:.2f}× (vs its JSON) |")
    return "\n".join(lines)
