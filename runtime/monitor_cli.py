"""``m7onnx drift`` and ``m7onnx diff``: monitoring reports for files, as tables, JSON and plots.

Both need the ``batch`` extra (pyarrow, to read the file); ``--plot`` also matplotlib.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .drift import DriftReport
from .monitor_files import DEFAULT_BATCH_ROWS, DiffResult, diff_files, drift_file


def add_drift_arguments(d: argparse.ArgumentParser) -> None:
    d.description = (
        "Score DATA with each model (its caller policy, upstream models, clamp) and compare the "
        "distribution of every feature and of the output with the reference profile stored at conversion "
        "(m7onnx convert --reference). PSI below 0.1 is stable, 0.1 to 0.25 watch, above 0.25 drifted. "
        "Exit status 0 (also when drifted; read the report), 2 on an error."
    )
    d.add_argument(
        "targets", nargs="+", type=Path, metavar="MANIFEST|DIR", help="models (in a folder: those with a profile)"
    )
    d.add_argument("--input", "-i", required=True, help="Parquet file or folder, CSV or JSONL of live snapshots")
    _output_arguments(d, "model")
    d.set_defaults(run=_drift)


def add_diff_arguments(f: argparse.ArgumentParser) -> None:
    f.description = (
        "Score DATA with OLD and NEW (two manifests, or two folders matched by model name) and report "
        "rows, max and mean absolute difference, correlation, decisions that flip at the threshold, and the rows "
        "that moved most. Exit status 0, 2 on an error."
    )
    f.add_argument("old", type=Path, metavar="OLD", help="manifest or folder of the old version")
    f.add_argument("new", type=Path, metavar="NEW", help="manifest or folder of the new version")
    f.add_argument("--input", "-i", required=True, help="Parquet file or folder, CSV or JSONL")
    f.add_argument(
        "--threshold",
        type=float,
        help="decision threshold (default 0.5 for binary classifiers, arg-max for multiclass, none for regressors)",
    )
    f.add_argument("--id", dest="id_column", metavar="COLUMN", help="row id column (default: id, row_id, snapshot_id)")
    f.add_argument(
        "--top", type=int, default=10, metavar="N", help="rows that moved most to list (default: %(default)s)"
    )
    _output_arguments(f, "pair")
    f.set_defaults(run=_diff)


def _output_arguments(p: argparse.ArgumentParser, each: str) -> None:
    """What ``drift`` and ``diff`` share: the report's form (table, JSON, PNG) and the read size."""
    p.add_argument("--json", action="store_true", help=f"print a JSON list, one object per {each} (default: a table)")
    p.add_argument(
        "--plot", type=Path, metavar="FILE.png", help=f"a PNG per {each} (FILE-NAME.png for several; default: no plot)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help="rows read at a time (default: %(default)s)",
    )


def plot_paths(plot: Path, names: list[str]) -> dict[str, Path]:
    """``FILE.png`` for one model, ``FILE-NAME.png`` for each of several."""
    if len(names) == 1:
        return {names[0]: plot}
    return {n: plot.with_name(f"{plot.stem}-{n}{plot.suffix or '.png'}") for n in names}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def drift_table(r: DriftReport) -> list[str]:
    lines = [
        f"{r.name}: {r.rows:,} rows against a reference of {r.reference.rows:,}; "
        f"prediction PSI {_fmt(r.prediction)} ({r.prediction_level})"
    ]
    width = max(len(f) for f in r.features)
    order = sorted(r.features, key=lambda f: -(r.features[f] or 0.0))
    for f in order:
        oor = r.out_of_range.get(f, 0)
        extra = f"  {oor:,} out of range" if oor else ""
        lines.append(f"  {f.ljust(width)}  {_fmt(r.features[f]):>8}  {r.levels[f]}{extra}")
    return lines


def _drift(args: argparse.Namespace) -> int:
    reports = drift_file(args.targets, input=args.input, batch_rows=args.batch_size)
    if args.plot:
        from .monitor_plots import plot_drift

        for r in reports:
            plot_drift(r, plot_paths(args.plot, [x.name for x in reports])[r.name])
    if args.json:
        print(json.dumps([r.to_json() for r in reports], indent=2))
    else:
        print("\n".join(line for r in reports for line in drift_table(r)))
    return 0


def diff_table(d: DiffResult) -> list[str]:
    c = d.comparison
    flips = "n/a (no threshold)" if c.flips is None else f"{c.flips:,}" + (f" at {c.threshold}" if c.threshold else "")
    lines = [
        f"{d.name}: {c.rows:,} rows; max |diff| {c.max_abs_diff:.6g}, mean {c.mean_abs_diff:.3g}, "
        f"correlation {'-' if c.correlation is None else f'{c.correlation:.6f}'}, flips {flips}"
    ]
    for m in c.moved_most[:5]:
        lines.append(f"  row {m.row}: {m.old} -> {m.new} (|diff| {m.abs_diff:.4g})")
    return lines


def _diff(args: argparse.Namespace) -> int:
    results, notes = diff_files(
        args.old,
        args.new,
        input=args.input,
        threshold=args.threshold,
        id_column=args.id_column,
        top=args.top,
        batch_rows=args.batch_size,
    )
    for note in notes:
        print(f"m7onnx diff: note: {note}", file=sys.stderr)
    if args.plot:
        from .monitor_plots import plot_diff

        for d in results:
            plot_diff(d, plot_paths(args.plot, [x.name for x in results])[d.name])
    if args.json:
        print(json.dumps([d.to_json() for d in results], indent=2))
    else:
        print("\n".join(line for d in results for line in diff_table(d)))
    return 0
