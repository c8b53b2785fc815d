"""The model a worker serves, swapped without downtime when production changes.

Each worker process holds one `ModelHolder`. A request asks it for the current model
once and keeps that reference to the end, so a swap never affects a request in flight.
At most every `reload_interval` seconds one request thread stats the production pointer
(`production.json`, replaced atomically by the registry, so a new inode means a new
promotion); only when it changed is the named model loaded, verified and smoke-tested.
A model that fails any step is refused: the old one keeps serving and the reason is
logged and reported by `/ready`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tickml.loader import LoadedModel, load
from tickml.registry import POINTER, ModelRegistry, RegistryError

log = logging.getLogger(__name__)
_UNSEEN = object()  # the pointer signature before the first check
# An absolute path in a message: a slash not preceded by a word character, up to the
# next space, quote or punctuation that ends a sentence.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~-])/[^\s'\"`,;()]+")


@dataclass(frozen=True)
class Refusal:
    """A production model this worker would not swap to, and why."""

    model: str
    reason: str
    at: str


class ModelHolder:
    """The current model of one worker, reloaded when the production pointer changes.

    Args:
        models_dir: the registry root.
        reload_interval: least number of seconds between two looks at the pointer.
        on_change: called with each newly loaded model (metrics use it).
        on_refuse: called after each refused model.
        clock: monotonic clock, replaceable in tests.
        verification_split: the prepared test split, which checks a compiled scorer
            built at load (see `tickml.loader.load`).
    """

    def __init__(self, models_dir: Path, reload_interval: float,
                 on_change: Callable[[LoadedModel], None] | None = None,
                 on_refuse: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 verification_split: Path | None = None) -> None:
        self.registry = ModelRegistry(models_dir)
        self.verification_split = verification_split
        self.reload_interval = reload_interval
        self._on_change = on_change
        self._on_refuse = on_refuse
        self._clock = clock
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._signature: object = _UNSEEN
        self._next_check = 0.0
        self.loaded_at: str | None = None
        self.problem: str | None = None  # why there is no model at all
        self.refusal: Refusal | None = None

    def current(self) -> LoadedModel | None:
        """The model to serve this request with; looks for a new one when due."""
        if self._clock() >= self._next_check:
            self.refresh()
        return self._model

    def refresh(self, wait: bool = False) -> None:
        """Look at the pointer and swap to the model it names if that changed.

        Args:
            wait: block until another thread's check is done instead of skipping.
        """
        # One thread checks; the others keep serving the current model meanwhile.
        if not self._lock.acquire(blocking=wait):
            return
        try:
            self._next_check = self._clock() + self.reload_interval
            signature = self._pointer_signature()
            if signature != self._signature:
                self._signature = signature
                self._follow_pointer()
        finally:
            self._lock.release()

    def status(self) -> dict[str, Any]:
        """What `/ready` reports: the model served, or why none is, and any refusal.

        Names and versions only: paths are shown relative to the registry's folder,
        and no process id is given away.
        """
        model = self._model
        refusal = self.refusal
        return {
            "status": "ready" if model is not None else "not_ready",
            "model": None if model is None else model.summary(),
            "loaded_at": self.loaded_at,
            "reason": self._public(self.problem) if model is None else None,
            "refused": None if refusal is None else {
                **vars(refusal), "reason": self._public(refusal.reason)},
        }

    def _public(self, text: str | None) -> str | None:
        """`text` with the registry root as its folder name and other paths cut to names."""
        if text is None:
            return None
        root = self.registry.root
        for absolute in {str(root.resolve()), str(root.absolute())}:
            text = text.replace(absolute, root.name)
        return _ABSOLUTE_PATH.sub(lambda match: Path(match.group()).name, text)

    def _pointer_signature(self) -> tuple[int, int, int] | None:
        try:
            # lstat: a link as pointer is the registry's to refuse, not a reason to crash.
            stat = (self.registry.root / POINTER).lstat()
        except OSError:  # missing or unreadable: the registry says which when it is read
            return None
        return (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _follow_pointer(self) -> None:
        try:
            ref = self.registry.production()
        except RegistryError as exc:
            self._refuse("production pointer", str(exc))
            return
        if ref is None:
            if self._model is None:
                self.problem = (f"no production model in {self.registry.root} yet; it is "
                                "picked up as soon as one is promoted")
            else:  # the pointer vanished: serving on beats serving nothing
                log.warning("the production pointer disappeared; still serving %s",
                            self._model.ref)
            return
        if self._model is not None and ref == self._model.ref:
            self.refusal = None  # back to the model in service: nothing is refused any more
            return
        try:
            model = load(self.registry, ref, verification_split=self.verification_split)
            model.check()
        except Exception as exc:  # any failure means this model must not serve
            self._refuse(str(ref), str(exc))
            return
        self._swap(model)

    def _swap(self, model: LoadedModel) -> None:
        previous = self._model
        self._model = model  # one reference assignment: atomic for every reader
        self.loaded_at = _now()
        self.problem = None
        self.refusal = None
        scoring = model.scoring
        log.info("serving %s (threshold %.4f, %s path: %s)%s", model.ref, model.threshold,
                 scoring["path"], scoring.get("reason") or scoring.get("source"),
                 "" if previous is None else f", replacing {previous.ref}")
        if self._on_change is not None:
            self._on_change(model)

    def _refuse(self, what: str, reason: str) -> None:
        self.refusal = Refusal(what, reason, _now())
        if self._model is None:
            self.problem = f"{what} was refused: {reason}"
        keeping = "nothing" if self._model is None else str(self._model.ref)
        log.error("refused %s, still serving %s: %s", what, keeping, reason)
        if self._on_refuse is not None:
            self._on_refuse()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
