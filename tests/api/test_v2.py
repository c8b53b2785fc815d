"""The Open Inference Protocol, called by a standard V2 client (tritonclient)."""

from __future__ import annotations

import numpy as np
import pytest
import requests

from tests.api.conftest import Server, as_matrix
from tickml.loader import LoadedModel


@pytest.fixture
def triton(server: Server):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(server.url.removeprefix("http://"))
    yield client
    client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary-tensors", "json-tensors"])
@pytest.mark.parametrize("datatype", ["FP64", "FP32"])
def test_tritonclient_scores_like_predict(server: Server, model: LoadedModel, triton,
                                          transactions: list[dict], binary: bool,
                                          datatype: str) -> None:
    import tritonclient.http as httpclient

    matrix = as_matrix(transactions).astype(np.float64 if datatype == "FP64" else np.float32)
    tensor = httpclient.InferInput("transactions", list(matrix.shape), datatype)
    tensor.set_data_from_numpy(matrix, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput(name, binary_data=binary)
               for name in ("probability", "fraud")]
    result = triton.infer(model.ref.name, [tensor], outputs=outputs)
    probabilities = result.as_numpy("probability")
    fraud = result.as_numpy("fraud")

    expected = model.predict_proba(matrix.astype(np.float64))
    assert probabilities.tolist() == expected.tolist()
    assert fraud.tolist() == (expected >= model.threshold).tolist()
    if datatype == "FP64":
        via_predict = server.post("/predict", {"instances": transactions}).json()
        assert probabilities.tolist() == [p["probability"] for p in via_predict["predictions"]]


def test_tritonclient_health_and_metadata(triton, model: LoadedModel) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(model.ref.name)
    assert not triton.is_model_ready("no-such-model")
    metadata = triton.get_model_metadata(model.ref.name)
    assert metadata["versions"] == [str(model.ref.version)]
    assert metadata["inputs"] == [{"name": "transactions", "datatype": "FP64", "shape": [-1, 30]}]
    assert [o["name"] for o in metadata["outputs"]] == ["probability", "fraud"]


def _infer(server: Server, payload: object, path: str = "/v2/models/fraud-lgbm/infer"):
    return requests.post(server.url + path, json=payload, timeout=30)


def _tensor(**changes: object) -> dict:
    return {"inputs": [{"name": "transactions", "datatype": "FP64", "shape": [1, 30],
                        "data": [0.0] * 30, **changes}]}


@pytest.mark.parametrize(("payload", "status", "code", "field", "index"), [
    (_tensor(datatype="INT64"), 400, "invalid_datatype", "inputs[0].datatype", None),
    (_tensor(shape=[1, 29]), 400, "invalid_shape", "inputs[0].shape", None),
    (_tensor(shape=[30]), 400, "invalid_shape", "inputs[0].shape", None),
    (_tensor(shape=[2, 30]), 400, "invalid_shape", "inputs[0].data", None),
    (_tensor(data=[0.0] * 14 + ["x"] + [0.0] * 15), 400, "invalid_value", "V14", 0),
    (_tensor(name="input-0"), 400, "invalid_value", "inputs[0].name", None),
    (_tensor(shape=[201, 30]), 413, "too_many_instances", "inputs[0].shape", None),
    ({"inputs": []}, 400, "invalid_shape", "inputs", None),
    ({**_tensor(), "outputs": [{"name": "score"}]}, 400, "invalid_value", "outputs[0].name",
     None),
])
def test_bad_tensors_are_4xx_in_the_v2_error_shape(server: Server, payload: dict, status: int,
                                                   code: str, field: str,
                                                   index: int | None) -> None:
    response = _infer(server, payload)
    assert response.status_code == status
    body = response.json()
    assert isinstance(body["error"], str) and body["error"]
    assert body["details"] == {"code": code, "field": field, "index": index}


def test_a_non_finite_tensor_value_names_row_and_column(server: Server) -> None:
    data = [[0.0] * 30, [0.0] * 30]
    data[1][29] = float("inf")
    body = requests.models.complexjson.dumps(
        {"inputs": [{"name": "transactions", "datatype": "FP64", "shape": [2, 30],
                     "data": data}]}, allow_nan=True)
    response = requests.post(server.url + "/v2/models/fraud-lgbm/infer", data=body, timeout=30)
    assert response.status_code == 400
    assert response.json()["details"] == {"code": "non_finite_value", "field": "Amount",
                                          "index": 1}


@pytest.mark.parametrize("path", ["/v2/models/other/infer",
                                  "/v2/models/fraud-lgbm/versions/99/infer"])
def test_unknown_models_are_404(server: Server, path: str) -> None:
    response = _infer(server, _tensor(), path)
    assert response.status_code == 404
    assert response.json()["details"]["code"] == "model_not_found"


def test_nested_rows_and_the_versioned_route(server: Server, model: LoadedModel,
                                            transactions: list[dict]) -> None:
    matrix = as_matrix(transactions[:4])
    payload = {"id": "req-1", "inputs": [{"name": "transactions", "datatype": "FP64",
                                          "shape": [4, 30], "data": matrix.tolist()}]}
    response = _infer(server, payload, f"/v2/models/fraud-lgbm/versions/{model.ref.version}/infer")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == "req-1"
    assert body["model_version"] == str(model.ref.version)
    (probability,) = [o for o in body["outputs"] if o["name"] == "probability"]
    assert probability["data"] == model.predict_proba(matrix).tolist()
