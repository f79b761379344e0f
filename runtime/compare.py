"""How far two sets of predictions for the same rows are apart: the numbers behind A/B comparisons.

``m7onnx verify`` shows them when a source model was retrained (how much the new model moves
the predictions), and model-version comparisons (``diff``, shadow scoring) report the same
fields, so a number means the same thing wherever it appears.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import M7Error


@dataclass(frozen=True)
class Moved:
    """One row whose prediction moved the most: its position (or id) and both values."""

    row: Any
    old: float | tuple[float, ...]
    new: float | tuple[float, ...]
    abs_diff: float


@dataclass(frozen=True)
class Comparison:
    """``old`` vs ``new`` predictions on ``rows`` rows.

    ``flips``: rows whose decision differs: at ``threshold`` for one output per row
    (``old >= t`` vs ``new >= t``), the arg-max class for several; None when no threshold
    applies (a regressor without one). ``correlation`` is Pearson's over all values (None when
    either side is constant).
    """

    rows: int
    max_abs_diff: float
    mean_abs_diff: float
    correlation: float | None
    flips: int | None
    threshold: float | None
    moved_most: tuple[Moved, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_abs_diff": self.max_abs_diff,
            "mean_abs_diff": self.mean_abs_diff,
            "correlation": self.correlation,
            "flips": self.flips,
            "threshold": self.threshold,
            "moved_most": [
                {"row": _jsonable(m.row), "old": m.old, "new": m.new, "abs_diff": m.abs_diff} for m in self.moved_most
            ],
        }


def _jsonable(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _value(row: np.ndarray) -> float | tuple[float, ...]:
    return float(row) if row.ndim == 0 else tuple(float(v) for v in row)


def compare_outputs(
    old: np.ndarray, new: np.ndarray, *, threshold: float | None = None, ids: Any = None, top: int = 10
) -> Comparison:
    """Compare two models' predictions for the same rows (``(n,)`` or ``(n, k)`` each).

    Differences are taken in float64 of the float32 outputs, so equal predictions give
    exactly 0. ``ids`` (one per row, e.g. an id column) names the rows in ``moved_most``.
    """
    running = RunningComparison(threshold=threshold, top=top)
    running.add(old, new, ids=ids)
    return running.result()


class RunningComparison:
    """:func:`compare_outputs` over a stream of batches, in bounded memory and thread-safe.

    ``m7onnx diff`` feeds it a file batch by batch and shadow scoring feeds it the served
    batches; both report the numbers ``compare_outputs`` gives on all rows at once: the
    maximum, flips and rows moved most exactly, the mean as a sum over batches, and the
    correlation from merged centred moments (Chan et al.), equal to one pass up to rounding.
    Rows without ids are numbered in the order they were added.
    """

    def __init__(self, *, threshold: float | None = None, top: int = 10) -> None:
        self.threshold = threshold
        self.top = top
        self._lock = threading.Lock()
        self._width: int | None = None  # values per row, fixed by the first batch
        self._rows = 0
        self._values = 0
        self._sum = 0.0
        self._max = 0.0
        self._flips = 0
        self._moments = (0, 0.0, 0.0, 0.0, 0.0, 0.0)  # n, mean x, mean y, M2 x, M2 y, co-moment
        self._moved: list[tuple[float, int, Moved]] = []

    @property
    def multi(self) -> bool:
        return self._width is not None and self._width > 1

    def add(self, old: np.ndarray, new: np.ndarray, *, ids: Any = None) -> None:
        a, b = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
        if a.shape != b.shape:
            raise M7Error(f"cannot compare predictions of shapes {a.shape} and {b.shape}")
        n = len(a)
        width = 1 if a.ndim < 2 else a.shape[1]
        diff = np.abs(a - b)
        same = (a == b) | (np.isnan(a) & np.isnan(b))
        diff = np.where(same, 0.0, np.nan_to_num(diff, nan=np.inf))
        per_row = diff.reshape(n, -1).max(axis=1) if n else np.zeros(0)
        if width > 1:
            flips = int(np.count_nonzero(a.argmax(axis=1) != b.argmax(axis=1))) if n else 0
        elif self.threshold is not None:
            flips = int(np.count_nonzero((a.reshape(n) >= self.threshold) != (b.reshape(n) >= self.threshold)))
        else:
            flips = 0
        moments = _moments(a, b)
        order = np.argsort(-per_row, kind="stable")[: self.top]
        labels = None if ids is None else np.asarray(ids)
        if labels is not None and len(labels) != n:
            raise M7Error(f"{len(labels)} ids for {n} rows")
        with self._lock:
            if self._width is None:
                self._width = width
            elif width != self._width and n:
                raise M7Error(f"cannot compare {width} values per row with the {self._width} added before")
            base = self._rows
            moved = [
                (
                    -float(per_row[i]),
                    base + int(i),
                    Moved(
                        _jsonable(labels[i]) if labels is not None else base + int(i),
                        _value(a[i]),
                        _value(b[i]),
                        float(per_row[i]),
                    ),
                )
                for i in order
                if per_row[i] > 0
            ]
            self._moved = sorted(self._moved + moved, key=lambda m: m[:2])[: self.top]
            self._rows += n
            self._values += diff.size
            self._sum += float(diff.sum())
            self._max = max(self._max, float(per_row.max(initial=0.0)))
            self._flips += flips
            self._moments = _merge(self._moments, moments)

    def result(self) -> Comparison:
        with self._lock:
            n, _, _, m2x, m2y, cxy = self._moments
            multi = self.multi
            threshold = None if multi else self.threshold
            return Comparison(
                rows=self._rows,
                max_abs_diff=self._max,
                mean_abs_diff=self._sum / self._values if self._values else 0.0,
                correlation=float(cxy / math.sqrt(m2x * m2y)) if n >= 2 and m2x > 0 and m2y > 0 else None,
                flips=self._flips if multi or threshold is not None else None,
                threshold=threshold,
                moved_most=tuple(m for _, _, m in self._moved),
            )


_Moments = tuple[int, float, float, float, float, float]


def _moments(a: np.ndarray, b: np.ndarray) -> _Moments:
    """Count, means, centred sums of squares and co-moment of the finite value pairs."""
    x, y = a.ravel(), b.ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if not len(x):
        return (0, 0.0, 0.0, 0.0, 0.0, 0.0)
    mx, my = float(x.mean()), float(y.mean())
    dx, dy = x - mx, y - my
    return (len(x), mx, my, float(dx @ dx), float(dy @ dy), float(dx @ dy))


def _merge(p: _Moments, q: _Moments) -> _Moments:
    """Chan, Golub and LeVeque's pairwise update of two sets of moments."""
    n1, mx1, my1, sx1, sy1, c1 = p
    n2, mx2, my2, sx2, sy2, c2 = q
    if not n2:
        return p
    if not n1:
        return q
    n = n1 + n2
    dx, dy = mx2 - mx1, my2 - my1
    w = n1 * n2 / n
    mx, my = mx1 + dx * n2 / n, my1 + dy * n2 / n
    return (n, mx, my, sx1 + sx2 + dx * dx * w, sy1 + sy2 + dy * dy * w, c1 + c2 + dx * dy * w)


def feature_difference(old: Sequence[str], new: Sequence[str]) -> str | None:
    """Why two models cannot be compared row for row (None when their feature lists are equal).

    Names what one has and the other lacks, or the first position where the order differs.
    """
    if tuple(old) == tuple(new):
        return None
    only_old = [f for f in old if f not in set(new)]
    only_new = [f for f in new if f not in set(old)]
    if only_old or only_new:
        return f"features only in the first: {only_old[:10]}; only in the second: {only_new[:10]}"
    i = next(i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b)
    return f"the same features in another order (position {i}: {old[i]!r} vs {new[i]!r})"


def default_threshold(task: str) -> float | None:
    """Where a decision flips when none is given: 0.5 for a binary classifier's probability; none for
    a regressor (its outputs are compared after each model's clamp); a multiclass model flips at arg-max."""
    return 0.5 if task == "binary" else None
