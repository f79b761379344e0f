"""Reading an input in bounded pieces: batches for the local engine, partitions for Dask.

A file is never read whole. The local engine streams pyarrow batches of at most
``batch_rows`` rows; the Dask engine reads the same files as independent pieces (Parquet row
ranges, CSV/JSONL byte ranges split at line ends), each parsed by the same pyarrow options,
so both engines read a file identically.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m7_runtime.errors import M7Error

from .deps import pyarrow, require
from .inputs import SNIFF_BYTES, InputSource, csv_options, name_csv_columns
from .plan import ScoringPlan, read_schema

MAX_BLOCK_BYTES = 512 << 20


def csv_nulls(table: Any, plan: ScoringPlan) -> Any:
    """CSV has no null string: an empty one-hot input field means the input is absent."""
    pa = pyarrow()
    pc = require("pyarrow.compute")
    for name in plan.categorical:
        i = table.schema.get_field_index(name)
        col = table.column(i)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            table = table.set_column(i, name, pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col))
    return table


def block_bytes(source: InputSource, batch_rows: int) -> int:
    """Bytes of a text file that hold about ``batch_rows`` rows (bounded both ways)."""
    return int(min(max(batch_rows * source.bytes_per_row * 1.1, SNIFF_BYTES), MAX_BLOCK_BYTES))


def _cast(table: Any, schema: Any, where: Path | str) -> Any:
    pa = pyarrow()
    if table.schema == schema:
        return table
    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        raise M7Error(f"{where}: its column types {table.schema} do not match the first file's ({exc})") from exc


def _text_error(source_format: str, where: str, exc: Exception, header: tuple[str, ...]) -> M7Error:
    message = name_csv_columns(str(exc), header) if source_format == "csv" else str(exc)
    return M7Error(f"cannot read {where} as {source_format.upper()}: {message}")


# ---- the local engine: batches in file order ---------------------------------------------------


def iter_batches(source: InputSource, plan: ScoringPlan, *, batch_rows: int) -> Iterator[Any]:
    """The input's needed columns as pyarrow Tables of at most ``batch_rows`` rows, in file order."""
    pa = pyarrow()
    schema = read_schema(plan, source)
    names = list(schema.names)
    if source.format == "parquet":
        pq = require("pyarrow.parquet")
        for f in source.files:
            try:
                # pre_buffer=False: the pre-buffer cache keeps every row group read so far until the
                # file is closed (memory grows with the file); unbuffered reads are faster on local disks.
                reader = pq.ParquetFile(f, pre_buffer=False)
                for batch in reader.iter_batches(batch_size=batch_rows, columns=names, use_threads=True):
                    yield _cast(pa.Table.from_batches([batch]).select(names), schema, f)
            except (pa.ArrowException, OSError) as exc:
                raise M7Error(f"cannot read {f} as Parquet: {exc}") from exc
        return
    path = source.path
    try:
        if source.format == "csv":
            pcsv = require("pyarrow.csv")
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=block_bytes(source, batch_rows)),
                convert_options=csv_options(column_types={f.name: f.type for f in schema}, include=names),
            )
        else:
            pjson = require("pyarrow.json")
            reader = pjson.open_json(
                path,
                read_options=pjson.ReadOptions(block_size=block_bytes(source, batch_rows)),
                parse_options=pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"),
            )
        try:
            for batch in reader:
                table = pa.Table.from_batches([batch]).select(names)
                if source.format == "csv":
                    table = csv_nulls(table, plan)
                for start in range(0, table.num_rows, batch_rows):
                    yield table.slice(start, batch_rows)
        finally:
            reader.close()
    except (pa.ArrowException, OSError) as exc:
        raise _text_error(source.format, str(path), exc, source.columns) from exc


# ---- the Dask engine: independent pieces -----------------------------------------------------


@dataclass(frozen=True)
class RowRange:
    """Rows ``[skip, skip + rows)`` of row groups ``groups`` (consecutive) of one Parquet file."""

    file: str
    groups: tuple[int, ...]
    skip: int
    rows: int


