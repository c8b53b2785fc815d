"""A subscription whose token Kapacitor no longer accepts: found, said, and made anew.

The real stream of `conftest.py`; the refused token is made as `tests/revoked.py` says.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time

import pytest

from tests.polling import wait_until
from tests.revoked import revoke_subscription_token
from tickml.influx import InfluxClient
from tickml.live import StreamWatch
from tickml.stack.programs import TICKML, tickml_env
from tickml.subscriptions import Answer, check_database

from .conftest import StreamStack


def admin_of(stream: StreamStack) -> InfluxClient:
    login = stream.pipeline.logins.influx_admin
    return InfluxClient(stream.settings.influx_url, "fraud", username=login.user,
                        password=login.password)


def answers(stream: StreamStack) -> list[Answer]:
    return [check.answer for check in check_database(admin_of(stream), "fraud")]


@pytest.fixture
def refused(stream: StreamStack):
    """The stream's subscription carrying a token Kapacitor never granted, for one test."""
    revoke_subscription_token(admin_of(stream), "fraud")
    assert answers(stream) == [Answer.REFUSED]
    yield
    stream.kapacitor.link_subscriptions()  # a test that did not mend it leaves it refused
    admin = admin_of(stream)
    if answers(stream) != [Answer.ACCEPTED]:
        for row in admin.subscriptions():
            admin.query(f'DROP SUBSCRIPTION "{row["name"]}" ON "fraud"."autogen"', method="POST")
        stream.kapacitor.link_subscriptions()
    assert answers(stream) == [Answer.ACCEPTED]


def test_a_refused_subscription_receives_nothing_until_tasks_define_makes_it_anew(
        stream: StreamStack, refused: None) -> None:
    stream.write("refused-token", stream.test_rows.head(10))
    time.sleep(3)
    assert stream.scored("refused-token").empty, "Kapacitor refuses every forwarded write"
    login = stream.pipeline.logins.influx_admin
    env = {**os.environ, **tickml_env(stream.settings), "TICKML_INFLUX_USER": login.user,
           "TICKML_INFLUX_PASSWORD": login.password}
    result = subprocess.run([TICKML, "tasks", "define"], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Kapacitor refused its writes (a revoked token)" in result.stderr, result.stderr
    assert answers(stream) == [Answer.ACCEPTED]
    after = stream.write("made-anew", stream.test_rows.head(10))
    assert len(stream.wait_for_scored("made-anew", after)) == after


def test_the_live_check_without_the_admin_login_names_the_cause_and_the_fix(
        stream: StreamStack, refused: None, caplog: pytest.LogCaptureFixture) -> None:
    watch = StreamWatch(stream.kapacitor, stream.influx, stall_after=2.0)
    with caplog.at_level(logging.INFO, logger="tickml.live"):
        def stalled() -> bool:
            stream.write("no-intake", stream.test_rows.head(5))
            watch.check()
            return watch.stalled

        assert wait_until(stalled, timeout=30, interval=1)
    [line] = [r.getMessage() for r in caplog.records if "stalled" in r.getMessage()]
    assert "task fraud_scoring took in none" in line
    assert "most likely its subscription is refused" in line and "./up.sh again" in line


def test_the_live_check_with_the_admin_login_mends_it_and_says_so(
        stream: StreamStack, refused: None, caplog: pytest.LogCaptureFixture) -> None:
    from tickml.live import subscription_doctor

    watch = StreamWatch(stream.kapacitor, stream.influx,
                        subscription_doctor(admin_of(stream), stream.kapacitor,
                                            stream.settings),
                        stall_after=2.0)
    with caplog.at_level(logging.INFO, logger="tickml.live"):
        def resumed() -> bool:
            stream.write("mended", stream.test_rows.head(5))
            watch.check()
            return any("live scoring resumed" in r.getMessage() for r in caplog.records)

        assert wait_until(resumed, timeout=60, interval=1)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("live scoring stalled" in m for m in messages) == 1
    assert any("dropped it and Kapacitor made a new one" in m for m in messages), messages
    assert answers(stream) == [Answer.ACCEPTED]
