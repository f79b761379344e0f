"""Issue 16's layout experiments: every tensor strategy against xgboost, one thread, and where the time goes.

For one model (a bundled pickle, or a synthetic ``TREESxDEPTH`` classifier trained on the
scaling section's market-like rows), each strategy's CPU graph (``summation="cumsum"``,
and ``complete:chain``, the CUDA graph) is timed at several rows per run against xgboost's
``inplace_predict`` and the tree flavor, all with one thread, in interleaved rounds with a
rotating start, on 65,536 distinct rows. Times are the thread's CPU time (the machine is
shared: a preempted thread's wait is not counted; cache pollution by other processes is).
Every graph is first checked bit-identical to the tree flavor. ``--profile`` adds
onnxruntime's per-operator profile of one graph (share of kernel time, nodes per run).

    python -m benchmarks.archive.tensor_layouts xgb_recovery_model
    python -m benchmarks.archive.tensor_layouts 1000x8 --rows 256,512 --graphs code,complete --profile code@512
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import CACHE, common


def _session(data: bytes, *, profile: str | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def load(model: str) -> tuple[Any, Any, np.ndarray]:
    """Forest, booster (one thread) and 65,536 market-like rows for a bundled name or ``TREESxDEPTH``."""
    from m7_convert.driver import build_forest
    from m7_convert.load import load_source
    from m7_convert.verify import booster

    if "x" in model:
        from benchmarks.scaling import ensure_synthetic, market_rows

        trees, depth = (int(v) for v in model.split("x"))
        files = ensure_synthetic(trees, depth, CACHE / "scaling", print)
        source = load_source(files["source"])
        forest, _ = build_forest(source, None)
        X = market_rows(65536, seed=7, n_features=forest.n_features)
    else:
        source = load_source(common.MODELS / f"{model}.pkl")
        forest, _ = build_forest(source, None)
        X = common.feature_matrix(common.artifact_features(model), 65536, seed=7)
    b = booster(source)
    b.set_param({"nthread": 1})
    return forest, b, X


def graphs(forest: Any, names: list[str]) -> dict[str, bytes]:
    from m7_convert.emit_tensor import declines, emit_tensor
    from m7_convert.emit_tree import emit_tree

    out = {"tree": emit_tree(forest).SerializeToString()}
    for name in names:
        strategy, _, summation = name.partition(":")
        if declines(forest, strategy) is None:
            out[name] = emit_tensor(forest, strategy=strategy, summation=summation or "cumsum").SerializeToString()
    return out


def race(forest: Any, b: Any, X: np.ndarray, data: dict[str, bytes], rows: list[int], rounds: int) -> dict:
    sessions = {k: _session(v) for k, v in data.items()}
    ref = sessions["tree"].run(None, {"features": X[:4096]})[0]
    for k, s in sessions.items():  # the same bits, or the timing means nothing
        assert np.array_equal(s.run(None, {"features": X[:4096]})[0], ref), k

    def passes(s: Any, r: int) -> Any:
        def run() -> None:
            for i in range(0, len(X), r):
                s.run(None, {"features": X[i : i + r]})

        return run

    calls = {"xgboost": lambda: b.inplace_predict(X)}
    for k, s in sessions.items():
        for r in rows if k != "tree" else [4096]:
            calls[f"{k}@{r}"] = passes(s, r)
    names = list(calls)
    ns: dict[str, list[float]] = {k: [] for k in names}
    for f in calls.values():
        f()
    for i in range(rounds):
        for k in names[i % len(names) :] + names[: i % len(names)]:
            t0 = time.thread_time()
            calls[k]()
            ns[k].append((time.thread_time() - t0) / len(X) * 1e9)
    return {
        k: {
            "ns_per_row": float(np.median(v)),
            "min": min(v),
            "max": max(v),
            "xgboost_over_this": float(np.median([a / c for a, c in zip(ns["xgboost"], v, strict=True)])),
        }
        for k, v in ns.items()
    }


def profile(data: bytes, X: np.ndarray, rows: int) -> dict[str, Any]:
    """onnxruntime's profiler over 64 runs: per operator type, share of kernel time and nodes per run."""
    with tempfile.TemporaryDirectory() as tmp:
        s = _session(data, profile=str(Path(tmp) / "prof"))
        for i in range(0, rows * 64, rows):
            s.run(None, {"features": X[i : i + rows]})
        events = json.loads(Path(s.end_profiling()).read_text())
    by: collections.Counter[str] = collections.Counter()
    count: collections.Counter[str] = collections.Counter()
    runs = run_us = 0.0
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by[e["args"]["op_name"]] += e["dur"]
            count[e["args"]["op_name"]] += 1
        if e.get("cat") == "Session" and e["name"] == "model_run":
            runs += 1
            run_us += e["dur"]
    kernels = sum(by.values())
    return {
        "rows_per_run": rows,
        "run_us": run_us / runs,
        "kernel_share_of_run": kernels / run_us,
        "ops": {op: {"share": d / kernels, "nodes": count[op] // int(runs)} for op, d in by.most_common()},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a bundled model name, or TREESxDEPTH for a synthetic one")
    p.add_argument("--graphs", default="code,complete,traversal,complete:chain", help="STRATEGY[:SUMMATION],...")
    p.add_argument("--rows", default="512,1024,2048", help="rows per run")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--profile", help="GRAPH@ROWS to profile with onnxruntime's profiler")
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    forest, b, X = load(args.model)
    data = graphs(forest, args.graphs.split(","))
    result: dict[str, Any] = {
        "model": args.model,
        "trees": len(forest.trees),
        "depth": forest.max_depth(),
        "race": race(forest, b, X, data, [int(r) for r in args.rows.split(",")], args.rounds),
    }
    for k, v in result["race"].items():
        spread = f"[{v['min']:.0f}-{v['max']:.0f}]"
        print(f"{k:24s} {v['ns_per_row']:9.0f} ns/row {spread}  xgboost/this {v['xgboost_over_this']:.2f}")
    if args.profile:
        graph, _, rows = args.profile.partition("@")
        result["profile"] = prof = profile(data[graph], X, int(rows or 1024))
        print(f"profile {args.profile}: {prof['run_us']:.0f} us per run, kernels {prof['kernel_share_of_run']:.0%}")
        for op, v in prof["ops"].items():
            print(f"  {op:16s} {v['share']:6.1%}  x{v['nodes']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
