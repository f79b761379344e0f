"""Watching what a model sees: observers of input rows and outputs, fed in batches.

Counting out-of-range inputs, profiling live traffic for drift, shadow-scoring a candidate
model: each is an :class:`Observer` attached to a :class:`~m7_runtime.Model`. Observing must
cost the single-row hot path next to nothing, so ``predict_one`` only queues its float32 row
and its output (a few hundred nanoseconds) and the queue is delivered to the observers as
one batch every :data:`BATCH_ROWS` rows, or when :meth:`Observers.flush` is called (before
a report is read). Batch predictions are delivered whole, to observers whose ``batches``
attribute is not False. An observer with a ``rebind(manifest)`` method is told when a live
reload swapped the model. An observer that raises is logged: watching never makes a
prediction fail.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

log = logging.getLogger("m7_runtime")

#: predict_one rows queued before they are delivered to the observers
BATCH_ROWS = 4096


class Observer(Protocol):
    """Receives what a model predicted on: ``rows`` float32 ``(n, n_features)`` in model order after
    the caller policy, ``outputs`` float32 ``(n,)`` or ``(n, k)`` as returned (after any clamp)."""

    def observe(self, rows: np.ndarray, outputs: np.ndarray) -> None: ...


class Observers:
    """One model's observers and ``predict_one``'s queue of rows waiting for them (thread-safe, bounded)."""

    def __init__(self, n_features: int, n_outputs: int, name: str) -> None:
        self._n = n_features
        self._k = n_outputs
        self._name = name
        self._lock = threading.Lock()
        self._list: tuple[Observer, ...] = ()
        self.active = False  # read on the hot path: any observer attached?
        self.batch_active = False  # any observer of batch predictions?
        self.pending: deque[tuple[bytes, Any]] = deque()
        self.batch_rows = BATCH_ROWS  # queued rows delivered at once (predict_one reads it too)

    def add(self, observer: Observer) -> None:
        with self._lock:
            self._set((*self._list, observer))

    def remove(self, observer: Observer) -> None:
        self.flush()
        with self._lock:
            self._set(tuple(o for o in self._list if o is not observer))

    def _set(self, observers: tuple[Observer, ...]) -> None:
        self._list = observers
        self.active = bool(observers)
        self.batch_active = any(getattr(o, "batches", True) for o in observers)

    def __iter__(self):
        return iter(self._list)

    def push(self, row: bytes, output: Any) -> None:
        """Queue one ``predict_one`` row (its float32 bytes) and output; deliver when the batch is full."""
        pending = self.pending
        pending.append((row, output))
        if len(pending) >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        """Deliver every queued row now."""
        with self._lock:
            taken = [self.pending.popleft() for _ in range(len(self.pending))]
            if not taken:
                return
            rows = np.frombuffer(b"".join(r for r, _ in taken), dtype=np.float32).reshape(len(taken), self._n)
            outs = [o for _, o in taken]
            if self._k == 1:
                outputs = np.asarray(outs, dtype=np.float32)
            else:
                outputs = np.frombuffer(b"".join(outs), dtype=np.float32).reshape(len(taken), self._k)
            self._deliver(rows, outputs)

    def deliver(self, rows: np.ndarray, outputs: np.ndarray) -> None:
        """Hand a whole batch to the observers (queued single rows first, to keep their order)."""
        if self.pending:
            self.flush()
        with self._lock:
            self._deliver(rows, outputs, batch=True)

    def drop_pending(self) -> None:
        with self._lock:
            self.pending.clear()

    def _deliver(self, rows: np.ndarray, outputs: np.ndarray, *, batch: bool = False) -> None:
        for observer in self._list:
            if batch and getattr(observer, "batches", True) is False:
                continue
            try:
                observer.observe(rows, outputs)
            except Exception:
                log.exception("%s: observer %r failed; the predictions were not affected", self._name, observer)


def range_bounds(features: Sequence[str], split_ranges: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the band outside which an input counts as out of range (never rejected).

    The split thresholds are all the model knows of its training data, and a normal value
    often lies beyond the outermost one (a 0/1 flag's only threshold is 1.0). So the band is
    the threshold range widened on each side by its width or the thresholds' magnitude,
    whichever is larger: it flags inputs far from anything the trees tell apart (a price in
    cents, minutes given as seconds), not the ordinary tails.
    """
    lo = np.full(len(features), -np.inf, np.float32)
    hi = np.full(len(features), np.inf, np.float32)
    for i, f in enumerate(features):
        if f in split_ranges:
            a, b = split_ranges[f].min, split_ranges[f].max
            pad = max(b - a, abs(a), abs(b)) or 1.0
            lo[i], hi[i] = a - pad, b + pad
    return lo, hi


class RangeCounter:
    """Counts, per feature, single-row inputs far outside the split thresholds (:func:`range_bounds`).

    Single rows only (``batches = False``): a bot's live inputs are what it is for, and a
    1M-row backtest would pay for the comparison on every cell.
    """

    batches = False

    def __init__(self, features: Sequence[str], split_ranges: Mapping[str, Any], name: str) -> None:
        self.features = tuple(features)
        self.name = name
        self.lo, self.hi = range_bounds(self.features, split_ranges)
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def rebind(self, split_ranges: Mapping[str, Any]) -> None:
        """New bounds after a reload (same features); the counts so far are kept."""
        self.lo, self.hi = range_bounds(self.features, split_ranges)

    @property
    def tracks(self) -> bool:
        """Does any feature have a bound (a model without splits counts nothing)?"""
        return bool(np.isfinite(self.lo).any() or np.isfinite(self.hi).any())

    def observe(self, rows: np.ndarray, outputs: np.ndarray) -> None:
        outside = (rows < self.lo) | (rows > self.hi)
        counts = outside.sum(axis=0)
        with self._lock:
            for i in np.flatnonzero(counts):
                f = self.features[i]
                self._counts[f] = self._counts.get(f, 0) + int(counts[i])
        if log.isEnabledFor(logging.DEBUG):
            for row in outside:
                if row.any():
                    names = [self.features[i] for i in np.flatnonzero(row)]
                    log.debug("%s: input outside the training split range for %s", self.name, names)

    def counts(self) -> dict[str, int]:
        """A copy, taken under the lock (another thread may be counting)."""
        with self._lock:
            return dict(self._counts)

    def reset(self, value: Mapping[str, int] | None = None) -> None:
        with self._lock:
            self._counts = dict(value or {})

    def __repr__(self) -> str:
        return f"<RangeCounter {self.name}>"
