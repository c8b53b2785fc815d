"""`./up.sh --local` from a fresh clone brings the pipeline up; `./down.sh` stops it all."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import psutil
import pytest
import requests

from tests.polling import wait_until
from tickml.influx import InfluxClient
from tickml.stack.services import free_port
from tickml.stack.users import StackLogins

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(900)


def fresh_clone(directory: Path) -> Path:
    clone = directory / "tickml"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    return clone


def free_ports() -> dict[str, int]:
    """Ports for the clone's stack, given as the caller's variables (they win over .env)."""
    return {"INFLUXDB_PORT": free_port(), "KAPACITOR_PORT": free_port(), "API_PORT": free_port()}


def dotenv(clone: Path) -> dict[str, str]:
    """The KEY=VALUE lines of the .env ./up.sh wrote."""
    lines = (clone / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines
                if "=" in line and not line.lstrip().startswith("#"))


def supervised_processes(clone: Path) -> list[psutil.Process]:
    pid = int((clone / "run" / "supervisord.pid").read_text())
    supervisor = psutil.Process(pid)
    return [supervisor, *supervisor.children(recursive=True)]


def test_up_sh_runs_the_pipeline_from_a_fresh_clone_and_down_sh_leaves_no_process(
    tmp_path: Path,
) -> None:
    clone = fresh_clone(tmp_path)
    ports = free_ports()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TICKML_")}
    env.update({name: str(port) for name, port in ports.items()}, TICKML_DEMO_ROWS="20000")
    up = subprocess.run(["./up.sh", "--local"], cwd=clone, env=env, capture_output=True,
                        text=True, timeout=900)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "kapacitord: ready" in up.stdout and "tasks: fraud_scoring" in up.stdout
    assert (clone / ".env").stat().st_mode & 0o077 == 0, "up.sh writes .env private"
    processes = supervised_processes(clone)
    try:
        url = f"http://127.0.0.1:{ports['INFLUXDB_PORT']}"
        logins = StackLogins.from_env(dotenv(clone))
        anonymous = requests.post(f"{url}/query", params={"q": "SHOW DATABASES"}, timeout=10)
        assert anonymous.status_code == 401, "InfluxDB wants a login"
        influx = InfluxClient(url, "fraud", username=logins.influx_tickml.user,
                              password=logins.influx_tickml.password)
        assert wait_until(lambda: influx.count("scored", "fraud_probability") >= 10, timeout=60), \
            "transactions flow into `scored` within seconds"
        again = subprocess.run(["./up.sh", "--local"], cwd=clone, env=env, capture_output=True,
                               text=True, timeout=300)
        assert again.returncode == 0, again.stdout + again.stderr
        assert [p.pid for p in supervised_processes(clone)][:1] == [processes[0].pid]
        influx.close()
    finally:
        down = subprocess.run(["./down.sh"], cwd=clone, env=env, capture_output=True,
                              text=True, timeout=300)
    assert down.returncode == 0, down.stdout + down.stderr
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, f"left behind: {[(p.pid, p.name()) for p in alive]}"
    assert (clone / "run" / "influxdb").is_dir(), "down.sh keeps the data"
