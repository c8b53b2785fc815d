"""Grafana's side of a dashboard query, done without Grafana.

The provisioned dashboards (`compose/grafana/dashboards/*.json`) hold raw InfluxQL with
Grafana's macros. Before a query reaches InfluxDB, Grafana picks the panel's interval
from the time range and the number of data points it can draw, interpolates the
dashboard's template variables, and replaces `$timeFilter`, `$__interval`,
`$__interval_ms` and `$interval`. This module does the same, so tests can run every
panel's query against a real InfluxDB.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

#: The uid of the provisioned InfluxDB datasource; every panel and query refers to it.
DATASOURCE_UID = "tickml-influxdb"
DATASOURCE_TYPE = "influxdb"
#: Where compose mounts the files under compose/grafana inside the Grafana container.
GRAFANA_MOUNTS: dict[str, str] = {
    "/etc/grafana/grafana.ini": "compose/grafana/grafana.ini",
    "/etc/grafana/provisioning": "compose/grafana/provisioning",
    "/var/lib/grafana/dashboards": "compose/grafana/dashboards",
}
#: Grafana asks for about one point per pixel; a panel half a screen wide draws ~1000.
DEFAULT_MAX_DATA_POINTS = 1000

_SECOND = 1000
_MINUTE = 60 * _SECOND
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR
# Grafana's interval rounding (grafana-plugin-sdk-go gtime): an interval up to the
# first number becomes the second one, in milliseconds.
_ROUNDING: tuple[tuple[float, int], ...] = (
    (10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500),
    (1_500, 1_000), (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000),
    (25_000, 20_000), (45_000, 30_000), (90_000, 60_000), (210_000, 120_000),
    (450_000, 300_000), (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000),
    (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
    (172_800_000, 86_400_000), (604_800_000, 86_400_000), (1_814_400_000, 604_800_000),
)
_MONTH_MS = 2_592_000_000
_YEAR_MS = 31_536_000_000
_UNITS_MS = {"ms": 1, "s": _SECOND, "m": _MINUTE, "h": _HOUR, "d": _DAY, "w": 7 * _DAY,
             "y": 365 * _DAY}
# $name, ${name}, ${name:format} and [[name]]; \w+ is greedy, so $__interval_ms is one name.
_VARIABLE = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")


@dataclass(frozen=True)
class TimeRange:
    """A dashboard time range, as Unix epoch milliseconds."""

    from_ms: int
    to_ms: int

    @property
    def duration_ms(self) -> int:
        return self.to_ms - self.from_ms


@dataclass(frozen=True)
class PanelQuery:
    """One query of one panel (or one annotation), as written in the dashboard."""

    dashboard: str
    panel: str
    panel_type: str
    ref_id: str
    query: str
    result_format: str
    min_interval: str | None
    max_data_points: int


def round_interval(interval_ms: float) -> int:
    """Grafana's rounding of a computed interval to a readable step, in milliseconds."""
    for upper, rounded in _ROUNDING:
        if interval_ms <= upper:
            return rounded
    return _MONTH_MS if interval_ms < 3_628_800_000 else _YEAR_MS


def format_interval(interval_ms: int) -> str:
    """An interval in Grafana's notation (`200ms`, `1s`, `5m`), truncated to whole units."""
    for unit, size in (("y", 365 * _DAY), ("d", _DAY), ("h", _HOUR), ("m", _MINUTE),
                       ("s", _SECOND), ("ms", 1)):
        if interval_ms >= size:
            return f"{interval_ms // size}{unit}"
    return "1ms"


def parse_interval(text: str) -> int:
    """Milliseconds in a Grafana interval such as `10s`, `>10s` (a minimum) or `500ms`."""
    match = re.fullmatch(r">?\s*(\d+)\s*(ms|s|m|h|d|w|y)", text.strip())
    if match is None:
        raise ValueError(f"not a Grafana interval: {text!r}")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def query_interval_ms(time_range: TimeRange, max_data_points: int,
                      min_interval: str | None = None) -> int:
    """The `$__interval` Grafana gives a query: range / points, rounded, at least the minimum.

    Args:
        time_range: the dashboard's time range.
        max_data_points: how many points the panel can show (about its width in pixels).
        min_interval: the panel's `interval` (or the datasource's), e.g. `10s`; optional.
    Returns:
        The interval in milliseconds.
    """
    interval = round_interval(time_range.duration_ms / max(1, max_data_points))
    if min_interval:
        interval = max(interval, parse_interval(min_interval))
    return interval


