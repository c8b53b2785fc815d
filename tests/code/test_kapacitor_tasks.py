"""The variables tickml's tasks are defined with, and the threshold the scoring task sets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tickml.config import Settings
from tickml.kapacitor import script_threshold, task_variables


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


SCORING = """
var batch_size = 200
var cut = 0.3
stream
    |from()
        .measurement('transactions')
    @fraud()
        .url('http://api:5000') // a comment with .threshold(0.9) in it
        .threshold({argument})
"""


@pytest.mark.parametrize(
    ("argument", "variables", "expected"),
    [
        ("0.25", {}, 0.25),
        ("cut", {}, 0.3),
        ("cut", {"cut": {"type": "float", "value": 0.7}}, 0.7),
    ],
    ids=["literal", "var default", "var override"],
)
def test_the_threshold_the_scoring_task_gives_the_agent(argument: str, variables: dict,
                                                        expected: float) -> None:
    assert script_threshold(SCORING.format(argument=argument), variables) == expected


def test_no_threshold_call_leaves_the_model_threshold() -> None:
    assert script_threshold(SCORING.replace(".threshold({argument})", ""), {}) is None
