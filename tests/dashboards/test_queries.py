"""Every panel's InfluxQL, expanded as Grafana expands it, against a real pipeline run.

No Grafana server runs here: grafana.py does Grafana's part (interval, template
variables, `$timeFilter`), and the queries run on the real InfluxDB the run filled.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.dashboards.grafana import (
    PanelQuery,
    TimeRange,
    annotation_queries,
    expand_query,
    iter_panels,
    panel_queries,
    query_interval_ms,
    variable_values,
)
from tickml.influx import Series

from .conftest import ALERTS, ROOT, RUN, UNSCORABLE_REASON, DashboardRun, load_dashboards

DASHBOARDS = load_dashboards()
QUERIES: list[tuple[dict[str, Any], PanelQuery]] = [
    (dashboard, query) for dashboard in DASHBOARDS.values()
    for query in panel_queries(dashboard) + annotation_queries(dashboard)]
#: Targets the run gives no data, and why.
MAY_BE_EMPTY = {("Model API request rate (points scored per second)", "B"):
                "the API never fails during the run",
                ("Scored live vs by the sweep (per second)", "B"):
                "the stream scores every point of the run itself"}
#: Targets that must show a positive value: the run moved points through them.
POSITIVE = {("Transactions per second", "A"), ("Flagged per second and flagged share", "A"),
            ("Flagged per second and flagged share", "B"),
            ("Pipeline latency p50 / p99 (generation → scoring)", "A"),
            ("Points through each stage (per second)", "A"),
            ("Points through each stage (per second)", "B"),
            ("Points through each stage (per second)", "C"),
            ("Points through each stage (per second)", "D"),
            ("Model API request rate (points scored per second)", "A"),
            ("Model API latency as the agent sees it (p50 / p99)", "A"),
            ("Scored live vs by the sweep (per second)", "A")}


def query_id(item: tuple[dict[str, Any], PanelQuery]) -> str:
    return f"{item[1].dashboard}:{item[1].panel}:{item[1].ref_id}"


def time_range(run: DashboardRun) -> TimeRange:
    """The dashboard's time range: from a minute before the run until now."""
    return TimeRange(run.start_ms - 60_000, int(time.time() * 1000) + 1_000)


def run_panel_query(run: DashboardRun, dashboard: dict[str, Any], query: PanelQuery
                    ) -> tuple[str, list[Series]]:
    """Expand `query` as Grafana would and run it; return the InfluxQL and its series."""
    window = time_range(run)
    interval = query_interval_ms(window, query.max_data_points, query.min_interval)
    statement = expand_query(query.query, window, interval, variable_values(dashboard))
    return statement, run.influx.query(statement)


def panel_by_title(title: str) -> dict[str, Any]:
    return next(panel for dashboard in DASHBOARDS.values() for panel in iter_panels(dashboard)
                if panel["title"] == title)


def expected_columns(panel: dict[str, Any], ref_id: str) -> set[str]:
    """Column names the panel's display settings rely on: overrides, grouping, stat fields.

    Only settings that name one query's columns count: all of them when the panel has
    one query.
    """
    if len(panel.get("targets", [])) > 1:
        return set()
    names = {override["matcher"]["options"] for override in panel["fieldConfig"]["overrides"]
             if override["matcher"]["id"] == "byName"}
    for transformation in panel.get("transformations", []):
        names |= set(transformation["options"].get("fields", {}))
    fields = panel.get("options", {}).get("reduceOptions", {}).get("fields", "")
    match = re.fullmatch(r"/\^\(?([\w |]+?)\)?\$/", fields)
    if match:
        names |= set(match.group(1).split("|"))
    return names


def values_of(series: list[Series], column: str) -> list[Any]:
    return [row[s.columns.index(column)] for s in series for row in s.values]


def single_row(run: DashboardRun, title: str) -> dict[str, Any]:
    dashboard, query = next(item for item in QUERIES if item[1].panel == title)
    _, series = run_panel_query(run, dashboard, query)
    assert len(series) == 1 and len(series[0].values) == 1, series
    return series[0].records()[0]


