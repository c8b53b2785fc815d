"""Grafana's interval and macro expansion, as tests/dashboards/grafana.py reproduces it."""

from __future__ import annotations

import pytest

from tests.dashboards.grafana import (
    TimeRange,
    annotation_queries,
    expand_query,
    format_interval,
    iter_panels,
    panel_queries,
    parse_interval,
    query_interval_ms,
    round_interval,
    variable_values,
)

FIFTEEN_MINUTES = TimeRange(1_700_000_000_000, 1_700_000_900_000)


@pytest.mark.parametrize(("raw_ms", "rounded_ms"), [
    (3, 1), (10, 1), (12, 10), (30, 20), (60, 50), (120, 100), (300, 200), (600, 500),
    (900, 1_000), (1_500, 1_000), (1_501, 2_000), (5_000, 5_000), (11_000, 10_000),
    (40_000, 30_000), (80_000, 60_000), (3_600_000, 3_600_000), (10 * 86_400_000, 604_800_000),
    (30 * 86_400_000, 2_592_000_000), (400 * 86_400_000, 31_536_000_000),
])
def test_round_interval_follows_grafanas_steps(raw_ms: float, rounded_ms: int) -> None:
    assert round_interval(raw_ms) == rounded_ms


@pytest.mark.parametrize(("interval_ms", "text"), [
    (0, "1ms"), (200, "200ms"), (1_000, "1s"), (1_500, "1s"), (90_000, "1m"),
    (3_600_000, "1h"), (86_400_000, "1d"), (31_536_000_000, "1y"),
])
def test_format_interval_truncates_to_whole_units(interval_ms: int, text: str) -> None:
    assert format_interval(interval_ms) == text


@pytest.mark.parametrize(("text", "ms"), [("10s", 10_000), (">10s", 10_000), ("500ms", 500),
                                          ("5m", 300_000), ("1h", 3_600_000)])
def test_parse_interval(text: str, ms: int) -> None:
    assert parse_interval(text) == ms


@pytest.mark.parametrize("text", ["", "10", "ten seconds", "5 parsecs"])
def test_parse_interval_refuses_what_grafana_would_not_read(text: str) -> None:
    with pytest.raises(ValueError, match="not a Grafana interval"):
        parse_interval(text)


@pytest.mark.parametrize(("points", "minimum", "expected_ms"), [
    (1_000, None, 1_000),  # 900 ms per point, rounded up to 1 s
    (100, None, 10_000),  # 9 s per point
    (1_000, "10s", 10_000),  # the panel's minimum wins
    (1_000, "100ms", 1_000),  # a lower minimum changes nothing
])
def test_query_interval_is_range_over_points_rounded_with_a_floor(
        points: int, minimum: str | None, expected_ms: int) -> None:
    assert query_interval_ms(FIFTEEN_MINUTES, points, minimum) == expected_ms


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT x FROM m WHERE $timeFilter",
     "SELECT x FROM m WHERE time >= 1700000000000ms and time <= 1700000900000ms"),
    ("GROUP BY time($__interval)", "GROUP BY time(2s)"),
    ("GROUP BY time($interval)", "GROUP BY time(2s)"),
    ("count(x) * 1000 / $__interval_ms", "count(x) * 1000 / 2000"),
    ("time > now() - $window", "time > now() - 5m"),
    ("time > now() - ${window}", "time > now() - 5m"),
    ("time > now() - ${window:raw}", "time > now() - 5m"),
    ("time > now() - [[window]]", "time > now() - 5m"),
    ("\"host\" =~ /^$host$/", "\"host\" =~ /^(a\\.b|c)$/"),
    ("alias $tag_task stays", "alias $tag_task stays"),
    ("$__from to $__to", "1700000000000 to 1700000900000"),
])
def test_expand_query_replaces_macros_and_variables_as_grafana_does(
        query: str, expected: str) -> None:
    variables = {"window": ["5m"], "host": ["a.b", "c"]}
    assert expand_query(query, FIFTEEN_MINUTES, 2_000, variables) == expected


def test_variables_take_their_current_value_and_panels_inside_rows_are_found() -> None:
    dashboard = {
        "uid": "d",
        "templating": {"list": [
            {"name": "window", "type": "custom", "query": "1m,5m",
             "current": {"text": "5m", "value": "5m"}},
            {"name": "hosts", "type": "custom", "current": {"value": ["a", "b"]}},
            {"name": "fixed", "type": "constant", "query": "x"}]},
        "panels": [
            {"type": "stat", "title": "top", "targets": [{"refId": "A", "query": "q1"}]},
            {"type": "row", "title": "folded", "collapsed": True, "panels": [
                {"type": "table", "title": "inner", "interval": "10s", "maxDataPoints": 50,
                 "targets": [{"refId": "B", "query": "q2", "resultFormat": "table"}]}]}],
        "annotations": {"list": [
            {"builtIn": 1, "name": "Annotations & Alerts"},
            {"name": "alerts", "target": {"refId": "Anno", "query": "q3"}}]},
    }
    assert variable_values(dashboard) == {"window": ["5m"], "hosts": ["a", "b"], "fixed": ["x"]}
    assert [panel["title"] for panel in iter_panels(dashboard)] == ["top", "inner"]
    inner = panel_queries(dashboard)[1]
    assert (inner.query, inner.result_format, inner.min_interval, inner.max_data_points) == \
        ("q2", "table", "10s", 50)
    assert [query.query for query in annotation_queries(dashboard)] == ["q3"]
