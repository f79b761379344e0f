"""The targets of issue 6 as rows of data, and the one function that judges every row.

A target names the section JSON it reads and, under that section's ``results``, three
summaries (median, min, max over interleaved rounds, from :func:`benchmarks.timing.summarize`):

* ``ratio``: the per-round ratio the verdict is taken on, always stated about our path: a
  speed-up (baseline time / our time) must be **at least** the threshold, a cost relative
  to a baseline (our time / baseline time) **at most**;
* ``baseline`` and ``comparison``: the two sides' times (lower is better), for best round
  against best round and for the text;
* without a ``ratio`` the target is a plain quantity of our path (``comparison``: peak RSS,
  seconds) against the threshold, and ``baseline`` is only shown for context.

:func:`assess` computes, the same way for every row, the median with its spread, best
round against best round, the verdict (met, not met, or inconclusive when those two
estimates fall on either side of the threshold: see NOTES.md, "Interleaved rounds") and
the gap. Nothing about a particular target is code.

Paths are "/"-separated keys under ``results``; ``{headline}`` is the model the targets are
stated on and ``{T}`` the largest thread count the section measured. Texts are
``str.format`` templates: ``{op}`` and ``{threshold}`` in ``goal``; ``{baseline}``,
``{comparison}`` (medians) and the row's ``facts`` in ``note`` and ``why``; a number
without a format spec is written with three significant digits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .common import HEADLINE
from .markdown import fields, fill, fmt, fmt_range


@dataclass(frozen=True)
class Target:
    """One promise: where its numbers are, what they must reach, and the words around them."""

    key: str
    section: str
    goal: str  # the promise, with {op} (≥ or ≤) and {threshold}
    threshold: float
    at_least: bool  # True: the value must be >= threshold; False: <= threshold
    unit: str  # of the value and the threshold: "×" for ratios, "MB", "s"
    comparison: str  # our path's summary
    baseline: str = ""  # the baseline's summary
    ratio: str = ""  # the per-round ratio judged; empty: ``comparison`` itself is judged
    label: str = ""  # written before the value
    note: str = ""  # written after it, in parentheses
    also: tuple[tuple[str, str], ...] = ()  # (label, path): other ratios written beside it, same unit
    why: str = ""  # written under the table when the target is not met (dropped if a fact is missing)
    facts: Mapping[str, str | tuple[str, str]] = field(default_factory=dict)  # name -> path, or (a, b): a / b


def p50(path: str) -> str:
    """The single-row section's p50 summary of one path of the headline model."""
    return f"models/{{headline}}/paths/{path}/p50_us"


def million(path: str, threads: str = "{T}") -> str:
    """The batch section's entry for one path at 1,000,000 rows and ``threads`` threads."""
    return f"results/{threads}/1000000/{path}"


TARGETS: tuple[Target, ...] = (
    Target(
        key="single_vs_pickle",
        section="single",
        goal="`predict_one` {op} {threshold}× faster than the pickle's `predict_proba`, one row",
        threshold=30.0,
        at_least=True,
        unit="×",
        ratio="models/{headline}/ratios/pickle_over_predict_one",
        baseline=p50("pickle"),
        comparison=p50("predict_one"),
        note="p50 {baseline} µs vs {comparison} µs",
        why="one bare onnxruntime run of the graph already takes {bare} µs, so even a runtime with no "
        "Python-side cost would be {floor:.1f}× the pickle here (pickle p50 {baseline} µs on this machine)",
        facts={"bare": p50("bare"), "floor": (p50("pickle"), p50("bare"))},
    ),
    Target(
        key="single_vs_bare",
        section="single",
        goal="`predict_one` {op} {threshold}× a bare onnxruntime `run` of the same graph",
        threshold=2.0,
        at_least=False,
        unit="×",
        ratio="models/{headline}/ratios/predict_one_over_bare",
        baseline=p50("bare"),
        comparison=p50("predict_one"),
        note="p50 {comparison} µs vs {baseline} µs",
    ),
    Target(
        key="batch_vs_inplace",
        section="batch",
        goal="1M rows on CPU {op} {threshold:.1f}× `Booster.inplace_predict`, same threads (T={T})",
        threshold=1.0,
        at_least=True,
        unit="×",
        ratio=million("auto/speed_vs_inplace"),
        baseline=million("inplace/seconds_per_call"),
        comparison=million("auto/seconds_per_call"),
        label="`Model.predict` ",
        note="{comparison} s vs {baseline} s",
        also=(
            ("tree flavor", million("tree/speed_vs_inplace")),
            ("tensor flavor", million("tensor/speed_vs_inplace")),
        ),
        why="per thread (T=1, 1M rows, same run) xgboost needs {inplace:.0f} ns/row, tree flavor {tree:.0f}, "
        "tensor flavor {tensor:.0f} ns/row; our paths scale with threads as well as xgboost does, so the "
        'per-thread gap stays (why: NOTES.md, "Batch on the CPU")',
        facts={k: million(f"{k}/ns_per_row", threads="1") for k in ("inplace", "tree", "tensor")},
    ),
    Target(
        key="cold_speedup",
        section="cold",
        goal="cold start of all six {op} {threshold}× faster than the pickle path",
        threshold=8.0,
        at_least=True,
        unit="×",
        ratio="speedup_pickle_over_runtime",
        baseline="paths/pickle/wall_s",
        comparison="paths/runtime/wall_s",
        note="{baseline} s vs {comparison} s",
    ),
    Target(
        key="cold_rss",
        section="cold",
        goal="cold start peak RSS {op} {threshold} MB",
        threshold=70.0,
        at_least=False,
        unit="MB",
        comparison="paths/runtime/peak_rss_mb",
        baseline="paths/pickle/peak_rss_mb",
        note="pickle path {baseline} MB",
    ),
    Target(
        key="convert_seconds",
        section="convert",
        goal="conversion of the six with verification {op} {threshold} s",
        threshold=10.0,
        at_least=False,
        unit="s",
        comparison="cli/wall_s",
        note="`m7onnx convert`, flavors {flavors}, fresh process",
        facts={"flavors": "cli/flavors"},
    ),
)
BY_KEY = {t.key: t for t in TARGETS}

