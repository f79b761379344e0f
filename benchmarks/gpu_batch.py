"""Batch scoring rows/s: the tensor flavor on CUDA vs the tree flavor on CPU vs xgboost, over batch sizes.

Run it on a machine with a GPU (onnxruntime-gpu installed, see README "GPU and the tensor
flavor"); it also runs on a CPU-only machine, where it says why the CUDA rows are skipped
and measures the CPU rows:

    python benchmarks/gpu_batch.py                                   # the bundled recovery model
    python benchmarks/gpu_batch.py --models onnx --batch-sizes 1000,100000,1000000 --out gpu.json
    python benchmarks/gpu_batch.py --strategies                      # also time each tensor strategy on CUDA

Engines (each scores the same float32 rows, 5% NaN, spread over the model's split ranges):

* ``tensor-cuda``: ``m7_runtime.load(provider="cuda")`` (tensor flavor, memory-bounded runs);
* ``tree-cpu`` / ``tensor-cpu``: ``m7_runtime.load(provider="cpu", flavor=...)``;
* ``auto-cpu``: what ``provider="cpu"`` picks by itself (tree flavor, tensor for large batches);
* ``xgboost-cpu`` / ``xgboost-cuda``: the source model's ``Booster.inplace_predict`` from a numpy
  array (``device="cuda"`` when xgboost was built with CUDA), if the converter extra is installed;
* ``tensor-cuda/<strategy>`` with ``--strategies``: each strategy's graph on CUDA (needs the converter).

Rows/s is the best of ``--repeats`` timings, each at least ``--min-time`` seconds of calls.
The table is printed and everything is written as JSON (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

import m7_runtime
from m7_runtime.artifact import MANIFEST_SUFFIX, Manifest

ROOT = Path(__file__).resolve().parents[1]


def _manifests(targets: list[Path]) -> list[Path]:
    found: list[Path] = []
    for t in targets:
        found.extend(sorted(t.glob(f"*{MANIFEST_SUFFIX}")) if t.is_dir() else [t])
    if not found:
        raise SystemExit(f"no *{MANIFEST_SUFFIX} in {', '.join(map(str, targets))}")
    return found


def _rows(man: Manifest, n: int, seed: int = 0) -> np.ndarray:
    """Rows spread a little beyond each feature's split range, 5% NaN."""
    rng = np.random.default_rng(seed)
    cols = []
    for f in man.features:
        r = man.split_ranges.get(f)
        lo, hi = (r.min, r.max) if r else (-1.0, 1.0)
        pad = 0.1 * (hi - lo) + 1e-3
        cols.append(rng.uniform(lo - pad, hi + pad, n))
    X = np.stack(cols, axis=1).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _rate(fn: Callable[[np.ndarray], Any], X: np.ndarray, *, repeats: int, min_time: float) -> float:
    fn(X[: min(len(X), 1024)])  # warm-up: session creation, CUDA context, arena growth
    best = 0.0
    for _ in range(repeats):
        calls, t0 = 0, time.perf_counter()
        while True:
            fn(X)
            calls += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time:
                break
        best = max(best, calls * len(X) / elapsed)
    return best


def cuda_status() -> tuple[bool, str]:
    """Whether onnxruntime can use CUDA here, and why not."""
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" in available:
        return True, "CUDAExecutionProvider available"
    return False, (
        f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (available: {', '.join(available)}); "
        "install onnxruntime-gpu on a machine with an NVIDIA GPU and CUDA (README, 'GPU and the tensor flavor')"
    )


def _xgboost_engines(man: Manifest) -> tuple[dict[str, Callable[[np.ndarray], Any]], dict[str, str]]:
    """xgboost on the source model: CPU always (if the converter extra is here), CUDA if xgboost has it."""
    engines: dict[str, Callable[[np.ndarray], Any]] = {}
    skipped: dict[str, str] = {}
    try:
        import xgboost as xgb

        from m7_convert import load_source
        from m7_convert.verify import booster
    except ImportError as exc:
        why = f"xgboost or the converter is not installed ({exc}); pip install 'market7-onnx[convert]'"
        return {}, {"xgboost-cpu": why, "xgboost-cuda": why}
    src_path = man.path.parent / str(man.source.path or "")
    if not src_path.is_file():
        why = f"the source model {src_path} is not here"
        return {}, {"xgboost-cpu": why, "xgboost-cuda": why}
    source = load_source(src_path)
    if source.preprocessor is not None:
        why = "the model is a Pipeline; xgboost alone does not score its raw input"
        return {}, {"xgboost-cpu": why, "xgboost-cuda": why}
    missing = source.missing
    cpu = booster(source).copy()
    cpu.set_param({"nthread": os.cpu_count() or 1})
    rounds = source.iteration_range or (0, 0)
    engines["xgboost-cpu"] = lambda X: cpu.inplace_predict(X, iteration_range=rounds, missing=missing)
    if not xgb.build_info().get("USE_CUDA"):
        skipped["xgboost-cuda"] = f"xgboost {xgb.__version__} was built without CUDA (xgboost-cpu wheel?)"
        return engines, skipped
    gpu = booster(source).copy()
    gpu.set_param({"device": "cuda"})
    try:
        gpu.inplace_predict(np.zeros((2, len(man.features)), np.float32), iteration_range=rounds, missing=missing)
    except Exception as exc:  # xgboost raises XGBoostError without a usable GPU
        skipped["xgboost-cuda"] = f"xgboost could not predict on CUDA: {str(exc).splitlines()[0]}"
        return engines, skipped
    engines["xgboost-cuda"] = lambda X: gpu.inplace_predict(X, iteration_range=rounds, missing=missing)
    return engines, skipped


