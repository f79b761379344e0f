"""Scaling (issue 16): ``Model.predict`` against the engines a user would otherwise pick, as models grow.

Models: synthetic binary classifiers of trees x depth in the config (100 x 4, 500 x 6,
1000 x 8 in a full run), trained on market-like rows, and the six bundled Market7 models.
Inputs are market-like: for the synthetic models heavy tails (Student t with 3 degrees
of freedom), rare 100x jumps and 5% NaN; for the six the snapshot generator's rows
(``models/make_models.py``). Batches of distinct rows (10k and 1M in a full run).

Paths, all with the same thread count T (1, and all usable cores): ``Model.predict`` as a
user calls it (the flavor and run size the converter chose, ``m7_convert.tune``), xgboost
``Booster.inplace_predict``, TL2cgen (gcc), stock onnxmltools + onnxruntime. Paths are
timed in interleaved rounds with a rotating start; every ratio is taken inside a round
(baseline seconds / ``Model.predict`` seconds: above 1 means ours is faster).

The synthetic models are trained, converted with ``tune=True`` (the converter measures
their CPU layout on this machine, as the six bundled ones were) and compiled once, cached
under ``<cache>/scaling``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .timing import block_seconds, calls_for, cycling, distinct_batches, ratio_summary, rotated, summarize

N_FEATURES = 20
N_TRAIN = 20_000
LABELS = {
    "m7": "m7_runtime Model.predict",
    "inplace": "xgboost inplace_predict",
    "tl2cgen": "TL2cgen (gcc)",
    "stock_ort": "stock onnxmltools + onnxruntime",
}
BASELINES = ("inplace", "tl2cgen", "stock_ort")
#: the synthetic models are retrained when this changes
RECIPE_VERSION = 2


def market_rows(n: int, *, seed: int, n_features: int = N_FEATURES) -> np.ndarray:
    """Market-like float32 rows: heavy tails (Student t, 3 dof), 0.5% jumps of 100x, 5% NaN."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, size=(n, n_features))
    x[rng.random(x.shape) < 0.005] *= 100
    x = x.astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan
    return x


def synthetic_labels(x: np.ndarray, *, seed: int) -> np.ndarray:
    z = np.clip(np.nan_to_num(x), -10, 10)
    rng = np.random.default_rng(seed)
    score = np.sin(2 * z[:, 0]) + z[:, 1] * z[:, 2] + 0.5 * np.abs(z[:, 3]) - 0.3 * z[:, 4] + rng.normal(0, 0.5, len(z))
    return (score > np.median(score)).astype(np.int64)


def model_key(trees: int, depth: int) -> str:
    return f"t{trees}_d{depth}"


def ensure_synthetic(trees: int, depth: int, folder: Path, log: Callable[[str], None]) -> dict[str, Path]:
    """Train and convert (verified, CPU layout measured) a synthetic model, once."""
    import xgboost as xgb

    from m7_convert import convert

    key = model_key(trees, depth)
    src, stamp = folder / f"{key}.json", folder / f"{key}.stamp.json"
    want = {"recipe": RECIPE_VERSION, "xgboost": xgb.__version__, "tuned": True}
    if not (stamp.exists() and json.loads(stamp.read_text()) == want and src.exists()):
        folder.mkdir(parents=True, exist_ok=True)
        log(f"scaling: training and converting {key} (cached for later runs)")
        x = market_rows(N_TRAIN, seed=trees * 10 + depth)
        clf = xgb.XGBClassifier(
            n_estimators=trees, max_depth=depth, learning_rate=0.1, tree_method="hist", random_state=0
        )
        clf.set_params(n_jobs=common.cpu_threads())
        clf.fit(x, synthetic_labels(x, seed=depth))
        clf.save_model(src)
        result = convert(src, out_dir=folder, name=key, tune=True)  # measured here, as the README advises
        log(f"scaling: {key}: {result.plan.describe() if result.plan else 'no tensor flavor'}")
        stamp.write_text(json.dumps(want))
    return {"source": src, "manifest": folder / f"{key}.manifest.json"}


