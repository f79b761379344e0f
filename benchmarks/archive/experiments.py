"""The speed experiments behind benchmarks/NOTES.md, re-runnable: ``python -m benchmarks.archive.experiments``.

Research, not the report: each experiment states a hypothesis in NOTES.md, measures it
here on the recovery model (and the spend model where float32 summation order matters),
and writes its numbers to ``<out>/experiments.json`` (default
``benchmarks/archive/results``). Timings are interleaved rounds (median, min–max); every
variant that could change a prediction is compared bit for bit with the shipped tree
flavor on the same rows. The experiments live in :mod:`.batch_cpu` and :mod:`.single_row`;
this module is their table and the command line.

    python -m benchmarks.archive.experiments                       # all, 200k rows (1M for chunking)
    python -m benchmarks.archive.experiments --only chunking,row_order --rows 100000
    python -m benchmarks.archive.experiments --only instructions   # valgrind, several minutes
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import CACHE, common, env

from .batch_cpu import (
    exp_chunking,
    exp_graph_variants,
    exp_ort_threads,
    exp_per_thread,
    exp_row_order,
    exp_session_options,
    exp_tensor_runs,
)
from .single_row import exp_instructions, exp_single_row_call

EXPERIMENTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "per_thread": exp_per_thread,
    "ort_threads": exp_ort_threads,
    "session_options": exp_session_options,
    "chunking": exp_chunking,
    "graph_variants": exp_graph_variants,
    "row_order": exp_row_order,
    "single_row_call": exp_single_row_call,
    "tensor_runs": exp_tensor_runs,
    "instructions": exp_instructions,
}
#: run only when named with --only (slow)
OPT_IN = ("instructions",)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.archive.experiments", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--only", help=f"comma-separated: {','.join(EXPERIMENTS)}")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per batch experiment (default 200k)")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows for the chunking experiment")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default="caac164", help="commit of the 'before' runtime (instructions)")
    parser.add_argument("--instruction-calls", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    parser.add_argument(
        "--cache", type=Path, default=CACHE, help="compiled TL2cgen libraries etc., shared with the harness"
    )
    cfg = parser.parse_args(argv)
    cfg.chunk_sizes = (4096, 16_384, 65_536, 262_144)
    names = [n.strip() for n in cfg.only.split(",")] if cfg.only else [n for n in EXPERIMENTS if n not in OPT_IN]
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        parser.error(f"unknown experiment(s) {unknown}; choose from {', '.join(EXPERIMENTS)}")
    cfg.out.mkdir(parents=True, exist_ok=True)
    cfg.cache.mkdir(parents=True, exist_ok=True)
    common.silence_library_logs()
    path = cfg.out / "experiments.json"
    doc = json.loads(path.read_text()) if path.exists() else {"experiments": {}}
    for name in names:
        t0 = time.perf_counter()
        load = env.load_average()
        print(f"experiment {name} ...", file=sys.stderr, flush=True)
        result = EXPERIMENTS[name](cfg)
        doc["experiments"][name] = {
            "doc": (EXPERIMENTS[name].__doc__ or "").strip(),
            "date_utc": env.now_utc(),
            "conditions": {
                "load_average_start": load,
                "load_average_end": env.load_average(),
                "seconds": round(time.perf_counter() - t0, 1),
            },
            "result": result,
        }
        doc.update({"machine": env.machine(), "versions": env.versions(), "git": env.git_state(), "pid": os.getpid()})
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(json.dumps(result, indent=1)[:3000], file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
