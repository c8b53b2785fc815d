"""Reading features from points, and the fields added to scored and unscored points."""

from __future__ import annotations

import math
import sys

import pytest

from tickml import schema
from tickml.udf import points, udf_pb2
from tickml.udf.client import Score, Unscored

from .kapacitor_side import point_request


def test_features_are_read_in_schema_order_from_float_and_int_fields() -> None:
    point = point_request({"Time": 5.0, "Amount": 12.5}).point
    del point.fieldsDouble["V3"]
    point.fieldsInt["V3"] = 2
    values = points.read_features(point)
    assert len(values) == len(schema.FEATURES)
    assert values[0] == 5.0 and values[3] == 2.0 and values[-1] == 12.5


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda p: p.fieldsDouble.pop("V14"), "missing feature V14"),
        (lambda p: (p.fieldsDouble.pop("V2"), p.fieldsString.__setitem__("V2", "abc")),
         "non-numeric feature V2"),
        (lambda p: (p.fieldsDouble.pop("V7"), p.fieldsBool.__setitem__("V7", True)),
         "non-numeric feature V7"),
        (lambda p: p.fieldsDouble.__setitem__("Amount", math.nan), "non-finite feature Amount"),
        (lambda p: p.fieldsDouble.__setitem__("V1", math.inf), "non-finite feature V1"),
        (lambda p: p.fieldsDouble.__setitem__("Amount", sys.float_info.max),
         "out-of-range feature Amount"),
        (lambda p: p.fieldsDouble.__setitem__("V3", -sys.float_info.max),
         "out-of-range feature V3"),
        (lambda p: (p.fieldsDouble.pop("V4"), p.fieldsString.__setitem__("V4", "1e400")),
         "non-finite feature V4"),
    ],
    ids=["missing", "string", "bool", "nan", "inf", "float-max", "minus-float-max",
         "string-overflow"],
)
def test_unusable_points_get_a_short_reason(mutate, reason: str) -> None:
    point = point_request().point
    mutate(point)
    assert points.read_features(point) == reason


def test_numeric_strings_are_accepted() -> None:
    point = point_request().point
    del point.fieldsDouble["V5"]
    point.fieldsString["V5"] = "1.25"
    assert points.read_features(point)[5] == 1.25


def result(point: udf_pb2.Point, fields: dict, now_ns: int = 0,
           keep_features: bool = False) -> udf_pb2.Point:
    response = udf_pb2.Response.FromString(
        points.result_response(point, fields, now_ns, keep_features))
    assert response.WhichOneof("message") == "point"
    return response.point


def test_scored_point_keeps_identity_and_adds_score_fields() -> None:
    original = point_request(time_ns=2_000_000_000).point
    score = Score(0.93, True, "fraud-lgbm", 3)
    out = result(original, score.fields(), now_ns=2_004_000_000)
    assert (out.time, out.name, out.database, out.retentionPolicy) == (
        2_000_000_000, schema.TRANSACTIONS, "fraud", "autogen")
    assert dict(out.tags) == {"source": "test"} and list(out.dimensions) == ["source"]
    assert out.fieldsString["transaction_id"] == "tx-1"
    assert out.fieldsDouble[schema.PROBABILITY] == 0.93
    assert out.fieldsInt[schema.VERDICT] == 1
    assert out.fieldsInt[schema.MODEL_VERSION] == 3
    assert out.fieldsString[schema.MODEL] == "fraud-lgbm"
    assert out.fieldsBool[schema.SCORED] is True
    assert out.fieldsDouble[schema.LATENCY] == pytest.approx(4.0)


def test_scored_point_is_lean_its_id_label_and_score_fields_only() -> None:
    out = result(point_request().point, Score(0.2, False, "m", 1).fields())
    names = {*out.fieldsDouble, *out.fieldsInt, *out.fieldsString, *out.fieldsBool}
    assert names == {schema.TRANSACTION_ID, schema.LABEL, schema.PROBABILITY, schema.VERDICT,
                     schema.MODEL, schema.MODEL_VERSION, schema.SCORED, schema.LATENCY}
    assert out.fieldsInt[schema.LABEL] == 0


def test_keep_features_copies_the_usable_features_as_floats() -> None:
    point = point_request({"Amount": 12.5}).point
    del point.fieldsDouble["V3"]
    point.fieldsString["V3"] = "abc"
    del point.fieldsDouble["V4"]
    point.fieldsInt["V4"] = 7
    out = result(point, Unscored("non-numeric feature V3").fields(), keep_features=True)
    assert set(out.fieldsDouble) == {*schema.FEATURES, schema.LATENCY} - {"V3"}
    assert out.fieldsDouble["Amount"] == 12.5 and out.fieldsDouble["V4"] == 7.0
    assert set(out.fieldsString) == {schema.TRANSACTION_ID, schema.REASON}


@pytest.mark.parametrize(
    ("fields", "kept"),
    [({"fieldsString": {"Class": "yes"}}, {}),
     ({"fieldsDouble": {"Class": 1.0}}, {"Class": 1}),
     ({"fieldsDouble": {"Class": 0.5}}, {}),
     ({"fieldsInt": {"transaction_id": 42}}, {"transaction_id": "42"})],
    ids=["string-label", "float-label", "fractional-label", "numeric-id"])
def test_a_malformed_id_or_label_is_typed_as_scored_stores_it_or_left_out(
        fields: dict, kept: dict) -> None:
    point = point_request().point
    del point.fieldsString[schema.TRANSACTION_ID]
    del point.fieldsInt[schema.LABEL]
    for kind, values in fields.items():
        getattr(point, kind).update(values)
    out = result(point, Score(0.2, False, "m", 1).fields())
    own = {name: value for kind in ("fieldsDouble", "fieldsInt", "fieldsString")
           for name, value in getattr(out, kind).items()
           if name in schema.SCORED_TRANSACTION_FIELDS}
    assert own == kept
    assert type(own.get("Class", 0)) is int


@pytest.mark.parametrize(
    "fields",
    [{"i": -1, "j": -(2**63), "k": 2**63 - 1, "z": 0},
     {"t": True, "f": False},
     {"s": "", "u": "fraude détectée ✓", "long": "x" * 300},
     {"d": -0.0, "e": 1e-300, "big": 1.7e308}],
    ids=["ints", "bools", "strings", "doubles"])
def test_hand_written_bytes_read_back_as_protobuf_would_write_them(fields: dict) -> None:
    point = point_request(time_ns=5).point
    point.group = "source=test"
    out = result(point, fields, now_ns=5)
    expected = udf_pb2.Point(time=5, name=schema.TRANSACTIONS, database="fraud",
                             retentionPolicy="autogen", group="source=test",
                             dimensions=["source"], tags={"source": "test"})
    expected.fieldsDouble[schema.LATENCY] = 0.0
    expected.fieldsString[schema.TRANSACTION_ID] = "tx-1"
    expected.fieldsInt[schema.LABEL] = 0
    for name, value in fields.items():
        kind = {bool: "fieldsBool", int: "fieldsInt", float: "fieldsDouble",
                str: "fieldsString"}[type(value)]
        getattr(expected, kind)[name] = value
    assert out == expected


def test_unscored_point_says_why_and_has_no_score() -> None:
    out = result(point_request().point, Unscored("api unreachable").fields())
    assert out.fieldsBool[schema.SCORED] is False
    assert out.fieldsString[schema.REASON] == "api unreachable"
    assert schema.PROBABILITY not in out.fieldsDouble
