"""The native stack as `tickml up` starts it, and its outages: live again, nothing lost.

Each outage scenario disturbs one service while the generator publishes, checks that
the stream itself scores again soon after (not the watchdog's sweep), then stops the
generator, lets the pipeline drain, runs `tickml rescore`, and checks that every
transaction has exactly one scored point.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.liveness import (
    alerted_transactions,
    assert_flagged_are_alerted_once,
    assert_live_again,
)
from tests.polling import wait_until
from tests.revoked import revoke_subscription_token
from tickml.influx import InfluxClient
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


def assert_live_again_after(stack: NativeStack, fault_ns: int, fault: str,
                            test: str) -> None:
    """The stream scores live again after the fault, and raises the alerts for what it flags."""
    recovery = assert_live_again(influx_of(stack), fault_ns, test, fault)
    alert_log = Path(stack.settings.alert_log)
    assert_flagged_are_alerted_once(influx_of(stack), lambda: alerted_transactions(alert_log),
                                    recovery.first_live_ns)


def test_the_alert_log_setting_reaches_the_alert_task(native: NativeStack) -> None:
    alert_log = Path(native.settings.alert_log)
    state = kapacitor_for(native.service_settings).task("fraud_alerts")
    assert state is not None and state.vars["alert_log"]["value"] == str(alert_log)
    assert wait_until(lambda: alert_log.is_file() and alert_log.stat().st_size > 0,
                      timeout=90), "frauds are logged where TICKML_ALERT_LOG says"


def test_api_stopped_and_started_mid_stream(native: NativeStack) -> None:
    influx = influx_of(native)
    assert wait_until(lambda: scored_count(native) > 20, timeout=60)
    fault_ns = time.time_ns()
    native.call("stopProcess", "api")
    assert wait_until(lambda: counts(influx)["unscored"] > 0, timeout=60), \
        "points during the outage come out marked unscored"
    native.call("startProcess", "api")
    assert_live_again_after(native, fault_ns, "the API stopped and started",
                            "test_api_stopped_and_started_mid_stream")
    assert_nothing_lost_after_rescore(native)


def test_agent_killed_is_restarted_and_the_watchdog_revives_the_task(native: NativeStack) -> None:
    pid = native.call("getProcessInfo", "udf")["pid"]
    fault_ns = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: native.call("getProcessInfo", "udf")["pid"] != pid,
                      timeout=30), "supervisord restarts the agent"
    assert_live_again_after(native, fault_ns, "the agent killed (SIGKILL)",
                            "test_agent_killed_is_restarted_and_the_watchdog_revives_the_task")
    log = (native.logs / "watchdog.log").read_text()
    assert "restarting it" in log
    assert_nothing_lost_after_rescore(native)


def test_kapacitord_killed_is_restarted_and_scores_live(native: NativeStack) -> None:
    pid = native.call("getProcessInfo", "kapacitord")["pid"]
    assert wait_until(lambda: scored_count(native) > 20, timeout=60)
    fault_ns = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: native.call("getProcessInfo", "kapacitord")["pid"] not in (0, pid),
                      timeout=30), "supervisord restarts kapacitord"
    assert_live_again_after(native, fault_ns, "kapacitord killed (SIGKILL), then restarted",
                            "test_kapacitord_killed_is_restarted_and_scores_live")
    assert_nothing_lost_after_rescore(native)


def test_a_refused_subscription_is_noticed_and_mended_by_the_watchdog(
        native: NativeStack) -> None:
    assert wait_until(lambda: scored_count(native) > 20, timeout=60)
    admin = native.stack_logins().influx_admin
    watchdog_log = native.logs / "watchdog.log"
    fault_ns = time.time_ns()
    revoke_subscription_token(InfluxClient(native.settings.influx_url, "fraud",
                                           username=admin.user, password=admin.password),
                              "fraud")
    assert wait_until(lambda: "live scoring resumed" in watchdog_log.read_text(), timeout=90), \
        watchdog_log.read_text()[-3000:]
    stalled = [line for line in watchdog_log.read_text().splitlines()
               if "live scoring stalled" in line]
    assert len(stalled) == 1, stalled
    assert "was refused by Kapacitor" in stalled[0] and "made a new one" in stalled[0], stalled
    assert_live_again_after(native, fault_ns, "InfluxDB's subscription token refused",
                            "test_a_refused_subscription_is_noticed_and_mended_by_the_watchdog")
    assert_nothing_lost_after_rescore(native)


def test_up_again_while_supervisord_restarts_a_killed_agent_waits_for_it(
        native: NativeStack) -> None:
    """./up.sh again in the moment supervisord restarts a program (the soak found it: the
    start was refused with ALREADY_STARTED and tickml up failed)."""
    pid = native.call("getProcessInfo", "udf")["pid"]
    fault_ns = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: native.call("getProcessInfo", "udf")["statename"]
                      in ("STARTING", "BACKOFF"), timeout=10, interval=0.02)
    native.up(report=lambda _: None)
    assert native.call("getProcessInfo", "udf")["statename"] == "RUNNING"
    assert_live_again_after(native, fault_ns, "tickml up again while the agent restarts",
                            "test_up_again_while_supervisord_restarts_a_killed_agent")


def test_the_stack_stopped_and_started_again_scores_live(native: NativeStack) -> None:
    """`./down.sh` then `./up.sh --local`: kapacitord's users are made again before it starts."""
    assert wait_until(lambda: scored_count(native) > 20, timeout=60)
    native.down()
    fault_ns = time.time_ns()
    native.up(report=lambda _: None)
    assert_live_again_after(native, fault_ns, "the stack stopped and started again",
                            "test_the_stack_stopped_and_started_again_scores_live")
    assert_nothing_lost_after_rescore(native)


def test_influxd_restarted_while_the_generator_runs(native: NativeStack) -> None:
    first = counts(influx_of(native))["transactions"]
    assert wait_until(lambda: counts(influx_of(native))["transactions"] > first + 40,
                      timeout=60), "the generator is publishing"
    log = native.logs / "generator.log"
    failures_before = log.read_text().count("InfluxDB write failed")
    fault_ns = time.time_ns()
    native.call("stopProcess", "influxd")
    assert wait_until(lambda: log.read_text().count("InfluxDB write failed") > failures_before,
                      timeout=30), "the generator noticed the outage"
    during_outage = first + 40
    native.call("startProcess", "influxd")
    assert wait_until(lambda: "InfluxDB is back" in log.read_text(), timeout=60)
    assert wait_until(lambda: counts(influx_of(native))["transactions"] > during_outage + 40,
                      timeout=60), "the generator sent what it buffered and goes on"
    assert "dropped the" not in log.read_text()
    assert_live_again_after(native, fault_ns, "influxd stopped and started",
                            "test_influxd_restarted_while_the_generator_runs")
    assert_nothing_lost_after_rescore(native)
