"""One server process: started with a log file and a pid file, checked for readiness."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tickml.files import open_private

#: What a service creates is readable by this user only.
PRIVATE_UMASK = 0o077


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready; the message points at its log."""


@dataclass
class Service:
    """A long-running process owned by tickml."""

    name: str
    argv: Sequence[str]
    run_dir: Path
    ready: Callable[[], bool]
    env: Mapping[str, str] = field(default_factory=dict)
    url: str = ""  # where an HTTP service answers, when it is one
    process: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.run_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    def start(self) -> Service:
        """Start the process in its own session, logging to `<run_dir>/<name>.log`.

        The log and pid files are readable by this user only (logs can hold secrets,
        such as a URL with a token), and so is whatever the process creates (umask 077).
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open_private(self.log_path, append=True) as log:
            self.process = subprocess.Popen(
                list(self.argv), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env={**os.environ, **self.env},
                start_new_session=True, umask=PRIVATE_UMASK,
            )
        with open_private(self.pid_path) as pid_file:
            pid_file.write(f"{self.process.pid}\n".encode())
        return self

    def wait_ready(self, timeout: float = 60.0) -> Service:
        """Poll the readiness check until it passes; fail early if the process exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServiceFailed(f"{self.name} exited with status {self.process.returncode}; "
                                    f"see {self.log_path}:\n{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.1)
        raise ServiceFailed(f"{self.name} not ready after {timeout:.0f}s; see {self.log_path}:\n"
                            f"{self.log_tail()}")

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> None:
        """Signal the process (SIGTERM by default), escalate to SIGKILL, remove the pid file.

        The escalation kills the process group: the process runs in its own session,
        so the group holds only it and its children (gunicorn's workers, say).
        """
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        self.pid_path.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL: an abrupt death, as a crash would be."""
        self.stop(sig=signal.SIGKILL)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"
