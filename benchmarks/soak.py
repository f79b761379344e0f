"""Soak test: millions of single predictions on the six models, watching resident memory.

    python benchmarks/soak.py                       # 2,000,000 predict_one calls, report every 100,000
    python benchmarks/soak.py --calls 20000000 --threads 4 --drop-ins --json soak.json

A bot calls ``predict_one`` (or a drop-in) for every position on every tick, for weeks. A leak
of a few bytes per call (an output array, a log record, a thread-local buffer) only shows
over millions of calls, so this runs them round-robin over all six models on varied rows
(NaN, None, bools, numpy scalars, missing keys) and prints the RSS (from /proc, no psutil)
every ``--every`` calls. The verdict compares RSS after warm-up with RSS at the end, and the
second half of the run with the first (a steady climb fails even under the total bound).
Exit status 0 = PASS, 1 = FAIL. The test suite runs a 20,000-call version of the same loop.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

import m7_runtime
from m7_runtime import market7

DROP_INS = {
    "xgb_recovery_model": market7.predict_recovery_odds,
    "xgb_confidence_model": market7.predict_confidence_score,
    "xgb_spend_model": market7.predict_spend_volume,
    "xgb_dca_spend_model": lambda f, model_dir: market7.predict_spend_volume(
        f, use_dca_model=True, model_dir=model_dir
    ),
    "safu_exit_model": market7.predict_safu_exit,
    "xgb_model": market7.predict_legacy,
}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_rows(model: m7_runtime.Model, n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    inputs = [f for f in model.feature_names if f not in model.policy.derived()]
    values = rng.normal(20, 30, (n, len(inputs)))
    rows = []
    for i, vec in enumerate(values):
        row: dict[str, Any] = dict(zip(inputs, vec.tolist(), strict=True))
        j = i % len(inputs)
        row[inputs[j]] = [None, math.nan, True, np.float32(vec[j]), np.int64(3), vec[j]][i % 6]
        if model.policy.on_missing == "zero" and i % 5 == 0:
            row.pop(inputs[(j + 1) % len(inputs)])
        if model.policy.one_hot:
            row["btc_status"] = ["bullish", "bearish", "neutral", "nan"][i % 4]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=2_000_000, help="predictions in total (default 2,000,000)")
    ap.add_argument("--every", type=int, default=100_000, help="report RSS every N calls (default 100,000)")
    ap.add_argument("--warmup", type=int, default=20_000, help="calls before the RSS baseline (default 20,000)")
    ap.add_argument("--threads", type=int, default=1, help="threads sharing the models (default 1)")
    ap.add_argument("--drop-ins", action="store_true", help="call the market7 drop-ins instead of predict_one")
    ap.add_argument("--model-dir", type=Path, default=None, help="artifacts folder (default: the bundled ones)")
    ap.add_argument("--max-growth-mb", type=float, default=16.0, help="allowed RSS growth after warm-up (default 16)")
    ap.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = ap.parse_args(argv)

    folder = args.model_dir or market7.bundled_dir()
    models = m7_runtime.load_dir(folder, provider="cpu")
    work = [(name, row) for k, (name, m) in enumerate(sorted(models.items())) for row in make_rows(m, 500, k)]
    call = (
        (lambda name, row: DROP_INS[name](row, model_dir=folder))
        if args.drop_ins
        else (lambda name, row: models[name].predict_one(row))
    )
    per_thread = max(1, args.calls // args.threads)
    total = per_thread * args.threads
    print(
        f"soak: {total:,} {'drop-in' if args.drop_ins else 'predict_one'} calls on {len(models)} models, "
        f"{args.threads} thread(s), onnxruntime {__import__('onnxruntime').__version__}, numpy {np.__version__}"
    )

    done = [0] * args.threads
    for i in range(args.warmup):
        call(*work[i % len(work)])
    gc.collect()
    baseline = rss_mb()
    samples: list[dict[str, float]] = [{"calls": 0, "seconds": 0.0, "rss_mb": baseline}]
    print(f"{'calls':>12} {'seconds':>8} {'calls/s':>10} {'rss MB':>8} {'growth':>8}")
    print(f"{0:>12,} {0.0:>8.1f} {'':>10} {baseline:>8.1f} {0.0:>+8.1f}")
    start = time.perf_counter()
    failures: list[str] = []

    def worker(t: int) -> None:
        offset = t * 7919
        try:
            for i in range(per_thread):
                call(*work[(offset + i) % len(work)])
                done[t] = i + 1
        except Exception as exc:  # record and stop: a soak run must report, not hang
            failures.append(f"thread {t}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=worker, args=(t,), daemon=True) for t in range(args.threads)]
    for th in threads:
        th.start()
    next_report = args.every
    while any(th.is_alive() for th in threads):
        time.sleep(0.05)
        n = sum(done)
        if n >= next_report or not any(th.is_alive() for th in threads):
            elapsed = time.perf_counter() - start
            rss = rss_mb()
            samples.append({"calls": n, "seconds": round(elapsed, 2), "rss_mb": round(rss, 2)})
            print(f"{n:>12,} {elapsed:>8.1f} {n / elapsed:>10,.0f} {rss:>8.1f} {rss - baseline:>+8.1f}", flush=True)
            while next_report <= n:
                next_report += args.every
    gc.collect()
    final = rss_mb()
    growth = final - baseline
    half = samples[len(samples) // 2]["rss_mb"]
    late_growth = final - half
    problems = list(failures)
    if growth > args.max_growth_mb:
        problems.append(f"RSS grew {growth:.1f} MB after warm-up (bound {args.max_growth_mb} MB)")
    if len(samples) >= 4 and late_growth > args.max_growth_mb / 2:
        problems.append(f"RSS still climbing: +{late_growth:.1f} MB over the second half")
    verdict = "FAIL" if problems else "PASS"
    rate = sum(done) / max(time.perf_counter() - start, 1e-9)
    print(f"{verdict}: {sum(done):,} calls, {rate:,.0f}/s, RSS {baseline:.1f} -> {final:.1f} MB ({growth:+.1f} MB)")
    for p in problems:
        print(f"  {p}")
    if args.json:
        report = {
            "verdict": verdict,
            "problems": problems,
            "calls": sum(done),
            "threads": args.threads,
            "drop_ins": args.drop_ins,
            "baseline_rss_mb": baseline,
            "final_rss_mb": final,
            "samples": samples,
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
