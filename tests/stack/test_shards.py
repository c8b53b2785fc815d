"""The native stack on two Kapacitor shards (`tickml up --shards 2`): one InfluxDB
subscription in ANY mode spreads the stream, each transaction is scored exactly once,
and a shard that dies loses nothing: its share goes to the sweep, then it is live again."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from tests.liveness import assert_live_again, settled
from tests.polling import wait_until
from tickml.config import Settings
from tickml.influx import InfluxClient
from tickml.kapacitor import SCORING_TASK, shard_clients
from tickml.stack.native import NativeStack
from tickml.stack.programs import free_port
from tickml.subscriptions import SHARDED_SUBSCRIPTION, list_subscriptions

from .conftest import influx_of, native_environment

pytestmark = pytest.mark.timeout(600)
RATE = 40


@pytest.fixture(scope="module")
def sharded(small_project: Settings, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[NativeStack]:
    directory = tmp_path_factory.mktemp("shards")
    environment = native_environment(directory, small_project)
    second = f"http://127.0.0.1:{free_port()}"
    environment.update(TICKML_SHARDS="2", TICKML_KAPACITOR_SHARD_URLS=(
        f"{environment['TICKML_KAPACITOR_URL']},{second}"))
    with pytest.MonkeyPatch.context() as patch:
        for key, value in environment.items():
            patch.setenv(key, value)
        stack = NativeStack(Settings.from_env(), generator_rate=RATE, fraud_share=0.05)
        try:
            stack.up(report=lambda _: None)
            yield stack
        finally:
            stack.down()


def admin_of(stack: NativeStack) -> InfluxClient:
    admin = stack.stack_logins().influx_admin
    return InfluxClient(stack.settings.influx_url, "fraud", username=admin.user,
                        password=admin.password)


def intake(stack: NativeStack) -> list[int]:
    """What each shard's scoring task took in since it started."""
    return [client.task(SCORING_TASK).received or 0
            for client in shard_clients(stack.service_settings)]


def test_one_any_subscription_names_both_shards_with_the_writer_login(
        sharded: NativeStack) -> None:
    subscriptions = [s for s in list_subscriptions(admin_of(sharded)) if s.database == "fraud"]
    assert [s.mode for s in subscriptions] == ["ANY"]
    assert subscriptions[0].name.startswith(SHARDED_SUBSCRIPTION)
    writer = sharded.stack_logins().kapacitor_writer.user
    destinations = subscriptions[0].destinations
    assert all(f"//{writer}:" in d for d in destinations)
    assert sorted(set(d.rsplit("@", 1)[1] for d in destinations)) == sorted(
        url.split("//", 1)[1] for url in sharded.settings.kapacitor_urls)


def test_a_minute_of_the_generator_is_scored_exactly_once_and_spread_over_both_shards(
        sharded: NativeStack) -> None:
    start_ns, before = time.time_ns(), intake(sharded)
    time.sleep(60)
    end_ns = time.time_ns() - 5_000_000_000
    taken = [after - was for after, was in zip(intake(sharded), before, strict=True)]
    counts = settled(influx_of(sharded), start_ns, end_ns)
    assert counts["transactions"] >= RATE * 45
    assert (counts["missing"], counts["twice"], counts["unscored"]) == (0, 0, 0), counts
    assert all(share >= sum(taken) / 3 for share in taken), taken
    print(f"two shards took in {taken} of {counts['transactions']} transactions")


@pytest.mark.parametrize("program", ["kapacitord-2", "udf-2"])
def test_a_killed_shard_loses_nothing_and_scores_live_again(
        sharded: NativeStack, program: str) -> None:
    pid = sharded.call("getProcessInfo", program)["pid"]
    start_ns = time.time_ns()
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: sharded.call("getProcessInfo", program)["pid"] not in (0, pid),
                      timeout=30), f"supervisord restarts {program}"
    assert_live_again(influx_of(sharded), start_ns, f"test_a_killed_shard[{program}]",
                      f"{program} of two shards killed")
    end_ns = time.time_ns() - 5_000_000_000
    counts = settled(influx_of(sharded), start_ns, end_ns)
    assert (counts["missing"], counts["twice"], counts["unscored"]) == (0, 0, 0), counts
