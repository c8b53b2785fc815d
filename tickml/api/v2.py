"""The Open Inference Protocol ("V2", as in KServe, Triton and MLServer).

A standard V2 client can score transactions without custom code: the model has one
input, `transactions`, a `[rows, 30]` FP64 or FP32 tensor in schema column order, and
two outputs, `probability` (FP64) and `fraud` (BOOL, probability >= threshold).
Tensors travel as JSON or, with the binary tensor extension that tritonclient uses
by default, as raw little-endian bytes after the JSON header. The Content-Type of a
request is not checked here, because V2 clients (tritonclient among them) send none.
"""

from __future__ import annotations

from itertools import chain
from typing import Any

import numpy as np
import orjson
from flask import Blueprint, Response, request

from tickml import __version__, schema
from tickml.api.errors import ApiError, json_response
from tickml.api.limits import read_body
from tickml.api.state import api_state, require_model
from tickml.api.validation import FLOAT64_LIMIT, N_FEATURES, check_number, parse_json, show
from tickml.loader import LoadedModel

bp = Blueprint("v2", __name__, url_prefix="/v2")

INPUT = "transactions"
OUTPUTS = {"probability": "FP64", "fraud": "BOOL"}
INPUT_TYPES = {"FP64": np.dtype("<f8"), "FP32": np.dtype("<f4")}
HEADER_LENGTH = "Inference-Header-Content-Length"
PLATFORM = "tickml-sklearn-pipeline"
_FP32_MAX = float(np.finfo(np.float32).max)


@bp.get("")
def server_metadata() -> Response:
    """Server name, version and protocol extensions."""
    return json_response({"name": "tickml", "version": __version__,
                          "extensions": ["binary_tensor_data"]})


@bp.get("/health/live")
def live() -> Response:
    """Liveness."""
    return json_response({"live": True})


@bp.get("/health/ready")
def ready() -> Response:
    """Readiness: 200 when a model is loaded, else 503."""
    is_ready = api_state().holder.current() is not None
    return json_response({"ready": is_ready}, 200 if is_ready else 503)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
def model_metadata(name: str, version: str | None = None) -> Response:
    """Inputs, outputs and versions of the served model."""
    model = find_model(name, version)
    return json_response({
        "name": model.ref.name,
        "versions": [str(model.ref.version)],
        "platform": PLATFORM,
        "inputs": [{"name": INPUT, "datatype": "FP64", "shape": [-1, N_FEATURES]}],
        "outputs": [{"name": n, "datatype": t, "shape": [-1]} for n, t in OUTPUTS.items()],
        "parameters": {"threshold": model.threshold, "columns": list(schema.FEATURES)},
    })


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
def model_ready(name: str, version: str | None = None) -> Response:
    """200 when this model (and version) is the one loaded."""
    model = find_model(name, version)
    return json_response({"name": model.ref.name, "ready": True})


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
def infer(name: str, version: str | None = None) -> Response:
    """Score a `[rows, 30]` tensor; answer the probability and fraud tensors."""
    state = api_state()
    payload, binary = read_request(read_body(), request.headers.get(HEADER_LENGTH))
    matrix = input_matrix(payload, binary, state.max_instances)
    outputs = requested_outputs(payload)
    model = find_model(name, version)
    probabilities = model.predict_proba(matrix)
    flags = probabilities >= model.threshold
    state.metrics.observe_scores(len(flags), int(flags.sum()))
    return infer_response(model, payload, outputs, {"probability": probabilities,
                                                     "fraud": flags})


def find_model(name: str, version: str | None) -> LoadedModel:
    """The loaded model if it is the one named, else a 404 `model_not_found`."""
    model = require_model()
    if name != model.ref.name:
        raise ApiError(404, "model_not_found",
                       f"no model {name!r} here; this server serves {model.ref.name!r}")
    if version is not None and version != str(model.ref.version):
        raise ApiError(404, "model_not_found", f"version {version!r} of {name} is not "
                       f"loaded; version {model.ref.version} is")
    return model


