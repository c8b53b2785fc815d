"""`tickml udf`: the unix-socket server Kapacitor connects to, one handler per connection."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import stat
import threading
from pathlib import Path

from tickml.udf.handler import ConnectionHandler
from tickml.udf.options import ScoringOptions

log = logging.getLogger(__name__)
#: Kapacitor may run as another user (the official image's `kapacitor` user):
#: connecting to a unix socket needs write permission on it.
SOCKET_MODE = 0o666
BACKLOG = 64


class SocketInUse(RuntimeError):
    """Another process is already listening on the socket path."""


class AgentServer:
    """Accepts Kapacitor connections on a unix socket and serves each in a thread."""

    def __init__(self, path: Path, defaults: ScoringOptions) -> None:
        self.path = Path(path)
        self.defaults = defaults
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
        os.chmod(self.path, SOCKET_MODE)
        listener.listen(BACKLOG)
        self._listener = listener
        log.info("listening on %s", self.path)

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
        handler = ConnectionHandler(conn, self.defaults, name=f"conn-{self._connections}")
        thread = threading.Thread(target=self._run_handler, args=(handler,),
                                  name=handler.name, daemon=True)
        self._handlers.add(thread)
        thread.start()

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


def run_agent(path: Path, defaults: ScoringOptions, ready: threading.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT; used by `tickml udf`."""
    server = AgentServer(path, defaults)
    server.bind()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.stop())
    if ready is not None:
        ready.set()
    server.serve_forever()
