"""Tasks edited or disabled in Chronograf stay so through `tickml tasks define` and `tickml up`,
and disabling the scoring task while transactions flow never takes kapacitord down.

The native stack runs here as `./up.sh --local` starts it, watchdog included. Edits and
disables go through Kapacitor's HTTP API in the very requests Chronograf 1.11 makes
(its `kapacitor/client.go`: `Update` and `updateStatus`, unchanged since 1.10).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
import requests

from tests.conftest import SCRIPTS
from tests.polling import wait_until
from tickml import schema
from tickml.kapacitor import (
    REQUEST_TIMEOUT,
    SCORING_TASK,
    TASKS,
    define_tickml_tasks,
    kapacitor_for,
    task_vars,
)
from tickml.rescore import rescore_range
from tickml.stack.native import NativeStack
from tickml.stack.programs import TICKML, http_ok

from .conftest import counts, influx_of

# The stack starts within the first test: on a busy machine that alone takes minutes.
pytestmark = pytest.mark.timeout(600)


def chronograf() -> requests.Session:
    """Kapacitor as Chronograf reaches it: with tickml's Kapacitor login (from `.env`)."""
    session = requests.Session()
    session.auth = (os.environ["KAPACITOR_TICKML_USER"], os.environ["KAPACITOR_TICKML_PASSWORD"])
    return session


def chronograf_save(kapacitor_url: str, task_id: str, edit: Callable[[str], str]) -> str:
    """Save an edited TICKscript as Chronograf's editor does; return the script saved.

    Chronograf reads the task (its script as Kapacitor formats it), then PATCHes the
    script with the task's type and dbrps, disabled, and enables it again if it was.
    """
    task = chronograf().get(task_url(kapacitor_url, task_id), timeout=REQUEST_TIMEOUT).json()
    script = edit(task["script"])
    saved = chronograf_patch(kapacitor_url, task, script)
    assert saved.status_code == 200, saved.text
    if task["status"] == "enabled":
        chronograf_set_status(kapacitor_url, task_id, "enabled")
    return script


def chronograf_patch(kapacitor_url: str, task: dict, script: str) -> requests.Response:
    return chronograf().patch(task_url(kapacitor_url, task["id"]),
                          json={"script": script, "status": "disabled", "type": task["type"],
                                "dbrps": task["dbrps"]}, timeout=REQUEST_TIMEOUT)


def task_url(kapacitor_url: str, task_id: str) -> str:
    return f"{kapacitor_url}/kapacitor/v1/tasks/{task_id}"


def chronograf_set_status(kapacitor_url: str, task_id: str, status: str) -> None:
    """Enable or disable a task as Chronograf's task list does."""
    response = chronograf().patch(task_url(kapacitor_url, task_id), json={"status": status},
                                  timeout=REQUEST_TIMEOUT)
    response.raise_for_status()


def chronograf_disable(kapacitor_url: str, task_id: str) -> None:
    chronograf_set_status(kapacitor_url, task_id, "disabled")


def add_comment(text: str) -> Callable[[str], str]:
    return lambda script: f"{script.rstrip()}\n// {text}\n"


