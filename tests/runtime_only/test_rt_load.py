"""Under load: many threads on shared models, concurrent loading, and memory over a long run.

Results under concurrency must be *exactly* the sequential ones (same float, bit for bit):
each session runs one row with one intra-op thread, so nothing about scheduling may change
a prediction.
"""

from __future__ import annotations

import gc
import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
import runtime_support as rs

import m7_runtime
from m7_runtime import market7

THREADS = 8


def _rows(features: tuple[str, ...], n: int, seed: int) -> list[dict[str, Any]]:
    """Snapshot-like rows with noise, NaN, None, bools and numpy scalars mixed in."""
    rng = np.random.default_rng(seed)
    base = np.nan_to_num(rs.base_matrix(features)[0], nan=1.0)
    values = base * rng.lognormal(0, 0.5, (n, len(features))) * rng.choice([-1, 1], (n, len(features)), p=[0.1, 0.9])
    rows = []
    for i, vec in enumerate(values):
        row: dict[str, Any] = dict(zip(features, vec.tolist(), strict=True))
        if i % 7 == 0:
            row[features[i % len(features)]] = None
        if i % 11 == 0:
            row[features[(i + 3) % len(features)]] = math.nan
        if i % 13 == 0:
            row[features[(i + 5) % len(features)]] = np.float32(vec[0])
        if i % 17 == 0:
            row[features[(i + 1) % len(features)]] = bool(i % 2)
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def workload() -> tuple[dict[str, m7_runtime.Model], list[tuple[str, dict[str, Any]]]]:
    models = rs.load_all()
    tasks: list[tuple[str, dict[str, Any]]] = []
    for k, (name, model) in enumerate(sorted(models.items())):
        features = tuple(f for f in model.feature_names if f not in model.policy.derived())
        for row in _rows(features, 500, seed=k):
            if model.policy.one_hot:
                row["btc_status"] = ["bullish", "bearish", "neutral", "nan", "", None][len(tasks) % 6]
                if row["btc_status"] is None:
                    del row["btc_status"]
            tasks.append((name, row))
    return models, tasks


def _run(models: dict[str, m7_runtime.Model], task: tuple[str, dict[str, Any]]) -> float:
    name, row = task
    return float(models[name].predict_one(row))


def test_eight_threads_on_shared_models_give_the_sequential_results(workload):
    models, tasks = workload  # 3,000 rows over the six models
    sequential = [_run(models, t) for t in tasks]
    orders = [np.random.default_rng(s).permutation(len(tasks)) for s in range(THREADS)]
    start = threading.Barrier(THREADS)

    def worker(order: np.ndarray) -> list[tuple[int, float]]:
        start.wait()
        return [(int(i), _run(models, tasks[i])) for i in order]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(worker, orders))
    assert sum(len(r) for r in results) == THREADS * len(tasks)  # 24,000 calls
    for r in results:
        mismatched = [(i, got, sequential[i]) for i, got in r if got != sequential[i]]
        assert not mismatched, mismatched[:5]


def test_concurrent_load_dir_of_one_folder_is_safe(workload):
    _, tasks = workload
    sample = tasks[::25]
    reference = rs.load_all()
    expected = [_run(reference, t) for t in sample]
    start = threading.Barrier(THREADS)

    def worker(_: int) -> list[float]:
        start.wait()
        models = m7_runtime.load_dir(rs.ONNX, provider="cpu")
        return [_run(models, t) for t in sample]

    with ThreadPoolExecutor(THREADS) as pool:
        assert list(pool.map(worker, range(THREADS))) == [expected] * THREADS


def test_lazy_sessions_are_created_once_under_a_first_use_race(workload):
    _, tasks = workload
    models = m7_runtime.load_dir(rs.ONNX, provider="cpu")  # no session exists yet
    assert all(m._state.sessions._session is None for m in models.values())
    start = threading.Barrier(THREADS)

    def worker(_: int) -> dict[str, int]:
        start.wait()
        for t in tasks[::100]:
            _run(models, t)
        return {name: id(m._state.sessions.get()) for name, m in models.items()}

    with ThreadPoolExecutor(THREADS) as pool:
        seen = list(pool.map(worker, range(THREADS)))
    assert all(s == seen[0] for s in seen)


def test_drop_ins_under_a_first_use_race(workload):
    _, tasks = workload
    rows = [row for name, row in tasks if name == "xgb_recovery_model"][:200]
    market7.clear_cache()
    expected = [market7.predict_recovery_odds(r, model_dir=rs.ONNX) for r in rows]
    first = market7.get_model(market7.RECOVERY, rs.ONNX)
    market7.clear_cache()
    start = threading.Barrier(THREADS)

    def worker(_: int) -> tuple[list[float | None], int]:
        start.wait()
        out = [market7.predict_recovery_odds(r, model_dir=rs.ONNX) for r in rows]
        return out, id(market7.get_model(market7.RECOVERY, rs.ONNX))

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(worker, range(THREADS)))
        assert all(out == expected for out, _ in results)
        assert len({ident for _, ident in results}) == 1  # one Model per process and folder
        assert market7.get_model(market7.RECOVERY, rs.ONNX) is not first  # (the cache was really cleared)
    finally:
        market7.clear_cache()


def test_memory_stays_flat_over_many_single_predictions(workload):
    """20,000 predict_one calls after a warm-up: RSS may not grow by more than 8 MB.

    A clean run grows by ~0 MB here; leaking one 1 KB object per call (a buffer, an output array,
    a log record) grows by ~22 MB, and anything above ~0.4 KB per call fails.
    benchmarks/soak.py runs the same loop for millions of calls.
    """
    models, tasks = workload
    for t in tasks:  # warm-up: sessions, thread-local buffers, allocator pools
        _run(models, t)
    gc.collect()
    before = rs.rss_bytes()
    n = 0
    while n < 20_000:
        for t in tasks:
            _run(models, t)
            n += 1
    gc.collect()
    grown = (rs.rss_bytes() - before) / 2**20
    assert grown < 8, f"RSS grew by {grown:.1f} MB over {n} calls"