@pytest.mark.parametrize("item", QUERIES, ids=query_id)
def test_panel_query_expanded_as_grafana_does_returns_the_shape_the_panel_expects(
        dashboard_run: DashboardRun, item: tuple[dict[str, Any], PanelQuery]) -> None:
    dashboard, query = item
    statement, series = run_panel_query(dashboard_run, dashboard, query)
    assert "$" not in statement and "[[" not in statement, statement
    if (query.panel, query.ref_id) in MAY_BE_EMPTY:
        assert all(s.columns[0] == "time" for s in series)
        return
    assert series, f"no data for {query.panel} {query.ref_id}: {statement}"
    for s in series:
        assert s.columns[0] == "time", s.columns
        assert s.values, f"empty series {s.name} for {statement}"
    value_columns = {column for s in series for column in s.columns[1:]}
    if query.panel_type != "annotation":
        panel = panel_by_title(query.panel)
        missing = expected_columns(panel, query.ref_id) - value_columns
        assert not missing, f"{query.panel}: the panel names columns the query lacks: {missing}"
    if query.result_format == "time_series":
        numbers = [v for s in series for row in s.values for v in row[1:] if v is not None]
        assert numbers and all(isinstance(v, int | float) for v in numbers), statement
        if (query.panel, query.ref_id) in POSITIVE:
            assert max(numbers) > 0, f"{query.panel} {query.ref_id} shows nothing: {statement}"


def test_confusion_counts_precision_and_recall_match_the_scored_points(
        dashboard_run: DashboardRun) -> None:
    counts = single_row(dashboard_run, "Confusion counts ($window)")
    scored = dashboard_run.count('SELECT count("fraud") FROM "scored" WHERE "scored" = true')
    assert counts["TP"] + counts["FP"] + counts["FN"] + counts["TN"] == scored
    assert counts["TP"] + counts["FN"] == dashboard_run.frauds_sent
    assert counts["TP"] > 0 and counts["TN"] > 0
    precision = single_row(dashboard_run, "Precision ($window)")["precision"]
    recall = single_row(dashboard_run, "Recall ($window)")["recall"]
    assert precision == pytest.approx(counts["TP"] / (counts["TP"] + counts["FP"]))
    assert recall == pytest.approx(counts["TP"] / (counts["TP"] + counts["FN"]))


def test_transactions_per_second_add_up_to_the_points_written(
        dashboard_run: DashboardRun) -> None:
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Transactions per second")
    window = time_range(dashboard_run)
    seconds = query_interval_ms(window, query.max_data_points, query.min_interval) / 1000
    _, series = run_panel_query(dashboard_run, dashboard, query)
    total = sum(rate * seconds for rate in values_of(series, "transactions/s"))
    assert total == pytest.approx(dashboard_run.sent)


def records_by_query(run: DashboardRun, title: str) -> dict[str, list[dict[str, Any]]]:
    """The rows of each query of the live dashboard's panel `title`, run as Grafana runs
    them, by query letter (the panel joins them by transaction id)."""
    dashboard = DASHBOARDS["fraud-live.json"]
    return {q.ref_id: [row for series in run_panel_query(run, dashboard, q)[1]
                       for row in series.records()]
            for _, q in QUERIES if q.panel == title}


def test_latest_flagged_table_lists_flagged_transactions_with_amount_and_truth(
        dashboard_run: DashboardRun) -> None:
    panel = panel_by_title("Latest flagged transactions")
    results = records_by_query(dashboard_run, panel["title"])
    rows = results["A"]
    amounts = {row["transaction_id"]: row["Amount"] for row in results["B"]}
    flagged = dashboard_run.records(
        'SELECT "transaction_id", "fraud_probability", "Class" FROM "scored" WHERE "fraud" = 1')
    assert len(rows) == min(50, len(flagged)) > 0
    assert {row["transaction_id"] for row in rows} <= {row["transaction_id"] for row in flagged}
    assert all(row["Class"] in (0, 1) and 0 <= row["fraud_probability"] <= 1 for row in rows)
    assert [row["time"] for row in rows] == sorted((row["time"] for row in rows), reverse=True)
    # The panel joins B's amounts onto A by transaction id and keeps A's rows only.
    written = {row["transaction_id"]: row["Amount"] for row in dashboard_run.records(
        'SELECT "transaction_id", "Amount" FROM "transactions"')}
    assert all(amounts[row["transaction_id"]] == written[row["transaction_id"]] for row in rows)
    assert panel["transformations"][:2] == [
        {"id": "joinByField", "options": {"byField": "transaction_id", "mode": "outer"}},
        {"id": "filterByValue", "options": {"type": "exclude", "match": "any", "filters": [
            {"fieldName": "fraud_probability", "config": {"id": "isNull", "options": {}}}]}}]