def tickml_tasks(*args: str, scripts: Path | None = None) -> str:
    """Run `tickml tasks ARGS` against the stack (its settings are in the environment)."""
    env = dict(os.environ)
    # A hand-run tickml command logs in through its TICKML_* variables (see the README).
    env.update(TICKML_KAPACITOR_USER=env["KAPACITOR_TICKML_USER"],
               TICKML_KAPACITOR_PASSWORD=env["KAPACITOR_TICKML_PASSWORD"],
               TICKML_INFLUX_USER=env["INFLUXDB_ADMIN_USER"],
               TICKML_INFLUX_PASSWORD=env["INFLUXDB_ADMIN_PASSWORD"])
    if scripts is not None:
        env["TICKML_KAPACITOR_SCRIPTS"] = str(scripts)
    result = subprocess.run([TICKML, "tasks", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def define_actions(output: str) -> dict[str, str]:
    """`tickml tasks define`'s report: task id -> what was done."""
    return dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)


def status_rows(output: str) -> dict[str, tuple[str, str, str]]:
    """`tickml tasks status`'s table: task id -> (definition, status, executing)."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip("│ ").split("│")]
        if cells[0] in TASKS:
            rows[cells[0]] = (cells[1], cells[2], cells[3])
    return rows


def up_report(stack: NativeStack) -> str:
    """`tickml up` again, as a second `./up.sh --local` runs it; its task line."""
    lines: list[str] = []
    stack.up(report=lines.append)
    return next(line for line in lines if line.startswith("tasks: "))


def restore_shipped(stack: NativeStack) -> None:
    client = kapacitor_for(stack.service_settings)
    define_tickml_tasks(client, stack.service_settings, reset=True)
    assert wait_until(lambda: all(client.task(t).healthy for t in TASKS), timeout=60)


def test_an_edit_and_a_disable_survive_define_a_kapacitor_restart_and_up(
        native: NativeStack) -> None:
    url = native.settings.kapacitor_url
    kapacitor = kapacitor_for(native.service_settings)
    try:
        edited = chronograf_save(url, "fraud_alerts", add_comment("tuned by hand"))
        chronograf_disable(url, "kapacitor_stats")
        expected = {"fraud_scoring": "unchanged", "fraud_alerts": "kept (edited)",
                    "kapacitor_stats": "unchanged, left disabled", "live_share": "unchanged"}
        assert define_actions(tickml_tasks("define")) == expected

        native.call("stopProcess", "kapacitord")
        native.call("startProcess", "kapacitord")
        assert up_report(native) == ("tasks: fraud_scoring unchanged, fraud_alerts kept "
                                     "(edited), kapacitor_stats unchanged, left disabled, "
                                     "live_share unchanged")
        assert wait_until(lambda: kapacitor.task("fraud_alerts").healthy, timeout=30)
        time.sleep(2)  # four watchdog checks (TICKML_WATCHDOG_INTERVAL=0.5)
        assert kapacitor.task("fraud_alerts").script == edited
        assert kapacitor.task("kapacitor_stats").status == "disabled", \
            "neither define, up nor the watchdog enables a task the user disabled"
        assert status_rows(tickml_tasks("status")) == {
            "fraud_scoring": ("as shipped", "enabled", "yes"),
            "fraud_alerts": ("edited", "enabled", "yes"),
            "kapacitor_stats": ("as shipped", "disabled", "no"),
            "live_share": ("as shipped", "enabled", "yes")}

        assert define_actions(tickml_tasks("define", "--reset")) == {
            "fraud_scoring": "unchanged", "fraud_alerts": "reset", "kapacitor_stats": "reset",
            "live_share": "unchanged"}
        assert wait_until(lambda: all(kapacitor.task(t).healthy for t in TASKS), timeout=30)
        assert status_rows(tickml_tasks("status")) == dict.fromkeys(
            TASKS, ("as shipped", "enabled", "yes"))
        assert "tuned by hand" not in kapacitor.task("fraud_alerts").script
    finally:
        restore_shipped(native)


def test_a_changed_shipped_script_updates_tasks_the_user_left_and_keeps_the_edited_one(
        native: NativeStack, tmp_path: Path) -> None:
    url = native.settings.kapacitor_url
    kapacitor = kapacitor_for(native.service_settings)
    scripts = tmp_path / "scripts"
    shutil.copytree(SCRIPTS, scripts)
    for file in TASKS.values():
        (scripts / file).write_text(add_comment("shipped later")((scripts / file).read_text()))
    newer = dataclasses.replace(native, settings=dataclasses.replace(
        native.settings, kapacitor_scripts=scripts))
    try:
        chronograf_disable(url, "fraud_alerts")
        edited = chronograf_save(url, "kapacitor_stats", add_comment("mine"))
        assert status_rows(tickml_tasks("status", scripts=scripts)) == {
            "fraud_scoring": ("outdated", "enabled", "yes"),
            "fraud_alerts": ("outdated", "disabled", "no"),
            "kapacitor_stats": ("edited", "enabled", "yes"),
            "live_share": ("outdated", "enabled", "yes")}

        assert up_report(newer) == ("tasks: fraud_scoring updated, fraud_alerts updated, "
                                    "left disabled, kapacitor_stats kept (edited), "
                                    "live_share updated")
        for task_id in ("fraud_scoring", "fraud_alerts"):
            assert kapacitor.task(task_id).script.endswith("// shipped later\n"), task_id
        assert kapacitor.task("fraud_alerts").status == "disabled"
        assert kapacitor.task("kapacitor_stats").script == edited
        assert wait_until(lambda: kapacitor.task("fraud_scoring").healthy, timeout=30)

        assert define_actions(tickml_tasks("define", "--reset", "kapacitor_stats",
                                           scripts=scripts)) == {"kapacitor_stats": "reset"}
        assert status_rows(tickml_tasks("status", scripts=scripts)) == {
            "fraud_scoring": ("as shipped", "enabled", "yes"),
            "fraud_alerts": ("as shipped", "disabled", "no"),
            "kapacitor_stats": ("as shipped", "enabled", "yes"),
            "live_share": ("as shipped", "enabled", "yes")}
    finally:
        restore_shipped(native)


def test_a_task_defined_before_tickml_kept_a_record_is_recorded_and_then_saves_in_chronograf(
        native: NativeStack) -> None:
    url = native.settings.kapacitor_url
    try:
        # As earlier tickml versions defined it: the script with its dbrp line, no record.
        deleted = chronograf().delete(task_url(url, "kapacitor_stats"), timeout=REQUEST_TIMEOUT)
        deleted.raise_for_status()
        created = chronograf().post(f"{url}/kapacitor/v1/tasks", timeout=REQUEST_TIMEOUT, json={
            "id": "kapacitor_stats", "type": "stream", "status": "enabled",
            "script": (SCRIPTS / "kapacitor_stats.tick").read_text()})
        created.raise_for_status()
        refused = chronograf_patch(url, created.json(), created.json()["script"])
        assert "cannot specify dbrp in implicitly and explicitly" in refused.text

        assert define_actions(tickml_tasks("define", "kapacitor_stats")) == {
            "kapacitor_stats": "recorded"}
        chronograf_save(url, "kapacitor_stats", add_comment("mine"))
        assert define_actions(tickml_tasks("define", "kapacitor_stats")) == {
            "kapacitor_stats": "kept (edited)"}
    finally:
        restore_shipped(native)


def unix_sockets_held(pid: int) -> int:
    """How many unix-domain sockets process `pid` holds (kapacitord: one per UDF node)."""
    unix_inodes = {line.split()[6] for line in Path("/proc/net/unix").read_text().splitlines()[1:]}
    descriptors = Path(f"/proc/{pid}/fd")
    targets = (os.readlink(fd) for fd in descriptors.iterdir())
    return sum(1 for target in targets
               if target.startswith("socket:[") and target[8:-1] in unix_inodes)


def assert_still_running(stack: NativeStack, pid: int) -> None:
    """kapacitord kept process `pid`: it neither died nor was restarted."""
    assert stack.call("getProcessInfo", "kapacitord")["pid"] == pid, \
        "kapacitord was restarted: " + (stack.logs / "kapacitord.log").read_text()[-3000:]


def scoring_goes_on(stack: NativeStack) -> bool:
    """More than 20 further transactions get scored within a minute."""
    influx = influx_of(stack)
    scored = counts(influx)["scored"]
    return wait_until(lambda: counts(influx)["scored"] > scored + 20, timeout=60)


def test_disabling_and_enabling_scoring_while_points_flow_never_takes_kapacitord_down(
        native: NativeStack) -> None:
    # tickml's kapacitord carries scripts/patches/kapacitor/udf-stop-races.patch; without
    # it this loop made kapacitord panic within about 80 disables on 2 cores.
    url = native.settings.kapacitor_url
    kapacitor = kapacitor_for(native.service_settings)
    kapacitord = native.call("getProcessInfo", "kapacitord")["pid"]
    try:
        for _ in range(200):
            chronograf_disable(url, "fraud_scoring")
            chronograf_set_status(url, "fraud_scoring", "enabled")
            time.sleep(0.02)  # let the task start and points reach the agent

        assert_still_running(native, kapacitord)
        assert "panic" not in (native.logs / "kapacitord.log").read_text()
        task = kapacitor.task("fraud_scoring")
        assert task.healthy, f"stopping the task was taken for a failure: {task.error}"
        assert wait_until(lambda: unix_sockets_held(kapacitord) == 1, timeout=10), \
            f"kapacitord holds {unix_sockets_held(kapacitord)} UDF connections, not 1"
        assert scoring_goes_on(native), "scoring did not go on after the last enable"
    finally:
        restore_shipped(native)


def test_two_enables_at_once_leave_one_run_of_the_scoring_task(native: NativeStack) -> None:
    # Kapacitor's task store lets two enables that race both start the task; without
    # scripts/patches/kapacitor/start-task-once.patch the second run took the first's
    # place and the first kept running unseen, holding its own UDF connection.
    url = native.settings.kapacitor_url
    kapacitor = kapacitor_for(native.service_settings)
    kapacitord = native.call("getProcessInfo", "kapacitord")["pid"]
    enable = lambda _: chronograf_set_status(url, SCORING_TASK, "enabled")  # noqa: E731
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in range(40):
                chronograf_disable(url, SCORING_TASK)
                list(pool.map(enable, range(2)))
        assert_still_running(native, kapacitord)
        assert wait_until(lambda: kapacitor.task(SCORING_TASK).healthy, timeout=30)
        assert wait_until(lambda: unix_sockets_held(kapacitord) == 1, timeout=10), \
            f"kapacitord holds {unix_sockets_held(kapacitord)} UDF connections, not 1"
        assert scoring_goes_on(native), "scoring did not go on after the last enable"
    finally:
        restore_shipped(native)


def test_disabling_scoring_while_the_api_is_down_is_answered_and_loses_no_transaction(
        native: NativeStack) -> None:
    # Kapacitor answers a disable only once the agent has closed the task's connection,
    # and holds every other task request until then. The agent retries the API for the
    # task's retryFor (two minutes here), but not once the task is stopping.
    kapacitor = kapacitor_for(native.service_settings)  # gives up after REQUEST_TIMEOUT
    influx = influx_of(native)
    task = kapacitor.task(SCORING_TASK)
    patient = {**task.vars, **task_vars({"retry_for": timedelta(minutes=2)})}
    udf_log = native.logs / "udf.log"
    try:
        kapacitor.update(SCORING_TASK, task.script, patient, task.dbrps)
        kapacitor.restart(SCORING_TASK)  # a running task keeps its old vars until then
        assert wait_until(lambda: "retry_for=120.0" in udf_log.read_text(), timeout=30)
        retries = udf_log.read_text().count("retrying for another")
        native.call("stopProcess", "api")
        assert wait_until(lambda: udf_log.read_text().count("retrying for another") > retries + 2,
                          timeout=30), "the agent did not meet the API outage"
        kapacitor.set_status(SCORING_TASK, "disabled")
    finally:
        native.call("startProcess", "api")
        restore_shipped(native)
    assert "not retried: the task was stopping" in udf_log.read_text()

    assert wait_until(lambda: http_ok(f"{native.settings.api_url}/ready"), timeout=60)
    until = time.time_ns()
    report = rescore_range(native.service_settings, until - 10 * 60 * 10**9, until)
    assert report.failed == 0, report
    window = f"time <= {until}"
    written = influx.count(schema.TRANSACTIONS, schema.AMOUNT, window)
    scored = influx.count(schema.SCORED_POINTS, schema.PROBABILITY,
                          f'"{schema.SCORED}" = true AND {window}')
    assert scored == written, "transactions written during the outage were lost"


def test_stopping_scoring_while_the_agent_is_down_is_answered_and_kapacitord_goes_on(
        native: NativeStack) -> None:
    # With the agent down, a started task's UDF node keeps trying to connect for up to
    # five minutes; a stop meanwhile used to wait for that (or, unpatched, fail on a nil
    # pointer), holding every other task request.
    kapacitor = kapacitor_for(native.service_settings)  # gives up after REQUEST_TIMEOUT
    kapacitord = native.call("getProcessInfo", "kapacitord")["pid"]
    try:
        native.call("stopProcess", "udf")
        kapacitor.restart(SCORING_TASK)  # the new run's UDF node now retries connecting
        kapacitor.set_status(SCORING_TASK, "disabled")
        assert kapacitor.task(SCORING_TASK).status == "disabled"
        assert_still_running(native, kapacitord)
    finally:
        native.call("startProcess", "udf")
        restore_shipped(native)
    assert scoring_goes_on(native), "scoring did not go on once the agent was back"