def read_request(body: bytes, header_length: str | None) -> tuple[dict[str, Any], bytes]:
    """Split the JSON header from binary tensor data and parse it."""
    binary = b""
    if header_length is not None:
        length = _header_length(header_length, len(body))
        body, binary = body[:length], body[length:]
    payload = parse_json(body)
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_shape", "the body must be a JSON object with 'inputs'")
    return payload, binary


def _header_length(value: str, body_size: int) -> int:
    """The JSON header's length: ASCII digits, at most the body's size."""
    # str.isdigit() accepts "²", which int() refuses, and int() refuses over 4,300 digits.
    digits = value.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) <= len(str(body_size))
            and int(digits) <= body_size):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise ApiError(400, "invalid_value", f"{HEADER_LENGTH} {shown!r} is not a length "
                       f"within the {body_size}-byte body", field=HEADER_LENGTH)
    return int(digits)


def input_matrix(payload: dict[str, Any], binary: bytes, max_instances: int) -> np.ndarray:
    """The `transactions` tensor as a float64 `[rows, 30]` matrix."""
    tensor = _single_input(payload)
    datatype = tensor.get("datatype")
    if not isinstance(datatype, str) or datatype not in INPUT_TYPES:
        raise ApiError(400, "invalid_datatype", f"datatype {show(datatype)} is not supported: "
                       "send FP64 or FP32", field="inputs[0].datatype")
    rows = _rows_of(tensor.get("shape"), max_instances)
    parameters = _object(tensor.get("parameters"), "inputs[0].parameters")
    if "binary_data_size" in parameters:
        matrix = _binary_values(parameters["binary_data_size"], binary, rows,
                                INPUT_TYPES[datatype])
    else:
        matrix = _json_values(tensor.get("data"), rows, datatype)
    _check_finite(matrix)
    return matrix


def requested_outputs(payload: dict[str, Any]) -> list[tuple[str, bool]]:
    """(output name, send as binary) for each output to return; all when none are named."""
    parameters = _object(payload.get("parameters"), "parameters")
    binary_default = parameters.get("binary_data_output") is True
    outputs = payload.get("outputs")
    if not outputs:
        return [(name, binary_default) for name in OUTPUTS]
    if not isinstance(outputs, list):
        raise ApiError(400, "invalid_shape", "outputs must be an array", field="outputs")
    chosen = []
    for i, output in enumerate(outputs):
        label = f"outputs[{i}]"
        output = _object(output, label)
        name = output.get("name")
        if not isinstance(name, str) or name not in OUTPUTS:
            raise ApiError(400, "invalid_value", f"{label}.name: {show(name)} is not "
                           f"an output of this model ({', '.join(OUTPUTS)})",
                           field=f"{label}.name")
        binary = _object(output.get("parameters"), f"{label}.parameters").get(
            "binary_data", binary_default)
        chosen.append((name, binary is True))
    return chosen


def infer_response(model: LoadedModel, payload: dict[str, Any],
                   outputs: list[tuple[str, bool]], values: dict[str, np.ndarray]) -> Response:
    """JSON outputs, or a JSON header followed by the binary ones."""
    body: dict[str, Any] = {"model_name": model.ref.name, "model_version": str(model.ref.version),
                            "parameters": {"threshold": model.threshold}, "outputs": []}
    if isinstance(payload.get("id"), str):
        body["id"] = payload["id"]
    blobs = []
    for name, binary in outputs:
        array = values[name]
        entry: dict[str, Any] = {"name": name, "datatype": OUTPUTS[name], "shape": [len(array)]}
        if binary:
            raw = array.astype("<f8" if OUTPUTS[name] == "FP64" else np.bool_).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = array.tolist()
        body["outputs"].append(entry)
    if not blobs:
        return json_response(body)
    header = orjson.dumps(body)
    response = Response(header + b"".join(blobs), mimetype="application/octet-stream")
    response.headers[HEADER_LENGTH] = str(len(header))
    return response


