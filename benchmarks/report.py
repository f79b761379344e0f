"""Turn the section JSON files into ``summary.md``: the targets table, then one part per section.

Reads whatever ``<section>.json`` files exist in the results folder, so re-running one
section (``--only batch``) refreshes its tables and plots and leaves the others as they
were measured (each part names the date it was measured). Every number written here is
read from those files; nothing is typed in by hand. The targets are rows of data in
:mod:`.targets`; the plots are drawn by :mod:`.plots`.

    python -m benchmarks.report [--out benchmarks/results]   # re-render without measuring
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import RESULTS, SECTIONS, plots
from .common import HEADLINE
from .markdown import fmt, fmt_range, table, when
from .targets import VERDICTS, assess_all


def load_sections(out: Path) -> dict[str, dict[str, Any]]:
    """The section documents found in ``out``, in :data:`benchmarks.SECTIONS` order."""
    found = {}
    for name in SECTIONS:
        path = out / f"{name}.json"
        if path.exists():
            found[name] = json.loads(path.read_text())
    return found


def targets_md(s: dict[str, dict[str, Any]]) -> str:
    """The targets table and, under it, why each target that is not met is not."""
    assessed = assess_all(s)
    out = [
        "## Targets (issue 6, then the scaling targets of issue 16)",
        "",
        table(
            ["target", "measured: median of per-round ratios [min–max]; best round vs best round", "verdict", "gap"],
            [[a.goal, a.measured, VERDICTS[a.verdict], a.gap_text] for a in assessed],
        ),
        "",
    ]
    reasons = [f"- {a.goal}: {a.why}." for a in assessed if a.why]
    if reasons:
        out += ["Why a target is not met:", "", *reasons, ""]
    return "\n".join(out)


# ---- one part per section ---------------------------------------------------------------------------
def single_md(sec: dict[str, Any]) -> str:
    res = sec["results"]
    out = [f"## Single row (dict in, value out; one thread everywhere; {when(sec)})", ""]
    m = res["models"].get(HEADLINE)
    if m:
        pickle = m["paths"]["pickle"]["p50_us"]["median"]
        rows = []
        for key, p in m["paths"].items():
            diff = m["max_abs_diff_vs_pickle"].get(key)
            rows.append(
                [
                    p["label"],
                    fmt_range(p["p50_us"]),
                    fmt_range(p["p99_us"]),
                    f"{pickle / p['p50_us']['median']:.1f}×",
                    "—" if diff is None else f"{diff:.1e}",
                ]
            )
        out += [
            f"Model `{HEADLINE}`; {res['rounds']} interleaved rounds × {res['calls_per_round']} calls per path over "
            f"{res['rows']} snapshot dicts; timer overhead {res['timer_overhead_ns']:.0f} ns per call "
            "(not subtracted).",
            "",
            table(["path", "p50 µs", "p99 µs", "speed-up vs pickle", "max abs diff vs pickle"], rows),
            "",
        ]
    others = [(n, m) for n, m in res["models"].items() if n != HEADLINE]
    if others:
        rows = []
        for n, m in others:
            p = m["paths"]
            rows.append(
                [
                    f"`{n}`",
                    fmt(p["pickle"]["p50_us"]["median"]),
                    fmt(p["predict_one"]["p50_us"]["median"]),
                    fmt(p["dropin"]["p50_us"]["median"]),
                    fmt(p["bare"]["p50_us"]["median"]),
                    fmt_range(m["ratios"]["pickle_over_predict_one"]) + "×",
                    fmt_range(m["ratios"]["predict_one_over_bare"]) + "×",
                ]
            )
        out += [
            "The other five models (p50 µs):",
            "",
            table(
                ["model", "pickle", "predict_one", "drop-in", "bare run", "pickle / predict_one", "predict_one / bare"],
                rows,
            ),
            "",
        ]
    return "\n".join(out)


def batch_md(sec: dict[str, Any]) -> str:
    res = sec["results"]
    out = [f"## Batch throughput (`{res['model']}`, {res['features']} features; {when(sec)})", ""]
    for t, sizes in res["results"].items():
        keys = list(next(iter(sizes.values())))
        rows = []
        for n, r in sizes.items():
            cells = [f"{int(n):,}"]
            for k in keys:
                c = r[k]
                ms = c["seconds_per_call"]["median"] * 1e3
                cell = f"{fmt(ms)} ms · {fmt(c['rows_per_second'] / 1e6)} M rows/s"
                if "speed_vs_inplace" in c:
                    cell += f" · {c['speed_vs_inplace']['median']:.2f}×"
                cells.append(cell)
            rows.append(cells)
        labels = [next(iter(sizes.values()))[k]["label"] for k in keys]
        out += [
            f"**T = {t} thread(s)** (median per call · rows/s · speed vs inplace_predict, >1 is faster):",
            "",
            table(["rows", *labels], rows),
            "",
        ]
    if res.get("skipped"):
        out += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in res["skipped"].items()), ""]
    agree = res.get("agreement_vs_inplace", {})
    if agree:
        out += [
            "Agreement with `inplace_predict` on 20,000 rows: "
            + "; ".join(
                f"{k} max |diff| {v['max_abs_diff']:.1e}, {v['identical_share'] * 100:.1f}% identical"
                for k, v in agree.items()
            ),
            "",
        ]
    return "\n".join(out)


def cold_md(sec: dict[str, Any]) -> str:
    res = sec["results"]
    rows = []
    for p in res["paths"].values():
        rows.append(
            [
                p["label"],
                fmt_range(p["wall_s"]),
                fmt_range(p["peak_rss_mb"]),
                fmt(p["interpreter_start_s"]["median"]),
                fmt(p["import_s"]["median"]),
                fmt(p["load_s"]["median"]),
                fmt(p["first_predictions_s"]["median"]),
            ]
        )
    return "\n".join(
        [
            f"## Cold start (fresh process → first prediction of all six; {res['repeats']} runs each; {when(sec)})",
            "",
            table(
                ["path", "wall s", "peak RSS MB", "interpreter s", "imports s", "load s", "6 first predictions s"], rows
            ),
            "",
            f"Speed-up pickle / runtime: {fmt_range(res['speedup_pickle_over_runtime'])}×; first predictions agree "
            f"to {res['max_abs_diff_first_predictions']:.1e}. {res['note']}.",
            "",
        ]
    )


def convert_md(sec: dict[str, Any]) -> str:
    res = sec["results"]
    out = [
        f"## Conversion ({when(sec)})",
        "",
        f"`{res['cli']['command']}` (flavors: {res['cli']['flavors']}), fresh process, verification included: "
        f"{fmt_range(res['cli']['wall_s'])} s over {res['cli']['wall_s']['n']} run(s).",
        "",
    ]
    for flavors, models in res["in_process"].items():
        rows = [[f"`{n}`", fmt_range(m["seconds"]), str(sum(m["probe_rows"].values()))] for n, m in models.items()]
        total = sum(m["seconds"]["median"] for m in models.values())
        out += [
            f"In process, warm imports, flavors `{flavors}` (total {total:.2f} s):",
            "",
            table(["model", "seconds", "probe rows verified"], rows),
            "",
        ]
    return "\n".join(out)


def scaling_md(sec: dict[str, Any]) -> str:
    res = sec["results"]
    labels = res["labels"]
    out = [
        f"## Scaling: `Model.predict` against the alternatives as models grow ({when(sec)})",
        "",
        f"Inputs: {res['inputs']}. {res['rounds']} interleaved rounds (rotating start) per thread count and size; "
        "ratios are baseline seconds ÷ `Model.predict` seconds inside each round (above 1: ours is faster), "
        "median [min–max]. CPU graph: the flavor, layout and rows per run the converter chose for large CPU "
        "batches, and from how many rows it is used.",
        "",
    ]
    for t in res["threads"]:
        for n in res["sizes"]:
            rows = []
            present = [
                k for k in labels if any(k in m["runs"][str(t)][str(n)]["paths"] for m in res["models"].values())
            ]
            for key, m in res["models"].items():
                r = m["runs"][str(t)][str(n)]
                lay = m["layout"]
                graph = (
                    f"{lay['flavor']} {lay['strategy']} ×{lay['rows_per_run'] or '—'} from {lay['cpu_min_rows']}"
                    if lay["flavor"]
                    else "tree only"
                )
                cells = [key, f"{m['trees']} × {m['depth']}", f"{m['leaves']:,}", graph]
                cells += [fmt(r["paths"][k]["rows_per_s"] / 1e6) if k in r["paths"] else "—" for k in present]
                cells += [fmt_range(r["speed_vs"][b]) + "×" if b in r["speed_vs"] else "—" for b in present[1:]]
                rows.append(cells)
            head = ["model", "trees × depth", "leaves", "CPU graph", *[f"{labels[k]} (M rows/s)" for k in present]]
            head += [f"÷ {labels[b]}" for b in present[1:]]
            out += [f"T = {t}, batches of {n:,} rows:", "", table(head, rows), ""]
    if res.get("skipped"):
        out += ["Skipped: " + "; ".join(f"{k}: {v}" for k, v in res["skipped"].items()), ""]
    return "\n".join(out)


def conditions_md(s: dict[str, dict[str, Any]]) -> str:
    any_sec = next(iter(s.values()))
    m = any_sec["machine"]
    v = any_sec["versions"]
    rows = [
        [
            name,
            sec.get("date_utc", "?"),
            str(sec.get("conditions", {}).get("load_average_start")),
            str(sec.get("conditions", {}).get("load_average_end")),
            fmt(sec.get("conditions", {}).get("seconds")),
        ]
        for name, sec in s.items()
    ]
    libs = ", ".join(f"{k} {val}" for k, val in v.items())
    git = any_sec.get("git", {})
    return "\n".join(
        [
            "## Conditions",
            "",
            f"Machine: {m.get('cpu')}, {m.get('logical_cores')} logical cores ({m.get('usable_cores')} usable), "
            f"{m.get('ram_gb')} GB RAM, {m.get('os')}. Libraries: {libs}. Git: {git.get('commit', '?')[:12]}"
            f"{' (dirty)' if git.get('dirty') else ''}.",
            "",
            table(["section", "measured (UTC)", "load avg at start (1/5/15 min)", "at end", "seconds"], rows),
            "",
            "A load average above the core count means other processes competed for the CPU during the run; "
            "the ratios are taken inside interleaved rounds to cancel most of that, absolute times are not.",
            "",
        ]
    )


#: how each section is written into summary.md
SECTION_MD: dict[str, Callable[[dict[str, Any]], str]] = {
    "single": single_md,
    "batch": batch_md,
    "cold": cold_md,
    "convert": convert_md,
    "scaling": scaling_md,
}


def notes_link(out: Path) -> str:
    """benchmarks/NOTES.md relative to the folder the summary is written to."""
    notes = Path(__file__).resolve().parent / "NOTES.md"
    try:
        return os.path.relpath(notes, out.resolve()).replace(os.sep, "/")
    except ValueError:  # another drive on Windows
        return str(notes)


def summary_md(s: dict[str, dict[str, Any]], notes: str) -> str:
    """The whole of ``summary.md`` for the section documents ``s``; ``notes``: the link to NOTES.md."""
    parts = [
        "# Benchmark results",
        "",
        'Written by `python -m benchmarks` (see README, "Benchmarks"); every number below is read from the '
        f"JSON files beside this one. Method and experiments: [NOTES.md]({notes}).",
        "",
        targets_md(s),
    ]
    parts += [SECTION_MD[name](doc) for name, doc in s.items()]
    if s:
        parts.append(conditions_md(s))
    return "\n".join(parts)


def render(out: Path) -> list[Path]:
    """Write ``summary.md`` and the plots from the JSON files in ``out``; the files written."""
    s = load_sections(out)
    path = out / "summary.md"
    path.write_text(summary_md(s, notes_link(out)))
    return [path, *plots.draw(out, s)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Re-render summary.md and the plots from the section JSON files.")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    args = parser.parse_args(argv)
    for p in render(args.out):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
