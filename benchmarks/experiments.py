"""The speed experiments behind benchmarks/NOTES.md, re-runnable: ``python -m benchmarks.experiments``.

Each experiment states a hypothesis in NOTES.md, measures it here on the recovery model
(and the spend model where float32 summation order matters), and writes its numbers to
``<out>/experiments.json``. Timings are interleaved rounds (median, min–max); every
variant that could change a prediction is compared bit for bit with the shipped tree
flavor on the same rows.

    python -m benchmarks.experiments                       # all, 200k rows (1M for chunking)
    python -m benchmarks.experiments --only chunking,row_order --rows 100000
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from . import common, env
from .timing import block_seconds, rotated, summarize

SPEND = "xgb_spend_model"


# ---- helpers ---------------------------------------------------------------------------------------
def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, number: int = 1) -> dict[str, dict[str, float]]:
    """Seconds per call of each variant: ``rounds`` interleaved rounds, order rotated each round."""
    for f in fns.values():  # warm-up
        f()
    secs: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        for k in rotated(list(fns), r):
            secs[k].append(block_seconds(fns[k], number))
    return {k: summarize(v) for k, v in secs.items()}


def per_row_ns(stats: dict[str, dict[str, float]], rows: int) -> dict[str, dict[str, float]]:
    return {k: {q: v * 1e9 / rows for q, v in s.items() if q != "n"} | {"n": s["n"]} for k, s in stats.items()}


def session(data: bytes, *, threads: int = 1, **options: Any) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = options.pop("inter_op", 1)
    opts.execution_mode = (
        ort.ExecutionMode.ORT_PARALLEL if options.pop("parallel", False) else ort.ExecutionMode.ORT_SEQUENTIAL
    )
    level = options.pop("level", "all")
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    }[level]
    if "arena" in options:
        opts.enable_cpu_mem_arena = options.pop("arena")
    if "mem_pattern" in options:
        opts.enable_mem_pattern = options.pop("mem_pattern")
    for key, value in options.pop("config", {}).items():
        opts.add_session_config_entry(key, value)
    assert not options, options
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def runner(sess: Any) -> Callable[[np.ndarray], np.ndarray]:
    names = [sess.get_outputs()[0].name]
    inp = sess.get_inputs()[0].name
    return lambda x: sess.run(names, {inp: x})[0]


def identical(a: np.ndarray, b: np.ndarray) -> float:
    """Share of values that are bit-identical (NaN equal to NaN)."""
    a = np.asarray(a, dtype=np.float32).reshape(-1)
    b = np.asarray(b, dtype=np.float32).reshape(-1)
    return float(np.mean((a == b) | (np.isnan(a) & np.isnan(b))))


@functools.cache
def forest_of(name: str) -> Any:
    from m7_convert.driver import build_forest
    from m7_convert.load import load_source
    from m7_convert.spec import resolve

    path = common.MODELS / f"{name}.pkl"
    forest, _ = build_forest(load_source(path), resolve(path)[0])
    return forest


def artifact(name: str) -> bytes:
    return (common.ONNX / f"{name}.onnx").read_bytes()


# ---- graph variants (same trees, different node layout) --------------------------------------------
def pad_to_perfect(tree: Any, depth: int) -> Any:
    """The same function as a perfect tree of ``depth``: a shallow leaf becomes a dummy split
    whose two children are copies of it, so every root-to-leaf walk has the same length."""
    from m7_convert.ir import Tree

    cols: dict[str, list[Any]] = {k: [] for k in ("left", "right", "feature", "threshold", "default_left", "value")}

    def new() -> int:
        for k, v in zip(cols, (-1, -1, 0, np.float32(0), True, np.float32(0)), strict=True):
            cols[k].append(v)
        return len(cols["left"]) - 1

    def build(src: int, level: int, dst: int) -> None:
        if tree.left[src] >= 0 or level < depth:
            split = tree.left[src] >= 0
            cols["feature"][dst] = int(tree.feature[src]) if split else 0
            cols["threshold"][dst] = tree.threshold[src] if split else np.float32(0)
            cols["default_left"][dst] = bool(tree.default_left[src]) if split else True
            left, right = new(), new()
            cols["left"][dst], cols["right"][dst] = left, right
            build(int(tree.left[src]) if split else src, level + 1, left)
            build(int(tree.right[src]) if split else src, level + 1, right)
        else:
            cols["value"][dst] = tree.leaf_value[src]

    build(0, 0, new())
    return Tree(
        np.array(cols["left"], np.int32),
        np.array(cols["right"], np.int32),
        np.array(cols["feature"], np.int32),
        np.array(cols["threshold"], np.float32),
        np.array(cols["default_left"], bool),
        np.array(cols["value"], np.float32),
        group=tree.group,
        weight=tree.weight,
    )


def variant_graph(forest: Any, *, perfect: bool = False, negate: bool = False, shards: int = 1) -> bytes:
    """The tree flavor with a different layout.

    ``negate``: no node tracks missing values. Input becomes [x, -x]; a default-left split
    ``x < t`` becomes ``-x < nextafter(-t, +inf)`` with its children swapped, which NaN
    fails, so NaN takes the false branch = the original left child; exact in float32.
    ``shards``: the trees split into that many TreeEnsembleRegressor nodes added together
    (a different float32 summation order: not exact, measured for speed only).
    """
    from onnx import helper

    from m7_convert import graph
    from m7_convert.emit_tree import tree_arrays

    if perfect:
        depth = forest.max_depth()
        forest = dataclasses.replace(forest, trees=tuple(pad_to_perfect(t, depth) for t in forest.trees))
    a = tree_arrays(forest)
    nodes, inits = graph.missing_to_nan(graph.INPUT, forest.missing, "x")
    feat, val = a["feature"].copy(), a["value"].copy()
    true, false, miss = a["true"].copy(), a["false"].copy(), a["missing"].copy()
    src = "x"
    if negate:
        nodes += [helper.make_node("Neg", ["x"], ["neg_x"]), helper.make_node("Concat", ["x", "neg_x"], ["xx"], axis=1)]
        src = "xx"
        m = (miss == 1) & ~a["leaf"]
        feat[m] += forest.n_features
        val[m] = np.nextafter(-val[m], np.float32(np.inf)).astype(np.float32)
        true[m], false[m] = false[m].copy(), true[m].copy()
        miss[:] = 0
    outs = []
    for s, chunk in enumerate(np.array_split(np.unique(a["tree"]), shards)):
        sel, lsel = np.isin(a["tree"], chunk), np.isin(a["leaf_tree"], chunk)
        out = f"margin{s}" if shards > 1 else "margin"
        nodes.append(
            helper.make_node(
                "TreeEnsembleRegressor",
                [src],
                [out],
                domain="ai.onnx.ml",
                n_targets=forest.n_groups,
                aggregate_function="SUM",
                post_transform="NONE",
                base_values=[0.0] * forest.n_groups,
                nodes_treeids=a["tree"][sel].tolist(),
                nodes_nodeids=a["node"][sel].tolist(),
                nodes_featureids=feat[sel].tolist(),
                nodes_modes=["LEAF" if leaf else "BRANCH_LT" for leaf in a["leaf"][sel]],
                nodes_values=val[sel].tolist(),
                nodes_truenodeids=true[sel].tolist(),
                nodes_falsenodeids=false[sel].tolist(),
                nodes_missing_value_tracks_true=miss[sel].tolist(),
                target_treeids=a["leaf_tree"][lsel].tolist(),
                target_nodeids=a["leaf_node"][lsel].tolist(),
                target_ids=a["leaf_group"][lsel].tolist(),
                target_weights=a["leaf_weight"][lsel].tolist(),
            )
        )
        outs.append(out)
    acc = outs[0]
    for i, o in enumerate(outs[1:]):
        nxt = "margin" if i == len(outs) - 2 else f"sum{i}"
        nodes.append(helper.make_node("Add", [acc, o], [nxt]))
        acc = nxt
    link_nodes, link_inits = graph.link(forest.objective.link, "margin", graph.OUTPUT)
    return graph.model(
        [*nodes, *link_nodes],
        inits + link_inits,
        n_features=forest.n_features,
        n_outputs=forest.n_outputs,
        graph_name="variant",
        ml=True,
    ).SerializeToString()


# ---- row order --------------------------------------------------------------------------------------
def root_signature_order(forest: Any, x: np.ndarray, bits: int = 16) -> np.ndarray:
    """A row order that groups rows taking the same branch at the most common root splits.

    Rows that agree on a split make the same branch decision one after another, which the
    CPU's branch predictor gets right; the prediction of each row is unchanged (only the
    order of rows moves).
    """
    roots = [(int(t.feature[0]), t.threshold[0], bool(t.default_left[0])) for t in forest.trees if t.left[0] >= 0]
    common_roots = [s for s, _ in __import__("collections").Counter(roots).most_common(bits)]
    key = np.zeros(len(x), dtype=np.uint32)
    for i, (f, t, dl) in enumerate(common_roots):
        col = x[:, f]
        go_left = (col < t) | (np.isnan(col) & dl)
        key |= go_left.astype(np.uint32) << np.uint32(bits - 1 - i)
    return np.argsort(key, kind="stable")


# ---- the experiments ------------------------------------------------------------------------------
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


def exp_single_row_call(cfg: argparse.Namespace) -> dict[str, Any]:
    """The cost of one 1-row call: session.run vs I/O binding vs predict_one; and per graph node."""
    import onnx
    from onnx import helper

    import m7_runtime

    model = m7_runtime.load(common.ONNX / f"{common.HEADLINE}.manifest.json", provider="cpu")
    row = common.snapshot_rows(1, seed=3)[0]
    model.predict_one(row)
    sess = session(artifact(common.HEADLINE))
    buf = np.zeros((1, len(model.feature_names)), np.float32)
    out = np.zeros((1,), np.float32)
    binding = sess.io_binding()
    binding.bind_input("features", "cpu", 0, np.float32, [1, buf.shape[1]], buf.ctypes.data)
    binding.bind_output("prediction", "cpu", 0, np.float32, [1], out.ctypes.data)
    # the same graph cut after the tree ensemble: what the link and reshape nodes cost
    g = onnx.load_from_string(artifact(common.HEADLINE))
    keep = [n for n in g.graph.node if n.op_type != "Sigmoid" and n.op_type != "Reshape"]
    trees_only = helper.make_model(
        helper.make_graph(
            keep,
            "trees_only",
            list(g.graph.input),
            [helper.make_tensor_value_info("margin", onnx.TensorProto.FLOAT, ["N", 1])],
            [i for i in g.graph.initializer if i.name != "flat_shape"],
        ),
        opset_imports=list(g.opset_import),
    )
    trees_only.ir_version = g.ir_version
    sess_trees = session(trees_only.SerializeToString())
    import onnxruntime as ort

    ort_in = ort.OrtValue.ortvalue_from_numpy(buf)
    fns = {
        "session.run": functools.partial(sess.run, ["prediction"], {"features": buf}),
        "run_with_ort_values (input OrtValue made once)": functools.partial(
            sess.run_with_ort_values, ["prediction"], {"features": ort_in}
        ),
        "session.run, ensemble only (no Sigmoid/Reshape)": functools.partial(
            sess_trees.run, ["margin"], {"features": buf}
        ),
        "run_with_iobinding": functools.partial(sess.run_with_iobinding, binding),
        "run_with_iobinding via _sess (runtime's)": functools.partial(
            sess._sess.run_with_iobinding, binding._iobinding, None
        ),
        "Model.predict_one (dict in)": functools.partial(model.predict_one, row),
    }
    stats = interleaved(fns, cfg.rounds, number=5000)
    return {"single_row_us": {k: {q: v * 1e6 for q, v in s.items() if q != "n"} for k, s in stats.items()}}


def exp_tensor_runs(cfg: argparse.Namespace) -> dict[str, Any]:
    """The tensor flavor's run size (TENSOR_RUN_BYTES) and how runs are spread over threads."""
    import m7_runtime
    from m7_runtime import model as model_module

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


