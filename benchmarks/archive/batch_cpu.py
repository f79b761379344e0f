"""The batch experiments on the CPU (NOTES.md, "Batch on the CPU"): why the tree flavor trails xgboost.

Each function is one experiment: it takes the parsed command line (``rows``, ``rounds``,
``chunk_rows``, ``chunk_sizes``, ``cache``) and returns the JSON it adds to
``experiments.json``. Every variant that could change a prediction reports the share of
outputs bit-identical to the shipped path on the same rows.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from benchmarks import common

from .lab import SPEND, artifact, forest_of, identical, interleaved, per_row_ns, runner, session
from .layouts import root_signature_order, variant_graph


def exp_per_thread(cfg: argparse.Namespace) -> dict[str, Any]:
    """One thread each: onnxruntime's tree kernel vs xgboost vs TL2cgen, ns per row."""
    out = {}
    for name in (common.HEADLINE, SPEND):
        x = common.feature_matrix(common.artifact_features(name), cfg.rows, seed=99)
        b = common.booster(name, nthread=1)
        fns = {"xgboost inplace_predict": functools.partial(b.inplace_predict, x)}
        fns["onnxruntime tree flavor"] = functools.partial(runner(session(artifact(name))), x)
        if common.tl2cgen_available() is None:
            lib = common.tl2cgen_library(b, cfg.cache, key=name)
            fns["TL2cgen"] = functools.partial(common.Tl2cgen.build(lib, threads=1).predict, x)
        out[name] = per_row_ns(interleaved(fns, cfg.rounds), len(x))
    return {"rows": cfg.rows, "ns_per_row": out}


def exp_ort_threads(cfg: argparse.Namespace) -> dict[str, Any]:
    """One session with intra_op_num_threads = T: speed, and whether the predictions stay identical."""
    out = {}
    for name in (common.HEADLINE, SPEND):
        x = common.feature_matrix(common.artifact_features(name), cfg.rows, seed=99)
        runs = {t: runner(session(artifact(name), threads=t)) for t in sorted({1, common.cpu_threads(), 4})}
        ref = runs[1](x)
        stats = per_row_ns(
            interleaved({f"T={t}": functools.partial(r, x) for t, r in runs.items()}, cfg.rounds), len(x)
        )
        out[name] = {f"T={t}": stats[f"T={t}"] | {"identical_to_T1": identical(r(x), ref)} for t, r in runs.items()}
    return {"rows": cfg.rows, "results": out}


def exp_session_options(cfg: argparse.Namespace) -> dict[str, Any]:
    """Graph optimization level, CPU arena and memory pattern, one thread, batch and one row."""
    data = artifact(common.HEADLINE)
    x = common.feature_matrix(common.artifact_features(common.HEADLINE), cfg.rows, seed=99)
    variants = {
        "runtime's (ENABLE_ALL)": {},
        "ENABLE_BASIC": {"level": "basic"},
        "DISABLE_ALL": {"level": "none"},
        "no CPU arena": {"arena": False},
        "no memory pattern": {"mem_pattern": False},
    }
    runs = {k: runner(session(data, **dict(v))) for k, v in variants.items()}
    ref = runs["runtime's (ENABLE_ALL)"](x)
    batch = per_row_ns(interleaved({k: functools.partial(r, x) for k, r in runs.items()}, cfg.rounds), len(x))
    one = x[:1].copy()
    single = interleaved({k: functools.partial(r, one) for k, r in runs.items()}, cfg.rounds, number=2000)
    return {
        "rows": cfg.rows,
        "batch_ns_per_row": batch,
        "single_row_us": {k: {q: v * 1e6 for q, v in s.items() if q != "n"} for k, s in single.items()},
        "identical_to_runtime": {k: identical(r(x), ref) for k, r in runs.items()},
    }


def exp_chunking(cfg: argparse.Namespace) -> dict[str, Any]:
    """How a big batch is cut across T threads: T equal parts (before) vs chunks of C rows, dynamic."""
    import m7_runtime

    threads = common.cpu_threads()
    n = cfg.chunk_rows
    x = common.feature_matrix(common.artifact_features(common.HEADLINE), n, seed=99)
    sess = session(artifact(common.HEADLINE))
    run = runner(sess)
    pool = ThreadPoolExecutor(max_workers=threads)

    def split_equal(x: np.ndarray) -> np.ndarray:
        bounds = np.linspace(0, len(x), threads + 1).astype(int)
        return np.concatenate(list(pool.map(lambda ab: run(x[ab[0] : ab[1]]), itertools.pairwise(bounds))))

    def chunks_of(c: int) -> Callable[[np.ndarray], np.ndarray]:
        def go(x: np.ndarray) -> np.ndarray:
            return np.concatenate(list(pool.map(lambda i: run(x[i : i + c]), range(0, len(x), c))))

        return go

    fns: dict[str, Callable[[], Any]] = {f"{threads} equal parts": functools.partial(split_equal, x)}
    for c in cfg.chunk_sizes:
        fns[f"chunks of {c:,}"] = functools.partial(chunks_of(c), x)
    model = m7_runtime.load(common.ONNX / f"{common.HEADLINE}.manifest.json", provider="cpu", threads=threads)
    fns["Model.predict (as shipped)"] = functools.partial(model.predict, x)
    fns["xgboost inplace_predict"] = functools.partial(
        common.booster(common.HEADLINE, nthread=threads).inplace_predict, x
    )
    fns["one thread (reference)"] = functools.partial(run, x)
    stats = per_row_ns(interleaved(fns, cfg.rounds), n)
    ref = run(x)
    same = {k: identical(f(), ref) for k, f in fns.items() if k != "xgboost inplace_predict"}
    pool.shutdown()
    return {"rows": n, "threads": threads, "ns_per_row": stats, "identical_to_one_thread": same}


