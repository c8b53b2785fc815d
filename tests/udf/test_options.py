"""TICKscript options: declared in Info, validated in Init with one combined message."""

from __future__ import annotations

import pytest

from tickml.config import Settings
from tickml.udf import udf_pb2
from tickml.udf.options import (
    MAX_BATCH,
    MAX_PENDING,
    OPTION_TYPES,
    OptionsError,
    ScoringOptions,
    describe_options,
    parse_options,
)
from tickml.udf.server import AgentLimits

from .kapacitor_side import init_request

AGENT_URL = "http://127.0.0.1:5000"
SECOND_NS = 1_000_000_000


def parse(allowed_urls: tuple[str, ...] = (), **options: object) -> ScoringOptions:
    return parse_options(list(init_request(**options).init.options),
                         ScoringOptions(url=AGENT_URL), allowed_urls)


def test_info_declares_each_option_with_one_type() -> None:
    info = udf_pb2.InfoResponse()
    describe_options(info)
    assert set(info.options) == set(OPTION_TYPES)
    assert list(info.options["batchSize"].valueTypes) == [udf_pb2.INT]
    assert list(info.options["maxWait"].valueTypes) == [udf_pb2.DURATION]
    assert list(info.options["threshold"].valueTypes) == [udf_pb2.DOUBLE]
    assert list(info.options["keepFeatures"].valueTypes) == [udf_pb2.BOOL]


def test_scored_points_are_lean_unless_a_task_keeps_the_features() -> None:
    assert parse().keep_features is False
    assert parse(keepFeatures=True).keep_features is True
    with pytest.raises(OptionsError, match="keepFeatures takes exactly one BOOL"):
        parse(keepFeatures=1)


def test_options_override_defaults_with_durations_in_seconds() -> None:
    options = parse(allowed_urls=("http://api:5000",), url="http://api:5000", batchSize=50,
                    maxWait="20000000ns",
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


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batchSize": MAX_BATCH + 1}, f"batchSize must be between 1 and {MAX_BATCH}, got 10001"),
        ({"maxWait": f"{11 * SECOND_NS}ns"}, "maxWait must be between 0s and 10s, got 11s"),
        ({"timeout": f"{61 * SECOND_NS}ns"}, "timeout must be above 0s and at most 60s, got 61s"),
        ({"retryFor": f"{301 * SECOND_NS}ns"}, "retryFor must be between 0s and 300s, got 301s"),
        ({"retryFor": f"{2**63 - 1}ns"}, "retryFor must be between 0s and 300s"),
        ({"maxPending": MAX_PENDING + 1}, f"maxPending must be at most {MAX_PENDING}, got 10001"),
        ({"maxPending": 2**62}, f"maxPending must be at most {MAX_PENDING}, got {2**62}"),
        ({"threshold": float("nan")}, "threshold must be between 0.0 and 1.0, got nan"),
    ],
)
def test_each_option_above_its_maximum_is_refused_naming_the_maximum(
        options: dict, message: str) -> None:
    with pytest.raises(OptionsError) as error:
        parse(**options)
    assert message in str(error.value)


def test_the_maxima_themselves_are_accepted() -> None:
    options = parse(batchSize=MAX_BATCH, maxPending=MAX_PENDING, maxWait=f"{10 * SECOND_NS}ns",
                    timeout=f"{60 * SECOND_NS}ns", retryFor=f"{300 * SECOND_NS}ns")
    assert (options.batch_size, options.max_pending) == (MAX_BATCH, MAX_PENDING)
    assert (options.max_wait, options.timeout, options.retry_for) == (10, 60, 300)


@pytest.mark.parametrize("url", ["http://attacker.example:80", "http://127.0.0.1:5001",
                                 "https://127.0.0.1:5000", "http://127.0.0.1:5000/elsewhere"])
def test_a_url_other_than_the_agents_api_is_refused(url: str) -> None:
    with pytest.raises(OptionsError) as error:
        parse(url=url)
    assert f"url must be the agent's model API ({AGENT_URL})" in str(error.value)
    assert "TICKML_UDF_ALLOWED_URLS" in str(error.value)
    assert repr(url) in str(error.value)


@pytest.mark.parametrize("url", [AGENT_URL, AGENT_URL + "/", "HTTP://127.0.0.1:5000",
                                 "http://api-b:5000", "http://API-B:5000/"])
def test_the_agents_own_url_and_the_allowed_ones_are_accepted(url: str) -> None:
    assert parse(allowed_urls=("http://api-b:5000/",), url=url).url == url


def test_a_refused_value_is_shown_shortened_in_the_message() -> None:
    with pytest.raises(OptionsError) as error:
        parse(url="http://" + "x" * 100_000)
    assert len(str(error.value)) < 400


def test_the_agents_limits_come_from_settings() -> None:
    settings = Settings(udf_max_connections=3, udf_socket_group="kapacitor",
                        udf_allowed_urls=" http://a:5000, http://b:5000/ ,")
    assert AgentLimits.from_settings(settings) == AgentLimits(
        3, ("http://a:5000", "http://b:5000/"), "kapacitor")
    assert AgentLimits.from_settings(Settings()) == AgentLimits(8, (), "")
