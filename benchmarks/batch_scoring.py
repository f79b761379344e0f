"""Batch-scoring benchmark: rows/s and peak RSS of the local and Dask engines on a Parquet set.

    python benchmarks/batch_scoring.py                       # 10M rows, local 1+2 threads, dask 1+2 workers
    python benchmarks/batch_scoring.py --rows 200000 --workers 1,2 --local-threads 2

1. Generates a multi-file Parquet set of synthetic Market7 snapshots with
   ``models/make_models.py``'s ``generate_snapshots`` (one file at a time, each with its own
   seed, so memory stays at one file whatever ``--rows``), plus a ``row_id`` column.
2. Runs ``m7onnx score`` with all six models (``--keep row_id``) once per configuration,
   each in a fresh process, sampling the RSS of the whole process tree (the CLI, and for
   Dask its LocalCluster's nanny and worker processes) with psutil.
3. Writes ``batch_scoring.json`` (every number and the machine it was measured on),
   ``batch_scoring.md`` (a table) and ``batch_scoring_scaling.png`` (rows/s vs parallelism).

rows/s is rows / the engine's own wall time (``score_file``: reading, scoring, writing,
and for Dask starting and stopping its LocalCluster), not counting interpreter start-up.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import itertools
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
MODELS = [
    "xgb_recovery_model",
    "xgb_confidence_model",
    "xgb_spend_model",
    "xgb_dca_spend_model",
    "safu_exit_model",
    "xgb_model",
]


def make_models_module() -> Any:
    spec = importlib.util.spec_from_file_location("make_models", ROOT / "models" / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_models"] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


def generate(folder: Path, *, rows: int, files: int, row_group: int, seed: int) -> list[Path]:
    """The Parquet set, reused when it is already there with the same shape."""
    stamp = folder / "_shape.json"
    shape = {"rows": rows, "files": files, "row_group": row_group, "seed": seed}
    if stamp.is_file() and json.loads(stamp.read_text()) == shape:
        return sorted(folder.glob("part.*.parquet"))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    mm = make_models_module()
    bounds = np.linspace(0, rows, files + 1).astype(int)
    paths = []
    for i, (a, b) in enumerate(itertools.pairwise(bounds)):
        t = time.perf_counter()
        df = mm.generate_snapshots(int(b - a), seed=seed + i)
        df.insert(0, "row_id", np.arange(a, b, dtype=np.int64))
        path = folder / f"part.{i:04d}.parquet"
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=row_group)
        paths.append(path)
        print(f"  generated {path.name}: {b - a:,} rows in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        del df
    stamp.write_text(json.dumps(shape))
    return paths


class PeakRSS:
    """Samples the summed RSS of a process and all its descendants until stopped."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.root = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> int:
        total = 0
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in procs:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def run_once(
    *, engine: str, parallel: int, data: Path, out_dir: Path, model_dir: Path, batch_size: int
) -> dict[str, Any]:
    out = out_dir / f"scored_{engine}_{parallel}.parquet"
    cmd = [sys.executable, "-m", "m7_runtime.cli", "score", *MODELS, "--input", str(data), "--output", str(out)]
    cmd += ["--keep", "row_id", "--model-dir", str(model_dir), "--batch-size", str(batch_size), "--json", "--quiet"]
    cmd += ["--engine", "dask", "--workers", str(parallel)] if engine == "dask" else ["--threads", str(parallel)]
    load_before = os.getloadavg()[0]
    # CPU time of the whole tree (the CLI and, once reaped, its LocalCluster processes): unlike
    # rows/s it does not depend on how much of the machine other jobs leave free.
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler = PeakRSS(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    peak = sampler.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{stderr}")
    summary = json.loads(stdout)
    shutil.rmtree(out, ignore_errors=True) if out.is_dir() else out.unlink(missing_ok=True)
    return {
        "engine": engine,
        "workers": parallel if engine == "dask" else None,
        "threads": 1 if engine == "dask" else parallel,
        "rows": summary["rows"],
        "chunks": summary["chunks"],
        "seconds": summary["seconds"],
        "wall_seconds_with_startup": round(wall, 3),
        "rows_per_second": summary["rows_per_second"],
        "peak_rss_mb": round(peak / 2**20, 1),
        "cpu_seconds": round(cpu, 2),
        "rows_per_cpu_second": round(summary["rows"] / cpu, 1) if cpu > 0 else None,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
    }


def write_markdown(results: dict[str, Any], path: Path) -> None:
    cfg = results["config"]
    m = results["machine"]
    lines = [
        f"# Batch scoring: {cfg['rows']:,} rows, {len(cfg['models'])} models in one pass",
        "",
        f"Measured {results['date']} on {m['cpus']} CPUs ({m['processor'] or m['machine']}), {m['memory_gb']} GB RAM,",
        f"Python {m['python']}, onnxruntime {m['onnxruntime']}, pyarrow {m['pyarrow']}, dask {m['dask']}.",
        f"Input: {cfg['files']} Parquet files, row groups of {cfg['row_group']:,} rows; "
        f"--batch-size {cfg['batch_size']:,}; output: row_id + one column per model.",
        "",
        "| engine | parallelism | rows/s | seconds | CPU seconds | rows per CPU-second | peak RSS (MB, process tree) "
        "| load avg before → after |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in results["runs"]:
        par = f"{r['workers']} worker(s) x 1 thread" if r["engine"] == "dask" else f"{r['threads']} thread(s)"
        lines.append(
            f"| {r['engine']} | {par} | {r['rows_per_second']:,.0f} | {r['seconds']:.1f} | {r['cpu_seconds']:.0f} "
            f"| {r['rows_per_cpu_second'] or 0:,.0f} | {r['peak_rss_mb']:,.0f} "
            f"| {r['load_average_before']} → {r['load_average_after']} |"
        )
    if results.get("note"):
        lines += ["", results["note"]]
    lines += [
        "",
        "Seconds are the engine's wall time (for Dask including starting and stopping its LocalCluster).",
        "CPU seconds are user + system time of every process of the run (interpreter start-up included);",
        "rows per CPU-second is the engines' efficiency, whatever share of the machine they got.",
        "Peak RSS sums every process of the run; Dask's worker processes each hold their own copy of the",
        "libraries and models, so shared pages are counted once per process.",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for engine, label, marker in (("local", "local engine (threads)", "o"), ("dask", "dask (worker processes)", "s")):
        runs = sorted((r for r in results["runs"] if r["engine"] == engine), key=lambda r: r["workers"] or r["threads"])
        if runs:
            xs = [r["workers"] or r["threads"] for r in runs]
            ax.plot(xs, [r["rows_per_second"] / 1e3 for r in runs], marker=marker, label=label)
    ax.set_xlabel("parallelism (threads or workers)")
    ax.set_ylabel("thousand rows/s (6 models per row)")
    ax.set_title(f"Batch scoring, {results['config']['rows']:,} rows, {results['machine']['cpus']} CPUs")
    ax.set_ylim(bottom=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def versions() -> dict[str, str]:
    out = {}
    for name in ("onnxruntime", "pyarrow", "dask", "numpy"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            out[name] = "not installed"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--files", type=int, default=10, help="Parquet files the rows are split into")
    ap.add_argument("--row-group", type=int, default=131_072, help="rows per Parquet row group")
    ap.add_argument("--batch-size", type=int, default=131_072)
    ap.add_argument("--local-threads", default="1,2", help="comma-separated thread counts for the local engine")
    ap.add_argument("--workers", default="1,2", help="comma-separated LocalCluster sizes for the Dask engine")
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--data-dir", type=Path, default=ROOT / "benchmarks" / "results" / "tmp" / "batch_data")
    ap.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--model-dir", type=Path, default=ROOT / "onnx")
    ap.add_argument("--note", default="", help="a sentence about the conditions, copied into the results")
    args = ap.parse_args()

    data = args.data_dir / "snapshots"
    print(f"generating {args.rows:,} rows in {args.files} files under {data}", file=sys.stderr)
    generate(data, rows=args.rows, files=args.files, row_group=args.row_group, seed=args.seed)
    plan = [("local", int(t)) for t in args.local_threads.split(",") if t.strip()]
    plan += [("dask", int(w)) for w in args.workers.split(",") if w.strip()]
    runs = []
    for engine, parallel in plan:
        print(f"scoring: {engine} x{parallel} ...", file=sys.stderr)
        r = run_once(
            engine=engine,
            parallel=parallel,
            data=data,
            out_dir=args.data_dir,
            model_dir=args.model_dir,
            batch_size=args.batch_size,
        )
        print(
            f"  {r['rows_per_second']:,.0f} rows/s, {r['seconds']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB",
            file=sys.stderr,
        )
        runs.append(r)
    vm = psutil.virtual_memory()
    results = {
        "benchmark": "batch_scoring",
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "processor": platform.processor(),
            "memory_gb": round(vm.total / 2**30, 1),
            "python": platform.python_version(),
            **versions(),
        },
        "config": {
            "rows": args.rows,
            "files": args.files,
            "row_group": args.row_group,
            "batch_size": args.batch_size,
            "models": MODELS,
            "input_bytes": sum(p.stat().st_size for p in data.glob("part.*.parquet")),
        },
        "note": args.note,
        "runs": runs,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "batch_scoring.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    write_markdown(results, args.results / "batch_scoring.md")
    plot(results, args.results / "batch_scoring_scaling.png")
    print(f"wrote {args.results / 'batch_scoring.json'}, .md and _scaling.png", file=sys.stderr)


if __name__ == "__main__":
    main()
