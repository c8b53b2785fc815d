"""The users' main path, for real: ./up.sh on Docker, then the pipeline, outages and ./down.sh.

Runs docker-compose.yml as shipped, with stand-ins for the upstream images no
registry here serves (compose/standins/) and without Grafana and Chronograf, which
cannot be had here at all. The tests run in file order, on one stack.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time

import pytest
import requests

from tests.liveness import (
    alerted_in_influx,
    assert_flagged_are_alerted_once,
    assert_live_again,
    settled,
)
from tests.polling import wait_until
from tickml import schema
from tickml.config import Settings
from tickml.data.prepare import load_split
from tickml.influx import InfluxError
from tickml.loader import load_production
from tickml.modeling.train import train_default_model
from tickml.registry import ModelRef, ModelRegistry
from tickml.rescore import find_unscored

from .engine import dangling_tickml_app_images
from .stack import ONE_SHOT, ComposeStack

pytestmark = [pytest.mark.docker, pytest.mark.integration, pytest.mark.timeout(1800)]
LONG_RUNNING = {"influxdb", "api", "udf", "kapacitor", "watchdog", "generator", "jupyter"}
NOTEBOOKS = ["01-problem-and-exploration", "02-dataset-preparation",
             "03-hyperparameter-optimization", "04-ensembles", "05-rest-api",
             "06-real-time-deployment"]
#: Seconds a transaction may take from InfluxDB through Kapacitor, the agent and back.
IN_FLIGHT = 10


def exec_task(task_id: str, marker: str) -> dict:
    """A stream task whose alert handler runs a command on every transaction."""
    script = (f'dbrp "fraud"."autogen"\nstream|from().measurement(\'{schema.TRANSACTIONS}\')'
              f'|alert().crit(lambda: TRUE).exec(\'/usr/bin/touch\', \'{marker}\')')
    return {"id": task_id, "type": "stream", "script": script, "status": "enabled"}


def unscored_transactions(stack: ComposeStack, older_than: float = IN_FLIGHT) -> tuple[int, int]:
    """(transactions older than `older_than` s without a scored=true point, all of them)."""
    end = time.time_ns() - int(older_than * 1e9)
    missing, done = find_unscored(stack.influx(), 0, end)
    return len(missing), len(missing) + done


def wait_until_nothing_is_unscored(stack: ComposeStack, timeout: float = 120) -> tuple[int, int]:
    wait_until(lambda: unscored_transactions(stack)[0] == 0, timeout=timeout, interval=2)
    return unscored_transactions(stack)


def task_state(stack: ComposeStack, task_id: str) -> dict:
    return requests.get(f"{stack.url('KAPACITOR_PORT')}/kapacitor/v1/tasks/{task_id}",
                        auth=stack.login("KAPACITOR_TICKML"), timeout=10).json()


def scoring_task_executes(stack: ComposeStack) -> bool:
    state = task_state(stack, "fraud_scoring")
    return state.get("executing") is True and not state.get("error")


def test_up_brings_every_service_up_healthy_and_runs_the_one_shots(stack: ComposeStack) -> None:
    services = stack.services()
    assert set(services) == LONG_RUNNING | ONE_SHOT, "no Grafana or Chronograf without dashboards"
    for name in ONE_SHOT:
        assert (services[name]["State"], services[name]["ExitCode"]) == ("exited", 0), name
    for name in LONG_RUNNING:
        assert services[name]["State"] == "running", name
        assert services[name]["Health"] in ("healthy", ""), f"{name}: {services[name]['Health']}"


def test_up_builds_the_tickml_image_once_and_leaves_no_untagged_copy(
        stack: ComposeStack) -> None:
    # The legacy builder says "Successfully tagged", BuildKit "naming to": once per build.
    tagged = re.findall(r"(?:Successfully tagged|naming to docker.io/library/)tickml:0\.1\.0",
                        stack.up_output)
    assert len(tagged) == 1, tagged
    assert dangling_tickml_app_images() <= stack.dangling_before, \
        "./up.sh left untagged copies of the tickml image"


def test_the_tasks_execute_in_kapacitor(stack: ComposeStack) -> None:
    for task_id in ("fraud_scoring", "fraud_alerts", "kapacitor_stats", "live_share"):
        state = task_state(stack, task_id)
        assert (state["status"], state["executing"], state["error"]) == ("enabled", True, "")


def test_an_unauthenticated_task_with_exec_is_refused(stack: ComposeStack) -> None:
    kapacitor = f"{stack.url('KAPACITOR_PORT')}/kapacitor/v1"
    task = exec_task("intruder", "/tmp/intruder-was-here")
    for headers in ({}, {"Origin": "http://attacker.example", "Content-Type": "text/plain"}):
        refused = requests.post(f"{kapacitor}/tasks", data=json.dumps(task), headers=headers,
                                timeout=10)
        assert refused.status_code == 401, refused.text
    wrong = requests.post(f"{kapacitor}/tasks", json=task, timeout=10,
                          auth=(stack.login("KAPACITOR_TICKML")[0], "not-the-password"))
    assert wrong.status_code == 401
    listed = requests.get(f"{kapacitor}/tasks", auth=stack.login("KAPACITOR_TICKML"), timeout=10)
    assert "intruder" not in {t["id"] for t in listed.json()["tasks"]}


def test_a_task_with_exec_is_refused_to_the_tickml_login_too(stack: ComposeStack) -> None:
    kapacitor = f"{stack.url('KAPACITOR_PORT')}/kapacitor/v1"
    login = stack.login("KAPACITOR_TICKML")  # it may define tasks: Chronograf's login
    created = requests.post(f"{kapacitor}/tasks", json=exec_task("with-exec", "/tmp/ran"),
                            auth=login, timeout=10)
    try:
        state = task_state(stack, "with-exec")
        refusal = created.text if created.status_code >= 400 else state.get("error", "")
        assert "exec alert handler is disabled" in refusal, (created.status_code, refusal)
        assert not state.get("executing"), state
        time.sleep(2)  # transactions flow all the while
        ran = stack.compose("exec", "-T", "kapacitor", "test", "-e", "/tmp/ran", check=False)
        assert ran.returncode == 1, "the command ran on the Kapacitor host"
    finally:
        requests.delete(f"{kapacitor}/tasks/with-exec", auth=login, timeout=10)


def test_an_unauthenticated_write_or_create_database_is_refused(stack: ComposeStack) -> None:
    influx = stack.url("INFLUXDB_PORT")
    before = stack.influx().count(schema.TRANSACTIONS, schema.AMOUNT, "Amount = 1234567.5")
    write = requests.post(f"{influx}/write", params={"db": "fraud"}, timeout=10,
                          data=f"{schema.TRANSACTIONS} Amount=1234567.5")
    create = requests.post(f"{influx}/query", params={"q": 'CREATE DATABASE "intruder"'},
                           timeout=10)
    assert (write.status_code, create.status_code) == (401, 401)
    assert stack.influx().count(schema.TRANSACTIONS, schema.AMOUNT,
                                "Amount = 1234567.5") == before
    admin = stack.influx("INFLUXDB_ADMIN")
    assert "intruder" not in {row["name"] for row in admin.records("SHOW DATABASES")}


def test_each_influxdb_login_has_only_its_privileges(stack: ComposeStack) -> None:
    reader, generator = stack.influx("INFLUXDB_READER"), stack.influx("INFLUXDB_GENERATOR")
    # Grafana's and Chronograf's login reads what the generator wrote.
    assert wait_until(lambda: reader.count(schema.TRANSACTIONS, schema.AMOUNT) > 0, 60)
    for database in ("_kapacitor", "chronograf"):
        reader.query(f'SHOW MEASUREMENTS ON "{database}"')
    with pytest.raises(InfluxError, match=r"refused \(403\)"):
        reader.write_lines([f"{schema.TRANSACTIONS} Amount=1.5"])
    with pytest.raises(InfluxError, match="not authorized"):
        generator.query(f'SELECT count("Amount") FROM "{schema.TRANSACTIONS}"')


def test_the_stack_trains_on_the_hosts_dataset_into_the_hosts_models_folder(
    stack: ComposeStack,
) -> None:
    settings = Settings(root=stack.directory)
    registry = ModelRegistry(settings.models_dir)
    production = registry.production()
    assert production == ModelRef("fraud-lgbm", 1)
    manifest = json.loads((settings.processed_dir / "manifest.json").read_text())
    assert registry.metadata(production)["data_sha256"] == manifest["train_sha256"]
    owner = int(stack.env["HOST_UID"])
    for path in (settings.models_dir / "production.json", registry.path(production)):
        assert path.stat().st_uid == owner, f"{path} belongs to uid {path.stat().st_uid}"


def test_predict_on_the_published_port_gives_the_registry_models_probabilities(
    stack: ComposeStack,
) -> None:
    model = load_production(ModelRegistry(Settings(root=stack.directory).models_dir))
    rows = load_split(Settings(root=stack.directory), "test").head(25)
    instances = rows[list(schema.FEATURES)].to_dict(orient="records")
    answer = requests.post(f"{stack.url('API_PORT')}/predict", json={"instances": instances},
                           timeout=30)
    assert answer.status_code == 200, answer.text
    served = [p["probability"] for p in answer.json()["predictions"]]
    expected = model.predict_proba(rows[list(schema.FEATURES)])
    assert served == pytest.approx(list(expected), abs=1e-12)
    # The trainer container compiled the scorer; the API (models/ read-only) loads that file.
    scoring = requests.get(f"{stack.url('API_PORT')}/model", timeout=10).json()["scoring"]
    assert scoring["path"] == "compiled" and scoring["source"] == "fastpath.zip", scoring


def test_after_a_minute_every_transaction_has_its_scored_point(stack: ComposeStack) -> None:
    influx = stack.influx()
    a_minute = 60 * 20 * 0.8  # the generator publishes 20 transactions/s
    settled = f"time < now() - {IN_FLIGHT}s"  # the transactions the check below counts
    assert wait_until(lambda: influx.count("transactions", "Amount", settled) >= a_minute,
                      timeout=180, interval=2)
    unscored, total = wait_until_nothing_is_unscored(stack, timeout=60)
    assert total >= a_minute
    assert unscored == 0, f"{unscored} of {total} transactions have no scored point"


def test_a_model_promoted_on_the_host_is_served_and_the_reverse(stack: ComposeStack) -> None:
    settings = Settings(root=stack.directory)
    trained = train_default_model(settings, params={"n_estimators": 40}, seed=3)
    assert trained.ref == ModelRef("fraud-lgbm", 2)
    served = lambda: requests.get(f"{stack.url('API_PORT')}/model", timeout=10).json()  # noqa: E731
    assert wait_until(lambda: served()["version"] == 2, timeout=30), served()
    listed = stack.compose("exec", "-T", "api", "tickml", "models", "list").stdout
    assert re.search(r"fraud-lgbm\s*│\s*2\b.*yes", listed), listed
    # The API mounts models/ read-only; JupyterLab, which trains models, may promote.
    refused = stack.compose("exec", "-T", "api", "tickml", "models", "promote", "fraud-lgbm",
                            "1", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stdout + refused.stderr
    assert ModelRegistry(settings.models_dir).production() == ModelRef("fraud-lgbm", 2)
    stack.compose("exec", "-T", "jupyter", "tickml", "models", "promote", "fraud-lgbm", "1")
    assert ModelRegistry(settings.models_dir).production() == ModelRef("fraud-lgbm", 1)
    assert wait_until(lambda: served()["version"] == 1, timeout=30), served()


def assert_live_again_after(stack: ComposeStack, fault_ns: int, fault: str, test: str) -> None:
    """The stream scores live again after the fault and raises an alert for each fraud it flags;
    then, once the sweep has had its turn, nothing is left unscored."""
    recovery = assert_live_again(stack.influx(), fault_ns, test, fault)
    alerts = stack.influx("INFLUXDB_READER", database="chronograf")
    assert_flagged_are_alerted_once(stack.influx(),
                                    lambda: alerted_in_influx(alerts, recovery.first_live_ns),
                                    recovery.first_live_ns)
    unscored, total = wait_until_nothing_is_unscored(stack)
    assert unscored == 0, f"{unscored} of {total} transactions lost their score"


def kill_main_process(stack: ComposeStack, service: str) -> None:
    """SIGKILL from the host, as a crash: the restart policy brings the service back."""
    pid = stack.main_pid(service)
    os.kill(pid, signal.SIGKILL)
    assert wait_until(lambda: stack.services()[service]["State"] == "running"
                      and stack.main_pid(service) not in (0, pid), timeout=60)


def test_a_killed_agent_is_recovered_live_with_nothing_lost(stack: ComposeStack) -> None:
    fault_ns = time.time_ns()
    kill_main_process(stack, "udf")
    assert wait_until(lambda: scoring_task_executes(stack), timeout=60), \
        task_state(stack, "fraud_scoring")
    assert_live_again_after(stack, fault_ns, "the agent container's process killed",
                            "test_a_killed_agent_is_recovered_live_with_nothing_lost")


def test_an_influxdb_restart_under_the_generator_is_live_again_and_loses_nothing(
        stack: ComposeStack) -> None:
    before = stack.influx().count("transactions", "Amount")
    fault_ns = time.time_ns()
    stack.compose("restart", "--timeout", "10", "influxdb")
    assert wait_until(stack.influx().ping, timeout=60)
    assert wait_until(lambda: stack.influx().count("transactions", "Amount") > before + 200,
                      timeout=60, interval=2)
    assert_live_again_after(stack, fault_ns, "docker compose restart influxdb",
                            "test_an_influxdb_restart_under_the_generator_is_live_again")


def test_a_kapacitor_restart_scores_live_again_and_raises_alerts(stack: ComposeStack) -> None:
    fault_ns = time.time_ns()
    stack.compose("restart", "--timeout", "10", "kapacitor")
    assert_live_again_after(stack, fault_ns, "docker compose restart kapacitor",
                            "test_a_kapacitor_restart_scores_live_again_and_raises_alerts")


def test_kapacitord_killed_is_restarted_by_compose_and_scores_live(stack: ComposeStack) -> None:
    fault_ns = time.time_ns()
    kill_main_process(stack, "kapacitor")
    assert_live_again_after(stack, fault_ns, "kapacitord killed, restarted by Compose",
                            "test_kapacitord_killed_is_restarted_by_compose_and_scores_live")


def test_the_six_notebooks_run_in_the_jupyter_container(stack: ComposeStack) -> None:
    seconds = {}
    for name in NOTEBOOKS:
        started = time.monotonic()
        run = stack.compose(
            "exec", "-T", "-e", "TICKML_NOTEBOOK_SAMPLE=1", "jupyter", "jupyter", "nbconvert",
            "--to", "notebook", "--execute", "--ExecutePreprocessor.timeout=900",
            "--output-dir", "/tmp/executed", f"notebooks/{name}.ipynb",
            timeout=1200, check=False)
        assert run.returncode == 0, f"{name}:\n{run.stdout[-2000:]}{run.stderr[-4000:]}"
        seconds[name] = round(time.monotonic() - started)
    print(f"notebook seconds in the jupyter container: {seconds}")


def test_up_sh_again_is_harmless(stack: ComposeStack) -> None:
    before = {name: row["ID"] for name, row in stack.services().items() if name in LONG_RUNNING}
    again = stack.script("up.sh", "--without-dashboards", timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    after = {name: row["ID"] for name, row in stack.services().items() if name in LONG_RUNNING}
    assert after == before, "no running container is recreated"
    assert scoring_task_executes(stack)


ROWS_SCORED = ("import urllib.request, re; text = urllib.request.urlopen("
               "'http://127.0.0.1:5000/metrics').read().decode(); "
               "print(sum(float(v) for v in re.findall("
               "r'^tickml_api_rows_scored_total (\\S+)$', text, re.M)))")


def rows_scored(stack: ComposeStack, replicas: int) -> list[float]:
    """Each API replica's own count of the rows it scored."""
    return [float(stack.exec_python("api", ROWS_SCORED, index)) for index in
            range(1, replicas + 1)]


