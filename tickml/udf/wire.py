"""The forms a batch travels in: tickml's `/predict`, and the Open Inference Protocol's infer.

`wire_form` tells them apart by the URL. Each form builds the request body for a batch
of rows and reads the answer into `Predictions`; `rejection` reads a 4xx answer of
either. The model API client (`tickml.udf.client`) sends what these build.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import chain
from typing import Any, Protocol
from urllib.parse import urlsplit

import orjson

from tickml import schema
from tickml.influx import FieldValue

#: The API's positional form of a transaction: `{"features": [Time, V1, ..., Amount]}`.
POSITIONAL = "features"
#: A URL path that names an Open Inference Protocol model's infer endpoint.
V2_INFER_PATH = re.compile(r"/v2/models/[^/]+(?:/versions/[^/]+)?/infer\Z")
#: The V2 model's input and outputs, as tickml's /v2 names them (`tickml.api.v2`).
V2_INPUT = "transactions"
V2_PROBABILITY = "probability"
V2_VERDICT = "fraud"
V2_FLOAT_TYPES = frozenset({"FP64", "FP32"})


class ScoringRejected(RuntimeError):
    """The API refused the batch as invalid; retrying it unchanged would not help.

    Args:
        index: the row of the batch the API named as the fault, if it named one.
        field: the feature it named, if any.
        code: its machine-readable error code, if any.
    """

    def __init__(self, message: str, *, index: int | None = None, field: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.index = index
        self.field = field
        self.code = code

    def row_reason(self) -> str:
        """The `unscored_reason` of the row the API named: its field and code, no values."""
        what = f"feature {self.field}" if self.field else "the row"
        return f"api refused {what} ({self.code or 'invalid'})"


@dataclass(frozen=True)
class Score:
    """A row the model scored."""

    probability: float
    verdict: bool
    model: str
    version: int

    def fields(self) -> dict[str, FieldValue]:
        """The fields a scored point carries beside the transaction's own."""
        return {schema.PROBABILITY: self.probability, schema.VERDICT: int(self.verdict),
                schema.MODEL: self.model, schema.MODEL_VERSION: self.version,
                schema.SCORED: True}


@dataclass(frozen=True)
class Predictions:
    """The API's answer for one batch, in input order.

    `verdicts` are the server's own (None when it sent none, as a V2 server may not);
    `threshold` is the model's, when the server named it.
    """

    probabilities: list[float]
    verdicts: list[bool] | None
    model: str
    version: int
    threshold: float | None = None

    def scores(self, threshold: float | None = None) -> list[Score]:
        """One score per row; the verdict uses `threshold`, else the server's verdicts,
        else the model's threshold.

        Raises:
            ScoringRejected: no `threshold` given, and the answer carried neither
                verdicts nor the model's threshold.
        """
        if threshold is None and self.verdicts is None:
            if self.threshold is None:
                raise ScoringRejected(
                    "the model API's answer has no verdicts (no 'fraud' output) and no "
                    "threshold (no parameters.threshold): give the task a .threshold()")
            threshold = self.threshold
        verdicts = self.verdicts if threshold is None else \
            [p >= threshold for p in self.probabilities]
        return [Score(p, v, self.model, self.version)
                for p, v in zip(self.probabilities, verdicts, strict=True)]


class WireForm(Protocol):
    """How a batch is asked for and its answer read, at one kind of endpoint."""

    name: str

    def encode(self, rows: list[list[float]]) -> bytes:
        """The request body for `rows` (features in schema order)."""

    def decode(self, body: bytes, rows: int) -> Predictions:
        """The predictions in a 2xx body.

        Raises:
            ScoringRejected: the body is readable but does not answer the batch.
            ValueError, KeyError, TypeError: the body is not such an answer.
        """


class PredictForm:
    """tickml's own `/predict`: positional instances in, `predictions` and `model` out."""

    name = "predict"

    def encode(self, rows: list[list[float]]) -> bytes:
        # Positional rows (values in schema order) cost a quarter of rows by name to
        # build and encode; orjson, as the stdlib encoder was a fifth of the agent's time.
        return orjson.dumps({"instances": [{POSITIONAL: row} for row in rows]})

    def decode(self, body: bytes, rows: int) -> Predictions:
        answer = orjson.loads(body)
        predictions = answer["predictions"]
        if len(predictions) != rows:
            raise ScoringRejected(f"api answered {len(predictions)} predictions for {rows} rows")
        model = answer["model"]
        threshold = model.get("threshold") if isinstance(model, dict) else None
        return Predictions(
            probabilities=[float(p["probability"]) for p in predictions],
            verdicts=[bool(p["fraud"]) for p in predictions],
            model=str(model["name"]),
            version=int(model["version"]),
            threshold=float(threshold) if _is_number(threshold) else None,
        )


