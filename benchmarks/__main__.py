"""The one command: ``python -m benchmarks [--quick] [--only SECTIONS] [--out DIR]``.

Runs the sections in order (single, batch, cold, convert, scaling), writes
``<out>/<section>.json`` after each one (so an interrupted run keeps what it measured),
then ``summary.md`` and the PNG plots. ``--quick`` writes to ``benchmarks/results/quick``
so it never overwrites the full results. Cached inputs (TL2cgen libraries, synthetic
scaling models) live in ``benchmarks/results/tmp`` (``OUT/tmp`` for an OUT elsewhere),
which git ignores.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import CACHE, RESULTS, SECTIONS, env

#: where --quick writes unless told otherwise: never over the full results in the repository
QUICK_OUT = RESULTS / "quick"


@dataclass
class Config:
    """How much to measure. ``full`` is what the results in the repository come from."""

    mode: str = "full"
    single_rows: int = 1000
    single_calls: int = 2000
    single_rounds: int = 7
    single_headline_only: bool = False
    batch_sizes: tuple[int, ...] = (1, 100, 10_000, 1_000_000)
    batch_threads: tuple[int, ...] = ()
    batch_rounds: int = 5
    batch_min_seconds: float = 0.2
    batch_max_call_seconds: float = 30.0
    cold_repeats: int = 7
    convert_repeats: int = 3
    scaling_models: tuple[tuple[int, int], ...] = tuple((t, d) for d in (4, 6, 8) for t in (50, 200, 1000))
    scaling_sizes: tuple[int, ...] = (1, 100, 10_000)
    scaling_rounds: int = 3
    scaling_min_seconds: float = 0.1
    verbose: bool = True
    started: float = field(default_factory=time.perf_counter)

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"[{time.perf_counter() - self.started:7.1f} s] {message}", file=sys.stderr, flush=True)

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("verbose")
        d.pop("started")
        return d


def config_for(mode: str) -> Config:
    from .common import cpu_threads

    cores = cpu_threads()
    threads = (1, cores) if cores > 1 else (1,)
    if mode == "full":
        return Config(batch_threads=threads)
    if mode == "quick":
        return Config(
            mode="quick",
            single_calls=500,
            single_rounds=3,
            batch_sizes=(1, 100, 10_000, 1_000_000),
            batch_threads=(cores,),
            batch_rounds=2,
            batch_min_seconds=0.05,
            cold_repeats=2,
            convert_repeats=1,
            scaling_models=((50, 4), (200, 6)),
            scaling_sizes=(1, 1000),
            scaling_rounds=1,
            scaling_min_seconds=0.02,
        )
    if mode == "smoke":  # the test suite's: proves the harness runs, measures nothing worth reading
        return Config(
            mode="smoke",
            single_rows=50,
            single_calls=30,
            single_rounds=1,
            single_headline_only=True,
            batch_sizes=(1, 100),
            batch_threads=(cores,),
            batch_rounds=1,
            batch_min_seconds=0.0,
            cold_repeats=1,
            convert_repeats=1,
            scaling_models=((10, 3),),
            scaling_sizes=(1, 100),
            scaling_rounds=1,
            scaling_min_seconds=0.0,
        )
    raise ValueError(f"unknown mode {mode!r}")


def header(section: str, cfg: Config) -> dict[str, Any]:
    return {
        "section": section,
        "date_utc": env.now_utc(),
        "mode": cfg.mode,
        "machine": env.machine(),
        "versions": env.versions(),
        "git": env.git_state(),
        "thread_env": env.thread_env(),
        "config": cfg.public(),
    }


def run_section(name: str, cfg: Config, out: Path, cache: Path) -> Path:
    section = importlib.import_module(f".{SECTIONS[name]}", __package__)
    doc = header(name, cfg)
    load_start = env.load_average()
    t0 = time.perf_counter()
    doc["results"] = section.run(cfg, cache)
    doc["conditions"] = {
        "load_average_start": load_start,
        "load_average_end": env.load_average(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    tmp.replace(path)
    cfg.log(f"{name}: wrote {path} ({doc['conditions']['seconds']:.1f} s)")
    return path


def parse_only(text: str | None) -> list[str]:
    if not text:
        return list(SECTIONS)
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in names if s not in SECTIONS]
    if unknown:
        raise SystemExit(f"unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    return [s for s in SECTIONS if s in names]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure single-row latency, batch throughput, cold start, conversion time and scaling; "
        "write JSON, summary.md and PNG plots.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer rounds and models (a few minutes)")
    mode.add_argument("--smoke", action="store_true", help="tiny configuration for the test suite (seconds)")
    parser.add_argument("--only", help=f"comma-separated sections to run: {','.join(SECTIONS)} (default: all)")
    parser.add_argument(
        "--out",
        type=Path,
        help="results folder (default: benchmarks/results; --quick: benchmarks/results/quick)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        help="cached models and compiled libraries (default: benchmarks/results/tmp, or OUT/tmp for another OUT)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)

    from .common import silence_library_logs

    cfg = config_for("smoke" if args.smoke else "quick" if args.quick else "full")
    cfg.verbose = not args.quiet
    out: Path = args.out or (QUICK_OUT if cfg.mode == "quick" else RESULTS)
    under_default = out.resolve() == RESULTS or RESULTS in out.resolve().parents
    cache: Path = args.cache or (CACHE if under_default else out / "tmp")
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    silence_library_logs()
    sections = parse_only(args.only)
    cfg.log(f"benchmarks ({cfg.mode}): {', '.join(sections)} -> {out}")
    for name in sections:
        run_section(name, cfg, out, cache)
    from . import report

    for p in report.render(out):
        cfg.log(f"wrote {p}")
    cfg.log("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