def test_two_api_replicas_both_serve_and_a_killed_one_loses_nothing(
        stack: ComposeStack) -> None:
    stack.compose("up", "--detach", "--wait", "--no-deps", "--scale", "api=2", "api",
                  timeout=600)
    try:
        assert len(stack.containers_of("api")) == 2
        before = rows_scored(stack, 2)
        # The agent looks the name up again every TICKML_API_RESOLVE_INTERVAL (5 s).
        assert wait_until(lambda: all(after > was for after, was in
                                      zip(rows_scored(stack, 2), before, strict=True)),
                          timeout=60, interval=3), (before, rows_scored(stack, 2))
        fault_ns = time.time_ns()
        os.kill(stack.main_pid("api", stack.containers_of("api")[1]), signal.SIGKILL)
        assert_live_again_after(stack, fault_ns, "one of two API replicas killed",
                                "test_two_api_replicas_both_serve_and_a_killed_one")
    finally:
        stack.compose("up", "--detach", "--wait", "--no-deps", "--scale", "api=1", "api",
                      timeout=600)


SHARD_INTAKE = ("from tickml.config import get_settings; "
                "from tickml.kapacitor import shard_clients; "
                "print(' '.join(str(c.task('fraud_scoring').received) "
                "for c in shard_clients(get_settings())))")


