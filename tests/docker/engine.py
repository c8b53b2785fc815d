"""A Docker engine and Compose v2 for the end-to-end tests: used if one answers,
started (and later stopped) if `dockerd` is installed but not running.

`make test` installs the engine and builds Compose (scripts/install-docker.sh);
stand-ins for the upstream images come from compose/standins/build.sh.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STANDINS_BUILD = ROOT / "compose" / "standins" / "build.sh"
DOCKERD_PIDFILE = Path("/var/run/docker.pid")
# Every image tickml builds (its own and the stand-ins) carries this label.
TICKML_IMAGE_LABEL = "org.opencontainers.image.vendor=tickml"


class EngineUnavailable(RuntimeError):
    """No Docker engine answers and none could be started here."""


def docker(*args: str, timeout: float = 120, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; raise with its output when `check` and it fails."""
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout,
                            env=env)
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({result.returncode}):\n"
                           f"{result.stdout}{result.stderr}")
    return result


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20,
                      check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def compose_version() -> str:
    """The Compose v2 plugin's version, or raise EngineUnavailable."""
    result = docker("compose", "version", "--short", check=False, timeout=20)
    if result.returncode != 0 or not result.stdout.strip().lstrip("v").startswith("2."):
        raise EngineUnavailable("the Compose v2 plugin (`docker compose`) is missing: "
                                "run scripts/install-docker.sh (make docker)")
    return result.stdout.strip()


@dataclass
class Engine:
    """The engine the tests use; `started` is the dockerd process they started, if any."""

    started: subprocess.Popen | None = None

    def stop(self) -> None:
        """Stop dockerd if the tests started it (and only then)."""
        if self.started is None:
            return
        self.started.send_signal(signal.SIGTERM)
        try:
            self.started.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.started.kill()
            self.started.wait(timeout=10)


def dangling_tickml_app_images() -> set[str]:
    """Ids of untagged builds of the tickml image itself (not the stand-ins)."""
    out = docker("images", "--quiet", "--no-trunc", "--filter", "dangling=true", "--filter",
                 "label=org.opencontainers.image.title=tickml").stdout
    return set(out.split())


def remove_dangling_tickml_images() -> None:
    """Remove tickml's images that a newer build untagged; nobody else's, nothing tagged.

    Each run rebuilds the images, and the engine keeps the previous build of each as an
    untagged image: without this a machine that runs the tests often fills its disk.
    """
    docker("image", "prune", "--force", "--filter", f"label={TICKML_IMAGE_LABEL}",
           timeout=300)


def ensure_engine(log_path: Path, timeout: float = 90) -> Engine:
    """An answering engine: the running one, or a dockerd started here."""
    if engine_answers():
        return Engine()
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed: run scripts/install-docker.sh "
                                "(make docker)")
    if os.geteuid() != 0:
        raise EngineUnavailable("no Docker engine answers, and starting dockerd needs root")
    _remove_stale_pidfile()
    with log_path.open("ab") as log:  # dockerd keeps its own copy of the descriptor
        process = subprocess.Popen([dockerd], stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineUnavailable(f"dockerd exited with {process.returncode}; its log: "
                                    f"{log_path}")
        if engine_answers():
            return Engine(started=process)
        time.sleep(1)
    process.terminate()
    raise EngineUnavailable(f"dockerd did not answer within {timeout:.0f}s; its log: {log_path}")


def _remove_stale_pidfile() -> None:
    """A dockerd that was killed leaves its pid file, and a new one refuses to start."""
    try:
        pid = int(DOCKERD_PIDFILE.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        DOCKERD_PIDFILE.unlink(missing_ok=True)


def build_standins() -> dict[str, str]:
    """Build the stand-in images; return the image variables that select them."""
    result = subprocess.run(["bash", str(STANDINS_BUILD)], capture_output=True, text=True,
                            timeout=1800)
    if result.returncode != 0:
        raise RuntimeError(f"{STANDINS_BUILD} failed:\n{result.stderr}")
    return dict(line.split("=", 1) for line in result.stdout.split() if "=" in line)
