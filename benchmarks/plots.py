"""The PNG plots beside ``summary.md``, each drawn from one section's JSON only.

:data:`PLOTS` lists them as (section, function) pairs: a function takes the results folder
and the section's JSON document and returns the file it wrote (or None when the section
has nothing to draw). To add a plot, write such a function and add a pair; a section may
have several plots. matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .common import HEADLINE
from .targets import BY_KEY

#: colour and marker of each path (the sections' path keys), the same in every plot
STYLE = {
    "m7": ("#1f78b4", "*"),
    "tensor_cpu": ("#a6761d", "P"),
    "inplace": ("#d95f02", "o"),
    "stock_ort": ("#7570b3", "s"),
    "auto": ("#1f78b4", "*"),
    "tree": ("#1b9e77", "D"),
    "tensor": ("#66a61e", "^"),
    "tl2cgen": ("#e7298a", "v"),
}


def _plt() -> Any:
    """pyplot on the file-only Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig: Any, path: Path, *, rect: tuple[float, float, float, float] | None = None) -> Path:
    """Lay out, write at 110 dpi and close the figure (pyplot keeps every open figure alive)."""
    fig.tight_layout(rect=rect)
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_latency(out: Path, sec: dict[str, Any]) -> Path | None:
    m = sec["results"]["models"].get(HEADLINE)
    if not m:
        return None
    plt = _plt()
    paths = sorted(m["paths"].values(), key=lambda p: p["p50_us"]["median"])
    labels = [p["label"] for p in paths]
    p50 = [p["p50_us"]["median"] for p in paths]
    lo = [p["p50_us"]["median"] - p["p50_us"]["min"] for p in paths]
    hi = [p["p50_us"]["max"] - p["p50_us"]["median"] for p in paths]
    p99 = [p["p99_us"]["median"] for p in paths]
    fig, ax = plt.subplots(figsize=(9, 0.55 * len(paths) + 1.6))
    ys = range(len(paths))
    colors = ["#1b9e77" if "m7_runtime" in lab else ("#7570b3" if "bare" in lab else "#bbbbbb") for lab in labels]
    ax.barh(ys, p50, xerr=[lo, hi], color=colors, capsize=3, label="p50 (bar: median of rounds, whisker: min–max)")
    ax.scatter(p99, ys, marker="|", s=200, color="#d95f02", zorder=3, label="p99")
    for y, v, right in zip(ys, p50, [max(a, b["p50_us"]["max"]) for a, b in zip(p99, paths, strict=True)], strict=True):
        ax.text(right * 1.12, y, f"p50 {v:.3g} µs", va="center", fontsize=8)
    ax.set_yticks(list(ys), labels, fontsize=8)
    ax.set_xscale("log")
    ax.set_xlim(right=max(p99 + [p["p50_us"]["max"] for p in paths]) * 3)
    ax.set_xlabel("µs per prediction (log scale), one row, one thread")
    ax.set_title(f"Single-row latency, {HEADLINE} ({sec.get('date_utc', '')[:10]})", fontsize=10)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", which="both", alpha=0.3)
    return save(fig, out / "latency.png")


def plot_throughput(out: Path, sec: dict[str, Any]) -> Path | None:
    res = sec["results"]
    plt = _plt()
    threads = list(res["results"])
    fig, axes = plt.subplots(1, len(threads), figsize=(5.2 * len(threads), 4.2), squeeze=False, sharey=True)
    for ax, t in zip(axes[0], threads, strict=True):
        sizes = res["results"][t]
        ns = [int(n) for n in sizes]
        for key in next(iter(sizes.values())):
            color, marker = STYLE.get(key, ("black", "."))
            med = [sizes[str(n)][key]["rows_per_second"] for n in ns]
            lo = [n / sizes[str(n)][key]["seconds_per_call"]["max"] for n in ns]
            hi = [n / sizes[str(n)][key]["seconds_per_call"]["min"] for n in ns]
            ax.plot(ns, med, marker=marker, color=color, label=sizes[str(ns[0])][key]["label"])
            ax.fill_between(ns, lo, hi, color=color, alpha=0.15)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size (rows)")
        ax.set_title(f"T = {t} thread(s)", fontsize=10)
        ax.grid(which="both", alpha=0.3)
    axes[0][0].set_ylabel("rows per second (median; band: min–max)")
    axes[0][-1].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Batch throughput, {res['model']} ({sec.get('date_utc', '')[:10]})", fontsize=11)
    return save(fig, out / "throughput.png")


