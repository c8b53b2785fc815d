"""One bad point costs one point, and the agent keeps its limits: against the real stream.

influxd, kapacitord, `tickml udf` and `tickml serve` run as in `test_stream.py`; rescore
writes into a database of its own on the same influxd, which no task reads.
"""

from __future__ import annotations

import dataclasses
import stat
import sys
import time
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import requests

from tests.polling import wait_until
from tickml import schema
from tickml.generator import transaction_lines
from tickml.influx import InfluxClient, WriteRefused, to_line
from tickml.kapacitor import KapacitorError
from tickml.rescore import rescore
from tickml.stack.programs import TICKML
from tickml.udf.client import MAX_REFUSED_ROWS, PredictClient, Score, Unscored, score_rows
from tickml.udf.options import MAX_PENDING

from .conftest import StreamStack

BIGGEST = sys.float_info.max


def api_probabilities(stack: StreamStack, rows: pd.DataFrame) -> np.ndarray:
    instances = rows[list(schema.FEATURES)].to_dict(orient="records")
    response = requests.post(f"{stack.api.url}/predict", json={"instances": instances},
                             timeout=30)
    response.raise_for_status()
    return np.array([p["probability"] for p in response.json()["predictions"]])


def with_amount(line: str, amount: str) -> str:
    """A transaction line with its Amount replaced by the literal `amount`."""
    head, rest = line.split(",Amount=", 1)
    return f"{head},Amount={amount},{rest.split(',', 1)[1]}"


@pytest.fixture
def api_client(stream: StreamStack) -> Iterator[PredictClient]:
    client = PredictClient(stream.api.url, timeout=10, retry_for=5)
    yield client
    client.close()


# -- the agent: one bad value among many ---------------------------------------------------
def test_one_bad_value_in_a_batch_of_two_hundred_costs_only_that_point(stream) -> None:
    rows = stream.test_rows.sample(200, random_state=3)
    lines = transaction_lines(rows, time.time_ns(), tags={"run": "one-bad"}, spacing_ns=1000)
    lines[117] = with_amount(lines[117], repr(BIGGEST))  # the API refuses float64's maximum
    stream.influx.write_lines(lines)
    scored = stream.wait_for_scored("one-bad", 200).sort_values("time").reset_index(drop=True)
    assert len(scored) == 200, "every transaction comes out"
    marked = scored[~scored[schema.SCORED].astype(bool)]
    assert marked.index.tolist() == [117]
    assert marked[schema.REASON].tolist() == ["out-of-range feature Amount"]
    others = scored.drop(index=117)
    expected = np.delete(api_probabilities(stream, rows), 117)
    np.testing.assert_allclose(others[schema.PROBABILITY].to_numpy(), expected, rtol=1e-12)
    assert stream.kapacitor.task("fraud_scoring").healthy


def with_field(line: str, name: str, literal: str | None) -> str:
    """A transaction line with field `name` given the line-protocol `literal`, or removed."""
    head, rest = line.split(f",{name}=", 1)
    tail = rest.split(",", 1)[1]
    return f"{head},{tail}" if literal is None else f"{head},{name}={literal},{tail}"


def test_a_string_or_missing_feature_reaches_scored_marked_and_the_rest_is_scored(
        stream) -> None:
    rows = stream.test_rows.sample(40, random_state=6)
    lines = transaction_lines(rows, time.time_ns(), tags={"run": "malformed"}, spacing_ns=1000)
    string_v3 = lines[9] = with_field(lines[9], "V3", '"abc"')
    lines[20] = with_field(lines[20], "V14", None)
    # The shard already holds V3 as a float: InfluxDB stores every point but the string
    # one, yet its subscription hands Kapacitor the whole write, as sent.
    with pytest.raises(WriteRefused, match="field type conflict"):
        stream.influx.write_lines(lines)
    scored = stream.wait_for_scored("malformed", 40).set_index(schema.TRANSACTION_ID)
    assert len(scored) == 40, "every transaction comes out, the malformed ones too"
    v3_id = string_v3.split(f'{schema.TRANSACTION_ID}="', 1)[1].split('"', 1)[0]
    v14_id = lines[20].split(f'{schema.TRANSACTION_ID}="', 1)[1].split('"', 1)[0]
    marked = scored[~scored[schema.SCORED].astype(bool)]
    assert marked[schema.REASON].to_dict() == {v3_id: "non-numeric feature V3",
                                               v14_id: "missing feature V14"}
    others = scored.drop(index=[v3_id, v14_id])
    assert others[schema.PROBABILITY].between(0, 1).all() and len(others) == 38
    assert set(scored[schema.LABEL].dropna()) <= {0, 1}
    assert not set(schema.FEATURES) & set(scored.columns), "scored points carry no features"
    assert stream.kapacitor.task("fraud_scoring").healthy


