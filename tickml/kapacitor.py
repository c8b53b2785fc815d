"""Kapacitor's HTTP API: define tickml's tasks without undoing the user's, and keep them running.

Each task tickml defines carries a record of that definition (the var
`tickml_definition`, a fingerprint of the script, dbrps and vars it sent), kept by
Kapacitor with the task. A later definition compares the task with that record: a task
edited since (in Chronograf, say) is left as the user made it, a task still as tickml
left it follows the shipped script, and a disabled task stays disabled.

Kapacitor never reconnects a socket UDF and never restarts a failed task: when
the agent restarts or misses a keepalive the task stays enabled but stops
executing. `watch_tasks` notices that and restarts the task (disable, then
enable: enabling an enabled task does nothing).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import requests

from tickml.config import Settings

log = logging.getLogger(__name__)
#: A TICKscript `var` value as Python gives it (durations as timedelta).
VarValue = str | bool | int | float | timedelta
#: tickml's tasks, in the order they are defined (scoring before its alerts).
TASKS: dict[str, str] = {"fraud_scoring": "fraud_scoring.tick",
                         "fraud_alerts": "fraud_alerts.tick",
                         # Kapacitor's own statistics into `_kapacitor` (Stack health).
                         "kapacitor_stats": "kapacitor_stats.tick",
                         # An alert when the sweep, not the stream, scores transactions.
                         "live_share": "live_share.tick"}
SCORING_TASK = "fraud_scoring"
#: The tasks whose alerts go to the alert log (TICKML_ALERT_LOG, their `alert_log` var).
ALERTING_TASKS = ("fraud_alerts", "live_share")
#: The tasks every Kapacitor shard runs on the points it receives. The others read
#: InfluxDB as a whole and run on the first shard only (one alert, not one per shard).
SHARD_TASKS = ("fraud_scoring", "fraud_alerts", "kapacitor_stats")
#: The task var that records the definition tickml last made (see `TaskDefinition`).
DEFINITION_VAR = "tickml_definition"
_DEFINITION_NOTE = ("tickml's record of the definition it made; `tickml tasks status` "
                    "compares the task with it")
_DBRP_LINE = re.compile(r'^[ \t]*dbrp[ \t]+"([^"]+)"[ \t]*\.[ \t]*"([^"]+)"[ \t]*\n?', re.MULTILINE)
_THRESHOLD_CALL = re.compile(r"\.threshold\(\s*([^)\s]+)\s*\)")
#: A logged error is cut to this many characters (InfluxDB echoes whole lines back).
ERROR_LINE_CHARACTERS = 300
#: Seconds to wait for Kapacitor's answer. Stopping a task waits until its UDF connection
#: has closed, and meanwhile Kapacitor holds every other task request; the agent answers
#: its last points within one API call's `.timeout()` (2 s unless a script says more).
REQUEST_TIMEOUT = 30.0
T = TypeVar("T")
#: What to set when a login is refused: the variable, or `.env`'s (see tickml.config).
LOGIN_HINT = ("set TICKML_KAPACITOR_USER and TICKML_KAPACITOR_PASSWORD, or "
              "KAPACITOR_TICKML_USER and KAPACITOR_TICKML_PASSWORD in the project's .env "
              "(./up.sh writes them)")


class KapacitorError(RuntimeError):
    """Kapacitor refused a request or could not be reached."""


@dataclass(frozen=True)
class TaskState:
    id: str
    status: str  # "enabled" or "disabled"
    executing: bool
    error: str
    script: str  # as it was sent, by tickml or anyone else
    vars: dict[str, Any]
    dbrps: tuple[tuple[str, str], ...] = ()
    # Points the task's stream node has taken in since this run started (None: no run).
    received: int | None = None

    @property
    def recorded(self) -> str | None:
        """The fingerprint tickml recorded when it defined the task, if it did."""
        return (self.vars.get(DEFINITION_VAR) or {}).get("value")

    @property
    def healthy(self) -> bool:
        return self.status == "enabled" and self.executing and not self.error


class KapacitorClient:
    """The task and user endpoints of one kapacitord, logged in as `username` if given.

    With `[http] auth-enabled` every endpoint, `/ping` included, answers 401 to a
    request without valid credentials.
    """

    def __init__(self, url: str, timeout: float = REQUEST_TIMEOUT, *, username: str = "",
                 password: str = "") -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.username = username
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
        body = self._checked(self._call("GET", "/tasks", params={"fields": "id"}), "list tasks")
        return [task["id"] for task in body.get("tasks", [])]

    def users(self) -> dict[str, dict[str, Any]]:
        """Kapacitor's own users by name (subscription users are not listed)."""
        body = self._checked(self._call("GET", "/users"), "list users")
        return {user["name"]: user for user in body.get("users", [])}

    def put_user(self, name: str, password: str, *, admin: bool = False,
                 permissions: tuple[str, ...] = ()) -> None:
        """Create user `name`, or set its password, type and permissions if it exists."""
        fields = {"password": password, "type": "admin" if admin else "normal",
                  "permissions": list(permissions)}
        if name in self.users():
            self._checked(self._call("PATCH", f"/users/{name}", json=fields), f"update user {name}")
        else:
            self._checked(self._call("POST", "/users", json={"name": name, **fields}),
                     f"create user {name}")

    def link_subscriptions(self) -> None:
        """Have Kapacitor sync its InfluxDB subscriptions now, not at its next interval."""
        self._checked(self._call("POST", "/subscriptions"), "link subscriptions")

    def _checked(self, response: requests.Response, what: str) -> dict[str, Any]:
        """The JSON body of an accepted request; a refused one raises `KapacitorError`,
        which for a refused login names the user tried (never the password)."""
        if response.status_code < 400:
            return response.json() if response.content else {}
        try:
            detail = response.json().get("error", response.text)
        except ValueError:
            detail = response.text
        message = f"could not {what}: {detail.strip()}"
        if response.status_code == 401:
            tried = f"as {self.username!r}" if self.username else "without a login"
            message += f". Kapacitor at {self.url} refused tickml's request {tried}: {LOGIN_HINT}"
        raise KapacitorError(message)

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            return self.session.request(method, f"{self.url}/kapacitor/v1{path}",
                                        timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise KapacitorError(f"Kapacitor at {self.url} unreachable: {exc}") from exc

    def task(self, task_id: str) -> TaskState | None:
        # The raw script is the one sent; the default is Kapacitor's reformatted copy.
        response = self._call("GET", f"/tasks/{task_id}",
                              params={"dot-view": "labels", "script-format": "raw"})
        if response.status_code == 404:
            return None
        body = self._checked(response, f"read task {task_id}")
        return TaskState(task_id, body["status"], bool(body["executing"]), body.get("error", ""),
                         body["script"], body.get("vars") or {},
                         tuple((d["db"], d["rp"]) for d in body.get("dbrps") or ()),
                         _received(body.get("stats") or {}))

    def create(self, task_id: str, script: str, variables: Mapping[str, Any],
               dbrps: Iterable[tuple[str, str]] = ()) -> None:
        payload = {"id": task_id, "type": "stream", "script": script, "dbrps": _dbrps(dbrps),
                   "vars": dict(variables), "status": "enabled"}
        self._checked(self._call("POST", "/tasks", json=payload), f"create task {task_id}")

    def update(self, task_id: str, script: str, variables: Mapping[str, Any],
               dbrps: Iterable[tuple[str, str]] = ()) -> None:
        payload = {"script": script, "vars": dict(variables), "dbrps": _dbrps(dbrps)}
        self._checked(self._call("PATCH", f"/tasks/{task_id}", json=payload), f"update {task_id}")

    def set_status(self, task_id: str, status: str) -> None:
        response = self._call("PATCH", f"/tasks/{task_id}", json={"status": status})
        self._checked(response, f"set task {task_id} {status}")

    def restart(self, task_id: str) -> None:
        self.set_status(task_id, "disabled")
        self.set_status(task_id, "enabled")

    def close(self) -> None:
        self.session.close()


def _received(stats: Mapping[str, Any]) -> int | None:
    """Points a running task took in: what its stream node collected (None when not running)."""
    nodes = stats.get("node-stats") or {}
    counts = [int(node.get("collected", 0)) for name, node in nodes.items()
              if name.startswith("stream")]
    return sum(counts) if counts else None


def _dbrps(dbrps: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"db": db, "rp": rp} for db, rp in dbrps]


