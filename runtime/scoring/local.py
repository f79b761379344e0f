"""The local engine: stream bounded batches through :func:`score_table` into one output file."""

from __future__ import annotations

from .job import Counts, Job, progress_bar
from .output import atomic_output, table_writer
from .plan import output_schema, read_schema
from .read import iter_batches
from .score import load_models, score_table


def run(job: Job, *, threads: int | None = None) -> Counts:
    """Score ``job`` on this machine; ``threads``: row chunks in parallel per model (default: cores)."""
    models = load_models(job.plan, provider=job.provider, threads=threads)
    schema = output_schema(job.plan, read_schema(job.plan, job.source))
    rows = chunks = biggest = 0
    bar = progress_bar(job.source.rows, enabled=job.progress, desc="scoring")
    try:
        with atomic_output(job.output) as tmp, table_writer(tmp, job.out_format, schema) as writer:
            for table in iter_batches(job.source, job.plan, batch_rows=job.batch_rows):
                scored = score_table(job.plan, models, table)
                writer.write(scored if scored.schema == schema else scored.cast(schema))
                rows += table.num_rows
                chunks += 1
                biggest = max(biggest, table.num_rows)
                bar.update(table.num_rows)
    finally:
        bar.close()
    return Counts(rows, chunks, biggest)