INSTRUCTIONS_CHILD = r"""
import functools, json, sys
import numpy as np, onnxruntime as ort
import m7_runtime
from m7_runtime import market7
which, n, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
row = json.load(open(root + "/models/example_snapshot.json"))
folder = market7.model_dir()
model = m7_runtime.load(folder / "xgb_recovery_model.manifest.json", provider="cpu")
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1; opts.inter_op_num_threads = 1
sess = ort.InferenceSession((folder / "xgb_recovery_model.onnx").read_bytes(), opts, providers=["CPUExecutionProvider"])
buf = np.zeros((1, len(model.feature_names)), np.float32)
fns = {
    "nothing": lambda: None,
    "session.run": functools.partial(sess.run, ["prediction"], {"features": buf}),
    "predict_one": functools.partial(model.predict_one, row),
    "drop-in": functools.partial(market7.predict_recovery_odds, row),
}
fn = fns[which]
for _ in range(50):
    fn()
for _ in range(n):
    fn()
"""


def exp_instructions(cfg: argparse.Namespace) -> dict[str, Any]:
    """Instructions per single-row call under valgrind (noise-free): before/after this branch's fast path.

    Opt-in (``--only instructions``): 24 valgrind runs, several minutes. "before" is the
    runtime at the branch point (``git archive`` of ``--before``); "now" the working tree.
    """
    import shutil
    import subprocess

    if shutil.which("valgrind") is None:
        return {"skipped": "valgrind is not installed"}
    old = cfg.cache / f"runtime-{cfg.before}"
    if not (old / "m7_runtime").exists():
        old.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "archive", cfg.before, "runtime", "onnx"], cwd=common.ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        (old / "runtime").rename(old / "m7_runtime")
    child = cfg.cache / "instructions_child.py"
    child.write_text(INSTRUCTIONS_CHILD)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONHASHSEED="0", M7_CONFIG="/nonexistent/config.json")
    env.pop("M7_MODEL_DIR", None)

    def count(which: str, n: int, pythonpath: str | None) -> int:
        e = dict(env)
        if pythonpath:
            e["PYTHONPATH"] = pythonpath
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--callgrind-out-file=/dev/null",
                sys.executable,
                str(child),
                which,
                str(n),
                str(common.ROOT),
            ],
            capture_output=True,
            text=True,
            env=e,
            check=True,
        )
        line = next(x for x in proc.stderr.splitlines() if "Collected" in x)
        return int(line.split(":")[-1].strip().replace(",", ""))

    n = cfg.instruction_calls
    out: dict[str, dict[str, int]] = {}
    for label, path in (("before", str(old)), ("now", None)):
        out[label] = {}
        for which in ("session.run", "predict_one", "drop-in"):
            out[label][which] = (count(which, n, path) - count(which, 0, path)) // n
    return {"calls": n, "before_commit": cfg.before, "instructions_per_call": out}


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
    parser = argparse.ArgumentParser(prog="python -m benchmarks.experiments", description=__doc__.splitlines()[0])
    parser.add_argument("--only", help=f"comma-separated: {','.join(EXPERIMENTS)}")
    parser.add_argument("--rows", type=int, default=200_000, help="rows per batch experiment (default 200k)")
    parser.add_argument("--chunk-rows", type=int, default=1_000_000, help="rows for the chunking experiment")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--before", default="caac164", help="commit of the 'before' runtime (instructions)")
    parser.add_argument("--instruction-calls", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    cfg = parser.parse_args(argv)
    cfg.chunk_sizes = (4096, 16_384, 65_536, 262_144)
    cfg.cache = cfg.out / "tmp"
    cfg.cache.mkdir(parents=True, exist_ok=True)
    common.silence_library_logs()
    names = [n.strip() for n in cfg.only.split(",")] if cfg.only else [n for n in EXPERIMENTS if n not in OPT_IN]
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
