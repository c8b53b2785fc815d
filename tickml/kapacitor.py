"""Kapacitor's HTTP API: define tickml's tasks idempotently, and keep them running.

Kapacitor never reconnects a socket UDF and never restarts a failed task: when
the agent restarts or misses a keepalive the task stays enabled but stops
executing. `watch_tasks` notices that and restarts the task (disable, then
enable: enabling an enabled task does nothing).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests

from tickml.config import Settings

log = logging.getLogger(__name__)
#: A TICKscript `var` value as Python gives it (durations as timedelta).
VarValue = str | bool | int | float | timedelta
#: tickml's tasks, in the order they are defined (scoring before its alerts).
TASKS: dict[str, str] = {"fraud_scoring": "fraud_scoring.tick",
                         "fraud_alerts": "fraud_alerts.tick",
                         # Kapacitor's own statistics into `_kapacitor` (Stack health).
                         "kapacitor_stats": "kapacitor_stats.tick"}
SCORING_TASK = "fraud_scoring"
_THRESHOLD_CALL = re.compile(r"\.threshold\(\s*([^)\s]+)\s*\)")


class KapacitorError(RuntimeError):
    """Kapacitor refused a request or could not be reached."""


@dataclass(frozen=True)
class TaskState:
    id: str
    status: str  # "enabled" or "disabled"
    executing: bool
    error: str
    script: str
    vars: dict[str, Any]

    @property
    def healthy(self) -> bool:
        return self.status == "enabled" and self.executing and not self.error


class KapacitorClient:
    """The task and user endpoints of one kapacitord, logged in as `username` if given.

    With `[http] auth-enabled` every endpoint, `/ping` included, answers 401 to a
    request without valid credentials.
    """

    def __init__(self, url: str, timeout: float = 10.0, *, username: str = "",
                 password: str = "") -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        if username:
            self.session.auth = (username, password)

    def ping(self) -> bool:
        """True when kapacitord answers and accepts this client's login."""
        try:
            response = self.session.get(f"{self.url}/kapacitor/v1/ping", timeout=2)
        except requests.RequestException:
            return False
        return response.status_code == 204

    def task_ids(self) -> list[str]:
        """The ids of every task Kapacitor holds."""
        body = _checked(self._call("GET", "/tasks", params={"fields": "id"}), "list tasks")
        return [task["id"] for task in body.get("tasks", [])]

    def users(self) -> dict[str, dict[str, Any]]:
        """Kapacitor's own users by name (subscription users are not listed)."""
        body = _checked(self._call("GET", "/users"), "list users")
        return {user["name"]: user for user in body.get("users", [])}

    def put_user(self, name: str, password: str, *, admin: bool = False,
                 permissions: tuple[str, ...] = ()) -> None:
        """Create user `name`, or set its password, type and permissions if it exists."""
        fields = {"password": password, "type": "admin" if admin else "normal",
                  "permissions": list(permissions)}
        if name in self.users():
            _checked(self._call("PATCH", f"/users/{name}", json=fields), f"update user {name}")
        else:
            _checked(self._call("POST", "/users", json={"name": name, **fields}),
                     f"create user {name}")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, f"{self.url}/kapacitor/v1{path}",
                                        timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise KapacitorError(f"Kapacitor at {self.url} unreachable: {exc}") from exc

    def task(self, task_id: str) -> TaskState | None:
        response = self._call("GET", f"/tasks/{task_id}", params={"dot-view": "labels"})
        if response.status_code == 404:
            return None
        body = _checked(response, f"read task {task_id}")
        return TaskState(task_id, body["status"], bool(body["executing"]), body.get("error", ""),
                         body["script"], body.get("vars") or {})

    def create(self, task_id: str, script: str, variables: Mapping[str, Any]) -> None:
        # dbrp comes from the script's `dbrp` line; giving it here too is refused.
        payload = {"id": task_id, "type": "stream", "script": script,
                   "vars": dict(variables), "status": "enabled"}
        _checked(self._call("POST", "/tasks", json=payload), f"create task {task_id}")

    def update(self, task_id: str, script: str, variables: Mapping[str, Any]) -> None:
        payload = {"script": script, "vars": dict(variables)}
        _checked(self._call("PATCH", f"/tasks/{task_id}", json=payload), f"update {task_id}")

    def set_status(self, task_id: str, status: str) -> None:
        response = self._call("PATCH", f"/tasks/{task_id}", json={"status": status})
        _checked(response, f"set task {task_id} {status}")

    def restart(self, task_id: str) -> None:
        self.set_status(task_id, "disabled")
        self.set_status(task_id, "enabled")

    def close(self) -> None:
        self.session.close()


def kapacitor_for(settings: Settings) -> KapacitorClient:
    """A client for the settings' Kapacitor, logged in with the settings' credentials."""
    return KapacitorClient(settings.kapacitor_url, username=settings.kapacitor_user,
                           password=settings.kapacitor_password)


