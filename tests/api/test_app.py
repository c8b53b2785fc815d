"""Fast checks through Flask's test client and the model holder, without gunicorn."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tickml import schema
from tickml.api import create_app
from tickml.api.holder import ModelHolder
from tickml.config import Settings
from tickml.modeling.register import register_model
from tickml.registry import ModelRegistry
from tickml.stack.programs import TICKML


@pytest.fixture
def client(small_project: Settings) -> FlaskClient:
    app = create_app(small_project, {"TICKML_MAX_INSTANCES": 3, "MAX_CONTENT_LENGTH": 4096})
    return app.test_client()


ZERO = {name: 0.0 for name in schema.FEATURES}


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"instances": [ZERO] * 4}, 413, "too_many_instances"),
    ({"instances": [ZERO] * 3}, 200, None),
    ({**ZERO, "V3": "1.5"}, 400, "invalid_value"),
    ({**ZERO, "V3": 10 ** 400}, 400, "invalid_value"),
    ({**ZERO, "instances": 1}, 400, "invalid_shape"),
    ({**ZERO, "pad": "x" * 5000}, 413, "payload_too_large"),
])
def test_limits_and_values(client: FlaskClient, body: dict, status: int,
                           code: str | None) -> None:
    response = client.post("/predict", json=body)
    assert response.status_code == status
    if code is not None:
        assert response.json["error"]["code"] == code


# an integer just beyond float64 parses as the largest float: refused, as documented
@pytest.mark.parametrize("huge", [10 ** 400, -10 ** 400, int(sys.float_info.max) + 1,
                                  sys.float_info.max])
def test_a_number_beyond_the_documented_range_is_named(client: FlaskClient,
                                                      huge: float) -> None:
    error = client.post("/predict", json={**ZERO, "V3": huge}).json["error"]
    assert error["field"] == "V3" and "too large for a 64-bit float" in error["message"]


def test_a_huge_integer_in_a_v2_tensor_is_named(client: FlaskClient) -> None:
    data = [0.0] * len(schema.FEATURES)
    data[3] = int(sys.float_info.max) + 1
    body = {"inputs": [{"name": "transactions", "shape": [1, len(data)], "datatype": "FP64",
                        "data": data}]}
    name = client.get("/model").json["name"]
    response = client.post(f"/v2/models/{name}/infer", json=body)
    assert response.status_code == 400
    assert "too large for a 64-bit float" in response.json["error"]
    assert response.json["details"]["field"] == "V3"


def test_without_a_registry_the_app_starts_and_says_why(tmp_path: Path) -> None:
    client = create_app(Settings(root=tmp_path)).test_client()
    assert client.get("/health").status_code == 200
    ready = client.get("/ready")
    assert ready.status_code == 503 and "no production model" in ready.json["reason"]
    response = client.post("/predict", json=ZERO)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "model_unavailable"
    v2 = client.get("/v2/models/fraud-lgbm")
    assert v2.status_code == 503 and v2.json["details"]["code"] == "model_unavailable"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_holder_looks_at_the_pointer_at_most_once_per_interval(
        small_project: Settings, tmp_path: Path) -> None:
    shutil.copytree(small_project.models_dir, tmp_path / "models")
    registry = ModelRegistry(tmp_path / "models")
    clock = FakeClock()
    holder = ModelHolder(registry.root, reload_interval=5.0, clock=clock)
    first = holder.current()
    assert first is not None
    ref = register_model(registry, first.pipeline, name=first.ref.name, threshold=0.4,
                         metrics={}, params={}, seed=0, data_sha256="")
    registry.promote(ref)
    clock.now = 4.9
    assert holder.current() is first  # not due yet: the old model, no file access
    clock.now = 5.0
    assert holder.current().ref == ref
    assert holder.status()["model"]["threshold"] == 0.4


def test_a_malformed_pointer_is_refused_and_the_model_kept(
        small_project: Settings, tmp_path: Path) -> None:
    shutil.copytree(small_project.models_dir, tmp_path / "models")
    clock = FakeClock()
    holder = ModelHolder(tmp_path / "models", reload_interval=1.0, clock=clock)
    served = holder.current()
    (tmp_path / "models" / "production.json").write_text("{not json")
    clock.now = 1.0
    assert holder.current() is served
    assert "malformed" in holder.status()["refused"]["reason"]


def test_serve_help_explains_every_option() -> None:
    out = subprocess.run([TICKML, "serve", "--help"], capture_output=True,
                         text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin"})
    assert out.returncode == 0, out.stderr
    for option in ("--bind", "--workers", "--threads", "--worker-class", "--timeout",
                   "--graceful-timeout", "--models-dir", "--max-instances",
                   "--max-body-bytes", "--reload-interval", "503"):
        assert option in out.stdout
