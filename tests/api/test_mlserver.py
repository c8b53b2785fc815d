"""MLServer serving the small registry through tickml's runtime, next to tickml's own API.

Real processes only: `tickml mlserver write` (the command line) writes the settings,
`mlserver start` runs on free ports of 127.0.0.1 and is stopped by its pid afterwards,
and tickml's API is the gunicorn `tickml serve` of tests/api/conftest.py. MLServer is
called with tritonclient (JSON tensors: MLServer has no binary tensor extension) and
plain requests, and must answer as tickml's /v2 does; a model the loader refuses must
not be served.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.api.conftest import MAX_INSTANCES, Server, as_matrix, copy_registry
from tickml.config import Settings
from tickml.loader import LoadedModel
from tickml.registry import ARTIFACT, METADATA, POINTER, ModelRegistry
from tickml.stack.process import Service
from tickml.stack.programs import TICKML, free_port, http_ok

NAME = "fraud-lgbm"
TOLERANCE = 1e-12
#: How long MLServer may take to load the model (about 5 s on an idle 2-core machine).
START_SECONDS = 120.0


@dataclass(frozen=True)
class MLServer:
    """A running `mlserver start`: its REST URL and its process."""

    url: str
    service: Service

    def infer(self, payload: dict, path: str = f"/v2/models/{NAME}/infer") -> requests.Response:
        return requests.post(self.url + path, json=payload, timeout=30)


def write_settings(models: Path, directory: Path) -> tuple[list[str], int]:
    """`tickml mlserver write` for `models` on free ports; the start command and REST port."""
    http_port = free_port()
    grpc_port = free_port()
    while grpc_port == http_port:
        grpc_port = free_port()
    result = subprocess.run(
        [TICKML, "mlserver", "write", str(directory / "mlserver"), "--models-dir", str(models),
         "--http-port", str(http_port), "--grpc-port", str(grpc_port)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "TICKML_ROOT": str(directory),
             "TICKML_API_MAX_INSTANCES": str(MAX_INSTANCES)})
    assert result.returncode == 0, result.stderr
    command = shlex.split(result.stdout.strip().splitlines()[-1])
    assert command[1:] == ["start", str(directory / "mlserver")], result.stdout
    return command, http_port


def start_mlserver(command: list[str], port: int, directory: Path) -> Service:
    """`mlserver start` as a subprocess with its log in `directory`, not yet waited for."""
    return Service("mlserver", command, directory,
                   ready=lambda: http_ok(f"http://127.0.0.1:{port}/v2/models/{NAME}/ready"),
                   url=f"http://127.0.0.1:{port}").start()


@pytest.fixture(scope="module")
def mlserver(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[MLServer]:
    """MLServer serving a copy of the small registry, once it says the model is ready."""
    directory = tmp_path_factory.mktemp("mlserver")
    registry = copy_registry(small_project, directory / "models")
    command, port = write_settings(registry.root, directory)
    service = start_mlserver(command, port, directory)
    try:
        service.wait_ready(START_SECONDS)
        yield MLServer(service.url, service)
    finally:
        service.stop()


@pytest.fixture
def triton(mlserver: MLServer):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(mlserver.url.removeprefix("http://"))
    yield client
    client.close()


def test_the_written_settings_are_those_mlserver_reads(mlserver: MLServer) -> None:
    folder = Path(mlserver.service.argv[-1])
    server = json.loads((folder / "settings.json").read_text())
    assert server["host"] == "127.0.0.1" and server["parallel_workers"] == 0
    assert server["debug"] is False and server["metrics_endpoint"] is None
    model = json.loads((folder / NAME / "model-settings.json").read_text())
    assert model["name"] == NAME and model["parameters"]["version"] == "1"
    assert model["implementation"] == "tickml.serving.mlserver.TickmlRuntime"
    assert Path(model["parameters"]["uri"]).name == "models"
    log = mlserver.service.log_path.read_text()
    assert f"serving {NAME} v1 (threshold" in log and "compiled path: fastpath.zip" in log


@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_gets_from_mlserver_what_tickml_answers(
        server: Server, triton, model: LoadedModel, transactions: list[dict],
        datatype: str) -> None:
    import tritonclient.http as httpclient

    matrix = as_matrix(transactions).astype(np.float64 if datatype == "FP64" else np.float32)
    results = {}
    for where, url in (("mlserver", triton), ("tickml", None)):
        client = url or httpclient.InferenceServerClient(server.url.removeprefix("http://"))
        tensor = httpclient.InferInput("transactions", list(matrix.shape), datatype)
        tensor.set_data_from_numpy(matrix, binary_data=False)
        outputs = [httpclient.InferRequestedOutput(name, binary_data=False)
                   for name in ("probability", "fraud")]
        answer = client.infer(NAME, [tensor], outputs=outputs)
        results[where] = (answer.as_numpy("probability"), answer.as_numpy("fraud"),
                          answer.get_response())
        if url is None:
            client.close()
    probability, fraud, response = results["mlserver"]
    tickml_probability, tickml_fraud, tickml_response = results["tickml"]
    assert probability.dtype == np.float64 and fraud.dtype == np.bool_
    np.testing.assert_allclose(probability, tickml_probability, rtol=0, atol=TOLERANCE)
    assert fraud.tolist() == tickml_fraud.tolist() and fraud.any() and not fraud.all()
    assert fraud.tolist() == (probability >= model.threshold).tolist()
    for key in ("model_name", "model_version", "parameters"):
        assert response[key] == tickml_response[key], key
    if datatype == "FP64":
        predicted = server.post("/predict", {"instances": transactions}).json()["predictions"]
        np.testing.assert_allclose(probability, [p["probability"] for p in predicted],
                                   rtol=0, atol=TOLERANCE)
        assert fraud.tolist() == [p["fraud"] for p in predicted]


def test_plain_requests_get_the_same_v2_answer_from_both(
        mlserver: MLServer, server: Server, model: LoadedModel,
        transactions: list[dict]) -> None:
    matrix = as_matrix(transactions)
    payload = {"id": "req-1", "inputs": [{"name": "transactions", "datatype": "FP64",
                                          "shape": list(matrix.shape),
                                          "data": matrix.tolist()}]}
    ours = mlserver.infer(payload)
    theirs = requests.post(f"{server.url}/v2/models/{NAME}/infer", json=payload, timeout=30)
    assert ours.status_code == theirs.status_code == 200, ours.text
    body, expected = ours.json(), theirs.json()
    assert body["id"] == "req-1"
    assert body["model_name"] == NAME and body["model_version"] == str(model.ref.version)
    assert body["parameters"] == {"threshold": model.threshold} == expected["parameters"]
    assert [(o["name"], o["datatype"], o["shape"]) for o in body["outputs"]] == \
        [("probability", "FP64", [len(matrix)]), ("fraud", "BOOL", [len(matrix)])] == \
        [(o["name"], o["datatype"], o["shape"]) for o in expected["outputs"]]
    (probability, fraud), (their_probability, their_fraud) = (
        [o["data"] for o in answer["outputs"]] for answer in (body, expected))
    np.testing.assert_allclose(probability, their_probability, rtol=0, atol=TOLERANCE)
    assert fraud == their_fraud


def test_one_output_asked_for_is_the_one_answered(mlserver: MLServer,
                                                  transactions: list[dict]) -> None:
    payload = {"inputs": [{"name": "transactions", "datatype": "FP64", "shape": [2, 30],
                           "data": as_matrix(transactions[:2]).ravel().tolist()}],
               "outputs": [{"name": "fraud"}]}
    body = mlserver.infer(payload).json()
    assert [o["name"] for o in body["outputs"]] == ["fraud"]


def test_health_and_metadata_say_what_tickml_says(mlserver: MLServer, server: Server,
                                                  triton) -> None:
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(NAME) and triton.is_model_ready(NAME, "1")
    assert not triton.is_model_ready("no-such-model")
    ours = triton.get_model_metadata(NAME)
    theirs = requests.get(f"{server.url}/v2/models/{NAME}", timeout=30).json()
    for key in ("name", "versions", "platform", "inputs", "outputs", "parameters"):
        assert ours[key] == theirs[key], key


def _tensor(**changes: object) -> dict:
    return {"inputs": [{"name": "transactions", "datatype": "FP64", "shape": [1, 30],
                        "data": [0.0] * 30, **changes}]}


@pytest.mark.parametrize(("payload", "status"), [
    (_tensor(datatype="INT64"), 400),
    (_tensor(shape=[1, 29]), 400),
    (_tensor(shape=[2, 30]), 400),
    (_tensor(data=[0.0] * 14 + ["x"] + [0.0] * 15), 400),
    (_tensor(data=[0.0] * 14 + [True] + [0.0] * 15), 400),
    (_tensor(datatype="FP32", data=[0.0] * 29 + [1e39]), 400),
    (_tensor(name="input-0"), 400),
    (_tensor(shape=[MAX_INSTANCES + 1, 30]), 413),
    ({"inputs": []}, 400),
    ({**_tensor(), "outputs": [{"name": "score"}]}, 400),
], ids=["datatype", "columns", "rows", "text", "bool", "fp32-range", "name", "too-many",
        "no-input", "output"])
def test_a_bad_tensor_is_refused_with_tickmls_status_and_message(
        mlserver: MLServer, server: Server, payload: dict, status: int) -> None:
    ours = mlserver.infer(payload)
    theirs = requests.post(f"{server.url}/v2/models/{NAME}/infer", json=payload, timeout=30)
    assert ours.status_code == theirs.status_code == status
    assert ours.json()["error"] == theirs.json()["error"]


def test_another_version_is_not_found(mlserver: MLServer) -> None:
    response = mlserver.infer(_tensor(), f"/v2/models/{NAME}/versions/99/infer")
    assert response.status_code == 404


# -- models MLServer must not serve ------------------------------------------------------

def change_artifact(registry: ModelRegistry, outside: Path) -> str:
    """One byte of the production artifact flipped after it was registered."""
    artifact = registry.path(registry.production()) / ARTIFACT
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0x01
    artifact.write_bytes(bytes(data))
    return "does not match its recorded size and sha256"


def link_pointer(registry: ModelRegistry, outside: Path) -> str:
    """The production pointer a link to a pointer outside the models folder."""
    elsewhere = outside / POINTER
    elsewhere.write_text(json.dumps({"name": NAME, "version": 1}))
    (registry.root / POINTER).unlink()
    (registry.root / POINTER).symlink_to(elsewhere)
    return "production.json in the registry is a symbolic link"


def link_artifact(registry: ModelRegistry, outside: Path) -> str:
    """The artifact a link to a file outside, the sidecar recording that file's bytes."""
    folder = registry.path(registry.production())
    elsewhere = outside / ARTIFACT
    (folder / ARTIFACT).rename(elsewhere)
    (folder / ARTIFACT).symlink_to(elsewhere)
    metadata = json.loads((folder / METADATA).read_text())
    metadata["artifact"].update(sha256=hashlib.sha256(elsewhere.read_bytes()).hexdigest(),
                                bytes=elsewhere.stat().st_size)
    (folder / METADATA).write_text(json.dumps(metadata))
    return f"{NAME}/1/model.joblib in the registry is a symbolic link"


