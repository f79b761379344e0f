"""Feature and prediction drift: live traffic counted into the reference bins, compared by PSI.

The artifact's reference profile (:mod:`m7_runtime.profile`) holds, per feature and for the
output, quantile bins of the reference data and the fraction of it in each bin (missing
apart). A :class:`LiveProfile` is an observer of a model's prediction paths: it counts the
rows and outputs it is given into the same bins, and :meth:`LiveProfile.report` compares
the live fractions with the reference ones by the population stability index.

Cost is what decides the design (measured by ``python -m benchmarks.monitoring``):

* counting is vectorised per batch (:class:`~m7_runtime.profile.Binner`), never per row;
* batches below :data:`BUFFER_ROWS` rows are copied into a small queue and counted together
  (one numpy pass over many small batches instead of ~20 numpy calls per batch);
* a batch of more than :data:`FULL_ROWS` rows is counted on a deterministic sample:
  ``FULL_ROWS`` rows plus one in :data:`STRIDE` of the rest, evenly spaced over the batch
  (:func:`sample_rows`; 35,000 of a 1M-row batch). Counting costs ~0.1 µs per row (18
  features), a large batch prediction ~1 µs per row, so counting every row would take ~10%
  of batch throughput, twice the 5% allowed; the sample takes well under 1%. A PSI from
  35,000 rows is as good as from a million for these thresholds (its noise is about
  (bins - 1) / rows counted, ~0.0003). ``rows`` in the report counts the rows binned,
  ``seen`` all rows observed. ``stride=1`` counts every row (``m7onnx drift`` does: it is
  an offline analysis).

Memory is bounded: the counts are a fixed array, the queue holds at most
``BUFFER_ROWS`` rows. Thread-safe: counting happens outside the lock, adding under it.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import M7Error
from .profile import Binner, Histogram, ReferenceProfile, prediction_values

#: PSI levels, the usual conventions: below 0.1 stable, 0.1 to 0.25 watch, above 0.25 drifted
STABLE_BELOW, DRIFTED_ABOVE = 0.1, 0.25
LEVELS = ("stable", "watch", "drifted")
#: a bin empty on one side counts as this fraction, so the PSI stays finite (a common choice)
EPSILON = 1e-4
#: batches smaller than this are queued and counted together (~60 µs of fixed cost per count, ~0.1 µs per row)
BUFFER_ROWS = 4096
#: batches up to this many rows are counted whole (predict_one delivers its rows in batches of this size)
FULL_ROWS = 4096
#: larger batches: FULL_ROWS rows plus one in STRIDE of the rest, evenly spaced, are counted
STRIDE = 32


def no_reference_error(name: str, path: Any = None) -> M7Error:
    """What to do about a model without a reference profile."""
    folder = path.parent if path is not None else "DIR"
    return M7Error(
        f"{name} has no reference profile to compare with; convert it with one: m7onnx convert SOURCE "
        f"--out-dir {folder} --reference DATA (Parquet, CSV or JSONL with the model's feature columns, "
        "e.g. its training data)"
    )


def psi(reference: Histogram, live: Histogram) -> float:
    """Population stability index of ``live`` against ``reference`` over the same bins, missing included.

    ``sum((a - e) * ln(a / e))`` over bins, with an empty bin on one side taken as
    :data:`EPSILON`; bins empty on both sides add nothing.
    """
    total = 0.0
    for e, a in zip((*reference.fractions, reference.missing), (*live.fractions, live.missing), strict=True):
        if e == 0.0 and a == 0.0:
            continue
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def level(value: float | None) -> str:
    """A PSI's level: "stable" below 0.1, "watch" to 0.25, "drifted" above; "no data" for an empty window."""
    if value is None:
        return "no data"
    if value < STABLE_BELOW:
        return "stable"
    return "watch" if value <= DRIFTED_ABOVE else "drifted"


@dataclass(frozen=True)
class DriftReport:
    """A window of live traffic against a model's reference profile.

    ``features``: feature name -> PSI (None while the window is empty), in model order;
    ``prediction``: PSI of the output; ``levels``: feature name -> level (:func:`level`);
    ``rows``: rows counted in the window, ``seen``: rows observed (more than ``rows`` when
    large batches were sampled); ``out_of_range``: per feature, inputs far outside the
    split thresholds (``Model.out_of_range``). ``live`` holds the window's fractions in the
    reference bins (for plots).
    """

    name: str
    rows: int
    seen: int
    features: Mapping[str, float | None]
    prediction: float | None
    reference: ReferenceProfile
    live: Mapping[str, Histogram]
    live_prediction: Histogram
    out_of_range: Mapping[str, int] = field(default_factory=dict)

    @property
    def levels(self) -> dict[str, str]:
        return {f: level(v) for f, v in self.features.items()}

    @property
    def prediction_level(self) -> str:
        return level(self.prediction)

    def drifted(self, at: str = "drifted") -> list[str]:
        """Features at level ``at`` ("watch" or "drifted"), largest PSI first."""
        return sorted((f for f, lv in self.levels.items() if lv == at), key=lambda f: -(self.features[f] or 0.0))

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "seen": self.seen,
            "reference_rows": self.reference.rows,
            "features": dict(self.features),
            "levels": self.levels,
            "prediction": self.prediction,
            "prediction_level": self.prediction_level,
            "out_of_range": dict(self.out_of_range),
        }