def _paths(
    booster: Any, stock: bytes, manifest: Path, threads: int, cache: Path, key: str, skipped: dict[str, str]
) -> dict[str, Callable[[np.ndarray], Any]]:
    import m7_runtime

    b = booster.copy()
    b.set_param({"nthread": threads})
    fns: dict[str, Callable[[np.ndarray], Any]] = {
        "m7": m7_runtime.load(manifest, provider="cpu", threads=threads).predict,
        "inplace": b.inplace_predict,
    }
    why = common.tl2cgen_available()
    if why is None:
        fns["tl2cgen"] = common.Tl2cgen.build(common.tl2cgen_library(b, cache, key=key), threads=threads).predict
    else:
        skipped["tl2cgen"] = why
    fns["stock_ort"] = common.StockOnnx.from_bytes(stock, threads=threads).predict
    return fns


def _race(fns: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray, n: int, cfg: Any) -> dict[str, Any]:
    """Every path on distinct ``n``-row batches, in interleaved rounds; per-round speed ratios of ``m7``."""
    keys = list(fns)
    calls = {k: cycling(fns[k], distinct_batches(x, n)) for k in keys}
    for k in keys:  # warm-up: sessions, first-call allocations
        calls[k]()
    number = {k: calls_for(calls[k], cfg.scaling_min_seconds) for k in keys}
    secs: dict[str, list[float]] = {k: [] for k in keys}
    for r in range(cfg.scaling_rounds):
        for k in rotated(keys, r):
            secs[k].append(block_seconds(calls[k], number[k]))
    out: dict[str, Any] = {
        "paths": {
            k: {"seconds_per_call": summarize(v), "rows_per_s": n / float(np.median(v))} for k, v in secs.items()
        },
        "calls_per_block": number,
    }
    out["speed_vs"] = {b: ratio_summary(secs[b], secs["m7"]) for b in BASELINES if b in secs}
    out["speed_vs_inplace"] = out["speed_vs"]["inplace"]
    out["_per_round"] = [a / b for a, b in zip(secs["inplace"], secs["m7"], strict=True)]
    return out


def _agreement(fns: dict[str, Callable[[np.ndarray], Any]], x: np.ndarray) -> dict[str, float]:
    """Max |diff| of each path against ``inplace_predict`` on the same rows (every path computes the same)."""
    ref = np.asarray(fns["inplace"](x), dtype=np.float64).reshape(-1)
    return {
        k: float(np.abs(np.asarray(fn(x), dtype=np.float64).reshape(-1) - ref).max())
        for k, fn in fns.items()
        if k != "inplace"
    }


def _measure_model(
    key: str,
    info: dict[str, Any],
    make_paths: Callable[[int], dict[str, Callable[[np.ndarray], Any]]],
    x: np.ndarray,
    cfg: Any,
) -> dict[str, Any]:
    by_threads: dict[str, Any] = {}
    for threads in cfg.scaling_threads:
        fns = make_paths(threads)
        if "agreement_vs_inplace" not in info:
            info["agreement_vs_inplace"] = _agreement(fns, x[: min(len(x), 20_000)])
        per_size = {}
        for n in cfg.scaling_sizes:
            per_size[str(n)] = _race(fns, x, n, cfg)
            paths = per_size[str(n)]["paths"]
            cfg.log(
                f"scaling: {key} T={threads} {n:,} rows: "
                + "  ".join(f"{k} {v['rows_per_s'] / 1e6:.3g}M rows/s" for k, v in paths.items())
                + f"  (m7 {per_size[str(n)]['speed_vs_inplace']['median']:.2f}x inplace)"
            )
        by_threads[str(threads)] = per_size
    return {**info, "runs": by_threads}