def _checked(response: requests.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        raise KapacitorError(f"could not {what}: {detail.strip()}")
    return response.json() if response.content else {}


def task_vars(values: Mapping[str, VarValue]) -> dict[str, dict[str, Any]]:
    """TICKscript `var` overrides in the task API's typed form.

    Durations go as integer nanoseconds, the form Kapacitor hands back, so that a
    definition read from Kapacitor compares equal to the one sent.
    """
    return {name: _typed_var(value) for name, value in values.items()}


def _typed_var(value: VarValue) -> dict[str, Any]:
    if isinstance(value, timedelta):
        return {"type": "duration", "value": round(value.total_seconds() * 1e9)}
    if isinstance(value, str):
        return {"type": "string", "value": value}
    if isinstance(value, bool):
        return {"type": "bool", "value": value}
    return {"type": "int" if isinstance(value, int) else "float", "value": value}


def task_variables(
    settings: Settings, *overrides: Mapping[str, Mapping[str, VarValue]]
) -> dict[str, dict[str, Any]]:
    """Per-task TICKscript `var` overrides: the settings' first, then each of `overrides`.

    Args:
        overrides: task id → var name → value, e.g. {"fraud_scoring": {"batch_size": 1}};
            a later one wins over an earlier one, var by var.
    """
    values: dict[str, dict[str, VarValue]] = {
        "fraud_alerts": {"alert_log": settings.alert_log} if settings.alert_log else {}}
    for layer in overrides:
        for task_id, task_values in layer.items():
            values[task_id] = {**values.get(task_id, {}), **task_values}
    return {task_id: task_vars(task_values) for task_id, task_values in values.items()}


def define_tickml_tasks(
    client: KapacitorClient,
    settings: Settings,
    *overrides: Mapping[str, Mapping[str, VarValue]],
) -> dict[str, str]:
    """Define tickml's tasks from the settings' TICKscripts and variables, `overrides` on top.

    Every caller (`tickml tasks define`, the native stack, the local pipeline of the
    tests and benchmarks) goes through here, so a setting such as TICKML_ALERT_LOG
    means the same everywhere. Returns what `define_tasks` did to each task.
    """
    return define_tasks(client, read_scripts(settings.kapacitor_scripts),
                        task_variables(settings, *overrides))


def read_scripts(scripts_dir: Path) -> dict[str, str]:
    """The TICKscript text of each tickml task."""
    return {task_id: (scripts_dir / file).read_text() for task_id, file in TASKS.items()}


def define_tasks(
    client: KapacitorClient,
    scripts: Mapping[str, str],
    variables: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, str]:
    """Create, update or restart each task so it runs the given script; report what changed.

    Running it again with the same scripts changes nothing.
    """
    actions = {}
    for task_id, script in scripts.items():
        wanted_vars = dict((variables or {}).get(task_id, {}))
        current = client.task(task_id)
        if current is None:
            client.create(task_id, script, wanted_vars)
            actions[task_id] = "created"
        elif (_layout_free(current.script) != _layout_free(script)
              or _var_values(current.vars) != _var_values(wanted_vars)):
            client.update(task_id, script, wanted_vars)
            client.restart(task_id)
            actions[task_id] = "updated"
        elif not current.healthy:
            client.restart(task_id)
            actions[task_id] = "restarted"
        else:
            actions[task_id] = "unchanged"
    return actions


def _layout_free(script: str) -> list[str]:
    # Kapacitor stores a reformatted script (it puts a blank line between `var`s, for
    # one), so compare what the lines say, not how they are laid out.
    return [line.strip() for line in script.splitlines() if line.strip()]


def _var_values(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {name: spec.get("value") for name, spec in variables.items()}


def scoring_threshold(client: KapacitorClient) -> float | None:
    """The `.threshold()` the scoring task gives the agent; None when it leaves the model's.

    Raises:
        KapacitorError: Kapacitor could not be asked.
        ValueError: the threshold is not a plain number or var.
    """
    state = client.task(SCORING_TASK)
    return None if state is None else script_threshold(state.script, state.vars)


def script_threshold(script: str, variables: Mapping[str, Any]) -> float | None:
    """The argument of `.threshold()` in a TICKscript, or None when there is none.

    The argument is a number or a `var`, whose value is the task's override when it
    has one (`variables`, in the task API's typed form), else the script's default.
    """
    code = "\n".join(line.split("//", 1)[0] for line in script.splitlines())
    call = _THRESHOLD_CALL.search(code)
    if call is None:
        return None
    argument = call.group(1)
    if argument in variables:
        return float(variables[argument]["value"])
    declared = re.search(rf"^\s*var\s+{re.escape(argument)}\s*=\s*(\S+)", code, re.MULTILINE)
    return float(declared.group(1) if declared else argument)


def restart_stopped_tasks(client: KapacitorClient, task_ids: list[str]) -> list[str]:
    """Restart every listed task that is enabled but not executing; return their ids."""
    restarted = []
    for task_id in task_ids:
        state = client.task(task_id)
        if state is None or state.status != "enabled" or state.executing:
            continue
        log.warning("task %s stopped (%s): restarting it", task_id, state.error or "no error")
        client.restart(task_id)
        restarted.append(task_id)
    return restarted


def watch_tasks(
    client: KapacitorClient,
    task_ids: list[str],
    interval: float = 2.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_restart: Callable[[list[str]], None] | None = None,
    on_check: Callable[[], None] | None = None,
) -> None:
    """Check the tasks every `interval` seconds and restart stopped ones, until told to stop.

    `on_check` runs after every check, whatever its outcome.
    """
    while not should_stop():
        try:
            restarted = restart_stopped_tasks(client, task_ids)
        except KapacitorError as exc:
            log.warning("watchdog: %s", exc)
            restarted = []
        if restarted and on_restart is not None:
            on_restart(restarted)
        if on_check is not None:
            on_check()
        time.sleep(interval)