def _single_input(payload: dict[str, Any]) -> dict[str, Any]:
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise ApiError(400, "invalid_shape", f"inputs must be an array of exactly one tensor, "
                       f"{INPUT!r}", field="inputs")
    tensor = _object(inputs[0], "inputs[0]")
    if tensor.get("name") != INPUT:
        raise ApiError(400, "invalid_value", f"inputs[0].name: {show(tensor.get('name'))} is "
                       f"not an input of this model; its one input is {INPUT!r}",
                       field="inputs[0].name")
    return tensor


def _rows_of(shape: Any, max_instances: int) -> int:
    valid = (isinstance(shape, list) and len(shape) == 2
             and all(type(d) is int and d >= 0 for d in shape) and shape[1] == N_FEATURES)
    if not valid:
        raise ApiError(400, "invalid_shape", f"shape {show(shape)} is not [rows, {N_FEATURES}]: "
                       "one row per transaction, columns Time, V1..V28, Amount",
                       field="inputs[0].shape")
    if shape[0] > max_instances:
        raise ApiError(413, "too_many_instances", f"{shape[0]:,} rows is more than the limit "
                       f"of {max_instances:,} per request", field="inputs[0].shape")
    return shape[0]


def _binary_values(size: Any, binary: bytes, rows: int, dtype: np.dtype) -> np.ndarray:
    expected = rows * N_FEATURES * dtype.itemsize
    if type(size) is not int or size != expected or len(binary) != expected:
        raise ApiError(400, "invalid_shape", f"binary_data_size {show(size)} with {len(binary)} "
                       f"bytes sent does not hold {rows} x {N_FEATURES} {dtype.name} values "
                       f"({expected} bytes)", field="inputs[0].parameters.binary_data_size")
    return np.frombuffer(binary, dtype=dtype).astype(np.float64).reshape(rows, N_FEATURES)


def _json_values(data: Any, rows: int, datatype: str) -> np.ndarray:
    if not isinstance(data, list):
        raise ApiError(400, "invalid_shape", "inputs[0].data must be an array (flat or one "
                       "array per row)", field="inputs[0].data")
    if data and all(isinstance(row, list) for row in data):
        data = list(chain.from_iterable(data))
    if len(data) != rows * N_FEATURES:
        raise ApiError(400, "invalid_shape", f"inputs[0].data holds {len(data)} values; shape "
                       f"[{rows}, {N_FEATURES}] needs {rows * N_FEATURES}",
                       field="inputs[0].data")
    try:
        matrix = np.array(data, dtype=np.float64)
        if matrix.dtype != np.float64 or not {type(v) for v in data} <= {int, float}:
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        for position, value in enumerate(data):
            _check_value(value, position)
        raise AssertionError("unreachable: some value failed to convert") from None
    if datatype == "FP32":
        too_big = np.abs(matrix) > _FP32_MAX
        if too_big.any():
            position = int(np.argmax(too_big.ravel()))
            raise ApiError(400, "invalid_value", f"inputs[0].data[{position}]: "
                           f"{data[position]!r} does not fit FP32",
                           field=schema.FEATURES[position % N_FEATURES],
                           index=position // N_FEATURES)
        matrix = matrix.astype(np.float32).astype(np.float64)
    return matrix.reshape(rows, N_FEATURES)


def _check_value(value: Any, position: int) -> None:
    row, column = divmod(position, N_FEATURES)
    check_number(value, f"inputs[0].data[{position}] (row {row}, "
                 f"{schema.FEATURES[column]})", schema.FEATURES[column], row)


def _check_finite(matrix: np.ndarray) -> None:
    bad = ~(np.abs(matrix) < FLOAT64_LIMIT)  # NaN compares False
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        name = schema.FEATURES[column]
        check_number(float(matrix[row, column]), f"inputs[0] row {row}, {name}", name, row)


def _object(value: Any, label: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(400, "invalid_shape", f"{label} must be an object", field=label)
    return value