def _strategy_engines(man: Manifest) -> tuple[dict[str, Callable[[np.ndarray], Any]], dict[str, str]]:
    """Each tensor strategy's graph on CUDA, in runs of the runtime's CUDA budget (needs the converter)."""
    try:
        from m7_convert import load_source
        from m7_convert.driver import build_forest
        from m7_convert.emit_tensor import CUDA_STRATEGIES, bytes_per_row, declines, emit_tensor
        from m7_runtime.batches import TENSOR_RUN_BYTES
    except ImportError as exc:
        return {}, {"tensor-cuda/<strategy>": f"the converter is not installed ({exc})"}
    source = load_source(man.path.parent / str(man.source.path))
    if source.preprocessor is not None:
        return {}, {"tensor-cuda/<strategy>": "Pipeline models are timed through the runtime only"}
    forest, _ = build_forest(source, None)
    engines = {}
    for strategy in CUDA_STRATEGIES:  # the strategies the CUDA graph can have (no CPU-only operators)
        if declines(forest, strategy) is not None:
            continue
        graph = emit_tensor(forest, strategy=strategy)
        rows = max(1, TENSOR_RUN_BYTES["cuda"] // bytes_per_row(graph))
        sess = ort.InferenceSession(graph.SerializeToString(), providers=["CUDAExecutionProvider"])

        def run(X: np.ndarray, sess: ort.InferenceSession = sess, rows: int = rows) -> list[Any]:
            return [sess.run(None, {"features": X[i : i + rows]})[0] for i in range(0, len(X), rows)]

        engines[f"tensor-cuda/{strategy}"] = run
    return engines, {}


def measure(
    manifest: Path, batch_sizes: list[int], *, repeats: int, min_time: float, strategies: bool
) -> dict[str, Any]:
    man = Manifest.read(manifest)
    has_cuda, why_not = cuda_status()
    engines: dict[str, Callable[[np.ndarray], Any]] = {}
    skipped: dict[str, str] = {}
    if has_cuda:
        gpu = m7_runtime.load(manifest, provider="cuda")
        if gpu.provider == "cuda":
            engines["tensor-cuda"] = gpu.predict
        else:
            skipped["tensor-cuda"] = "onnxruntime could not place the tensor flavor on CUDA (see its log)"
        if strategies:
            more, why = _strategy_engines(man)
            engines.update(more)
            skipped.update(why)
    else:
        skipped["tensor-cuda"] = why_not
        if strategies:
            skipped["tensor-cuda/<strategy>"] = why_not
    engines["tree-cpu"] = m7_runtime.load(manifest, provider="cpu", flavor="tree").predict
    if "tensor" in man.flavors:
        engines["tensor-cpu"] = m7_runtime.load(manifest, provider="cpu", flavor="tensor").predict
        engines["auto-cpu"] = m7_runtime.load(manifest, provider="cpu").predict
    else:
        skipped["tensor-cpu"] = "the artifact has no tensor flavor (re-convert with --flavor all)"
    more, why = _xgboost_engines(man)
    engines.update(more)
    skipped.update(why)
    results = []
    for n in batch_sizes:
        X = _rows(man, n)
        for engine, fn in engines.items():
            rate = _rate(fn, X, repeats=repeats, min_time=min_time)
            results.append({"model": man.name, "batch": n, "engine": engine, "rows_per_s": rate})
            print(f"  {man.name:24s} {n:>9,d} rows  {engine:24s} {rate:>14,.0f} rows/s", flush=True)
    return {"model": man.name, "manifest": str(manifest), "skipped": skipped, "results": results}


def _table(runs: list[dict[str, Any]]) -> str:
    lines = []
    for run in runs:
        engines = list(dict.fromkeys(r["engine"] for r in run["results"]))
        batches = list(dict.fromkeys(r["batch"] for r in run["results"]))
        rate = {(r["batch"], r["engine"]): r["rows_per_s"] for r in run["results"]}
        head = ["batch", *engines]
        rows = [[f"{b:,d}", *(f"{rate[b, e]:,.0f}" for e in engines)] for b in batches]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        lines.append(f"\n{run['model']} (rows/s)")
        for r in [head, ["-" * w for w in widths], *rows]:
            lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
        for engine, why in run["skipped"].items():
            lines.append(f"  skipped {engine}: {why}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--models",
        type=Path,
        nargs="+",
        default=[ROOT / "onnx" / "xgb_recovery_model.manifest.json"],
        help="manifests or folders of them (default: the bundled recovery model)",
    )
    p.add_argument("--batch-sizes", default="1,1000,100000,1000000", help="comma-separated rows per predict call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=1.0, help="seconds of calls per timing")
    p.add_argument("--strategies", action="store_true", help="also time each tensor strategy on CUDA")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu_batch.json")
    args = p.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    has_cuda, why_not = cuda_status()
    print(f"onnxruntime {ort.__version__}, providers: {', '.join(ort.get_available_providers())}")
    if not has_cuda:
        print(f"NOTE: CUDA rows are skipped: {why_not}. The CPU rows are measured.")
    runs = [
        measure(m, batch_sizes, repeats=args.repeats, min_time=args.min_time, strategies=args.strategies)
        for m in _manifests(args.models)
    ]
    print(_table(runs))
    report = {
        "date_utc": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count()},
        "onnxruntime": ort.__version__,
        "providers": ort.get_available_providers(),
        "cuda": {"available": has_cuda, "note": why_not},
        "market7_onnx": m7_runtime.__version__,
        "unit": "rows per second (best of repeats)",
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
