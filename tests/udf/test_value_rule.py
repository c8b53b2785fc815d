"""One rule for a feature value in the API and the agent: what one refuses, the other does."""

from __future__ import annotations

import math
import sys

import pytest

from tickml import schema
from tickml.api.errors import ApiError
from tickml.api.validation import check_number
from tickml.udf import points

from .kapacitor_side import point_request

BIGGEST = sys.float_info.max
VALUES = [0.0, -1.5, 7, 2**1023, BIGGEST, -BIGGEST, math.nextafter(BIGGEST, 0), 10**400,
          math.nan, math.inf, -math.inf, True, "3", None]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_api_refuses_exactly_the_values_the_shared_rule_refuses(value: object) -> None:
    _, problem = schema.feature_value(value)
    try:
        check_number(value, "Amount", "Amount", 3)
    except ApiError as error:
        assert problem is not None, f"the API refused {value!r}, which the rule accepts"
        assert (error.code, error.field, error.index) == (problem.code, "Amount", 3)
        assert problem.message in error.message
    else:
        assert problem is None, f"the API accepted {value!r}, which the rule refuses"


@pytest.mark.parametrize("value", [v for v in VALUES if isinstance(v, float | int)
                                   and not isinstance(v, bool) and abs(v) < 2**1024],
                         ids=repr)
def test_the_agent_marks_a_point_exactly_when_the_api_would_refuse_its_value(
        value: float) -> None:
    point = point_request().point
    point.fieldsDouble[schema.AMOUNT] = float(value)
    features = points.read_features(point)
    refused = schema.feature_value(float(value))[1] is not None
    assert isinstance(features, str) == refused
    if refused:
        assert features.endswith("feature Amount")