def kapacitor_for(settings: Settings, url: str | None = None) -> KapacitorClient:
    """A client for the settings' Kapacitor (or the shard at `url`), logged in with the
    settings' credentials."""
    return KapacitorClient(url or settings.kapacitor_url, username=settings.kapacitor_user,
                           password=settings.kapacitor_password)


def shard_clients(settings: Settings) -> list[KapacitorClient]:
    """A client for every Kapacitor shard, the first being `kapacitor_url`'s."""
    return [kapacitor_for(settings, url) for url in settings.kapacitor_urls]


def shard_task_ids(shard: int) -> list[str]:
    """The tasks tickml defines on shard `shard` (0 is the first)."""
    return list(TASKS) if shard == 0 else list(SHARD_TASKS)




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
        task_id: {"alert_log": settings.alert_log} if settings.alert_log else {}
        for task_id in ALERTING_TASKS}
    for layer in overrides:
        for task_id, task_values in layer.items():
            values[task_id] = {**values.get(task_id, {}), **task_values}
    return {task_id: task_vars(task_values) for task_id, task_values in values.items()}


class Standing(StrEnum):
    """Where a task stands against the shipped definition and tickml's record of its own."""

    MISSING = "missing"
    CURRENT = "as shipped"  # tickml's definition of the shipped script
    OUTDATED = "outdated"  # as tickml defined it, but the shipped script changed since
    EDITED = "edited"  # changed since tickml defined it (in Chronograf, say)
    FOREIGN = "not tickml's"  # defined without tickml's record, and not as shipped