class V2Form:
    """An Open Inference Protocol infer endpoint, in its JSON form.

    The request is one input, `transactions`: shape [rows, 30], FP64, the rows' values
    one after the other. The answer's outputs `probability` (FP64, or FP32) and, when
    the server sends it, `fraud` (BOOL) are read with `model_name`, `model_version`
    (a whole number, as the scored points' model_version field is an integer) and
    `parameters.threshold`. The outputs are not named in the request: a server without
    a `fraud` output would refuse a request that asked for one.
    """

    name = "v2"

    def encode(self, rows: list[list[float]]) -> bytes:
        return orjson.dumps({"inputs": [{
            "name": V2_INPUT, "shape": [len(rows), len(schema.FEATURES)], "datatype": "FP64",
            "data": list(chain.from_iterable(rows))}]})

    def decode(self, body: bytes, rows: int) -> Predictions:
        answer = orjson.loads(body)
        outputs = {output["name"]: output for output in answer["outputs"]}
        if V2_PROBABILITY not in outputs:
            raise ScoringRejected(f"the V2 answer has no {V2_PROBABILITY!r} output (it has "
                                  f"{', '.join(map(repr, outputs)) or 'none'})")
        probabilities = [float(p) for p in
                         _v2_values(outputs[V2_PROBABILITY], rows, V2_FLOAT_TYPES)]
        verdicts = None
        if V2_VERDICT in outputs:
            verdicts = [_v2_bool(v) for v in _v2_values(outputs[V2_VERDICT], rows, {"BOOL"})]
        parameters = answer.get("parameters")
        threshold = parameters.get("threshold") if isinstance(parameters, dict) else None
        model = answer.get("model_name")
        if not isinstance(model, str) or not model:
            raise ScoringRejected("the V2 answer has no model_name")
        return Predictions(probabilities, verdicts, model, _v2_version(answer),
                           float(threshold) if _is_number(threshold) else None)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _v2_values(output: dict[str, Any], rows: int, datatypes: set[str] | frozenset[str]
               ) -> list[Any]:
    """An output tensor's values, one per row."""
    name, datatype = output["name"], output.get("datatype")
    if datatype not in datatypes:
        raise ScoringRejected(f"the V2 output {name!r} is {datatype!r}, not "
                              f"{' or '.join(sorted(datatypes))}")
    data = output.get("data")
    if not isinstance(data, list):
        raise ScoringRejected(f"the V2 output {name!r} carries no JSON data")
    if data and isinstance(data[0], list):  # one array per row, shape [rows, 1]
        data = list(chain.from_iterable(data))
    if len(data) != rows:
        raise ScoringRejected(f"api answered {len(data)} values of {name!r} for {rows} rows")
    return data


def _v2_bool(value: Any) -> bool:
    if type(value) is bool or (type(value) is int and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{value!r} is not a BOOL")


def _v2_version(answer: dict[str, Any]) -> int:
    """The V2 answer's model_version as the whole number the scored points carry."""
    version = answer.get("model_version")
    if type(version) is int and version >= 0:
        return version
    if isinstance(version, str) and version.isascii() and version.isdigit():
        return int(version)
    what = "no model_version" if version is None else f"model_version {version!r}"
    raise ScoringRejected(f"the V2 answer has {what}; the scored points' model_version is "
                          "a whole number: give the model a numeric version on the V2 server")


def wire_form(url: str) -> tuple[str, WireForm]:
    """The URL to post batches to, and its form.

    A URL whose path ends in `/v2/models/<name>/infer` (or `.../versions/<v>/infer`)
    is posted to as it is, in the V2 form; any other URL is tickml's API, whose
    `/predict` the batches go to.
    """
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if V2_INFER_PATH.search(path):
        return parts._replace(path=path).geturl(), V2Form()
    return url.rstrip("/") + "/predict", PredictForm()


def rejection(status: int, body: bytes) -> ScoringRejected:
    """The API's 4xx as an exception carrying the row, field and code it names.

    tickml's `/predict` answers `{"error": {"message", "index", "field", "code"}}`; a
    V2 server `{"error": "<message>"}`, beside which tickml's /v2 puts the same
    details in `details`.
    """
    try:
        answer = orjson.loads(body)
        error = answer["error"]
        if isinstance(error, str):
            message, details = error, answer.get("details")
        else:
            message, details = str(error["message"]), error
    except (ValueError, KeyError, TypeError):
        return ScoringRejected(f"api rejected the batch: status {status}")
    if not isinstance(details, dict):
        details = {}
    index, field, code = details.get("index"), details.get("field"), details.get("code")
    return ScoringRejected(
        f"api rejected the batch: {message}",
        index=index if type(index) is int else None,
        field=field if isinstance(field, str) else None,
        code=code if isinstance(code, str) else None)
