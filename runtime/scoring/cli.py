"""``m7onnx score``: the arguments and the command (registered by :mod:`m7_runtime.cli`)."""

from __future__ import annotations

import argparse
import json
import sys

from .api import DEFAULT_BATCH_ROWS, ENGINES, score_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "models",
        nargs="+",
        metavar="MODEL",
        help="a manifest path, or a model name in the model folder (see --model-dir)",
    )
    p.add_argument("--input", "-i", required=True, help="Parquet file or folder of Parquet files, CSV, or JSONL")
    p.add_argument(
        "--output",
        "-o",
        required=True,
        help="output path; .parquet, .csv or .jsonl picks the format; a missing folder is created (and said so)",
    )
    p.add_argument("--engine", choices=sorted(ENGINES), default="local", help="where to score (default: %(default)s)")
    p.add_argument(
        "--scheduler", metavar="ADDRESS", help="dask: the scheduler to run on (default: start a LocalCluster)"
    )
    p.add_argument(
        "--workers", type=int, metavar="N", help="dask: LocalCluster worker processes (default: one per core)"
    )
    p.add_argument(
        "--provider",
        choices=["cpu", "cuda", "auto"],
        default="auto",
        help="onnxruntime provider; auto picks CUDA when onnxruntime has it (default: %(default)s)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_ROWS,
        metavar="N",
        help="rows per chunk: bounds memory (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, metavar="N", help="local: row chunks in parallel (default: one per core)")
    p.add_argument("--keep", metavar="COLUMNS", help="comma-separated input columns to copy (default: all)")
    p.add_argument(
        "--model-dir",
        metavar="DIR",
        help="where model names are looked up "
        "(default: $M7_MODEL_DIR, else the config file's, else the bundled models)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, notes or summary (default: off)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (default: off)")


def run(args: argparse.Namespace) -> int:
    keep = None if args.keep is None else [c.strip() for c in args.keep.split(",") if c.strip()]
    result = score_file(
        args.models,
        input=args.input,
        output=args.output,
        engine=args.engine,
        keep=keep,
        model_dir=args.model_dir,
        provider=args.provider,
        batch_size=args.batch_size,
        threads=args.threads,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=False if args.quiet else None,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif not args.quiet:
        print(
            f"scored {result.rows:,} rows with {', '.join(result.models)} in {result.seconds:.1f} s "
            f"({result.rows_per_second:,.0f} rows/s, {args.engine}) -> {result.output}",
            file=sys.stderr,
        )
    return 0