# -- the API refusing rows it names ---------------------------------------------------------
def test_rows_the_api_refuses_by_index_are_marked_and_the_rest_is_scored(
        stream, api_client) -> None:
    rows = stream.test_rows.sample(50, random_state=4)
    features = rows[list(schema.FEATURES)].to_numpy().tolist()
    bad = [0, 21, 49]
    for i in bad:  # past the agent's own check, as an API with stricter rules would see them
        features[i][-1] = BIGGEST
    outcomes = score_rows(api_client, features)
    assert [i for i, o in enumerate(outcomes) if isinstance(o, Unscored)] == bad
    assert {outcomes[i] for i in bad} == {Unscored("api refused feature Amount (invalid_value)")}
    good = [i for i in range(50) if i not in bad]
    expected = api_probabilities(stream, rows.iloc[good])
    np.testing.assert_allclose([outcomes[i].probability for i in good], expected, rtol=1e-12)


def test_refusals_one_by_one_are_bounded_and_the_rest_is_left_for_rescore(
        stream, api_client) -> None:
    features = stream.test_rows[list(schema.FEATURES)].head(30).to_numpy().tolist()
    for row in features[:MAX_REFUSED_ROWS + 2]:
        row[0] = -BIGGEST
    outcomes = score_rows(api_client, features)
    refused = [o for o in outcomes if isinstance(o, Unscored) and not o.api_error]
    given_up = [o for o in outcomes if isinstance(o, Unscored) and o.api_error]
    assert len(refused) == MAX_REFUSED_ROWS
    assert len(given_up) == 30 - MAX_REFUSED_ROWS, "left unscored, so rescore tries them again"
    assert all(o.reason.startswith("api rejected the batch: instances[0].features[0] (Time)")
               for o in given_up)
    assert not any(isinstance(o, Score) for o in outcomes)


# -- rescore --------------------------------------------------------------------------------
@pytest.fixture
def rescore_db(stream: StreamStack, request: pytest.FixtureRequest) -> Iterator[InfluxClient]:
    """A database of its own on the stream's influxd: no task scores what is written there."""
    admin = stream.logins.influx_admin  # creating a database takes InfluxDB's admin
    client = InfluxClient(stream.settings.influx_url, f"rescore_{request.node.name[:40]}",
                          username=admin.user, password=admin.password)
    client.create_database()
    yield client
    client.query(f'DROP DATABASE "{client.database}"', method="POST")
    client.close()


SPARSE_TAGS = [{"run": "sparse"}, {"run": "sparse", "txid": "a b,c=d"}, {},
               {"txid": "back\\slash", "card": "x=1"}, {"run": "", "card": "empty run"}]


def test_rescore_writes_every_transaction_whatever_its_tags(stream, api_client,
                                                            rescore_db) -> None:
    rows = stream.test_rows.head(len(SPARSE_TAGS) * 4)
    start = time.time_ns()
    lines = []
    for i, tags in enumerate(SPARSE_TAGS):
        lines += transaction_lines(rows.iloc[i * 4:(i + 1) * 4], start + i * 10_000,
                                   tags=tags, spacing_ns=1000)
    lines[5] = with_amount(lines[5], repr(BIGGEST))
    rescore_db.write_lines(lines)

    report = rescore(rescore_db, api_client, start, time.time_ns() + 1)
    assert (report.transactions, report.failed, report.unwritable) == (len(lines), 0, 0)
    assert (report.rescored, report.unscorable) == (len(lines) - 1, 1)
    scored = pd.DataFrame(rescore_db.records(
        f'SELECT * FROM "{schema.SCORED_POINTS}" GROUP BY *'))
    assert len(scored) == len(lines), "every transaction has its scored point"
    series = rescore_db.query(f'SELECT count("{schema.SCORED}") FROM "{schema.SCORED_POINTS}" '
                              'GROUP BY *')
    got = sorted((tuple(sorted((k, v) for k, v in s.tags.items() if v)), s.values[0][1])
                 for s in series)
    expected = sorted((tuple(sorted((k, v) for k, v in tags.items() if v)), 4)
                      for tags in SPARSE_TAGS)
    assert got == expected, "each point sits in its transaction's own series"
    marked = rescore_db.records(f'SELECT * FROM "{schema.SCORED_POINTS}" '
                                f'WHERE "{schema.SCORED}" = false')
    assert [m[schema.REASON] for m in marked] == ["out-of-range feature Amount"]

    again = rescore(rescore_db, api_client, start, time.time_ns() + 1)
    assert (again.already_scored, again.rescored) == (len(lines) - 1, 0), \
        "a second pass finds the scored points, sparse tags and all"


