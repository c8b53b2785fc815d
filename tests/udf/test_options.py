"""TICKscript options: declared in Info, validated in Init with one combined message."""

from __future__ import annotations

import pytest

from tickml.udf import udf_pb2
from tickml.udf.options import (
    OPTION_TYPES,
    OptionsError,
    ScoringOptions,
    describe_options,
    parse_options,
)

from .kapacitor_side import init_request


def parse(**options: object) -> ScoringOptions:
    return parse_options(list(init_request(**options).init.options), ScoringOptions())


def test_info_declares_each_option_with_one_type() -> None:
    info = udf_pb2.InfoResponse()
    describe_options(info)
    assert set(info.options) == set(OPTION_TYPES)
    assert list(info.options["batchSize"].valueTypes) == [udf_pb2.INT]
    assert list(info.options["maxWait"].valueTypes) == [udf_pb2.DURATION]
    assert list(info.options["threshold"].valueTypes) == [udf_pb2.DOUBLE]


def test_options_override_defaults_with_durations_in_seconds() -> None:
    options = parse(url="http://api:5000", batchSize=50, maxWait="20000000ns",
                    timeout="1500000000ns", threshold=0.4)
    assert options.url == "http://api:5000"
    assert options.batch_size == 50
    assert options.max_wait == pytest.approx(0.02)
    assert options.timeout == pytest.approx(1.5)
    assert options.threshold == 0.4
    assert options.retry_for == ScoringOptions().retry_for


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"url": "api:5000"}, "url must be an http(s) URL"),
        ({"batchSize": 0}, "batchSize must be between 1 and 10000, got 0"),
        ({"maxWait": "20000000000ns"}, "maxWait must be between 0s and 10s, got 20s"),
        ({"timeout": "0ns"}, "timeout must be above 0s"),
        ({"threshold": 1.5}, "threshold must be between 0.0 and 1.0, got 1.5"),
        ({"maxPending": 10, "batchSize": 20}, "maxPending (10) must be at least batchSize (20)"),
        ({"batchSize": 2.5}, "batchSize takes exactly one INT"),
    ],
)
def test_each_bad_option_is_named(options: dict, message: str) -> None:
    with pytest.raises(OptionsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(**options)


def test_all_problems_come_in_one_message() -> None:
    with pytest.raises(OptionsError) as error:
        parse(url="ftp://x", batchSize=0, threshold=-1.0)
    message = str(error.value)
    assert message.startswith("invalid @fraud() options: ")
    assert message.count(";") == 2
    assert "url" in message and "batchSize" in message and "threshold" in message


def test_repeated_and_unknown_options_are_refused() -> None:
    request = init_request(batchSize=10)
    request.init.options.append(request.init.options[0])
    extra = request.init.options.add()
    extra.name = "colour"
    with pytest.raises(OptionsError, match="batchSize is given more than once; unknown option"):
        parse_options(list(request.init.options), ScoringOptions())
