"""What an engine is given and what it returns, and the progress bar both engines show."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .inputs import InputSource
from .plan import ScoringPlan


@dataclass(frozen=True)
class Job:
    """One scoring run, validated: an engine reads ``source`` and writes ``output`` atomically."""

    plan: ScoringPlan
    source: InputSource
    output: Path
    out_format: str  # parquet | csv | jsonl
    provider: str
    batch_rows: int
    progress: bool | None  # a bar on stderr; None: when stderr is a terminal


@dataclass(frozen=True)
class Counts:
    rows: int
    chunks: int  # batches (local) or partitions (dask) scored
    max_chunk_rows: int  # the largest chunk: what bounds memory


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(total: int | None, *, enabled: bool | None, desc: str) -> Any:
    """tqdm (rows, rows/s, ETA when the total is known) on a terminal; nothing otherwise."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit=" rows", unit_scale=True, desc=desc, file=sys.stderr, smoothing=0.05)
