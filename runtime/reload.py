"""Live reload: a replaced artifact is noticed by a stat, verified in full, then swapped in whole.

A bot runs for weeks while CI retrains and redeploys its models. With ``reload_seconds=N``
(or ``M7_RELOAD_SECONDS=N`` for the drop-ins) one background thread per process looks at
each watched model's files every N seconds: a ``stat`` of the manifest and of each ONNX
file it names (size, modification time, inode), never a hash per call, and nothing at all
on the prediction path. When they changed, the model re-reads and fully verifies the new
artifact (schema, hashes, contract, the same features, a probe prediction) and only then
replaces its state in one assignment: a prediction uses either the old state or the new
one, never a mix. A bad replacement (half-copied, hash mismatch, other features) is logged
once and the last good model keeps serving; the next change is tried again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("m7_runtime")

Signature = tuple[tuple[str, int, int, int], ...]


class Reloadable(Protocol):
    reload_seconds: float | None

    def reload_if_changed(self) -> bool: ...


def signature(paths: list[Path]) -> Signature:
    """What a stat says about each file: (name, size, mtime_ns, inode); -1s for a missing file."""
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((p.name, st.st_size, st.st_mtime_ns, st.st_ino))
        except OSError:
            out.append((p.name, -1, -1, -1))
    return tuple(out)


def env_seconds(value: Any) -> float | None:
    """``M7_RELOAD_SECONDS``: a positive number of seconds, or None (unset, empty, 0 or not a number)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        log.warning("M7_RELOAD_SECONDS=%r is not a number of seconds; live reload is off", value)
        return None
    return seconds if seconds > 0 else None


class Watcher:
    """The process's one reload thread: wakes at the shortest interval and checks the models that are due."""

    def __init__(self) -> None:
        self._models: weakref.WeakSet[Any] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()

    def watch(self, model: Reloadable) -> None:
        with self._lock:
            self._models.add(model)
            if self._thread is None or not self._thread.is_alive() or self._pid != os.getpid():
                self._pid = os.getpid()  # after a fork the thread did not come along
                self._thread = threading.Thread(target=self._loop, name="m7_runtime-reload", daemon=True)
                self._thread.start()
        self._wake.set()

    def unwatch(self, model: Reloadable) -> None:
        with self._lock:
            self._models.discard(model)

    def _loop(self) -> None:
        due: dict[int, float] = {}  # id(model) -> when it is next checked
        while True:
            self._wake.clear()
            with self._lock:
                models = list(self._models)
            now = time.monotonic()
            for m in models:
                seconds = m.reload_seconds
                if not seconds:
                    continue
                if due.setdefault(id(m), now + seconds) <= now:
                    due[id(m)] = now + seconds
                    try:
                        m.reload_if_changed()
                    except Exception:  # never let the thread die: it is the only one watching
                        log.exception("live reload of %r failed; it keeps serving the model it has", m)
            live = {id(m) for m in models}
            due = {k: v for k, v in due.items() if k in live}
            self._wake.wait(max(0.01, min(due.values(), default=now + 60) - time.monotonic()))


WATCHER = Watcher()