def parquet_ranges(source: InputSource, batch_rows: int) -> list[RowRange]:
    """The Parquet input as pieces of at most ``batch_rows`` rows, in file order.

    Small row groups are merged up to ``batch_rows``; a larger one is split into row ranges,
    so a single file written as one big row group still gives every worker a share. (Each
    range of a big group decodes it from its start: a little extra reading, no extra memory.)
    """
    ranges: list[RowRange] = []
    for f, groups in zip(source.files, source.row_groups, strict=True):
        pending: list[int] = []
        pending_rows = 0
        for g, n in enumerate(groups):
            if pending and pending_rows + n > batch_rows:
                ranges.append(RowRange(str(f), tuple(pending), 0, pending_rows))
                pending, pending_rows = [], 0
            if n > batch_rows:
                ranges.extend(RowRange(str(f), (g,), s, min(batch_rows, n - s)) for s in range(0, n, batch_rows))
            elif n:
                pending.append(g)
                pending_rows += n
        if pending:
            ranges.append(RowRange(str(f), tuple(pending), 0, pending_rows))
    return ranges or [RowRange(str(source.files[0]), (), 0, 0)]


@dataclass(frozen=True)
class ReadSpec:
    """How every piece of one input is parsed: the columns, their types, the CSV header."""

    format: str  # parquet | csv | jsonl
    schema: Any  # pyarrow.Schema of the columns read, with their types fixed up front
    header: tuple[str, ...]  # every column of the input (CSV: the blocks after the first have no header line)
    plan: ScoringPlan

    @classmethod
    def of(cls, source: InputSource, plan: ScoringPlan) -> ReadSpec:
        return cls(source.format, read_schema(plan, source), source.columns, plan)


def read_row_range(piece: RowRange, spec: ReadSpec) -> Any:
    """One Parquet piece as a pyarrow Table of the spec's columns and types."""
    pa = pyarrow()
    pq = require("pyarrow.parquet")
    names = list(spec.schema.names)
    if not piece.rows:
        return spec.schema.empty_table()
    kept: list[Any] = []
    seen = 0
    try:
        reader = pq.ParquetFile(piece.file, pre_buffer=False)
        batches = reader.iter_batches(
            batch_size=min(piece.rows, 1 << 16), row_groups=list(piece.groups), columns=names, use_threads=False
        )
        for batch in batches:
            start, stop = max(piece.skip - seen, 0), min(piece.skip + piece.rows - seen, batch.num_rows)
            seen += batch.num_rows
            if stop > start:
                kept.append(batch.slice(start, stop - start))
            if seen >= piece.skip + piece.rows:
                break
        table = pa.Table.from_batches(kept).select(names) if kept else spec.schema.empty_table()
    except (pa.ArrowException, OSError) as exc:
        raise M7Error(f"cannot read {piece.file} as Parquet: {exc}") from exc
    return _cast(table, spec.schema, piece.file)


def text_blocks(source: InputSource, batch_rows: int) -> list[tuple[int, int]]:
    """Byte ranges of a CSV/JSONL file of about ``batch_rows`` rows each (past a CSV header)."""
    begin = 0
    if source.format == "csv":
        with open(source.path, "rb") as f:
            begin = _line_start(f, 1)  # just past the header line
    size = source.path.stat().st_size
    step = block_bytes(source, batch_rows)
    return [(s, min(s + step, size)) for s in range(begin, size, step)] or [(begin, begin)]


def _line_start(f: Any, offset: int) -> int:
    """The first line start at or after ``offset``."""
    if offset == 0:
        return 0
    f.seek(offset - 1)
    f.readline()
    return f.tell()


def read_text_block(path: str, block: tuple[int, int], spec: ReadSpec) -> Any:
    """Lines starting in ``[start, end)`` of a CSV/JSONL file, parsed as the local engine parses them."""
    pa = pyarrow()
    start, end = block
    names = list(spec.schema.names)
    with open(path, "rb") as f:
        a, b = _line_start(f, start), _line_start(f, end)
        f.seek(a)
        data = f.read(max(b - a, 0))
    try:
        if not data.strip():
            table = spec.schema.empty_table()
        elif spec.format == "csv":
            pcsv = require("pyarrow.csv")
            table = pcsv.read_csv(
                io.BytesIO(data),
                read_options=pcsv.ReadOptions(column_names=list(spec.header), use_threads=False),
                convert_options=csv_options(column_types={f.name: f.type for f in spec.schema}, include=names),
            )
            table = csv_nulls(table, spec.plan)
        else:
            pjson = require("pyarrow.json")
            table = pjson.read_json(
                io.BytesIO(data),
                read_options=pjson.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 16)),
                parse_options=pjson.ParseOptions(explicit_schema=spec.schema, unexpected_field_behavior="ignore"),
            )
    except (pa.ArrowException, ValueError) as exc:
        error = _text_error(spec.format, f"bytes {a}-{b} of {path}", exc, spec.header)
        raise M7Error(
            f"{error} (the Dask engine splits text files at line ends: a quoted value spanning lines breaks that)"
        ) from exc
    return table.select(names)
