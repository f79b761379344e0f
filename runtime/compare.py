"""How far two sets of predictions for the same rows are apart: the numbers behind A/B comparisons.

``m7onnx verify`` shows them when a source model was retrained (how much the new model moves
the predictions), and model-version comparisons (``diff``, shadow scoring) report the same
fields, so a number means the same thing wherever it appears.
"""

from __future__ import annotations

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
    a, b = np.asarray(old, dtype=np.float64), np.asarray(new, dtype=np.float64)
    if a.shape != b.shape:
        raise M7Error(f"cannot compare predictions of shapes {a.shape} and {b.shape}")
    n = len(a)
    diff = np.abs(a - b)
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    diff = np.where(same, 0.0, np.nan_to_num(diff, nan=np.inf))
    per_row = diff.reshape(n, -1).max(axis=1) if n else np.zeros(0)
    if a.ndim == 2 and a.shape[1] > 1:
        flips: int | None = int(np.count_nonzero(a.argmax(axis=1) != b.argmax(axis=1))) if n else 0
        threshold = None
    elif threshold is not None:
        flips = int(np.count_nonzero((a.reshape(n) >= threshold) != (b.reshape(n) >= threshold)))
    else:
        flips = None
    order = np.argsort(-per_row, kind="stable")[:top]
    labels = np.arange(n) if ids is None else np.asarray(ids)
    return Comparison(
        rows=n,
        max_abs_diff=float(per_row.max(initial=0.0)),
        mean_abs_diff=float(diff.mean()) if n else 0.0,
        correlation=_correlation(a, b),
        flips=flips,
        threshold=threshold,
        moved_most=tuple(
            Moved(_jsonable(labels[i]), _value(a[i]), _value(b[i]), float(per_row[i])) for i in order if per_row[i] > 0
        ),
    )


def _correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    x, y = a.ravel(), b.ravel()
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])
