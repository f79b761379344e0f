"""What the archived experiments share: interleaved timing, configurable sessions, bit-for-bit comparison.

Kept apart from the harness's own helpers (``benchmarks/timing.py``) because these time
*variants of one path* against each other (session options, graph layouts, chunkings),
while the harness times *the paths a user could pick*; both use the same interleaved,
rotated rounds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks import common
from benchmarks.timing import block_seconds, rotated, summarize

#: the second model the batch experiments run on: 120 trees and a base margin of 89.6, where
#: float32 summation order shows first
SPEND = "xgb_spend_model"


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