def shard_intake(stack: ComposeStack) -> list[int]:
    """What each shard's scoring task took in since it started (asked from the watchdog,
    which knows every shard; only the first is published)."""
    return [int(n) for n in stack.exec_python("watchdog", SHARD_INTAKE).split()]


def stream_subscriptions(stack: ComposeStack) -> list[str]:
    return [row["name"] for row in stack.influx("INFLUXDB_ADMIN").subscriptions()]


def test_two_shards_score_every_transaction_once_each_a_share_and_survive_a_kill(
        stack: ComposeStack) -> None:
    up = stack.script("up.sh", "--without-dashboards", "--shards", "2", timeout=900)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    [name] = stream_subscriptions(stack)
    assert name.startswith("tickml-"), "one ANY subscription of tickml's, none of Kapacitor's"
    start_ns, before = time.time_ns(), shard_intake(stack)
    wait_until(lambda: time.time_ns() - start_ns > 60e9, timeout=70)
    taken = [after - was for after, was in zip(shard_intake(stack), before, strict=True)]
    assert all(share >= sum(taken) / 3 for share in taken), taken
    fault_ns = time.time_ns()
    kill_main_process(stack, "kapacitor-2")
    assert_live_again_after(stack, fault_ns, "kapacitord of shard 2 of 2 killed",
                            "test_two_shards_score_every_transaction_once")
    counts = settled(stack.influx(), start_ns, time.time_ns() - IN_FLIGHT * 1_000_000_000)
    assert counts["transactions"] > 0
    assert (counts["missing"], counts["twice"], counts["unscored"]) == (0, 0, 0), counts


