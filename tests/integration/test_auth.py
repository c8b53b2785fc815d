"""Nobody reaches the stack without a login: real influxd and kapacitord, attacked as
another local user or a web page in the user's browser would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.polling import wait_until
from tickml import schema
from tickml.influx import InfluxClient, InfluxError
from tickml.kapacitor import KapacitorClient
from tickml.stack.programs import TICKML

from .conftest import StreamStack

pytestmark = pytest.mark.integration
FOREIGN_ORIGIN = "http://attacker.example"


def exec_task(task_id: str, marker: Path) -> dict:
    """A stream task whose alert handler runs a command on every transaction."""
    script = (f"dbrp \"fraud\".\"autogen\"\nstream|from().measurement('{schema.TRANSACTIONS}')"
              f"|alert().crit(lambda: TRUE).exec('/usr/bin/touch', '{marker}')")
    return {"id": task_id, "type": "stream", "script": script, "status": "enabled"}


def login_of(stream: StreamStack, name: str) -> tuple[str, str]:
    login = getattr(stream.pipeline.logins, name)
    return login.user, login.password


def influx_as(stream: StreamStack, name: str) -> InfluxClient:
    user, password = login_of(stream, name)
    return InfluxClient(stream.settings.influx_url, "fraud", username=user, password=password)


def task_ids(stream: StreamStack) -> set[str]:
    return set(stream.pipeline.kapacitor.task_ids())


@pytest.mark.parametrize("headers", [
    {"Content-Type": "application/json"},
    # What a web page can send without a preflight: a "simple" cross-origin POST.
    {"Content-Type": "text/plain", "Origin": FOREIGN_ORIGIN},
], ids=["plain", "cross-origin-text-plain"])
def test_an_unauthenticated_task_with_exec_is_refused_and_runs_nothing(
        stream: StreamStack, tmp_path: Path, headers: dict[str, str]) -> None:
    marker = tmp_path / "intruder-was-here"
    url = f"{stream.settings.kapacitor_url}/kapacitor/v1/tasks"
    response = requests.post(url, data=json.dumps(exec_task("intruder", marker)),
                             headers=headers, timeout=10)
    assert response.status_code == 401, response.text
    assert "intruder" not in task_ids(stream)
    assert stream.write("after-intruder", stream.test_rows.head(5)) == 5
    stream.wait_for_scored("after-intruder", 5)
    assert not marker.exists()


def test_a_wrong_password_or_a_forged_token_is_refused_by_kapacitor(
        stream: StreamStack, tmp_path: Path) -> None:
    user, _ = login_of(stream, "kapacitor_tickml")
    url = f"{stream.settings.kapacitor_url}/kapacitor/v1"
    task = exec_task("intruder2", tmp_path / "marker")
    attempts = [
        requests.post(f"{url}/tasks", json=task, auth=(user, "not-the-password"), timeout=10),
        # InfluxDB's subscription logs in as ~subscriber with a token Kapacitor granted.
        requests.post(f"{url}/tasks", json=task, auth=("~subscriber", "guessed"), timeout=10),
        requests.get(f"{url}/ping", timeout=10),
    ]
    assert [r.status_code for r in attempts] == [401, 401, 401]
    assert "intruder2" not in task_ids(stream)


def test_a_cross_origin_request_without_a_login_gets_nothing_but_a_refusal(
        stream: StreamStack) -> None:
    response = requests.get(f"{stream.settings.kapacitor_url}/kapacitor/v1/tasks",
                            headers={"Origin": FOREIGN_ORIGIN}, timeout=10)
    assert response.status_code == 401
    assert "fraud_scoring" not in response.text


def test_an_unauthenticated_write_and_create_database_are_refused(
        stream: StreamStack) -> None:
    url = stream.settings.influx_url
    before = stream.influx.count(schema.TRANSACTIONS, schema.AMOUNT)
    write = requests.post(f"{url}/write", params={"db": "fraud"}, timeout=10,
                          data=f"{schema.TRANSACTIONS},run=intruder Amount=1.5")
    cross_origin = requests.post(f"{url}/write", params={"db": "fraud"}, timeout=10,
                                 headers={"Origin": FOREIGN_ORIGIN, "Content-Type": "text/plain"},
                                 data=f"{schema.TRANSACTIONS},run=intruder Amount=1.5")
    create = requests.post(f"{url}/query", params={"q": 'CREATE DATABASE "intruder"'},
                           timeout=10)
    query = requests.get(f"{url}/query", params={"q": "SHOW DATABASES"}, timeout=10)
    assert [r.status_code for r in (write, cross_origin, create, query)] == [401] * 4
    time.sleep(1)
    assert stream.influx.count(schema.TRANSACTIONS, schema.AMOUNT, "\"run\" = 'intruder'") == 0
    assert stream.influx.count(schema.TRANSACTIONS, schema.AMOUNT) >= before
    admin = influx_as(stream, "influx_admin")
    assert "intruder" not in {row["name"] for row in admin.records("SHOW DATABASES")}


def test_the_service_logins_cannot_create_databases_or_users(stream: StreamStack) -> None:
    for name in ("influx_tickml", "influx_generator", "influx_reader"):
        client = influx_as(stream, name)
        with pytest.raises(InfluxError, match="requires admin privilege"):
            client.query('CREATE DATABASE "intruder"', method="POST")
        with pytest.raises(InfluxError, match="requires admin privilege"):
            client.query("CREATE USER intruder WITH PASSWORD 'x' WITH ALL PRIVILEGES",
                         method="POST")


def test_the_generator_only_writes_and_the_reader_only_reads(stream: StreamStack) -> None:
    generator, reader = influx_as(stream, "influx_generator"), influx_as(stream, "influx_reader")
    generator.write_lines([f"{schema.TRANSACTIONS},run=generator-login Amount=2.5 1"])
    with pytest.raises(InfluxError, match="not authorized"):
        generator.records(f'SELECT count("Amount") FROM "{schema.TRANSACTIONS}"')
    with pytest.raises(InfluxError, match=r"refused \(403\)"):
        reader.write_lines([f"{schema.TRANSACTIONS},run=reader-login Amount=2.5 1"])
    # Grafana's and Chronograf's login reads every database the dashboards query.
    assert reader.count(schema.TRANSACTIONS, schema.AMOUNT) > 0
    for database in ("_kapacitor", "chronograf"):
        reader.query(f'SHOW MEASUREMENTS ON "{database}"')


def test_influxdb_delivers_to_kapacitor_through_its_subscription_token(
        stream: StreamStack) -> None:
    admin = influx_as(stream, "influx_admin")
    destinations = [d for row in admin.subscriptions() for d in row["destinations"]]
    assert destinations and all("~subscriber:" in d for d in destinations)
    sent = stream.write("through-token", stream.test_rows.head(20))
    assert len(stream.wait_for_scored("through-token", sent)) == sent


def test_kapacitor_refuses_a_task_login_its_config_api(stream: StreamStack) -> None:
    user, password = login_of(stream, "kapacitor_tickml")
    client = KapacitorClient(stream.settings.kapacitor_url, username=user, password=password)
    assert client.ping()
    response = client.session.get(f"{stream.settings.kapacitor_url}/kapacitor/v1/config",
                                  timeout=10)
    assert response.status_code == 403
    assert wait_until(lambda: client.task("fraud_scoring") is not None, 5)


def run_by_hand(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`tickml ARGS` as a user types it in the project folder: no TICKML_* variable set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKML_")
           and not k.startswith(("INFLUXDB_", "KAPACITOR_"))}
    env["TICKML_ROOT"] = str(project)  # where the checkout would be
    return subprocess.run([TICKML, *args], cwd=project, env=env, capture_output=True,
                          text=True, timeout=120)


def project_dotenv(stream: StreamStack, project: Path, influx_password: str) -> None:
    """The `.env` ./up.sh would have written for this stack."""
    influx, kapacitor = login_of(stream, "influx_tickml"), login_of(stream, "kapacitor_tickml")
    ports = {name: urlsplit(url).port for name, url in (
        ("INFLUXDB_PORT", stream.settings.influx_url),
        ("KAPACITOR_PORT", stream.settings.kapacitor_url),
        ("API_PORT", stream.settings.api_url))}
    lines = [f"INFLUXDB_TICKML_USER={influx[0]}", f"INFLUXDB_TICKML_PASSWORD={influx_password}",
             f"KAPACITOR_TICKML_USER={kapacitor[0]}", f"KAPACITOR_TICKML_PASSWORD={kapacitor[1]}",
             *(f"{name}={port}" for name, port in ports.items())]
    (project / ".env").write_text("\n".join(lines) + "\n")


def test_tickml_by_hand_logs_in_from_the_projects_dotenv(stream: StreamStack,
                                                         tmp_path: Path) -> None:
    project_dotenv(stream, tmp_path, login_of(stream, "influx_tickml")[1])
    result = run_by_hand(tmp_path, "rescore", "--since", "5m")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\d+ transactions: \d+ already scored", result.stdout), result.stdout
    assert "using the model's threshold" not in result.stderr, "Kapacitor's login worked too"


def test_a_refused_login_by_hand_names_the_user_and_what_to_set_never_the_password(
        stream: StreamStack, tmp_path: Path) -> None:
    project_dotenv(stream, tmp_path, "not-the-password")
    result = run_by_hand(tmp_path, "rescore", "--since", "5m")
    assert result.returncode != 0
    user = login_of(stream, "influx_tickml")[0]
    assert f"refused tickml's request as {user!r}" in result.stderr, result.stderr
    assert "INFLUXDB_TICKML_USER" in result.stderr and "TICKML_INFLUX_USER" in result.stderr
    assert "not-the-password" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("handler", ["exec('/usr/bin/touch', '{marker}')",
                                     "tcp('127.0.0.1:9')"], ids=["exec", "tcp"])
def test_a_task_with_a_disabled_handler_is_refused_even_to_the_tickml_login(
        stream: StreamStack, tmp_path: Path, handler: str) -> None:
    marker = tmp_path / "ran-on-the-kapacitor-host"
    name = handler.split("(", 1)[0]
    script = (f"dbrp \"fraud\".\"autogen\"\nstream|from().measurement('{schema.TRANSACTIONS}')"
              f"|alert().crit(lambda: TRUE).{handler.format(marker=marker)}")
    client = stream.pipeline.kapacitor  # tickml's own login: it may define tasks
    task_id = f"with-{name}"
    response = client.session.post(f"{client.url}/kapacitor/v1/tasks", timeout=10, json={
        "id": task_id, "type": "stream", "script": script, "status": "enabled"})
    try:
        state = client.task(task_id)
        refusal = response.text if response.status_code >= 400 else state.error
        assert f"{name} alert handler is disabled" in refusal, (response.status_code, refusal)
        assert state is None or not state.executing
        assert stream.write(f"after-{name}", stream.test_rows.head(5)) == 5
        stream.wait_for_scored(f"after-{name}", 5)
        assert not marker.exists(), "the handler ran"
    finally:
        client.session.delete(f"{client.url}/kapacitor/v1/tasks/{task_id}", timeout=10)
