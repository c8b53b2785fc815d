"""`tickml bench api` runs end to end on a small model (figures are not asserted: they are
the benchmark's to report, and these machines are shared)."""

from __future__ import annotations

import http.client

import numpy as np

from tickml import schema
from tickml.bench.api import BATCH_ROWS, run_benchmark, sample_matrix, v2_binary_request
from tickml.config import Settings

from .conftest import Server


def test_the_benchmark_measures_every_path_and_reports_the_targets(
        small_project: Settings) -> None:
    results = run_benchmark(small_project, requests_per_level=16, batches=2, workers=1,
                            threads=2, worker_class="gthread")
    measured = {**results["api"], **results["in_process"]}
    assert {"health_c1", "single_row_c1", "single_row_c8", "single_row_c32", "batch_1000_c1",
            "batch_1000_c2", "v2_binary_batch_1000_c1", "single_row",
            "json_parse_validate_score_1000"} <= measured.keys()
    assert all(figures["samples"] > 0 and figures["p50_ms"] > 0 for figures in measured.values())
    # each API figure has its floor from the same run beside it
    assert set(results["ratios"]) == {
        "single_row_p50_over_health_p50", "json_batch_over_in_process_parse_validate_score",
        "batch_throughput_api_over_in_process", "batch_throughput_api_c2_over_in_process",
        "v2_binary_batch_throughput_over_in_process", "single_row_p50_gap_ms"}


def test_the_binary_v2_request_scores_the_same_rows_as_predict(server: Server) -> None:
    # what the benchmark sends is a real scoring request, not an error answered quickly
    port = int(server.url.rsplit(":", 1)[1])
    matrix = sample_matrix(BATCH_ROWS)[:5]
    path, body, headers = v2_binary_request(port, matrix)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body, headers)
        response = connection.getresponse()
        answer = response.read()
        header_length = int(response.getheader("Inference-Header-Content-Length"))
    finally:
        connection.close()
    assert response.status == 200
    probabilities = np.frombuffer(answer[header_length:], dtype="<f8")
    instances = [dict(zip(schema.FEATURES, row, strict=True)) for row in matrix.tolist()]
    expected = server.post("/predict", {"instances": instances}).json()["predictions"]
    np.testing.assert_allclose(probabilities, [p["probability"] for p in expected])