VERDICTS = {
    "met": "**met**",
    "not met": "**not met**",
    "inconclusive": "**inconclusive** (noise: the two estimates straddle the target)",
    "not measured": "not measured",
}


@dataclass(frozen=True)
class Assessment:
    """What :func:`assess` found for one target; ``measured`` and ``why`` are the summary's text."""

    target: Target
    goal: str
    verdict: str  # a key of VERDICTS
    value: Mapping[str, float] | None = None  # the judged summary: median and spread
    best: float | None = None  # best round against best round (a plain quantity: its best round)
    gap: float | None = None  # threshold / worse estimate (at least) or worse estimate / threshold (at most)
    measured: str = "—"
    why: str = ""

    @property
    def gap_text(self) -> str:
        if self.gap is None:
            return ""
        return f"{self.gap:.2f}× {'short' if self.target.at_least else 'over'}"


def judge(median: float, best: float, threshold: float, *, at_least: bool) -> tuple[str, float | None]:
    """Verdict and gap from two estimates of one value.

    ``median``: the median over rounds (for a ratio, of per-round ratios: both sides measured
    seconds apart). ``best``: best round against best round (each side's least disturbed
    run). On a quiet machine they agree; when other processes load the machine they can fall
    on different sides of the threshold, and the verdict says so instead of picking one.
    The gap is measured from the worse of the two.
    """
    ok = [(v >= threshold) if at_least else (v <= threshold) for v in (median, best)]
    if all(ok):
        return "met", None
    worst = min(median, best) if at_least else max(median, best)
    gap = (threshold / worst if worst > 0 else math.inf) if at_least else worst / threshold
    return ("inconclusive" if any(ok) else "not met"), gap


def lookup(results: Mapping[str, Any], path: str) -> Any:
    """The value at a "/"-separated path, or None when any key on the way is absent."""
    node: Any = results
    for key in path.split("/"):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def placeholders(results: Mapping[str, Any] | None) -> dict[str, str]:
    """``{headline}``, and ``{T}``: the largest thread count the section measured (a list ``threads``)."""
    threads = (results or {}).get("threads")
    return {"headline": HEADLINE, "T": str(max(threads)) if isinstance(threads, list) and threads else "?"}


def _median(x: Any) -> Any:
    return x.get("median") if isinstance(x, Mapping) else x


def assess(target: Target, sections: Mapping[str, Mapping[str, Any]]) -> Assessment:
    """Verdict, median with spread, best-vs-best and gap of one target, from the section JSON files."""
    results = sections.get(target.section, {}).get("results")
    where = placeholders(results)
    goal = fill(target.goal, op="≥" if target.at_least else "≤", threshold=target.threshold, **where)
    if results is None:
        return Assessment(target, goal, "not measured")

    def get(path: str) -> Any:
        if not path:
            return None
        found = lookup(results, path.format(**where))
        return None if isinstance(found, Mapping) and found.get("n") == 0 else found  # an empty summary

    comparison, baseline = get(target.comparison), get(target.baseline)
    value = get(target.ratio) if target.ratio else comparison
    if value is None or (target.ratio and (comparison is None or baseline is None)):
        return Assessment(target, goal, "not measured")
    if target.ratio:  # each side's best (fastest) round, in the ratio's direction
        mins = (baseline["min"], comparison["min"]) if target.at_least else (comparison["min"], baseline["min"])
        best = mins[0] / mins[1]
    else:  # the quantity's most favourable round
        best = value["max"] if target.at_least else value["min"]
    verdict, gap = judge(value["median"], best, target.threshold, at_least=target.at_least)

    facts: dict[str, Any] = {"baseline": _median(baseline), "comparison": _median(comparison)}
    for name, path in target.facts.items():
        if isinstance(path, tuple):
            a, b = (_median(get(p)) for p in path)
            facts[name] = a / b if a is not None and b else None
        else:
            facts[name] = _median(get(path))
    also = [(label, s) for label, path in target.also if (s := get(path)) is not None]
    why = ""
    if verdict != "met" and target.why and all(facts.get(k) is not None for k in fields(target.why)):
        why = fill(target.why, **facts)
    return Assessment(target, goal, verdict, value, best, gap, _measured(target, value, best, facts, also), why)


def _measured(
    target: Target, value: Mapping[str, float], best: float, facts: Mapping[str, Any], also: list[tuple[str, Any]]
) -> str:
    """The "measured" cell: label, median [min–max], best-vs-best for a ratio, (note), other ratios."""
    sep = "" if target.unit == "×" else " "
    text = f"{target.label}{fmt_range(value)}{sep}{target.unit}"
    if target.ratio:
        text += f", best-vs-best {fmt(best)}{target.unit}"
    if target.note:
        text += f" ({fill(target.note, **{k: '—' if v is None else v for k, v in facts.items()})})"
    return text + "".join(f"; {label} {fmt_range(s)}{sep}{target.unit}" for label, s in also)


def assess_all(sections: Mapping[str, Mapping[str, Any]]) -> list[Assessment]:
    return [assess(t, sections) for t in TARGETS]