@pytest.mark.parametrize("tamper", [change_artifact, link_pointer, link_artifact],
                         ids=["changed-artifact", "linked-pointer", "linked-artifact"])
def test_a_model_the_loader_refuses_is_not_served(
        small_project: Settings, tmp_path: Path,
        tamper: Callable[[ModelRegistry, Path], str]) -> None:
    registry = copy_registry(small_project, tmp_path / "models")
    command, port = write_settings(registry.root, tmp_path)  # written while it was sound
    (tmp_path / "outside").mkdir()
    reason = tamper(registry, tmp_path / "outside")
    service = start_mlserver(command, port, tmp_path)
    try:
        seen_ready = wait_for_refusal(service, reason)
    finally:
        service.stop()
    log = service.log_path.read_text()
    assert not seen_ready, log
    assert "refused the production model" in log and reason in log, log
    assert "Loaded model 'fraud-lgbm' successfully" not in log, log


def wait_for_refusal(service: Service, reason: str) -> bool:
    """Poll until the log names `reason`, then a little longer; True if ever ready.

    MLServer 1.7 stops when a model fails to load at startup; one that stayed up
    without the model would have to stay not ready, which the polls after the refusal
    check too.
    """
    deadline = time.monotonic() + START_SECONDS
    seen_ready = False
    while time.monotonic() < deadline:
        seen_ready = seen_ready or service.ready()
        if reason in service.log_path.read_text(errors="replace"):
            for _ in range(10):
                seen_ready = seen_ready or service.ready()
                time.sleep(0.2)
            return seen_ready
        time.sleep(0.2)
    pytest.fail(f"MLServer did not refuse the model in {START_SECONDS:.0f} s:\n"
                f"{service.log_tail(40)}")
