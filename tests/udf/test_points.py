"""Reading features from points, and the fields added to scored and unscored points."""

from __future__ import annotations

import math
import sys

import pytest

from tickml import schema
from tickml.udf import points
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


def test_scored_point_keeps_identity_and_adds_score_fields() -> None:
    original = point_request(time_ns=2_000_000_000).point
    score = Score(0.93, True, "fraud-lgbm", 3)
    out = points.result_point(original, score.fields(), now_ns=2_004_000_000).point
    assert (out.time, out.name, out.database, out.retentionPolicy) == (
        original.time, schema.TRANSACTIONS, "fraud", "autogen")
    assert dict(out.tags) == {"source": "test"} and list(out.dimensions) == ["source"]
    assert out.fieldsString["transaction_id"] == "tx-1"
    assert out.fieldsDouble[schema.PROBABILITY] == 0.93
    assert out.fieldsInt[schema.VERDICT] == 1
    assert out.fieldsInt[schema.MODEL_VERSION] == 3
    assert out.fieldsString[schema.MODEL] == "fraud-lgbm"
    assert out.fieldsBool[schema.SCORED] is True
    assert out.fieldsDouble[schema.LATENCY] == pytest.approx(4.0)


def test_unscored_point_says_why_and_has_no_score() -> None:
    out = points.result_point(point_request().point, Unscored("api unreachable").fields(),
                              now_ns=0).point
    assert out.fieldsBool[schema.SCORED] is False
    assert out.fieldsString[schema.REASON] == "api unreachable"
    assert schema.PROBABILITY not in out.fieldsDouble
