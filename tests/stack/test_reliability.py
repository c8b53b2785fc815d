"""The native stack as `tickml up` starts it, and its outages: nothing lost, nothing duplicated.

Each outage scenario disturbs one service while the generator publishes, then stops
the generator, lets the pipeline drain, runs `tickml rescore`, and checks that
every transaction has exactly one scored point.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.polling import wait_until
from tickml.kapacitor import kapacitor_for
from tickml.stack.native import NativeStack
from tickml.stack.programs import TICKML, tickml_env

from .conftest import counts, influx_of, wait_until_settled

pytestmark = pytest.mark.timeout(300)


def run_rescore(stack: NativeStack) -> str:
    env = {**os.environ, **tickml_env(stack.service_settings)}  # its logins, as up.sh gives
    result = subprocess.run([TICKML, "rescore", "--since", "30m"], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def assert_nothing_lost_after_rescore(stack: NativeStack) -> dict[str, int]:
    stack.call("stopProcess", "generator")  # SIGTERM: it sends what it buffered, then exits
    influx = influx_of(stack)
    wait_until_settled(influx)
    run_rescore(stack)
    final = counts(influx)
    assert final["transactions"] > 0
    assert final["scored_points"] == final["transactions"], final  # nothing lost or doubled
    assert final["scored"] == final["transactions"], final
    assert final["unscored"] == 0, final
    stack.call("startProcess", "generator")
    return final


def scored_count(stack: NativeStack) -> int:
    return counts(influx_of(stack))["scored"]


def test_the_alert_log_setting_reaches_the_alert_task(native: NativeStack) -> None:
    alert_log = Path(native.settings.alert_log)
    state = kapacitor_for(native.service_settings).task("fraud_alerts")
    assert state is not None and state.vars["alert_log"]["value"] == str(alert_log)
    assert wait_until(lambda: alert_log.is_file() and alert_log.stat().st_size > 0,
                      timeout=90), "frauds are logged where TICKML_ALERT_LOG says"


def test_api_stopped_and_started_mid_stream(native: NativeStack) -> None:
    influx = influx_of(native)
    assert wait_until(lambda: scored_count(native) > 20, timeout=60)
    native.call("stopProcess", "api")
    assert wait_until(lambda: counts(influx)["unscored"] > 0, timeout=60), \
        "points during the outage come out marked unscored"
    native.call("startProcess", "api")
    before = scored_count(native)
    assert wait_until(lambda: scored_count(native) > before + 20, timeout=60)
    assert_nothing_lost_after_rescore(native)


def test_agent_killed_is_restarted_and_the_watchdog_revives_the_task(native: NativeStack) -> None:
    pid = native.call("getProcessInfo", "udf")["pid"]
    before = scored_count(native)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: native.call("getProcessInfo", "udf")["pid"] != pid,
                      timeout=30), "supervisord restarts the agent"
    assert wait_until(lambda: scored_count(native) > before + 40, timeout=90), \
        "the watchdog restarted the task and scoring resumed"
    log = (native.logs / "watchdog.log").read_text()
    assert "restarting it" in log
    assert_nothing_lost_after_rescore(native)


def test_influxd_restarted_while_the_generator_runs(native: NativeStack) -> None:
    first = counts(influx_of(native))["transactions"]
    assert wait_until(lambda: counts(influx_of(native))["transactions"] > first + 40,
                      timeout=60), "the generator is publishing"
    log = native.logs / "generator.log"
    failures_before = log.read_text().count("InfluxDB write failed")
    native.call("stopProcess", "influxd")
    assert wait_until(lambda: log.read_text().count("InfluxDB write failed") > failures_before,
                      timeout=30), "the generator noticed the outage"
    during_outage = first + 40
    native.call("startProcess", "influxd")
    assert wait_until(lambda: "InfluxDB is back" in log.read_text(), timeout=60)
    assert wait_until(lambda: counts(influx_of(native))["transactions"] > during_outage + 40,
                      timeout=60), "the generator sent what it buffered and goes on"
    assert "dropped the" not in log.read_text()
    assert_nothing_lost_after_rescore(native)
