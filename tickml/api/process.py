"""Start and stop `tickml serve` as a subprocess: used by the benchmark and the tests."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tickml_command() -> list[str]:
    """How to run the `tickml` console script of this environment."""
    script = Path(sys.executable).with_name("tickml")
    if script.is_file():
        return [str(script)]
    found = shutil.which("tickml")
    return [found] if found else [sys.executable, "-m", "tickml"]


def start_server(port: int, *, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                 log_path: Path | None = None) -> subprocess.Popen:
    """Run `tickml serve --bind 127.0.0.1:PORT ARGS` in the background.

    Args:
        port: the port to bind on 127.0.0.1.
        env: variables added to this process's environment (TICKML_MODELS_DIR, ...).
        args: further `tickml serve` options.
        log_path: file receiving the server's output (default: discarded).
    """
    command = [*tickml_command(), "serve", "--bind", f"127.0.0.1:{port}", *args]
    environment = {**os.environ, **(env or {})}
    if log_path is None:
        return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL,
                                stderr=subprocess.STDOUT, start_new_session=True)
    with log_path.open("ab") as output:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=environment, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0,
                  path: str = "/health") -> None:
    """Poll `url + path` until it answers 200; fail early if the server exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode}")
        try:
            if requests.get(url + path, timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # still booting
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url}{path} did not answer 200 within {timeout:.0f} s")


def stop_server(process: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the gunicorn master (it stops its workers); SIGKILL the group if it hangs."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: only our processes
            process.wait(timeout)
