"""``score_file``: check everything that can be checked up front, then hand the job to an engine."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m7_runtime.errors import M7Error

from . import dask_engine, local
from .inputs import file_format, inspect_input
from .job import Counts, Job
from .output import prepare_output, remove_created
from .plan import check_types, make_plan

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 131_072


@dataclass(frozen=True)
class Engine:
    run: Callable[..., Counts]
    #: the score_file keyword arguments only this engine takes, with what they mean
    options: Mapping[str, str]


ENGINES: dict[str, Engine] = {
    "local": Engine(local.run, {"threads": "row chunks in parallel per model; each Dask worker uses its own threads"}),
    "dask": Engine(
        dask_engine.run,
        {"scheduler": "the Dask scheduler to run on", "workers": "the worker processes of a new LocalCluster"},
    ),
}


@dataclass(frozen=True)
class ScoreResult:
    output: Path
    engine: str
    models: tuple[str, ...]  # in run order
    rows: int
    chunks: int  # batches (local) or partitions (dask) scored
    max_chunk_rows: int  # the largest chunk: what bounds memory
    seconds: float
    notes: tuple[str, ...] = ()

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "engine": self.engine,
            "models": list(self.models),
            "rows": self.rows,
            "chunks": self.chunks,
            "max_chunk_rows": self.max_chunk_rows,
            "seconds": round(self.seconds, 4),
            "rows_per_second": round(self.rows_per_second, 1),
            "notes": list(self.notes),
        }


def _engine_options(engine: str, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options ``engine`` takes; refuses one that belongs to another engine, naming it."""
    if engine not in ENGINES:
        raise M7Error(f"engine must be one of {sorted(ENGINES)}, got {engine!r}")
    for name, value in given.items():
        if value is not None and name not in ENGINES[engine].options:
            owner = next(e for e, spec in ENGINES.items() if name in spec.options)
            raise M7Error(f"{name} is for --engine {owner} ({ENGINES[owner].options[name]}), not {engine}")
    return {k: v for k, v in given.items() if k in ENGINES[engine].options}


def score_file(
    models: Sequence[str | os.PathLike[str]],
    *,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    engine: str = "local",
    keep: Sequence[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    provider: str = "auto",
    batch_size: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> ScoreResult:
    """Score a Parquet file or folder, CSV or JSONL file with one or more models into ``output``.

    ``models``: manifest paths or names in the model folder. ``output``'s suffix picks its
    format; its folder is created when missing (and said so in ``notes``). ``engine="dask"``
    runs on the cluster at ``scheduler``, or on a LocalCluster of ``workers`` processes.
    ``threads``: row chunks run in parallel per model (local engine; Dask workers use their
    own thread count). ``progress``: a bar on stderr (default: when stderr is a terminal).
    Notes for the user are also logged (logger ``m7_runtime.scoring``) as warnings.
    """
    options = _engine_options(engine, {"threads": threads, "scheduler": scheduler, "workers": workers})
    if batch_size < 1:
        raise M7Error(f"batch size must be at least 1 row, got {batch_size}")
    out = Path(output)
    out_format = file_format(out, what="output")
    source = inspect_input(input)
    if out.exists() and out.resolve() in {f.resolve() for f in source.files} | {source.path.resolve()}:
        # Parquet and text readers stream from the file while the temp output grows; replacing
        # the input at the end is safe, but almost always a mistake in the command line.
        raise M7Error(f"the output {out} is the input; write the scores to a new path")
    plan = make_plan(models, columns=source.columns, keep=keep, model_dir=model_dir)
    check_types(plan, source.schema, where=source.path)
    notes = list(plan.notes)
    if source.max_row_group > 2 * batch_size:
        notes.append(
            f"{source.path} has Parquet row groups of up to {source.max_row_group:,} rows; Arrow decodes a row "
            f"group whole, so memory follows that, not --batch-size {batch_size:,} (rewrite with smaller row groups)"
        )
        log.warning(notes[-1])
    created, output_notes = prepare_output(out)
    for note in output_notes:
        log.warning(note)
    notes += output_notes
    job = Job(plan, source, out, out_format, provider, batch_size, progress)
    start = time.perf_counter()
    try:
        counts = ENGINES[engine].run(job, **options)
    except BaseException:
        remove_created(created)
        raise
    return ScoreResult(
        output=out,
        engine=engine,
        models=tuple(m.name for m in plan.models),
        rows=counts.rows,
        chunks=counts.chunks,
        max_chunk_rows=counts.max_chunk_rows,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )
