"""Single row: a feature dict in, one value out, p50 and p99 per call, every path on one thread.

On the headline model (recovery) every path a user could pick is measured; on the other
five models the ones that matter to the bot (the pickle's call site, ``predict_one``, the
drop-in, and the bare onnxruntime floor). Each path sees the same rows (snapshot dicts
with Python floats, ints and NaN gaps, cycled), in interleaved rounds; ratios are taken
inside each round, so a burst of load on the machine moves numerator and denominator
together.

"bare onnxruntime run" is the floor the runtime's Python-side overhead is measured
against: ``session.run`` on our tree graph with a ready float32 row, no dict, no checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from . import common
from .timing import per_call_ns, percentiles_us, ratio_summary, rotated, summarize, timer_overhead_ns

#: path key -> label shown in tables and plots
LABELS = {
    "pickle": "pickle predict_proba (map call site)",
    "inplace": "xgboost Booster.inplace_predict",
    "stock_ort": "stock onnxmltools + onnxruntime run",
    "ort_dict": "onnxruntime run on our graph, dict -> array",
    "bare": "bare onnxruntime run on our graph (rows ready as float32)",
    "predict_one": "m7_runtime Model.predict_one",
    "dropin": "m7_runtime drop-in function",
}
HEADLINE_PATHS = tuple(LABELS)
OTHER_PATHS = ("pickle", "bare", "predict_one", "dropin")


def build_paths(
    name: str, keys: tuple[str, ...], onnx_dir: Path, rows: list[dict[str, Any]]
) -> tuple[dict[str, Callable[..., Any]], dict[str, list[Any]]]:
    """Callables per path, and the arguments each one is called with (cycled).

    Every path gets the row dicts except the bare onnxruntime run, which gets the same rows
    already converted to float32 ``(1, n)`` feeds: the same inputs (the tree walk's cost
    depends on them, through branch prediction), with no Python-side work left to do.
    """
    import m7_runtime
    from m7_runtime import market7

    model = m7_runtime.load(onnx_dir / f"{name}.manifest.json", provider="cpu")
    feats = list(model.feature_names)
    fns: dict[str, Callable[..., Any]] = {}
    args: dict[str, list[Any]] = {}
    for key in keys:
        if key == "pickle":
            fns[key] = common.pickle_call_site(name)
        elif key == "inplace":
            b = common.booster(name, nthread=1)
            fns[key] = _inplace(b, feats)
        elif key == "stock_ort":
            fns[key] = _stock_one(common.StockOnnx.build(name, threads=1), feats)
        elif key == "ort_dict":
            sess = common.ort_session((onnx_dir / f"{name}.onnx").read_bytes(), threads=1)
            fns[key] = _ort_dict(sess, feats)
        elif key == "bare":
            sess = common.ort_session((onnx_dir / f"{name}.onnx").read_bytes(), threads=1)
            inp = sess.get_inputs()[0].name
            fns[key] = functools.partial(sess.run, [sess.get_outputs()[0].name])
            args[key] = [{inp: np.array([model.policy.row(model.feature_names, r)], dtype=np.float32)} for r in rows]
        elif key == "predict_one":
            fns[key] = model.predict_one
        elif key == "dropin":
            fn_name, kwargs = common.SIX[name]
            fn = getattr(market7, fn_name)
            fns[key] = functools.partial(fn, **kwargs) if kwargs else fn
        else:
            raise ValueError(key)
        args.setdefault(key, rows)
    return fns, args


def _inplace(b: Any, feats: list[str]) -> Callable[[dict[str, Any]], float]:
    def run(features: dict[str, Any]) -> float:
        return float(b.inplace_predict(np.array([[features[f] for f in feats]], dtype=np.float32))[0])

    return run


def _stock_one(stock: common.StockOnnx, feats: list[str]) -> Callable[[dict[str, Any]], float]:
    sess = stock.session
    if stock.classifier:

        def run(features: dict[str, Any]) -> float:
            return float(sess.run(None, {"input": np.array([[features[f] for f in feats]], dtype=np.float32)})[1][0][1])

        return run

    def reg(features: dict[str, Any]) -> float:
        return float(sess.run(None, {"input": np.array([[features[f] for f in feats]], dtype=np.float32)})[0][0][0])

    return reg


def _ort_dict(sess: Any, feats: list[str]) -> Callable[[dict[str, Any]], float]:
    out = [sess.get_outputs()[0].name]
    name = sess.get_inputs()[0].name

    def run(features: dict[str, Any]) -> float:
        return float(sess.run(out, {name: np.array([[features[f] for f in feats]], dtype=np.float32)})[0][0])

    return run


def agreement(fns: dict[str, Callable[..., Any]], rows: list[dict[str, Any]]) -> dict[str, float]:
    """Max |path - pickle| over the rows: every path must compute the same thing to be compared.

    The bare run is left out: it is the graph ``predict_one`` runs, before the caller policy's
    clamp, on rows already converted.
    """
    ref = np.array([fns["pickle"](r) for r in rows], dtype=np.float64)
    out = {}
    for key, fn in fns.items():
        if key in ("pickle", "bare"):
            continue
        got = np.array([np.nan if (v := fn(r)) is None else v for r in rows], dtype=np.float64)
        out[key] = float(np.nanmax(np.abs(got - ref))) if np.isfinite(got).any() else float("nan")
    return out


def measure_model(
    name: str, keys: tuple[str, ...], rows: list[dict[str, Any]], *, calls: int, rounds: int, onnx_dir: Path
) -> dict[str, Any]:
    fns, args = build_paths(name, keys, onnx_dir, rows)
    per_round: dict[str, list[dict[str, float]]] = {k: [] for k in keys}
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    warm = min(len(rows), 200)
    for r in range(rounds):
        for key in rotated(list(keys), r):
            samples = per_call_ns(fns[key], args[key], calls, warmup=warm if r == 0 else 20)
            per_round[key].append(percentiles_us(samples))
            pooled[key].append(samples)
    paths = {}
    for key in keys:
        paths[key] = {
            "label": LABELS[key],
            "p50_us": summarize(x["p50"] for x in per_round[key]),
            "p99_us": summarize(x["p99"] for x in per_round[key]),
            "pooled_us": percentiles_us(np.concatenate(pooled[key])),
        }
    ratios = {}

    def p50s(k: str) -> list[float]:
        return [x["p50"] for x in per_round[k]]

    if "pickle" in keys and "predict_one" in keys:
        ratios["pickle_over_predict_one"] = ratio_summary(p50s("pickle"), p50s("predict_one"))
    if "bare" in keys and "predict_one" in keys:
        ratios["predict_one_over_bare"] = ratio_summary(p50s("predict_one"), p50s("bare"))
    if "bare" in keys and "dropin" in keys:
        ratios["dropin_over_bare"] = ratio_summary(p50s("dropin"), p50s("bare"))
    if "pickle" in keys and "dropin" in keys:
        ratios["pickle_over_dropin"] = ratio_summary(p50s("pickle"), p50s("dropin"))
    return {"paths": paths, "ratios": ratios, "max_abs_diff_vs_pickle": agreement(fns, rows[:300])}


def run(cfg: Any, cache: Path) -> dict[str, Any]:
    from m7_runtime import market7

    rows = common.snapshot_rows(cfg.single_rows, seed=2024)
    models = [common.HEADLINE] if cfg.single_headline_only else list(common.SIX)
    results = {}
    for name in models:
        keys = HEADLINE_PATHS if name == common.HEADLINE else OTHER_PATHS
        cfg.log(f"single row: {name} ({len(keys)} paths x {cfg.single_rounds} rounds x {cfg.single_calls} calls)")
        results[name] = measure_model(
            name, keys, rows, calls=cfg.single_calls, rounds=cfg.single_rounds, onnx_dir=common.ONNX
        )
    return {
        "threads": {"xgboost_nthread": 1, "onnxruntime_intra_op": 1, "m7_runtime_session_intra_op": 1},
        "rows": len(rows),
        "calls_per_round": cfg.single_calls,
        "rounds": cfg.single_rounds,
        "timer_overhead_ns": timer_overhead_ns(),
        "dropin_model_dir": str(market7.model_dir()),
        "models": results,
    }