def test_unscored_panels_show_the_unscorable_point_and_its_reason(
        dashboard_run: DashboardRun) -> None:
    assert single_row(dashboard_run, "Unscored ($window)")["unscored"] == 1
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Unscored points and their reasons")
    _, series = run_panel_query(dashboard_run, dashboard, query)
    assert values_of(series, "unscored_reason") == [UNSCORABLE_REASON]


def test_model_in_use_and_latency_percentiles(dashboard_run: DashboardRun) -> None:
    model = single_row(dashboard_run, "Model in use")
    assert (model["model"], model["version"]) == ("fraud-lgbm", 1)
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel.startswith("Pipeline latency"))
    _, series = run_panel_query(dashboard_run, dashboard, query)
    pairs = list(zip(values_of(series, "p50"), values_of(series, "p99"), strict=True))
    assert pairs and all(0 < p50 <= p99 for p50, p99 in pairs)


def test_probability_distribution_holds_probabilities(dashboard_run: DashboardRun) -> None:
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Distribution of fraud probabilities")
    _, series = run_panel_query(dashboard_run, dashboard, query)
    probabilities = values_of(series, "fraud_probability")
    assert len(probabilities) == dashboard_run.sent - 1
    assert all(0 <= p <= 1 for p in probabilities)


def test_every_flagged_transaction_raises_one_alert_naming_transaction_and_probability(
        dashboard_run: DashboardRun) -> None:
    flagged = dashboard_run.records(
        'SELECT "transaction_id", "fraud_probability" FROM "scored" WHERE "fraud" = 1')
    alerts = dashboard_run.records(f'SELECT "message", "level", "value" FROM {ALERTS}')
    assert len(alerts) == len(flagged) > 0
    messages = {alert["message"] for alert in alerts}
    for tx in flagged:
        assert (f"transaction {tx['transaction_id']}, "
                f"probability {tx['fraud_probability']:.3f}") in " | ".join(messages)
    assert {alert["level"] for alert in alerts} == {"CRITICAL"}


def test_chronograf_alert_history_query_finds_the_alerts_without_a_chronograf_server(
        dashboard_run: DashboardRun) -> None:
    # The query Chronograf's Alert History page sends, against database chronograf.
    dashboard_run.influx.database = "chronograf"
    try:
        rows = dashboard_run.records(
            "SELECT host, value, level, alertName FROM alerts WHERE time >= now() - 1h "
            "AND time <= now() + 1h ORDER BY time desc")
    finally:
        dashboard_run.influx.database = "fraud"
    scored = {row["transaction_id"]: row["fraud_probability"] for row in dashboard_run.records(
        'SELECT "transaction_id", "fraud_probability" FROM "scored" WHERE "fraud" = 1')}
    assert rows and {row["alertName"] for row in rows} == {"fraud_alerts"}
    assert {row["host"]: row["value"] for row in rows} == scored


def test_fraud_alerts_keep_their_log_and_http_endpoint(dashboard_run: DashboardRun) -> None:
    response = dashboard_run.kapacitor.session.get(
        f"{dashboard_run.kapacitor.url}/kapacitor/v1/tasks/fraud_alerts/alerts", timeout=5)
    assert response.status_code == 200
    assert response.json()["series"][0]["tags"]["run"] == RUN
    assert "Fraud suspected: transaction tx-" in dashboard_run.alert_log.read_text()


def test_stack_health_lists_every_executing_kapacitor_task(dashboard_run: DashboardRun) -> None:
    counts = single_row(dashboard_run, "Kapacitor tasks enabled / defined")
    assert counts["enabled"] == counts["defined"] == 4
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Kapacitor tasks executing"
                            and item[1].ref_id == "A")
    _, series = run_panel_query(dashboard_run, dashboard, query)
    collected = {s.tags["task"]: s.records()[0]["points collected"] for s in series}
    assert set(collected) == {"fraud_scoring", "fraud_alerts", "kapacitor_stats", "live_share"}
    assert collected["fraud_scoring"] > 0


