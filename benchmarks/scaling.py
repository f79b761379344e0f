"""Scaling: how each path's cost grows with the number of trees, the depth and the batch size.

Synthetic binary classifiers (50/200/1000 trees x depth 4/6/8, 20 features, 5% NaN)
are trained once on random data with a nonlinear target, converted with verification,
compiled by TL2cgen where gcc exists, and cached under ``<out>/tmp/scaling`` so re-runs
only measure. Every path runs with all usable cores (same T for all), at a few batch
sizes, in interleaved rounds.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .timing import block_seconds, calls_for, cycling, distinct_batches, rotated, summarize

N_FEATURES = 20
N_TRAIN = 10_000
LABELS = {
    "inplace": "xgboost inplace_predict",
    "stock_ort": "stock onnxmltools + onnxruntime",
    "tree": "m7_runtime tree flavor",
    "tensor": "m7_runtime tensor flavor (CPU)",
    "tl2cgen": "TL2cgen (gcc)",
}
#: the synthetic models are regenerated when this changes
RECIPE_VERSION = 1


def synthetic_data(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[rng.uniform(size=x.shape) < 0.05] = np.nan
    z = np.nan_to_num(x)
    score = np.sin(2 * z[:, 0]) + z[:, 1] * z[:, 2] + 0.5 * z[:, 3] ** 2 - 0.3 * z[:, 4] + rng.normal(0, 0.5, n)
    return x, (score > np.median(score)).astype(np.int64)


def model_key(trees: int, depth: int) -> str:
    return f"t{trees}_d{depth}"


def ensure_model(trees: int, depth: int, folder: Path, log: Callable[[str], None]) -> dict[str, Path]:
    """Train, convert (verified) and note the synthetic model once; return its files."""
    import xgboost as xgb

    from m7_convert import convert, driver

    key = model_key(trees, depth)
    src = folder / f"{key}.json"
    stamp = folder / f"{key}.stamp.json"
    flavors = tuple(driver.EMITTERS)
    want = {"recipe": RECIPE_VERSION, "flavors": list(flavors), "xgboost": xgb.__version__}
    if not (stamp.exists() and json.loads(stamp.read_text()) == want and src.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        log(f"scaling: training and converting {key} (cached for later runs)")
        x, y = synthetic_data(N_TRAIN, seed=trees * 10 + depth)
        clf = xgb.XGBClassifier(
            n_estimators=trees,
            max_depth=depth,
            learning_rate=0.1,
            tree_method="hist",
            n_jobs=common.cpu_threads(),
            random_state=0,
        )
        clf.fit(x, y)
        clf.save_model(src)
        convert(src, out_dir=folder, name=key, flavors=flavors)
        stamp.write_text(json.dumps(want))
    return {"source": src, "manifest": folder / f"{key}.manifest.json"}


def build_paths(
    files: dict[str, Path], threads: int, cache: Path, skipped: dict[str, str]
) -> dict[str, Callable[[np.ndarray], Any]]:
    import xgboost as xgb

    import m7_runtime

    b = xgb.Booster(model_file=str(files["source"]))
    b.set_param({"nthread": threads})
    fns: dict[str, Callable[[np.ndarray], Any]] = {"inplace": b.inplace_predict}
    fns["stock_ort"] = common.StockOnnx.from_bytes(common.stock_onnx_from_booster(b), threads=threads).predict
    fns["tree"] = m7_runtime.load(files["manifest"], provider="cpu", flavor="tree", threads=threads).predict
    flavors = json.loads(files["manifest"].read_text())["flavors"]
    if "tensor" in flavors:
        fns["tensor"] = m7_runtime.load(files["manifest"], provider="cpu", flavor="tensor", threads=threads).predict
    else:
        skipped["tensor"] = "the converter wrote no tensor flavor for this model"
    why = common.tl2cgen_available()
    if why is None:
        lib = common.tl2cgen_library(b, cache, key=files["source"].stem)
        fns["tl2cgen"] = common.Tl2cgen.build(lib, threads=threads).predict
    else:
        skipped["tl2cgen"] = why
    return fns


def run(cfg: Any, cache: Path) -> dict[str, Any]:
    folder = cache / "scaling"
    threads = common.cpu_threads()
    x_full, _ = synthetic_data(max(max(cfg.scaling_sizes), 100_000), seed=12345)  # distinct rows for small batches
    skipped: dict[str, str] = {}
    results: dict[str, Any] = {}
    for trees, depth in cfg.scaling_models:
        files = ensure_model(trees, depth, folder, cfg.log)
        fns = build_paths(files, threads, cache, skipped)
        keys = list(fns)
        manifest = json.loads(files["manifest"].read_text())
        per_size: dict[str, Any] = {}
        for n in cfg.scaling_sizes:
            batches = distinct_batches(x_full, n)
            calls = {k: cycling(fns[k], batches) for k in keys}
            for k in keys:  # warm-up
                calls[k]()
            number = {k: calls_for(calls[k], cfg.scaling_min_seconds) for k in keys}
            secs: dict[str, list[float]] = {k: [] for k in keys}
            for r in range(cfg.scaling_rounds):
                for k in rotated(keys, r):
                    secs[k].append(block_seconds(calls[k], number[k]))
            per_size[str(n)] = {
                k: {"seconds_per_call": summarize(v), "ns_per_row": float(np.median(v)) / n * 1e9}
                for k, v in secs.items()
            }
        results[model_key(trees, depth)] = {
            "trees": trees,
            "depth": depth,
            "max_depth_reached": manifest["source"].get("max_depth"),
            "sizes": per_size,
        }
        cfg.log(
            f"scaling: {model_key(trees, depth)}: "
            + "  ".join(f"{k} {per_size[str(max(cfg.scaling_sizes))][k]['ns_per_row']:.0f} ns/row" for k in keys)
        )
    return {
        "threads": threads,
        "features": N_FEATURES,
        "train_rows": N_TRAIN,
        "sizes": list(cfg.scaling_sizes),
        "models": [model_key(t, d) for t, d in cfg.scaling_models],
        "labels": LABELS,
        "skipped": skipped,
        "rounds": cfg.scaling_rounds,
        "results": results,
    }
