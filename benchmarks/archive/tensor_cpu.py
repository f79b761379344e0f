"""CPU rows/s of the tree flavor and of each tensor-flavor strategy, by model shape and rows per run.

The measurements behind ``m7_convert.emit_tensor.choose_strategy`` and the runtime's CPU
use of the tensor flavor (benchmarks/NOTES.md, "Tensor flavor"). Each model is a real
XGBClassifier (20 features, 5% NaN) trained here; every graph runs in a one-thread
onnxruntime session, as the runtime runs each chunk, over 32,768 distinct rows split into
runs of ``--rows-per-run`` rows (repeating one small batch would let the branch predictor
learn it and flatter small runs). Best of ``--repeats`` passes, flavors interleaved. A
tensor run whose intermediates would exceed ``--max-run-mb`` is skipped (null): without
the runtime's chunking a 500-tree depth-6 GEMM on 32,768 rows needs over 13 GB.

    python -m benchmarks.archive.tensor_cpu                  # the grid in NOTES.md
    python -m benchmarks.archive.tensor_cpu --shapes 100x4 --rows-per-run 256,4096

Research (archived): it produces no section of ``python -m benchmarks``'s report. Results
go to ``benchmarks/archive/results/tensor_cpu.json``; the committed ``tensor_cpu_grid.json``
and ``tensor_cpu_shallow.json`` there are two such runs, renamed.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import onnxruntime as ort
import xgboost as xgb

from m7_convert.booster_json import from_booster_json
from m7_convert.emit_tensor import STRATEGY_FUNCTIONS, bytes_per_row, emit_tensor
from m7_convert.emit_tree import emit_tree

N_FEATURES = 20


def _session(model_bytes: bytes) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model_bytes, sess_options=opts, providers=["CPUExecutionProvider"])


def _data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    return X


def _forest(trees: int, depth: int):
    X = _data(4000, 0)
    Z = np.nan_to_num(X)
    y = (Z[:, 0] + Z[:, 1] * Z[:, 2] + np.sin(3 * Z[:, 3]) + np.random.default_rng(1).normal(0, 0.5, len(X))) > 0
    m = xgb.XGBClassifier(n_estimators=trees, max_depth=depth, n_jobs=2, random_state=0).fit(X, y.astype(int))
    return from_booster_json(json.loads(m.get_booster().save_raw("json")))


def _pass(sess: ort.InferenceSession, X: np.ndarray, rows: int) -> float:
    t = time.perf_counter()
    for i in range(0, len(X), rows):
        sess.run(None, {"features": X[i : i + rows]})
    return len(X) / (time.perf_counter() - t)


def _runtime_rows(flavor: str, per_row: int | None) -> int:
    from m7_runtime.batches import CHUNK_ROWS, TENSOR_RUN_BYTES

    return CHUNK_ROWS if per_row is None else max(1, TENSOR_RUN_BYTES["cpu"] // per_row)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="100x2,100x3,100x4,100x6,100x8,500x3,500x4,500x6", help="TREESxDEPTH,...")
    p.add_argument(
        "--rows-per-run",
        default="16,64,256,1024,4096,32768,runtime",
        help="comma-separated; 'runtime' = what the runtime uses: 16 MiB / bytes_per_row for a tensor graph, "
        "CHUNK_ROWS (4096) for the tree flavor",
    )
    p.add_argument("--rows", type=int, default=32768, help="distinct rows scored per pass")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-run-mb", type=float, default=512, help="skip tensor runs needing more intermediates")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tensor_cpu.json")
    args = p.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    chunks = [c if c == "runtime" else int(c) for c in args.rows_per_run.split(",")]
    X = _data(args.rows, 2)
    results = []
    for trees, depth in shapes:
        forest = _forest(trees, depth)
        graphs = {"tree": emit_tree(forest)} | {s: emit_tensor(forest, strategy=s) for s in STRATEGY_FUNCTIONS}
        sessions = {k: _session(g.SerializeToString()) for k, g in graphs.items()}
        per_row = {k: bytes_per_row(g) for k, g in graphs.items() if k != "tree"}
        ref = sessions["tree"].run(None, {"features": X[:2048]})[0]
        for k, s in sessions.items():  # same bits, or the timing means nothing
            assert np.array_equal(s.run(None, {"features": X[:2048]})[0], ref), k
        for rows in chunks:
            run_rows = {k: _runtime_rows(k, per_row.get(k)) if rows == "runtime" else rows for k in sessions}
            fits = {k: k == "tree" or run_rows[k] * per_row[k] <= args.max_run_mb * 2**20 for k in sessions}
            best: dict[str, float | None] = {k: 0.0 if fits[k] else None for k in sessions}
            for _ in range(args.repeats):
                for k, s in sessions.items():
                    if fits[k]:
                        best[k] = max(best[k], _pass(s, X, run_rows[k]))
            row = {
                "trees": trees,
                "depth": forest.max_depth(),
                "rows_per_run": run_rows,
                "bytes_per_row": per_row,
                "rows_per_s": best,
            }
            results.append(row)
            cells = "  ".join(f"{k} {v / 1e3:7.0f}k" if v else f"{k}     skip" for k, v in best.items())
            print(f"{trees:4d} trees depth {forest.max_depth():2d}  {rows!s:>7} rows/run  {cells}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date_utc": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
                "machine": {"cpus": __import__("os").cpu_count(), "processor": platform.processor(), "gpu": None},
                "onnxruntime": ort.__version__,
                "xgboost": xgb.__version__,
                "unit": "rows per second, one onnxruntime thread",
                "results": results,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