def exp_graph_variants(cfg: argparse.Namespace) -> dict[str, Any]:
    """Node layout: perfect trees, no missing-value tracking, sharded ensembles (seq. and parallel)."""
    out = {}
    for name in (common.HEADLINE, SPEND):
        forest = forest_of(name)
        x = common.feature_matrix(common.artifact_features(name), cfg.rows, seed=99)
        graphs = {
            "as shipped": artifact(name),
            "perfect trees": variant_graph(forest, perfect=True),
            "no missing tracking ([x, -x] input)": variant_graph(forest, negate=True),
            "perfect + no missing tracking": variant_graph(forest, perfect=True, negate=True),
            "2 shards, sequential": variant_graph(forest, shards=2),
            "4 shards, sequential": variant_graph(forest, shards=4),
        }
        runs = {k: runner(session(g)) for k, g in graphs.items()}
        t = common.cpu_threads()
        runs[f"2 shards, parallel executor ({t} inter-op threads)"] = runner(
            session(graphs["2 shards, sequential"], inter_op=t, parallel=True)
        )
        ref = runs["as shipped"](x)
        stats = per_row_ns(interleaved({k: functools.partial(r, x) for k, r in runs.items()}, cfg.rounds), len(x))
        out[name] = {k: stats[k] | {"identical_to_shipped": identical(r(x), ref)} for k, r in runs.items()}
    return {"rows": cfg.rows, "results": out}


def exp_row_order(cfg: argparse.Namespace) -> dict[str, Any]:
    """Rows grouped by their branch at the most common root splits: kernel time, and net of the sort."""
    name = common.HEADLINE
    forest = forest_of(name)
    x = common.feature_matrix(common.artifact_features(name), cfg.rows, seed=99)
    run = runner(session(artifact(name)))
    order = root_signature_order(forest, x)
    xs = np.ascontiguousarray(x[order])

    def sorted_run(x: np.ndarray) -> np.ndarray:
        o = root_signature_order(forest, x)
        y = run(np.ascontiguousarray(x[o]))
        out = np.empty_like(y)
        out[o] = y
        return out

    fns = {
        "as given": functools.partial(run, x),
        "pre-sorted (kernel only)": functools.partial(run, xs),
        "sort + run + unsort (net)": functools.partial(sorted_run, x),
    }
    stats = per_row_ns(interleaved(fns, cfg.rounds), len(x))
    return {"rows": cfg.rows, "ns_per_row": stats, "identical": identical(sorted_run(x), run(x))}


def exp_tensor_runs(cfg: argparse.Namespace) -> dict[str, Any]:
    """The tensor flavor's run size (TENSOR_RUN_BYTES) and how runs are spread over threads."""
    import m7_runtime
    from m7_runtime import batches as model_module

    name = common.HEADLINE
    threads = common.cpu_threads()
    n = cfg.chunk_rows
    x = common.feature_matrix(common.artifact_features(name), n, seed=99)
    manifest = common.ONNX / f"{name}.manifest.json"
    bytes_per_row = json.loads(manifest.read_text())["flavors"]["tensor"]["bytes_per_row"]
    shipped = model_module.TENSOR_RUN_BYTES["cpu"]
    budgets = sorted({2**20, 4 * 2**20, shipped, 64 * 2**20})
    out: dict[str, Any] = {
        "rows": n,
        "threads": threads,
        "bytes_per_row": bytes_per_row,
        "shipped_mib": shipped / 2**20,
    }
    for t in sorted({1, threads}):
        model = m7_runtime.load(manifest, provider="cpu", flavor="tensor", threads=t)
        sess = model._sessions.get()
        pool = ThreadPoolExecutor(max_workers=t)

        def with_budget(budget: int, model: Any = model) -> np.ndarray:
            old = model_module.TENSOR_RUN_BYTES["cpu"]
            model_module.TENSOR_RUN_BYTES["cpu"] = budget
            try:
                return model.predict(x)
            finally:
                model_module.TENSOR_RUN_BYTES["cpu"] = old

        def dynamic(x: np.ndarray, sess: Any = sess, pool: ThreadPoolExecutor = pool) -> np.ndarray:
            rows = max(1, shipped // bytes_per_row)
            run = runner(sess)
            return np.concatenate(list(pool.map(lambda a: run(x[a : a + rows]), range(0, len(x), rows))))

        fns: dict[str, Callable[[], Any]] = {
            f"{b / 2**20:g} MiB runs ({max(1, b // bytes_per_row):,} rows)": functools.partial(with_budget, b)
            for b in budgets
        }
        if t > 1:
            fns[f"{shipped / 2**20:g} MiB runs, dynamic (pool.map)"] = functools.partial(dynamic, x)
        ref = model.predict(x)
        stats = per_row_ns(interleaved(fns, cfg.rounds), n)
        out[f"T={t}"] = {k: stats[k] | {"identical": identical(f(), ref)} for k, f in fns.items()}
        pool.shutdown()
    return out