def plot_scaling(out: Path, sec: dict[str, Any]) -> Path | None:
    """``Model.predict``'s speed ratio to each baseline against model size (leaves), per thread count and batch."""
    res = sec["results"]
    models = res["models"]
    if not models:
        return None
    plt = _plt()
    baselines = [
        b
        for b in ("inplace", "tl2cgen", "stock_ort")
        if any(b in r["speed_vs"] for m in models.values() for per in m["runs"].values() for r in per.values())
    ]
    fig, axes = plt.subplots(1, len(baselines), figsize=(5.2 * len(baselines), 4.2), squeeze=False)
    colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a"]
    markers = {t: m for t, m in zip(res["threads"], ("o", "s", "^", "D"), strict=False)}
    for ax, base in zip(axes[0], baselines, strict=True):
        for i, n in enumerate(res["sizes"]):
            for t in res["threads"]:
                pts = sorted(
                    [
                        (m["leaves"], m["runs"][str(t)][str(n)]["speed_vs"][base], key)
                        for key, m in models.items()
                        if base in m["runs"][str(t)][str(n)]["speed_vs"]
                    ],
                    key=lambda p: (p[0], p[2]),  # models of equal size: by name (never by the ratio dicts)
                )
                if not pts:
                    continue
                xs = [p[0] for p in pts]
                ys = [p[1]["median"] for p in pts]
                err = [[p[1]["median"] - p[1]["min"] for p in pts], [p[1]["max"] - p[1]["median"] for p in pts]]
                ax.errorbar(
                    xs,
                    ys,
                    yerr=err,
                    fmt=markers[t],
                    color=colors[i % len(colors)],
                    capsize=2,
                    ls="none",
                    label=f"T={t}, {n:,} rows",
                )
        for key, m in models.items():
            ax.annotate(
                key.replace("xgb_", "").replace("_model", ""),
                (m["leaves"], 1.0),
                fontsize=6,
                rotation=60,
                xytext=(0, -28),
                textcoords="offset points",
                ha="center",
                color="#555555",
            )
        ax.axhline(1.0, color="black", lw=0.8)
        ax.axhline(1.2, color="#999999", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xlabel("model size: leaves (log)")
        ax.set_ylabel(f"speed-up of Model.predict over {res['labels'][base]}")
        ax.set_title(f"vs {res['labels'][base]}", fontsize=9)
        ax.grid(which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="upper left")
    fig.suptitle(f"Model.predict speed ratio vs model size ({sec.get('date_utc', '')[:10]})", fontsize=11)
    return save(fig, out / "scaling.png")


def plot_cold(out: Path, sec: dict[str, Any]) -> Path | None:
    res = sec["results"]
    plt = _plt()
    paths = list(res["paths"].values())
    labels = [p["label"] for p in paths]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    parts = [
        ("interpreter_start_s", "interpreter start", "#cccccc"),
        ("import_s", "imports", "#7570b3"),
        ("load_s", "load models", "#1b9e77"),
        ("first_predictions_s", "6 first predictions", "#d95f02"),
    ]
    left = [0.0] * len(paths)
    ys = range(len(paths))
    for key, name, color in parts:
        vals = [p[key]["median"] for p in paths]
        ax1.barh(ys, vals, left=left, color=color, label=name)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for y, p in zip(ys, paths, strict=True):
        w = p["wall_s"]
        ax1.errorbar(
            w["median"], y, xerr=[[w["median"] - w["min"]], [w["max"] - w["median"]]], color="black", capsize=3
        )
        ax1.text(w["max"] * 1.03, y, f"{w['median']:.2f} s", va="center", fontsize=8)
    ax1.set_yticks(list(ys), labels, fontsize=8)
    ax1.set_xlabel("seconds, fresh process → 6 first predictions (whisker: min–max wall)")
    ax1.legend(fontsize=7, loc="upper right")
    rss = [p["peak_rss_mb"]["median"] for p in paths]
    ax2.barh(ys, rss, color=["#bbbbbb" if "pickle" in lab else "#1b9e77" for lab in labels])
    for y, v in zip(ys, rss, strict=True):
        ax2.text(v * 1.02, y, f"{v:.0f} MB", va="center", fontsize=8)
    cap = BY_KEY["cold_rss"].threshold
    ax2.axvline(cap, color="#d95f02", ls="--", label=f"target {cap:.0f} MB")
    ax2.set_yticks(list(ys), [""] * len(paths))
    ax2.set_xlabel("peak RSS, MB")
    ax2.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"Cold start, all six models ({sec.get('date_utc', '')[:10]})", fontsize=11)
    return save(fig, out / "cold_start.png")


#: (section, plot function) in drawing order; a section whose JSON is absent is skipped
PLOTS: tuple[tuple[str, Callable[[Path, dict[str, Any]], Path | None]], ...] = (
    ("single", plot_latency),
    ("batch", plot_throughput),
    ("scaling", plot_scaling),
    ("cold", plot_cold),
)


def draw(out: Path, sections: dict[str, dict[str, Any]]) -> list[Path]:
    """Every plot whose section was measured; the files written."""
    written = []
    for name, plot in PLOTS:
        if name in sections and (path := plot(out, sections[name])) is not None:
            written.append(path)
    return written
