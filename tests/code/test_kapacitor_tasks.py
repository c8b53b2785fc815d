"""The variables tickml's tasks are defined with, the threshold the scoring task sets, and how
a task stands against the shipped script and tickml's record of its own definition."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tickml.config import Settings
from tickml.kapacitor import (
    DEFINITION_VAR,
    Standing,
    TaskDefinition,
    TaskState,
    script_threshold,
    standing,
    task_variables,
)


def test_the_alert_log_setting_becomes_a_string_var(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, alert_log="/var/log/alerts.log")
    logged = {"alert_log": {"type": "string", "value": "/var/log/alerts.log"}}
    assert task_variables(settings) == {"fraud_alerts": logged, "live_share": logged}


def test_no_alert_log_keeps_the_tickscript_default(tmp_path: Path) -> None:
    assert task_variables(Settings(root=tmp_path)) == {"fraud_alerts": {}, "live_share": {}}


def test_later_overrides_win_var_by_var(tmp_path: Path) -> None:
    settings = Settings(root=tmp_path, alert_log="/a.log")
    variables = task_variables(
        settings,
        {"fraud_scoring": {"batch_size": 200, "retry_for": timedelta(seconds=1)}},
        {"fraud_scoring": {"batch_size": 1}, "fraud_alerts": {"alert_log": "/b.log"}},
    )
    assert variables == {
        "fraud_alerts": {"alert_log": {"type": "string", "value": "/b.log"}},
        "live_share": {"alert_log": {"type": "string", "value": "/a.log"}},
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


SHIPPED = """// Store what comes in.
dbrp "fraud"."autogen"

var batch_size = 200

stream
    |from()
        .measurement('transactions')
"""


def shipped(variables: dict | None = None) -> TaskDefinition:
    return TaskDefinition.of(SHIPPED, variables)


def task_as(definition: TaskDefinition, recorded: TaskDefinition | None = None,
            status: str = "enabled") -> TaskState:
    """The task Kapacitor hands back after `definition` was sent, with `recorded` as record."""
    variables = {**definition.vars}
    if recorded is not None:
        variables[DEFINITION_VAR] = recorded.recorded_vars()[DEFINITION_VAR]
    return TaskState("t", status, status == "enabled", "", definition.script, variables,
                     definition.dbrps)


def test_dbrp_lines_are_sent_as_the_tasks_dbrps_so_chronograf_can_save_it() -> None:
    definition = shipped()
    assert definition.dbrps == (("fraud", "autogen"),)
    assert "dbrp" not in definition.script
    assert "var batch_size = 200" in definition.script


def test_the_fingerprint_ignores_layout_and_how_kapacitor_spells_a_whole_float() -> None:
    sent = shipped({"cut": {"type": "float", "value": 1.0}})
    handed_back = TaskDefinition(
        "\n\n".join(line.strip() for line in sent.script.splitlines()), sent.dbrps,
        {"cut": {"type": "float", "value": 1, "description": ""}})
    assert handed_back.fingerprint == sent.fingerprint


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.replace("var batch_size = 200", "var batch_size = 50"), "different"),
        (lambda s: s + "    |log()\n", "different"),
        (lambda s: s.replace('"autogen"', '"weekly"'), "different"),
        (lambda s: s.replace("    |from()", "  |from()"), "same"),
    ],
    ids=["var default", "a node", "dbrp", "indentation"],
)
def test_what_the_fingerprint_sees(change, expected: str) -> None:
    same = TaskDefinition.of(change(SHIPPED)).fingerprint == shipped().fingerprint
    assert same == (expected == "same")


def test_a_var_override_changes_the_fingerprint() -> None:
    assert shipped({"batch_size": {"type": "int", "value": 1}}).fingerprint \
        != shipped().fingerprint


EDIT = TaskDefinition.of(SHIPPED.replace("'transactions'", "'transactions_eu'"))
OLDER = TaskDefinition.of(SHIPPED.replace("200", "100"))


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (None, Standing.MISSING),
        (task_as(shipped(), recorded=shipped()), Standing.CURRENT),
        (task_as(shipped()), Standing.CURRENT),  # as shipped, defined before the record
        (task_as(OLDER, recorded=OLDER), Standing.OUTDATED),
        (task_as(EDIT, recorded=shipped()), Standing.EDITED),
        (task_as(EDIT, recorded=OLDER), Standing.EDITED),
        (task_as(EDIT), Standing.FOREIGN),
        (task_as(shipped(), recorded=OLDER), Standing.CURRENT),  # edited back to ours
    ],
    ids=["missing", "current", "current, unrecorded", "outdated", "edited",
         "edited and outdated", "not tickml's", "edited back"],
)
def test_where_a_task_stands(state: TaskState | None, expected: Standing) -> None:
    assert standing(state, shipped()) is expected


def test_a_script_with_its_dbrp_line_still_stands_as_shipped() -> None:
    # Tasks defined by earlier tickml versions kept the `dbrp` line in their script.
    state = TaskState("t", "enabled", True, "", SHIPPED, {}, (("fraud", "autogen"),))
    assert standing(state, shipped()) is Standing.CURRENT