def sample_rows(n: int, full_rows: int, stride: int) -> np.ndarray:
    """The rows of an ``n``-row batch that are counted: ``full_rows`` plus one in ``stride`` of the rest,
    evenly spaced over the whole batch (deterministic; no part of the batch is favoured)."""
    size = full_rows + (n - full_rows) // stride
    return np.arange(size, dtype=np.int64) * n // size


class LiveProfile:
    """An observer that counts a model's inputs and outputs into its reference bins.

    ``observe(rows, outputs)``: rows float32 ``(n, n_features)`` in model order after the
    caller policy, outputs ``(n,)`` or ``(n, k)`` after the clamp, as the model's prediction
    paths deliver them. ``report(reset=...)`` returns a :class:`DriftReport`.
    """

    def __init__(
        self,
        reference: ReferenceProfile,
        features: Sequence[str],
        *,
        name: str = "",
        stride: int = STRIDE,
        full_rows: int = FULL_ROWS,
        buffer_rows: int = BUFFER_ROWS,
    ) -> None:
        reference.check(features, name or "model")
        if stride < 1 or full_rows < 1 or buffer_rows < 0:
            raise M7Error("stride and full_rows must be at least 1, buffer_rows at least 0")
        self.name = name
        self.stride, self.full_rows, self.buffer_rows = stride, full_rows, min(buffer_rows, full_rows)
        self._lock = threading.Lock()
        self._bind(reference, features)

    def _bind(self, reference: ReferenceProfile, features: Sequence[str]) -> None:
        self.reference = reference
        self.features = tuple(features)
        self._x = Binner([reference.features[f].edges for f in self.features])
        self._y = Binner([reference.prediction.edges])
        with self._lock:
            self._queue: list[tuple[np.ndarray, np.ndarray]] = []
            self._queued = 0
            self._reset_counts()

    def rebind(self, manifest: Any) -> None:
        """After a live reload: a new reference profile (new bins) starts a new window; the same one keeps it.
        A manifest without a profile keeps the old bins (``Model.drift`` then refuses to report)."""
        ref = manifest.reference
        if ref is not None and (ref != self.reference or tuple(manifest.features) != self.features):
            ref.check(manifest.features, self.name or "model")
            self._bind(ref, manifest.features)

    def _reset_counts(self) -> None:
        self._xc = np.zeros((len(self.features), self._x.width), dtype=np.int64)
        self._yc = np.zeros((1, self._y.width), dtype=np.int64)
        self._rows = 0
        self._seen = 0

    # ---- the observer -------------------------------------------------------------------------
    def observe(self, rows: np.ndarray, outputs: np.ndarray) -> None:
        n = len(rows)
        if n == 0:
            return
        if rows.ndim != 2 or rows.shape[1] != len(self.features):
            raise M7Error(f"{self.name}: observed rows of shape {rows.shape}, expected (n, {len(self.features)})")
        if n < self.buffer_rows:
            with self._lock:
                y = prediction_values(outputs, self.reference.prediction_of).copy()
                self._queue.append((np.array(rows, dtype=np.float32), y))
                self._queued += n
                self._seen += n
                if self._queued < self.buffer_rows:
                    return
                rows, y = self._take_queue()
            self._count(rows, y, seen=0)
            return
        y = prediction_values(outputs, self.reference.prediction_of)
        if n > self.full_rows and self.stride > 1:
            take = sample_rows(n, self.full_rows, self.stride)
            rows, y = rows[take], y[take]
        self._count(rows, y, seen=n)

    def _take_queue(self) -> tuple[np.ndarray, np.ndarray]:
        """The queued rows as one batch (caller holds the lock)."""
        rows = np.concatenate([r for r, _ in self._queue])
        y = np.concatenate([y for _, y in self._queue])
        self._queue.clear()
        self._queued = 0
        return rows, y

    def _count(self, rows: np.ndarray, y: np.ndarray, *, seen: int) -> None:
        x = rows if rows.dtype == np.float32 else rows.astype(np.float32)
        xc = self._x.counts(x)
        yc = self._y.counts(np.asarray(y, dtype=np.float32).reshape(-1, 1))
        with self._lock:
            self._xc += xc
            self._yc += yc
            self._rows += len(x)
            self._seen += seen

    # ---- reading --------------------------------------------------------------------------------
    def flush(self) -> None:
        """Count the queued rows now."""
        with self._lock:
            if not self._queued:
                return
            rows, y = self._take_queue()
        self._count(rows, y, seen=0)

    def report(self, *, reset: bool = False, out_of_range: Mapping[str, int] | None = None) -> DriftReport:
        """The current window against the reference; ``reset=True`` starts a new window."""
        self.flush()
        with self._lock:
            xc, yc, rows, seen = self._xc.copy(), self._yc.copy(), self._rows, self._seen
            if reset:
                self._reset_counts()
        live = dict(zip(self.features, self._x.histograms(xc), strict=True))
        live_y = self._y.histograms(yc)[0]
        ref = self.reference
        return DriftReport(
            name=self.name,
            rows=rows,
            seen=seen,
            features={f: psi(ref.features[f], live[f]) if rows else None for f in self.features},
            prediction=psi(ref.prediction, live_y) if rows else None,
            reference=ref,
            live=live,
            live_prediction=live_y,
            out_of_range=dict(out_of_range or {}),
        )
