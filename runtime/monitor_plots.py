"""PNG plots of monitoring reports, for people who would rather look than read (matplotlib, imported here only).

:func:`plot_drift`: per model, reference vs live fractions in the reference bins for the
features that drifted most (all of them at "watch" or "drifted", else the top few), and the
prediction's distribution. :func:`plot_diff`: old vs new predictions on the same rows, and
the distribution of their differences.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from .drift import DriftReport
from .errors import M7Error
from .monitor_files import DiffResult
from .profile import Histogram

#: feature panels in a drift plot (plus one for the prediction)
MAX_PANELS = 8


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise M7Error(f"--plot needs matplotlib: pip install matplotlib ({exc})") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _labels(h: Histogram) -> list[str]:
    e = [f"{v:.3g}" for v in h.edges]
    if not e:
        return ["all", "NaN"]
    return [f"<{e[0]}", *(f"{a}–{b}" for a, b in itertools.pairwise(e)), f"≥{e[-1]}", "NaN"]


def _bars(ax: Any, ref: Histogram, live: Histogram, title: str) -> None:
    labels = _labels(ref)
    r = [*ref.fractions, ref.missing]
    v = [*live.fractions, live.missing]
    x = np.arange(len(r))
    ax.bar(x - 0.2, r, 0.4, label="reference", color="#7f8c8d")
    ax.bar(x + 0.2, v, 0.4, label="live", color="#c0392b")
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_ylabel("fraction", fontsize=8)


def plot_drift(report: DriftReport, path: Path) -> Path:
    """Reference vs live per feature (the most drifted first) and for the prediction."""
    plt = _pyplot()
    flagged = report.drifted("drifted") + report.drifted("watch")
    ranked = sorted(report.features, key=lambda f: -(report.features[f] or 0.0))
    shown = (flagged or ranked)[:MAX_PANELS] if flagged else ranked[: min(3, len(ranked))]
    panels = len(shown) + 1
    cols = min(3, panels)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    psi = report.prediction
    _bars(
        axes[0][0],
        report.reference.prediction,
        report.live_prediction,
        f"prediction: PSI {'-' if psi is None else f'{psi:.3f}'} ({report.prediction_level})",
    )
    for i, f in enumerate(shown, start=1):
        v = report.features[f]
        _bars(
            axes[i // cols][i % cols],
            report.reference.features[f],
            report.live[f],
            f"{f}: PSI {'-' if v is None else f'{v:.3f}'} ({report.levels[f]})",
        )
    for j in range(panels, rows * cols):
        axes[j // cols][j % cols].axis("off")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(f"{report.name}: {report.rows:,} live rows vs {report.reference.rows:,} reference rows", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_diff(result: DiffResult, path: Path) -> Path:
    """Old vs new predictions (a sample of the rows) and the histogram of new - old."""
    plt = _pyplot()
    a = np.asarray(result.sample_old, dtype=np.float64).ravel()  # every output of every row
    b = np.asarray(result.sample_new, dtype=np.float64).ravel()
    c = result.comparison
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    left.scatter(a, b, s=3, alpha=0.3, color="#2c3e50")
    if len(a):
        lo, hi = float(np.nanmin([a.min(), b.min()])), float(np.nanmax([a.max(), b.max()]))
        left.plot([lo, hi], [lo, hi], color="#c0392b", linewidth=1)
    if c.threshold is not None:
        left.axvline(c.threshold, color="#7f8c8d", linestyle=":")
        left.axhline(c.threshold, color="#7f8c8d", linestyle=":")
    left.set_xlabel(f"old ({result.old.parent.name}/{result.old.name})", fontsize=8)
    left.set_ylabel(f"new ({result.new.parent.name}/{result.new.name})", fontsize=8)
    left.set_title(f"predictions on the first {len(a):,} rows", fontsize=9)
    right.hist(b - a, bins=60, color="#2980b9")
    right.set_xlabel("new - old", fontsize=8)
    right.set_title(
        f"max |diff| {c.max_abs_diff:.4g}, mean {c.mean_abs_diff:.3g}, flips {'-' if c.flips is None else c.flips}",
        fontsize=9,
    )
    fig.suptitle(f"{result.name}: {c.rows:,} rows compared", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
