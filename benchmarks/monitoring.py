"""What monitoring costs: drift profiling and shadow scoring, before/after in the same run.

    python -m benchmarks.monitoring                 # results/monitoring.json and monitoring.md
    python -m benchmarks.monitoring --quick         # fewer rounds, printed only

Targets (issue 12): the live profile adds at most 0.3 µs to ``predict_one``'s p50 and at most
5% to 1M-row batch throughput. Each path is measured on the headline model in interleaved
rounds (the order rotates each round) and the cost is taken inside each round, so load on
the shared machine moves both sides together:

* ``before``: the model as it was before monitoring (its out-of-range counter only);
* ``after``: as loaded now, with the live drift profile of its reference (the default);
* ``every_row``: the profile counting every row of large batches (``stride=1``), the
  alternative the stride sample was chosen over;
* ``shadow``: ``after`` plus a shadow candidate (a second model of the same size).

``predict_one``: per-call wall time over varied snapshot dicts; p50 and mean (the mean
carries the batched delivery every 4,096 calls). Batches: ``Model.predict`` on distinct
float32 rows at 100, 10,000 and 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from . import RESULTS, common, env
from .timing import block_seconds, calls_for, cycling, distinct_batches, per_call_ns, percentiles_us, rotated, summarize

PATHS = ("before", "after", "every_row", "shadow")
TARGETS = {"predict_one_p50_added_us": 0.3, "batch_1m_cost_ratio": 1.05}


class Paths:
    """One model whose observers are switched per path before each timed block: every path runs the same
    sessions, thread-local buffers and memory, so only the observers differ."""

    def __init__(self) -> None:
        import m7_runtime
        from m7_runtime.drift import LiveProfile
        from m7_runtime.shadow import Shadow

        path = common.ONNX / f"{common.HEADLINE}.manifest.json"
        self.model = m = m7_runtime.load(path, provider="cpu")
        self.extra = {
            "after": m._profile,  # the live profile as loaded
            "every_row": LiveProfile(m.manifest.reference, m.feature_names, name=m.name, stride=1),
            "shadow": Shadow(m, m7_runtime.load(path, provider="cpu")),
        }
        self.use("before")

    def use(self, key: str) -> Any:
        m = self.model
        for observer in self.extra.values():
            m.remove_observer(observer)
        if key != "before":
            m.add_observer(self.extra[key])
        if key == "shadow":
            m.add_observer(self.extra["after"])  # shadow scoring on top of the live profile
        return m


def single(paths: Paths, rows: list[dict[str, Any]], *, calls: int, rounds: int) -> dict[str, Any]:
    per_round: dict[str, list[dict[str, float]]] = {k: [] for k in PATHS}
    for r in range(rounds):
        for key in rotated(list(PATHS), r):
            fn = paths.use(key).predict_one
            per_round[key].append(percentiles_us(per_call_ns(fn, rows, calls, warmup=200)))
    out: dict[str, Any] = {}
    for key in PATHS:
        out[key] = {s: summarize(x[s] for x in per_round[key]) for s in ("p50", "p99", "mean")}
        if key != "before":
            out[key]["p50_added_us"] = summarize(
                a["p50"] - b["p50"] for a, b in zip(per_round[key], per_round["before"], strict=True)
            )
            out[key]["mean_added_us"] = summarize(
                a["mean"] - b["mean"] for a, b in zip(per_round[key], per_round["before"], strict=True)
            )
    return out


def batches(paths: Paths, x: np.ndarray, sizes: list[int], *, rounds: int, min_seconds: float) -> dict:
    out: dict[str, Any] = {}
    fns = dict.fromkeys(PATHS)
    for n in sizes:
        parts = distinct_batches(x, n)
        call = cycling(paths.model.predict, parts)
        number = {}
        for k in fns:
            paths.use(k)
            call()  # warm-up
            number[k] = calls_for(call, min_seconds)
        secs: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(rounds):
            for key in rotated(list(fns), r):
                paths.use(key)
                t0 = time.process_time()
                secs[key].append(block_seconds(call, number[key]))
                cpu[key].append((time.process_time() - t0) / number[key])
        row: dict[str, Any] = {}
        for key in fns:
            s = summarize(secs[key])
            row[key] = {
                "seconds_per_call": s,
                "cpu_seconds_per_call": summarize(cpu[key]),
                "ns_per_row": s["median"] / n * 1e9,
            }
            if key != "before":
                row[key]["cost_ratio"] = summarize(a / b for a, b in zip(secs[key], secs["before"], strict=True))
                row[key]["cpu_cost_ratio"] = summarize(a / b for a, b in zip(cpu[key], cpu["before"], strict=True))
        out[str(n)] = row
        print(
            f"  {n:>9,} rows: " + "  ".join(f"{k} {row[k]['seconds_per_call']['median'] * 1e3:.3g} ms" for k in fns),
            file=sys.stderr,
        )
    return out


def observe_cost(model: Any, x: np.ndarray, *, rounds: int) -> dict[str, Any]:
    """The live profile's own work on a 1M-row batch, in CPU time (other processes' load does not count),
    against the CPU time of predicting that batch: sampled as shipped, and every row (``stride=1``)."""
    from m7_runtime.drift import LiveProfile

    y = model.predict(x)
    sampled = LiveProfile(model.manifest.reference, model.feature_names)
    every = LiveProfile(model.manifest.reference, model.feature_names, stride=1)
    out: dict[str, list[float]] = {"predict": [], "sampled": [], "every_row": []}
    for _ in range(rounds):
        for key, fn in (
            ("predict", lambda: model._run_batch(model._state, x)),
            ("sampled", lambda: sampled.observe(x, y)),
            ("every_row", lambda: every.observe(x, y)),
        ):
            t0 = time.process_time()
            fn()
            out[key].append(time.process_time() - t0)
    return {
        "cpu_seconds": {k: summarize(v) for k, v in out.items()},
        "share_of_predict": {
            k: summarize(a / b for a, b in zip(out[k], out["predict"], strict=True)) for k in ("sampled", "every_row")
        },
    }


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    added = result["predict_one"]["after"]["p50_added_us"]
    ratio = result["batch"]["1000000"]["after"]["cpu_cost_ratio"]
    return {
        "predict_one_p50_added_us": {
            "median": added["median"],
            "max_round": added["max"],
            "target": 0.3,
            "met": added["median"] <= TARGETS["predict_one_p50_added_us"],
        },
        "batch_1m_cost_ratio": {
            "median": ratio["median"],
            "max_round": ratio["max"],
            "target": 1.05,
            "met": ratio["median"] <= TARGETS["batch_1m_cost_ratio"],
        },
    }


def markdown(result: dict[str, Any]) -> str:
    one, batch, v = result["predict_one"], result["batch"], result["verdicts"]
    lines = [
        "# Monitoring overhead",
        "",
        f"`python -m benchmarks.monitoring`, {result['date_utc']}, {result['rounds']} interleaved rounds; "
        f"model {common.HEADLINE}. Costs are per round (same round, other path), median [min, max].",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
        f"| live profile adds ≤ 0.3 µs to `predict_one` p50 | {v['predict_one_p50_added_us']['median']:+.3f} µs | "
        f"{'yes' if v['predict_one_p50_added_us']['met'] else 'no'} |",
        f"| live profile costs ≤ 5% of 1M-row `predict` (CPU time) | "
        f"{(v['batch_1m_cost_ratio']['median'] - 1) * 100:+.1f}% | "
        f"{'yes' if v['batch_1m_cost_ratio']['met'] else 'no'} |",
        "",
        "| `predict_one` | p50 µs | mean µs | p50 added µs | mean added µs |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for k in PATHS:
        s = one[k]
        added = ("", "")
        if k != "before":
            added = (f"{s['p50_added_us']['median']:+.3f}", f"{s['mean_added_us']['median']:+.3f}")
        lines.append(f"| {k} | {s['p50']['median']:.2f} | {s['mean']['median']:.2f} | {added[0]} | {added[1]} |")
    for measure, key in (("wall time", "cost_ratio"), ("CPU time", "cpu_cost_ratio")):
        lines += [
            "",
            f"| `predict`, rows ({measure}) | " + " | ".join(PATHS) + " |",
            "| --- |" + " ---: |" * len(PATHS),
        ]
        for n, row in batch.items():
            cells = [f"{row['before']['ns_per_row']:.0f} ns/row"]
            for k in PATHS[1:]:
                r = row[k][key]
                cells.append(
                    f"{(r['median'] - 1) * 100:+.1f}% [{(r['min'] - 1) * 100:+.1f}, {(r['max'] - 1) * 100:+.1f}]"
                )
            lines.append(f"| {int(n):,} | " + " | ".join(cells) + " |")
    o = result["observe_1m"]
    cpu, share = o["cpu_seconds"], o["share_of_predict"]
    lines += [
        "",
        f"The live profile's own work on a 1M-row batch (CPU time, median of {result['rounds']}): sampled as "
        f"shipped {cpu['sampled']['median'] * 1e3:.1f} ms = {share['sampled']['median'] * 100:.2f}% of predicting "
        f"it ({cpu['predict']['median'] * 1e3:.0f} ms); every row {cpu['every_row']['median'] * 1e3:.0f} ms = "
        f"{share['every_row']['median'] * 100:.1f}%.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and calls; prints, writes nothing")
    args = p.parse_args(argv)
    rounds, calls = (3, 8192) if args.quick else (9, 3 * 4096)
    paths = Paths()
    rows = common.snapshot_rows(2000, seed=2024)
    print(f"predict_one: {len(PATHS)} paths x {rounds} rounds x {calls} calls", file=sys.stderr)
    result: dict[str, Any] = {
        "date_utc": env.now_utc(),
        "machine": env.machine(),
        "versions": env.versions(),
        "rounds": rounds,
        "calls_per_round": calls,
        "predict_one": single(paths, rows, calls=calls, rounds=rounds),
    }
    x = common.feature_matrix(paths.model.feature_names, 1_000_000, seed=99)
    print("batch: predict at 100, 10k, 1M rows", file=sys.stderr)
    sizes = [100, 10_000, 1_000_000]
    result["batch"] = batches(paths, x, sizes, rounds=rounds, min_seconds=0.05 if args.quick else 0.2)
    result["observe_1m"] = observe_cost(paths.use("before"), x, rounds=rounds)
    result["verdicts"] = verdicts(result)
    text = markdown(result)
    print(text)
    if not args.quick:
        (RESULTS / "monitoring.json").write_text(json.dumps(result, indent=2) + "\n")
        (RESULTS / "monitoring.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
