"""Timing helpers every section shares: per-call samples, timed blocks, interleaved rounds, summaries.

The machine these numbers come from is small (2 cores) and often shared, so the helpers
are built for noisy conditions:

* paths are measured in **rounds**, round-robin, with the starting path rotated each
  round (A B C, B C A, C A B...): a burst of load from another process hits every path
  instead of one, and a ratio taken inside one round compares two measurements made
  seconds apart;
* every summary keeps its spread (min, quartiles, max over rounds), never only a mean;
* single calls are timed one by one with ``time.perf_counter_ns`` so p50 and p99 are real
  per-call percentiles; the timer's own cost is measured and reported, not subtracted.
"""

from __future__ import annotations

import gc
import itertools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np


def summarize(values: Iterable[float]) -> dict[str, float]:
    """Median and spread of a sample: the numbers every table and plot shows."""
    a = np.asarray(list(values), dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "n": int(a.size),
        "median": float(med),
        "min": float(a.min()),
        "q1": float(q1),
        "q3": float(q3),
        "max": float(a.max()),
    }


def percentiles_us(samples_ns: np.ndarray) -> dict[str, float]:
    """p50/p90/p99/mean of per-call samples, in microseconds."""
    s = np.asarray(samples_ns, dtype=np.float64) / 1e3
    p50, p90, p99 = np.percentile(s, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(s.mean()), "calls": int(s.size)}


def per_call_ns(fn: Callable[..., Any], args: Sequence[Any] | None, calls: int, *, warmup: int = 0) -> np.ndarray:
    """Wall time of each of ``calls`` calls, in ns: ``fn(args[i % len(args)])``, or ``fn()`` if ``args`` is None.

    Zero-argument callables (``functools.partial``) let a baseline be timed without a Python
    wrapper frame around it, so the baseline is not made to look slower than it is.
    """
    perf = time.perf_counter_ns
    out = np.empty(calls, dtype=np.int64)
    gc.collect()
    if args is None:
        for _ in range(warmup):
            fn()
        for i in range(calls):
            t0 = perf()
            fn()
            out[i] = perf() - t0
        return out
    k = len(args)
    for i in range(warmup):
        fn(args[i % k])
    for i in range(calls):
        a = args[i % k]
        t0 = perf()
        fn(a)
        out[i] = perf() - t0
    return out


def timer_overhead_ns(calls: int = 20000) -> float:
    """Median cost of one timed empty call: the floor under every single-row number."""

    def nothing() -> None:
        return None

    return float(np.median(per_call_ns(nothing, None, calls)))


def block_seconds(fn: Callable[[], Any], number: int) -> float:
    """Seconds per call over ``number`` back-to-back calls (for batches: no per-call timer noise)."""
    gc.collect()
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def calls_for(fn: Callable[[], Any], min_seconds: float, *, cap: int = 100_000) -> int:
    """How many calls make one timed block last at least ``min_seconds`` (timeit's autorange idea)."""
    if min_seconds <= 0:
        return 1
    number = 1
    while number < cap:
        t = block_seconds(fn, number) * number
        if t >= min_seconds:
            return number
        number = min(cap, max(number * 2, int(number * min_seconds / max(t, 1e-9) * 1.2)))
    return cap


def cycling(fn: Callable[[Any], Any], inputs: Sequence[Any]) -> Callable[[], Any]:
    """A zero-argument call of ``fn`` on the next of ``inputs`` each time.

    Timing one small batch over and over lets the CPU's branch predictor learn that
    batch's branches, which flatters tree walks (a 100-row batch ran 3.5× faster per row
    than 10,000 distinct rows): small batches are cycled through distinct rows instead.
    """
    nxt = itertools.cycle(inputs).__next__
    return lambda: fn(nxt())


def distinct_batches(x: Any, n: int, *, at_most: int = 1000) -> list[Any]:
    """Up to ``at_most`` non-overlapping ``n``-row slices of ``x`` (views, no copies)."""
    count = max(1, min(at_most, len(x) // n))
    return [x[i * n : (i + 1) * n] for i in range(count)]


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """``names`` starting at position ``round_index`` (mod len): the order of one interleaved round."""
    k = round_index % len(names) if names else 0
    return [*names[k:], *names[:k]]


def ratio_summary(numerators: Sequence[float], denominators: Sequence[float]) -> dict[str, float]:
    """Summary of per-round ratios a/b, each taken from measurements of the same round."""
    return summarize(a / b for a, b in zip(numerators, denominators, strict=True) if b > 0)