def test_back_to_one_shard_kapacitor_subscribes_by_itself_and_scores_live(
        stack: ComposeStack) -> None:
    fault_ns = time.time_ns()
    up = stack.script("up.sh", "--without-dashboards", "--shards", "1", timeout=900)
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    assert "kapacitor-2" not in stack.services(), "the second shard is gone"
    assert [n.startswith("kapacitor-") for n in stream_subscriptions(stack)] == [True]
    assert_live_again_after(stack, fault_ns, "back from two shards to one",
                            "test_back_to_one_shard_kapacitor_subscribes_by_itself")


def test_the_agents_score_against_mlserver_with_backend_mlserver(stack: ComposeStack) -> None:
    fault_ns = time.time_ns()
    up = stack.script("up.sh", "--without-dashboards", "--backend", "mlserver", timeout=900)
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert stack.services()["mlserver"]["Health"] == "healthy"
        api_before = rows_scored(stack, 1)
        assert_live_again_after(stack, fault_ns, "the agents moved to MLServer",
                                "test_the_agents_score_against_mlserver_with_backend_mlserver")
        assert rows_scored(stack, 1) == api_before, "the stream went to MLServer, not the API"
    finally:
        back = stack.script("up.sh", "--without-dashboards", "--backend", "tickml",
                            timeout=900)
        assert back.returncode == 0, back.stdout[-3000:] + back.stderr[-3000:]


