"""Batch throughput: a float32 matrix in, one value per row out, at 1, 100, 10k and 1M rows.

Every path runs with the same number of threads T (xgboost ``nthread``, onnxruntime
``intra_op_num_threads``, ``Model(threads=T)``, TL2cgen ``nthread``), for T = 1 (the
per-thread speed of each engine) and T = all usable cores. Rounds are interleaved and the
ratio to ``Booster.inplace_predict`` is taken inside each round.

``Model.predict`` is measured as a user calls it (it picks the tree flavor for small
batches and the tensor flavor from the manifest's ``cpu_min_rows`` on), and with each
flavor forced. Both keep float32 sums in xgboost's order: the tree flavor runs one
intra-op thread per session and splits big batches into row chunks across threads (a
multi-threaded tree ensemble reorders the sums); stock onnxmltools runs one session with
T threads, as a user would configure it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .timing import block_seconds, calls_for, cycling, distinct_batches, ratio_summary, rotated, summarize

LABELS = {
    "inplace": "xgboost Booster.inplace_predict",
    "stock_ort": "stock onnxmltools + onnxruntime",
    "auto": "m7_runtime Model.predict (default flavor choice)",
    "tree": "m7_runtime tree flavor (forced)",
    "tensor": "m7_runtime tensor flavor on CPU (forced)",
    "tensor_cpu": "m7_runtime CPU tensor graph (forced)",
    "tl2cgen": "TL2cgen compiled C (gcc)",
}


def build_paths(
    name: str, threads: int, cache: Path, skipped: dict[str, str]
) -> dict[str, Callable[[np.ndarray], Any]]:
    import m7_runtime

    manifest = common.ONNX / f"{name}.manifest.json"
    fns: dict[str, Callable[[np.ndarray], Any]] = {}
    b = common.booster(name, nthread=threads)
    fns["inplace"] = b.inplace_predict
    fns["stock_ort"] = common.StockOnnx.build(name, threads=threads).predict
    fns["auto"] = m7_runtime.load(manifest, provider="cpu", threads=threads).predict
    fns["tree"] = m7_runtime.load(manifest, provider="cpu", flavor="tree", threads=threads).predict
    if "tensor" in common.artifact_flavors(name):
        fns["tensor"] = m7_runtime.load(manifest, provider="cpu", flavor="tensor", threads=threads).predict
    else:
        skipped["tensor"] = f"the bundled {name} artifact has no tensor flavor"
    if "tensor_cpu" in common.artifact_flavors(name):
        fns["tensor_cpu"] = m7_runtime.load(manifest, provider="cpu", flavor="tensor_cpu", threads=threads).predict
    else:
        skipped["tensor_cpu"] = f"the bundled {name} artifact has no CPU tensor graph"
    why = common.tl2cgen_available()
    if why is None:
        lib = common.tl2cgen_library(common.booster(name, nthread=threads), cache, key=name)
        fns["tl2cgen"] = common.Tl2cgen.build(lib, threads=threads).predict
    else:
        skipped["tl2cgen"] = why
    return fns


def agreement(fns: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray) -> dict[str, dict[str, float]]:
    """Each path vs ``inplace_predict`` on the same rows: max |diff| and the share of bit-identical values."""
    ref = np.asarray(fns["inplace"](x), dtype=np.float32).reshape(-1)
    out = {}
    for key, fn in fns.items():
        if key == "inplace":
            continue
        got = np.asarray(fn(x), dtype=np.float32).reshape(-1)
        out[key] = {
            "max_abs_diff": float(np.abs(got.astype(np.float64) - ref).max()),
            "identical_share": float(np.mean(got == ref)),
        }
    return out


def measure(
    fns: dict[str, Callable[[np.ndarray], Any]], x_full: np.ndarray, sizes: list[int], cfg: Any
) -> dict[str, dict[str, Any]]:
    keys = list(fns)
    out: dict[str, dict[str, Any]] = {}
    for n in sizes:
        batches = distinct_batches(x_full, n)
        calls = {k: cycling(fns[k], batches) for k in keys}
        for k in keys:  # warm-up: first-call allocations, lazy sessions, caches
            calls[k]()
        number = {k: calls_for(calls[k], cfg.batch_min_seconds) for k in keys}
        secs: dict[str, list[float]] = {k: [] for k in keys}
        for r in range(cfg.batch_rounds):
            for key in rotated(keys, r):
                if r > 0 and secs[key] and secs[key][0] > cfg.batch_max_call_seconds:
                    continue  # one slow measurement is enough to place a path this far behind
                secs[key].append(block_seconds(calls[key], number[key]))
        row: dict[str, Any] = {}
        for key in keys:
            s = summarize(secs[key])
            row[key] = {
                "label": LABELS[key],
                "calls_per_block": number[key],
                "seconds_per_call": s,
                "rows_per_second": n / s["median"],
                "ns_per_row": s["median"] / n * 1e9,
            }
            if key != "inplace" and len(secs[key]) == len(secs["inplace"]):
                # > 1 means faster than xgboost: inplace time / path time, per round
                row[key]["speed_vs_inplace"] = ratio_summary(secs["inplace"], secs[key])
        out[str(n)] = row
        cfg.log(
            "  "
            + f"{n:>9,} rows: "
            + "  ".join(f"{k} {row[k]['seconds_per_call']['median'] * 1e3:.3g} ms" for k in keys)
        )
    return out


def run(cfg: Any, cache: Path) -> dict[str, Any]:
    name = common.HEADLINE
    feats = common.artifact_features(name)
    sizes = list(cfg.batch_sizes)
    cfg.log(f"batch: generating {max(sizes):,} snapshot rows")
    x_full = common.feature_matrix(feats, max(sizes), seed=99)
    by_threads = {}
    skipped: dict[str, str] = {}
    agree: dict[str, Any] = {}
    for threads in cfg.batch_threads:
        cfg.log(f"batch: {name}, {threads} thread(s), sizes {sizes}, {cfg.batch_rounds} rounds")
        fns = build_paths(name, threads, cache, skipped)
        if not agree:
            agree = agreement(fns, x_full[: min(len(x_full), 20_000)])
        by_threads[str(threads)] = measure(fns, x_full, sizes, cfg)
    return {
        "model": name,
        "features": len(feats),
        "sizes": sizes,
        "threads": cfg.batch_threads,
        "thread_settings": {
            "inplace": "Booster.set_param(nthread=T)",
            "stock_ort": "one session, intra_op_num_threads=T",
            "auto": "Model(threads=T): the tree flavor below the manifest's cpu_min_rows, else the CPU tensor graph",
            "tree": "Model(flavor='tree', threads=T): T row chunks in parallel, one intra-op thread per session",
            "tensor": "Model(flavor='tensor', threads=T): memory-bounded runs, T in flight",
            "tensor_cpu": "Model(flavor='tensor_cpu', threads=T): the converter's rows per run, T in flight",
            "tl2cgen": "Predictor(nthread=T); DMatrix built inside the timed call",
        },
        "rounds": cfg.batch_rounds,
        "skipped": skipped,
        "agreement_vs_inplace": agree,
        "results": by_threads,
    }