def mapped_text(panel: dict[str, Any], field: str, value: Any) -> str:
    """What a table cell shows for `value` under the panel's value mappings for `field`."""
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"]["options"] != field:
            continue
        for prop in override["properties"]:
            if prop["id"] != "mappings":
                continue
            for mapping in prop["value"]:
                if mapping["type"] == "value" and str(value) in mapping["options"]:
                    return mapping["options"][str(value)]["text"]
                if mapping["type"] == "special" and value is None \
                        and mapping["options"]["match"] == "null":
                    return mapping["options"]["result"]["text"]
    return str(value)


def test_fraud_and_not_fraud_counters_add_up_to_the_scored_points(
        dashboard_run: DashboardRun) -> None:
    fraud = single_row(dashboard_run, "Fraud")["fraud"]
    not_fraud = single_row(dashboard_run, "Not fraud")["not fraud"]
    scored = dashboard_run.count('SELECT count("fraud") FROM "scored" WHERE "scored" = true')
    assert fraud + not_fraud == scored and fraud > 0 and not_fraud > 0
    colors = {title: panel_by_title(title)["fieldConfig"]["defaults"]["color"]["fixedColor"]
              for title in ("Fraud", "Not fraud")}
    assert colors == {"Fraud": "red", "Not fraud": "green"}


def test_operations_by_amount_and_analysed_over_time_count_every_transaction(
        dashboard_run: DashboardRun) -> None:
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Latest operations by amount")
    _, series = run_panel_query(dashboard_run, dashboard, query)
    assert len(values_of(series, "amount")) == dashboard_run.sent
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Analysed operations over time")
    _, series = run_panel_query(dashboard_run, dashboard, query)
    flagged = dashboard_run.count('SELECT count("fraud") FROM "scored" WHERE "fraud" = 1')
    assert sum(values_of(series, "analysed")) == dashboard_run.sent - 1, "one is unscorable"
    assert sum(values_of(series, "fraud detected")) == flagged > 0


def test_latest_analysed_table_reads_ok_fraud_detected_or_queued(
        dashboard_run: DashboardRun) -> None:
    panel = panel_by_title("Latest analysed transactions")
    results = records_by_query(dashboard_run, panel["title"])
    latest = results["A"]
    verdicts = {row["transaction_id"]: row["verdict"] for row in results["B"]}
    assert len(latest) == 100
    # The panel joins B onto A by transaction id, as its joinByField transformation does.
    shown = [mapped_text(panel, "Verdict", verdicts.get(row["transaction_id"]))
             for row in latest]
    assert shown[0] == "Queued", "the unscorable point, written last, has no verdict"
    assert set(shown) == {"OK", "Fraud detected", "Queued"}
    assert shown.count("Queued") == 1
    transformation = panel["transformations"][0]
    assert transformation == {"id": "joinByField",
                              "options": {"byField": "transaction_id", "mode": "outer"}}


def test_a_one_second_refresh_is_allowed_and_five_seconds_stays_the_default(
        dashboards: dict[str, dict[str, Any]]) -> None:
    live = dashboards["fraud-live.json"]
    assert live["refresh"] == "5s" and "1s" in live["timepicker"]["refresh_intervals"]
    ini = (ROOT / "compose" / "grafana" / "grafana.ini").read_text()
    assert re.search(r"^min_refresh_interval = 1s$", ini, re.MULTILINE)


def test_live_share_is_whole_when_the_stream_scored_everything(
        dashboard_run: DashboardRun) -> None:
    assert single_row(dashboard_run, "Live share (last 5 minutes)")["live share"] == 1.0
    dashboard, query = next(item for item in QUERIES
                            if item[1].panel == "Scored live vs by the sweep (per second)"
                            and item[1].ref_id == "A")
    _, [series] = run_panel_query(dashboard_run, dashboard, query)
    per_second = [row["scored live"] for row in series.records()]
    scored = dashboard_run.count('SELECT count("scored") FROM "scored" WHERE "scored" = true')
    assert round(sum(per_second)) == scored, "each second's bar counts what the stream scored"