def variable_values(dashboard: Mapping[str, Any]) -> dict[str, list[str]]:
    """The current value(s) of each template variable of a dashboard."""
    values: dict[str, list[str]] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        current = variable.get("current", {}).get("value")
        if current is None:
            current = variable.get("query", "")
        values[variable["name"]] = current if isinstance(current, list) else [str(current)]
    return values


def format_variable(values: list[str]) -> str:
    """One value as it is; several as InfluxQL regex alternation, as Grafana does."""
    if len(values) == 1:
        return values[0]
    return "(" + "|".join(re.escape(value) for value in values) + ")"


def expand_query(query: str, time_range: TimeRange, interval_ms: int,
                 variables: Mapping[str, list[str]] | None = None) -> str:
    """The InfluxQL Grafana sends for `query`: variables and macros replaced.

    `$timeFilter` becomes `time >= <from>ms and time <= <to>ms`; `$__interval` and
    `$interval` the formatted interval; `$__interval_ms` its milliseconds; `$__from`
    and `$__to` the range's epoch milliseconds. Unknown names are left alone, as
    Grafana leaves them.
    """
    known: dict[str, str] = {name: format_variable(values)
                             for name, values in (variables or {}).items()}
    known.update({
        "timeFilter": f"time >= {time_range.from_ms}ms and time <= {time_range.to_ms}ms",
        "__interval": format_interval(interval_ms),
        "interval": format_interval(interval_ms),
        "__interval_ms": str(interval_ms),
        "__from": str(time_range.from_ms),
        "__to": str(time_range.to_ms),
    })

    def replace(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group is not None)
        return known.get(name, match.group(0))

    return _VARIABLE.sub(replace, query)


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of a dashboard, including those folded inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") != "row":
            yield panel
        yield from (inner for inner in panel.get("panels", []) if inner.get("type") != "row")


def panel_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """Every target of every panel, with what Grafana needs to expand it."""
    queries = []
    for panel in iter_panels(dashboard):
        for target in panel.get("targets", []):
            queries.append(PanelQuery(
                dashboard=dashboard["uid"], panel=panel["title"], panel_type=panel["type"],
                ref_id=target["refId"], query=target.get("query", ""),
                result_format=target.get("resultFormat", "time_series"),
                min_interval=panel.get("interval"),
                max_data_points=panel.get("maxDataPoints", DEFAULT_MAX_DATA_POINTS)))
    return queries


def annotation_queries(dashboard: Mapping[str, Any]) -> list[PanelQuery]:
    """The InfluxDB annotation queries of a dashboard (Grafana's built-in one excluded)."""
    queries = []
    for annotation in dashboard.get("annotations", {}).get("list", []):
        target = annotation.get("target") or {}
        if annotation.get("builtIn") or "query" not in target:
            continue
        queries.append(PanelQuery(
            dashboard=dashboard["uid"], panel=f"annotation: {annotation['name']}",
            panel_type="annotation", ref_id=target.get("refId", "Anno"), query=target["query"],
            result_format=target.get("resultFormat", "table"), min_interval=None,
            max_data_points=DEFAULT_MAX_DATA_POINTS))
    return queries


def datasource_refs(dashboard: Mapping[str, Any]) -> list[tuple[str, dict[str, Any] | None]]:
    """(where, datasource) for every panel, target and annotation that queries data."""
    refs: list[tuple[str, dict[str, Any] | None]] = []
    for panel in iter_panels(dashboard):
        refs.append((f"panel {panel['title']!r}", panel.get("datasource")))
        for target in panel.get("targets", []):
            refs.append((f"panel {panel['title']!r} query {target['refId']}",
                         target.get("datasource")))
    for annotation in dashboard.get("annotations", {}).get("list", []):
        if not annotation.get("builtIn"):
            refs.append((f"annotation {annotation['name']!r}", annotation.get("datasource")))
            refs.append((f"annotation {annotation['name']!r} query",
                         (annotation.get("target") or {}).get("datasource")))
    return refs
