"""`tickml udf`: the unix-socket server Kapacitor connects to, one handler per connection.

Whoever can connect can make the agent post to the model API, so the socket is
readable and writable by the agent's user and group only (`SOCKET_MODE`), optionally
given to a group shared with Kapacitor (`AgentLimits.socket_group`), and at most
`AgentLimits.max_connections` connections are served at once.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import signal
import socket
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

from tickml.config import Settings
from tickml.udf import udf_pb2
from tickml.udf.framing import encode_frame
from tickml.udf.handler import ConnectionHandler
from tickml.udf.options import ScoringOptions

log = logging.getLogger(__name__)
#: Connecting to a unix socket needs write permission on it: the agent's user and
#: group may, nobody else. Kapacitor running as another user joins that group.
SOCKET_MODE = 0o660
BACKLOG = 64
#: Seconds to spend telling a refused connection why.
REFUSAL_TIMEOUT = 1.0


@dataclass(frozen=True)
class AgentLimits:
    """Who may use the agent, and how much of it.

    Args:
        max_connections: connections served at once; more are refused and logged.
        allowed_urls: API URLs a task's `.url()` may name beside the agent's own.
        socket_group: group name or gid given the socket; empty keeps the agent's group.
    """

    max_connections: int = Settings.udf_max_connections
    allowed_urls: tuple[str, ...] = ()
    socket_group: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> AgentLimits:
        """The limits of TICKML_UDF_MAX_CONNECTIONS, _ALLOWED_URLS and _SOCKET_GROUP."""
        urls = tuple(url.strip() for url in settings.udf_allowed_urls.split(",") if url.strip())
        return cls(settings.udf_max_connections, urls, settings.udf_socket_group)


class SocketSetupError(RuntimeError):
    """The socket cannot be created as configured (an unknown group, for one)."""


class SocketInUse(RuntimeError):
    """Another process is already listening on the socket path."""


class AgentServer:
    """Accepts Kapacitor connections on a unix socket and serves each in a thread."""

    def __init__(self, path: Path, defaults: ScoringOptions,
                 limits: AgentLimits | None = None) -> None:
        if limits is not None and limits.max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, got {limits.max_connections}")
        self.path = Path(path)
        self.defaults = defaults
        self.limits = limits or AgentLimits()
        self._listener: socket.socket | None = None
        self._stopping = threading.Event()
        self._handlers: set[threading.Thread] = set()
        self._connections = 0

    def bind(self) -> None:
        """Create the socket file (replacing a stale one) and start listening."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_socket(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        try:
            # Before listen(): until then every connect() is refused, whatever the mode.
            self._restrict_socket()
        except BaseException:
            listener.close()
            self.path.unlink(missing_ok=True)
            raise
        listener.listen(BACKLOG)
        self._listener = listener
        log.info("listening on %s", self.path)

    def _restrict_socket(self) -> None:
        if self.limits.socket_group:
            gid = group_id(self.limits.socket_group)
            try:
                os.chown(self.path, -1, gid)
            except PermissionError:
                raise SocketSetupError(
                    f"cannot give {self.path} to group {self.limits.socket_group!r}: the "
                    "agent's user is not a member of it") from None
        os.chmod(self.path, SOCKET_MODE)

    def serve_forever(self) -> None:
        """Accept connections until `stop()` is called."""
        if self._listener is None:
            self.bind()
        try:
            while not self._stopping.is_set():
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                self._start_handler(conn)
        finally:
            self._close_listener()

    def _start_handler(self, conn: socket.socket) -> None:
        self._connections += 1
        name = f"conn-{self._connections}"
        if len(self._handlers) >= self.limits.max_connections:
            self._refuse(conn, name)
            return
        handler = ConnectionHandler(conn, self.defaults, name=name,
                                    allowed_urls=self.limits.allowed_urls)
        thread = threading.Thread(target=self._run_handler, args=(handler,),
                                  name=handler.name, daemon=True)
        self._handlers.add(thread)
        thread.start()

    def _refuse(self, conn: socket.socket, name: str) -> None:
        """Tell the client why (Kapacitor shows it as the task's error) and close."""
        message = (f"the agent serves at most {self.limits.max_connections} connections "
                   "at once (TICKML_UDF_MAX_CONNECTIONS)")
        log.warning("%s: refused: %s", name, message)
        response = udf_pb2.Response()
        response.error.error = message
        with contextlib.suppress(OSError):
            conn.settimeout(REFUSAL_TIMEOUT)
            conn.sendall(encode_frame(response))
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()

    @property
    def open_connections(self) -> int:
        """Connections being served now."""
        return len(self._handlers)

    def _run_handler(self, handler: ConnectionHandler) -> None:
        try:
            handler.run()
        except Exception:  # one connection's bug must not take the others down
            log.exception("%s: handler failed", handler.name)
        finally:
            self._handlers.discard(threading.current_thread())

    def stop(self) -> None:
        """Stop accepting; connections already open finish on their own."""
        self._stopping.set()
        if self._listener is not None:
            # shutdown wakes the thread blocked in accept(); close alone may not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        try:
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()
        except FileNotFoundError:
            pass
        log.info("stopped listening on %s", self.path)


def _remove_stale_socket(path: Path) -> None:
    """Unlink a socket file nobody listens on; refuse if an agent still answers."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise SocketInUse(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)
        log.info("removed stale socket %s", path)
        return
    finally:
        probe.close()
    raise SocketInUse(f"another agent is already listening on {path}")


def group_id(group: str) -> int:
    """The gid of a group given by name or number.

    Raises:
        SocketSetupError: no such group.
    """
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise SocketSetupError(f"no group named {group!r} (TICKML_UDF_SOCKET_GROUP)") from None


def run_agent(path: Path, defaults: ScoringOptions, ready: threading.Event | None = None,
              limits: AgentLimits | None = None) -> None:
    """Serve until SIGTERM or SIGINT; used by `tickml udf`."""
    server = AgentServer(path, defaults, limits)
    server.bind()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    if ready is not None:
        ready.set()
    server.serve_forever()