#: Standings `define_tasks` leaves alone unless told to reset.
_KEPT = frozenset({Standing.EDITED, Standing.FOREIGN})


@dataclass(frozen=True)
class TaskDefinition:
    """A task as tickml defines it: a script, the dbrps given apart, the vars.

    Chronograf's editor saves a script together with the task's dbrps, and Kapacitor
    refuses a script that names them too ("cannot specify dbrp in implicitly and
    explicitly"), so the `dbrp` lines of a shipped script are sent as the task's dbrps.
    """

    script: str
    dbrps: tuple[tuple[str, str], ...]
    vars: dict[str, dict[str, Any]]

    @classmethod
    def of(cls, script: str, variables: Mapping[str, Mapping[str, Any]] | None = None,
           dbrps: Iterable[tuple[str, str]] = ()) -> TaskDefinition:
        """The definition of `script` with its `dbrp` lines lifted out into the dbrps."""
        lifted = {(match.group(1), match.group(2)) for match in _DBRP_LINE.finditer(script)}
        return cls(_DBRP_LINE.sub("", script), tuple(sorted(lifted | set(dbrps))),
                   {name: dict(spec) for name, spec in (variables or {}).items()
                    if name != DEFINITION_VAR})

    @classmethod
    def of_task(cls, state: TaskState) -> TaskDefinition:
        """What a task in Kapacitor defines, tickml's record aside."""
        return cls.of(state.script, state.vars, state.dbrps)

    @property
    def fingerprint(self) -> str:
        """sha256 of what the definition says: the script's lines (not their layout), the
        dbrps, and each var's type and value."""
        content = {"script": _layout_free(self.script), "dbrps": self.dbrps,
                   "vars": {name: [spec.get("type"), _typed_value(spec)]
                            for name, spec in self.vars.items()}}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()

    def recorded_vars(self) -> dict[str, dict[str, Any]]:
        """The vars to send: the definition's own, and tickml's record of the definition.

        The record is a var because Kapacitor keeps it with the task, through restarts,
        and Chronograf's editor neither shows nor sends vars, so an edit there leaves it.
        """
        return {**self.vars, DEFINITION_VAR: {"type": "string", "value": self.fingerprint,
                                              "description": _DEFINITION_NOTE}}


def standing(state: TaskState | None, wanted: TaskDefinition) -> Standing:
    """Where a task (None: not defined) stands against the definition tickml would make."""
    if state is None:
        return Standing.MISSING
    current = TaskDefinition.of_task(state).fingerprint
    if current == wanted.fingerprint:
        return Standing.CURRENT
    if current == state.recorded:
        return Standing.OUTDATED
    return Standing.EDITED if state.recorded else Standing.FOREIGN


def tickml_definitions(
    settings: Settings, *overrides: Mapping[str, Mapping[str, VarValue]]
) -> dict[str, TaskDefinition]:
    """tickml's tasks as the settings' TICKscripts and variables define them, `overrides`
    on top (see `task_variables`)."""
    variables = task_variables(settings, *overrides)
    return {task_id: TaskDefinition.of(script, variables.get(task_id))
            for task_id, script in read_scripts(settings.kapacitor_scripts).items()}


def define_tickml_tasks(
    client: KapacitorClient,
    settings: Settings,
    *overrides: Mapping[str, Mapping[str, VarValue]],
    reset: bool = False,
    task_ids: Iterable[str] | None = None,
) -> dict[str, str]:
    """Define tickml's tasks (all, or those in `task_ids`) from the settings, `overrides` on top.

    Every caller (`tickml tasks define`, the native stack, the local pipeline of the
    tests and benchmarks) goes through here, so a setting such as TICKML_ALERT_LOG
    means the same everywhere. Returns what `define_tasks` did to each task.
    """
    definitions = tickml_definitions(settings, *overrides)
    chosen = definitions if task_ids is None else {t: definitions[t] for t in task_ids}
    return define_tasks(client, chosen, reset=reset)


def define_on_every_shard(
    clients: list[KapacitorClient],
    settings: Settings,
    *overrides: Mapping[str, Mapping[str, VarValue]],
    reset: bool = False,
    task_ids: Iterable[str] | None = None,
) -> dict[str, str]:
    """`define_tickml_tasks` on each shard (its own tasks, `shard_task_ids`).

    Returns what was done to each task: keyed by task id with one shard, by
    "task id (shard N)" with several.
    """
    chosen = None if task_ids is None else set(task_ids)
    actions = {}
    for shard, client in enumerate(clients):
        ids = [t for t in shard_task_ids(shard) if chosen is None or t in chosen]
        if not ids:
            continue
        done = define_tickml_tasks(client, settings, *overrides, reset=reset, task_ids=ids)
        for task_id, action in done.items():
            actions[task_id if len(clients) == 1 else f"{task_id} (shard {shard + 1})"] = action
    return actions