def test_a_point_influxdb_refuses_costs_that_point_only(stream, api_client, rescore_db) -> None:
    start = time.time_ns()
    lines = transaction_lines(stream.test_rows.head(6), start, tags={"run": "conflict"})
    lines[2] = lines[2].replace(f",{schema.LABEL}=0i", "").replace(f",{schema.LABEL}=1i", "")
    rescore_db.write_lines(lines)
    # `Class` already stored as a float in `scored`: every line carrying it conflicts
    rescore_db.write_lines([to_line(schema.SCORED_POINTS, {schema.LABEL: 0.0}, start - 1)])
    report = rescore(rescore_db, api_client, start, time.time_ns() + 1)
    assert (report.rescored, report.unwritable, report.failed) == (1, 5, 0)
    stored = rescore_db.records(f'SELECT * FROM "{schema.SCORED_POINTS}" WHERE time >= {start}')
    assert [row["time"] for row in stored] == [start + 2]


# -- the watchdog ---------------------------------------------------------------------------
def test_the_watchdog_outlives_failing_sweeps_and_still_restarts_the_task(stream) -> None:
    from tickml.stack.process import Service
    from tickml.stack.programs import free_port, tickml_env

    # Every sweep fails: the InfluxDB it is given does not answer.
    settings = dataclasses.replace(stream.settings, influx_url=f"http://127.0.0.1:{free_port()}",
                                   watchdog_sweep_interval=0.3, watchdog_sweep_grace=0.0)
    watchdog = Service("watchdog-sweeps", [TICKML, "watchdog", "--interval", "0.2"],
                       stream.directory, ready=lambda: True, env=tickml_env(settings)).start()
    try:
        assert wait_until(lambda: watchdog.log_tail(200).count("gap sweep failed") >= 3,
                          timeout=60), watchdog.log_tail()
        stream.agent.kill()  # the scoring task stops; only a living watchdog restarts it
        stream.write("watchdog-sweeps", stream.test_rows.head(3))  # Kapacitor notices
        stream.restart_agent()
        assert wait_until(lambda: "restarting it" in watchdog.log_tail(400), timeout=60), \
            watchdog.log_tail()
        assert stream.wait_task_executing("fraud_scoring", timeout=60), watchdog.log_tail()
        after = stream.write("watchdog-after", stream.test_rows.head(5))
        assert len(stream.wait_for_scored("watchdog-after", after)) == after
        log = watchdog.log_tail(400)
        assert "Traceback" not in log
        failures = [line for line in log.splitlines() if "gap sweep failed" in line]
        assert all("will retry: InfluxError: InfluxDB at http://127.0.0.1:" in line
                   for line in failures), failures[:2]
        assert watchdog.process.poll() is None, "the watchdog is still running"
    finally:
        watchdog.stop()


# -- the agent's limits, as Kapacitor meets them ---------------------------------------------
def test_the_agents_socket_is_open_to_its_user_and_group_only(stream) -> None:
    mode = stream.settings.udf_socket.stat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    assert stream.kapacitor.task("fraud_scoring").healthy, "kapacitord, the same user, connects"


def task_error(stream: StreamStack, script: str) -> str:
    """The error Kapacitor reports for a task running `script`: at definition or at start."""
    if stream.kapacitor.task("limits_probe") is None:
        try:
            stream.kapacitor.create("limits_probe", script, {})
        except KapacitorError as exc:
            return str(exc)
    wait_until(lambda: stream.kapacitor.task("limits_probe").error, timeout=30)
    state = stream.kapacitor.task("limits_probe")
    return f"{state.error} (executing={state.executing})"


@pytest.mark.parametrize(("option", "message"), [
    (".maxPending(4611686018427387904)",
     f"maxPending must be at most {MAX_PENDING}, got 4611686018427387904"),
    (".retryFor(1h)", "retryFor must be between 0s and 300s, got 3600s"),
    (".url('http://127.0.0.1:1')", "url must be the agent's model API"),
])
def test_kapacitor_cannot_start_a_task_with_options_beyond_the_agents_limits(
        stream, option: str, message: str) -> None:
    script = ('dbrp "fraud"."autogen"\n\nstream\n    |from()\n'
              "        .measurement('limits_probe')\n"
              f"    @fraud()\n        {option}\n    |log()\n")
    try:
        assert task_error(stream, script) and message in task_error(stream, script)
    finally:
        stream.kapacitor._call("DELETE", "/tasks/limits_probe")
    assert stream.kapacitor.task("fraud_scoring").healthy
    after = stream.write("after-limits", stream.test_rows.head(5))
    assert len(stream.wait_for_scored("after-limits", after)) >= after