def _layout(manifest: Path) -> dict[str, Any]:
    """What the artifact's CPU large-batch graph is (the converter's choice), for the tables."""
    from m7_runtime.artifact import Manifest
    from m7_runtime.state import bulk_flavor

    m = Manifest.read(manifest)
    flavor = bulk_flavor(m)
    entry = m.flavors.get(flavor) if flavor else None
    return {
        "flavor": flavor,
        "strategy": entry.strategy if entry else None,
        "rows_per_run": entry.rows_per_run if entry else None,
        "cpu_min_rows": entry.cpu_min_rows if entry else None,
    }


def _worst_of(models: dict[str, Any], names: Sequence[str], threads: Sequence[int], sizes: Sequence[int]) -> dict:
    """Per T and size: the per-round minimum of the m7/inplace ratio over ``names``, and the worst model's times."""
    out: dict[str, Any] = {}
    for t in threads:
        for n in sizes:
            runs = {k: models[k]["runs"][str(t)][str(n)] for k in names if k in models}
            if not runs:
                continue
            worst = min(runs, key=lambda k: runs[k]["speed_vs_inplace"]["median"])
            per_round = np.min(np.array([r["_per_round"] for r in runs.values()]), axis=0)
            out.setdefault(str(t), {})[str(n)] = {
                "speed_vs_inplace": summarize(per_round),
                "worst": worst,
                "paths": runs[worst]["paths"],
            }
    return out


def run(cfg: Any, cache: Path) -> dict[str, Any]:
    import xgboost as xgb

    folder = cache / "scaling"
    skipped: dict[str, str] = {}
    models: dict[str, Any] = {}
    x_syn = market_rows(max(cfg.scaling_sizes), seed=12345)
    for trees, depth in cfg.scaling_models:
        key = model_key(trees, depth)
        files = ensure_synthetic(trees, depth, folder, cfg.log)
        booster = xgb.Booster(model_file=str(files["source"]))
        stock = common.stock_onnx_from_booster(booster)
        info = _info(key, "synthetic", files["manifest"])

        def make(t: int, b: Any = booster, s: bytes = stock, m: Path = files["manifest"], k: str = key) -> dict:
            return _paths(b, s, m, t, cache, k, skipped)

        models[key] = _measure_model(key, info, make, x_syn, cfg)
    six = sorted(common.SIX) if cfg.scaling_six else []
    for name in six:
        feats = common.artifact_features(name)
        x = common.feature_matrix(feats, max(cfg.scaling_sizes), seed=2024)
        booster = common.load_pickle(name).get_booster()
        manifest = common.ONNX / f"{name}.manifest.json"
        info = _info(name, "bundled", manifest)

        def make(t: int, b: Any = booster, m: Path = manifest, nm: str = name) -> dict:
            return _paths(b, common.stock_onnx_bytes(nm), m, t, cache, nm, skipped)

        models[name] = _measure_model(name, info, make, x, cfg)
    worst_six = _worst_of(models, six, cfg.scaling_threads, cfg.scaling_sizes)
    for m in models.values():
        for per_size in m["runs"].values():
            for r in per_size.values():
                r.pop("_per_round")
    return {
        "threads": list(cfg.scaling_threads),
        "sizes": list(cfg.scaling_sizes),
        "labels": LABELS,
        "inputs": "synthetic: Student t (3 dof) with 0.5% 100x jumps and 5% NaN; bundled: the snapshot generator",
        "rounds": cfg.scaling_rounds,
        "skipped": skipped,
        "models": models,
        "six": worst_six,
    }


def _info(key: str, kind: str, manifest: Path) -> dict[str, Any]:
    from m7_runtime.artifact import Manifest

    src = Manifest.read(manifest).source
    return {
        "kind": kind,
        "trees": src.n_trees,
        "depth": src.max_depth,
        "leaves": src.n_leaves,
        "layout": _layout(manifest),
    }