def read_scripts(scripts_dir: Path) -> dict[str, str]:
    """The TICKscript text of each tickml task."""
    return {task_id: (scripts_dir / file).read_text() for task_id, file in TASKS.items()}


def define_tasks(
    client: KapacitorClient,
    definitions: Mapping[str, TaskDefinition],
    *,
    reset: bool = False,
) -> dict[str, str]:
    """Define each task where it is still tickml's; report what was done to each.

    A missing task is created, one still as tickml defined it follows a changed
    definition, and an enabled one that stopped executing is restarted. A task edited
    since tickml defined it, or never defined by tickml, is kept as it is; a disabled
    task stays disabled. With `reset`, every task is defined as given and enabled.
    Running it again changes nothing.
    """
    return {task_id: _define(client, task_id, wanted, reset)
            for task_id, wanted in definitions.items()}


def _define(client: KapacitorClient, task_id: str, wanted: TaskDefinition, reset: bool) -> str:
    state = client.task(task_id)
    if state is None:
        client.create(task_id, wanted.script, wanted.recorded_vars(), wanted.dbrps)
        return "created"
    place = standing(state, wanted)
    if place in _KEPT and not reset:
        return f"kept ({place})"
    changed = place is not Standing.CURRENT
    unrecorded = state.recorded != wanted.fingerprint
    if changed or unrecorded:
        client.update(task_id, wanted.script, wanted.recorded_vars(), wanted.dbrps)
    runs = reset or state.status == "enabled"
    if runs and (changed or not state.healthy):
        client.restart(task_id)  # a running task keeps its old definition until restarted
    if reset and (changed or not state.healthy):
        action = "reset"
    elif changed:
        action = "updated"
    elif unrecorded:  # as shipped, but defined by an earlier tickml (or edited back)
        action = "recorded"
    else:
        action = "restarted" if runs and not state.healthy else "unchanged"
    return action if runs else f"{action}, left disabled"


def task_standings(
    client: KapacitorClient, definitions: Mapping[str, TaskDefinition]
) -> dict[str, tuple[Standing, TaskState | None]]:
    """Each task's standing against its definition, and its state (None: missing)."""
    states = {task_id: client.task(task_id) for task_id in definitions}
    return {task_id: (standing(states[task_id], wanted), states[task_id])
            for task_id, wanted in definitions.items()}


def _layout_free(script: str) -> list[str]:
    # Kapacitor hands back a reformatted script (it puts a blank line between `var`s, for
    # one), and Chronograf's editor saves that form: compare what the lines say, not
    # how they are laid out.
    return [line.strip() for line in script.splitlines() if line.strip()]


def _typed_value(spec: Mapping[str, Any]) -> Any:
    # Kapacitor hands a float var back as JSON `1` when it is whole.
    value = spec.get("value")
    if spec.get("type") == "float" and isinstance(value, int | float):
        return float(value)
    return value


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
    shards: list[tuple[KapacitorClient, list[str]]],
    interval: float = 2.0,
    should_stop: Callable[[], bool] = lambda: False,
    on_restart: Callable[[list[str]], None] | None = None,
    on_check: Callable[[], None] | None = None,
) -> None:
    """Check each shard's tasks every `interval` seconds and restart stopped ones, until told
    to stop.

    `on_check` runs after every check, whatever its outcome. No error ends the loop:
    a check, restart or callback that raises is logged in one line and tried again at
    the next round.
    """
    while not should_stop():
        restarted = [task_id for client, task_ids in shards
                     for task_id in _survive("checking the tasks", restart_stopped_tasks,
                                             client, task_ids) or []]
        if restarted and on_restart is not None:
            _survive("handling the restart", on_restart, restarted)
        if on_check is not None:
            _survive("the check's follow-up", on_check)
        time.sleep(interval)


def _survive(what: str, step: Callable[..., T], *args: Any) -> T | None:
    """Run `step(*args)`; on any error log one line and return None (the watchdog goes on)."""
    try:
        return step(*args)
    except Exception as exc:  # a watchdog that dies leaves tasks stopped and gaps unscored
        log.warning("watchdog: %s failed, will retry: %s", what, error_line(exc))
        return None


def error_line(exc: BaseException, limit: int = ERROR_LINE_CHARACTERS) -> str:
    """`exc` as one short log line: its type and message, whitespace collapsed, cut at `limit`."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= limit else text[:limit - 3] + "..."
