"""The variables tickml's tasks are defined with: settings first, then overrides."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tickml.config import Settings
from tickml.kapacitor import task_variables


def test_the_alert_log_setting_becomes_a_string_var(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, alert_log="/var/log/alerts.log")
    assert task_variables(settings) == {
        "fraud_alerts": {"alert_log": {"type": "string", "value": "/var/log/alerts.log"}}}


def test_no_alert_log_keeps_the_tickscript_default(tmp_path: Path) -> None:
    assert task_variables(Settings(root=tmp_path)) == {"fraud_alerts": {}}


def test_later_overrides_win_var_by_var(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, alert_log="/a.log")
    variables = task_variables(
        settings,
        {"fraud_scoring": {"batch_size": 200, "retry_for": timedelta(seconds=1)}},
        {"fraud_scoring": {"batch_size": 1}, "fraud_alerts": {"alert_log": "/b.log"}},
    )
    assert variables == {
        "fraud_alerts": {"alert_log": {"type": "string", "value": "/b.log"}},
        "fraud_scoring": {"batch_size": {"type": "int", "value": 1},
                          "retry_for": {"type": "duration", "value": 1_000_000_000}},
    }
