"""The stream with its agent pointed at MLServer: influxd → kapacitord → `tickml udf` →
MLServer's V2 endpoint (tickml's runtime, serving the registry's production model)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest
import requests

from tests.polling import wait_until
from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.generator import transaction_lines
from tickml.stack.services import LocalPipeline, local_pipeline

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def mlserver_stream(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[LocalPipeline]:
    with local_pipeline(small_project, tmp_path_factory.mktemp("mlserver-stream"),
                        backend="mlserver") as pipeline:
        yield pipeline


def test_the_stream_scores_every_transaction_through_mlserver(
        mlserver_stream: LocalPipeline) -> None:
    pipeline = mlserver_stream
    assert "/v2/models/" in pipeline.settings.score_url
    rows = load_split(pipeline.settings, "test").sample(300, random_state=11)
    lines = transaction_lines(rows, time.time_ns(), tags={"run": "via-mlserver"},
                              spacing_ns=1000)
    api_rows_before = api_rows_scored(pipeline)
    pipeline.influx.write_lines(lines)
    query = (f'SELECT * FROM "{schema.SCORED_POINTS}" WHERE "run" = \'via-mlserver\'')
    assert wait_until(lambda: len(pipeline.influx.records(query)) >= len(lines), timeout=90)
    scored = sorted(pipeline.influx.records(query), key=lambda r: r["time"])
    assert len(scored) == len(lines) and all(r[schema.SCORED] is True for r in scored)
    assert api_rows_scored(pipeline) == api_rows_before, "tickml's API scored none of them"
    instances = rows[list(schema.FEATURES)].to_dict(orient="records")
    answer = requests.post(f"{pipeline.settings.api_url}/predict",
                           json={"instances": instances}, timeout=30).json()
    np.testing.assert_allclose([r[schema.PROBABILITY] for r in scored],
                               [p["probability"] for p in answer["predictions"]], rtol=0,
                               atol=1e-12)
    assert {(r[schema.MODEL], r[schema.MODEL_VERSION]) for r in scored} == {
        (answer["model"]["name"], answer["model"]["version"])}


def api_rows_scored(pipeline: LocalPipeline) -> float:
    """The rows tickml's own API has scored (its Prometheus counter)."""
    text = requests.get(f"{pipeline.settings.api_url}/metrics", timeout=10).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("tickml_api_rows_scored_total"))