def test_the_generator_accounts_for_every_transaction(stack: ComposeStack) -> None:
    stack.compose("stop", "generator", timeout=120)
    logs = stack.compose("logs", "--no-log-prefix", "generator").stdout
    generated, written, dropped = map(int, re.findall(
        r"generated (\d+), written (\d+), dropped (\d+)", logs)[-1])
    assert (written, dropped) == (generated, 0)
    assert stack.influx().count("transactions", "Amount") >= generated
    unscored, total = wait_until_nothing_is_unscored(stack)
    assert unscored == 0, f"{unscored} of {total} transactions have no scored point"


def test_down_sh_removes_every_container_and_keeps_the_data(stack: ComposeStack) -> None:
    down = stack.script("down.sh", timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    assert stack.containers() == []
    assert any(v.endswith("influxdb-data") for v in stack.volumes())
    assert ModelRegistry(Settings(root=stack.directory).models_dir).production() is not None


def test_up_sh_with_an_env_the_data_was_not_made_with_names_the_cause(
        stack: ComposeStack) -> None:
    dotenv = stack.directory / ".env"
    original = dotenv.read_text()
    _, password = stack.login("INFLUXDB_ADMIN")
    dotenv.write_text(original.replace(f"INFLUXDB_ADMIN_PASSWORD={password}\n",
                                       "INFLUXDB_ADMIN_PASSWORD=madeAfresh1\n"))
    try:
        result = stack.script("up.sh", "--without-dashboards", timeout=900)
        assert result.returncode == 1
        assert ("InfluxDB refused the admin login in .env (INFLUXDB_ADMIN_USER/_PASSWORD): its "
                "data was set up with another .env's passwords") in result.stderr, \
            result.stderr[-2000:]
        assert "./down.sh --wipe" in result.stderr and "madeAfresh1" not in result.stderr
    finally:
        dotenv.write_text(original)
        stack.compose("down", "--timeout", "20", timeout=300)


def test_down_sh_wipe_after_a_plain_down_deletes_the_volumes(stack: ComposeStack) -> None:
    wiped = stack.script("down.sh", "--wipe", timeout=300)
    assert wiped.returncode == 0, wiped.stdout + wiped.stderr
    assert stack.volumes() == []
    assert (stack.directory / "data" / "processed" / "test.parquet").is_file(), \
        "the dataset is the user's: --wipe keeps it"
