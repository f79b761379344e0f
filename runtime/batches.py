"""Running a batch: row chunks on a thread pool for the tree flavor, memory-bounded runs for the tensor graphs.

One onnxruntime session runs with one intra-op thread, so its float32 sums follow xgboost's
order; parallelism comes from running row chunks at once on a thread pool (onnxruntime
releases the GIL). Tensor graphs materialise intermediates per row, so their runs are cut
to a byte budget (:data:`TENSOR_RUN_BYTES`) or to the converter's measured run size.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .sessions import Sessions
from .state import TENSOR_FLAVORS, State, run

CHUNK_ROWS = 4096  # rows per task when a batch is split across threads
#: Tensor flavors: the bytes of intermediate tensors one run may hold, by provider. A run
#: takes floor(budget / the manifest's ``bytes_per_row``) rows, or on the CPU the converter's
#: measured ``rows_per_run`` when that is smaller; the CPU runs at most ``threads`` runs at
#: once, CUDA one. ``bytes_per_row`` sums every intermediate, an upper bound. On the CPU the
#: compact traversal ran as fast in 64 MiB runs as in 16 MiB ones, and a 1000-tree depth-8
#: forest needs the 64 to reach its fastest run size (256 rows, not 103; NOTES.md, issue 16).
TENSOR_RUN_BYTES = {"cpu": 64 * 2**20, "cuda": 256 * 2**20}
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="m7_runtime")
        return _pool


def rows_per_run(state: State, provider: str) -> int:
    """Rows in one tensor-graph run on ``provider`` ("cpu" or "cuda").

    The memory bound (TENSOR_RUN_BYTES / the graph's ``bytes_per_row``), and on the CPU at
    most the converter's ``rows_per_run`` for that graph when it recorded one (the fastest
    run size it measured, ``m7_convert.tune``).
    """
    if provider == "cuda":
        entry = state.manifest.flavors.get("tensor")
    else:
        flavor = state.bulk.placement.flavor if state.bulk is not None else state.sessions.placement.flavor
        entry = state.manifest.flavors.get(flavor if flavor in TENSOR_FLAVORS else "tensor")
    if entry is None or not entry.bytes_per_row:
        return CHUNK_ROWS
    rows = max(1, TENSOR_RUN_BYTES[provider] // entry.bytes_per_row)
    return min(rows, entry.rows_per_run) if provider == "cpu" and entry.rows_per_run else rows


def run_batch(state: State, x: np.ndarray, threads: int) -> np.ndarray:
    """The model's raw output for a float32 batch, on the sessions the batch size calls for."""
    n = len(x)
    if n == 0:
        k = state.manifest.n_outputs
        return np.empty((0, k) if k > 1 else (0,), dtype=np.float32)
    sessions = state.batch_sessions(n)
    if sessions.placement.flavor in TENSOR_FLAVORS:
        return _run_bounded(state, sessions, x, threads)
    sess = sessions.get()
    tasks = min(threads, -(-n // CHUNK_ROWS))
    if tasks <= 1 or sessions.placement.provider == "cuda":
        return run(state, sess, x)
    bounds = np.linspace(0, n, tasks + 1).astype(int)
    parts = _thread_pool().map(lambda ab: run(state, sess, x[ab[0] : ab[1]]), itertools.pairwise(bounds))
    return np.concatenate(list(parts))


def _run_bounded(state: State, sessions: Sessions, x: np.ndarray, threads: int) -> np.ndarray:
    """Tensor flavor: runs of at most rows_per_run rows, so intermediates stay within TENSOR_RUN_BYTES per run.

    On the CPU up to ``threads`` runs are in flight (each thread takes every threads-th run,
    in order); on CUDA one at a time.
    """
    sess = sessions.get()
    provider = sessions.placement.provider
    n, rows = len(x), rows_per_run(state, provider)
    runs = [(a, min(a + rows, n)) for a in range(0, n, rows)]
    lanes = 1 if provider == "cuda" else min(threads, len(runs))
    if lanes == 1:
        return np.concatenate([run(state, sess, x[a:b]) for a, b in runs])
    parts = list(_thread_pool().map(lambda i: [run(state, sess, x[a:b]) for a, b in runs[i::lanes]], range(lanes)))
    return np.concatenate([parts[j % lanes][j // lanes] for j in range(len(runs))])
