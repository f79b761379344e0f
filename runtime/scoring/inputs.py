"""What an input file is: its format, files, columns and size, learned before any row is scored.

A Parquet file or folder is described by its footers; a CSV or JSON Lines file by its first
block. Both engines read through the options defined here, so a file reads the same on
one machine and on a cluster.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m7_runtime.errors import M7Error

from .deps import pyarrow, require

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
SNIFF_BYTES = 1 << 20  # the first block of a CSV/JSONL file, read to learn its columns and types


def file_format(path: Path, *, what: str) -> str:
    """'parquet', 'csv' or 'jsonl' from a file's suffix (a folder is a Parquet dataset)."""
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    known = ", ".join(PARQUET_SUFFIXES + CSV_SUFFIXES + JSONL_SUFFIXES)
    raise M7Error(f"{what} {path}: cannot tell the format from the suffix {suffix or '(none)'!r}; use one of {known}")


def _natural_key(path: Path) -> list[Any]:
    """part.2 before part.10, as Dask names and orders its part files."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", path.as_posix())]


def parquet_files(folder: Path) -> list[Path]:
    """The data files of a Parquet dataset folder, in natural order (hidden and ``_*`` files skipped)."""
    files = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix.lower() in PARQUET_SUFFIXES
        and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    ]
    if not files:
        raise M7Error(f"input folder {folder} holds no Parquet files (*.parquet, *.pq, *.parq)")
    return sorted(files, key=lambda p: _natural_key(p.relative_to(folder)))


@dataclass(frozen=True)
class InputSource:
    """What an input is, learned from metadata (Parquet) or its first block (CSV/JSONL)."""

    path: Path
    format: str  # parquet | csv | jsonl
    files: tuple[Path, ...]
    schema: Any  # pyarrow.Schema of every column, types as read
    rows: int | None  # known for Parquet from the footers; None for text
    bytes_per_row: float  # on disk (text) or uncompressed (Parquet): sizes blocks of --batch-size rows
    max_row_group: int = 0  # Parquet: Arrow decodes a row group whole, so memory is bounded by this too
    # Parquet: the row count of each row group, per file (how the Dask engine splits a file)
    row_groups: tuple[tuple[int, ...], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)


def csv_options(*, column_types: Mapping[str, Any] | None = None, include: Sequence[str] | None = None) -> Any:
    """How every CSV is read, by both engines.

    Numbers: an empty field and the usual spellings (NA, NaN, null, ...) are missing (NaN).
    Strings are read literally; :func:`m7_runtime.scoring.read.csv_nulls` then turns an empty
    one-hot input (an empty ``btc_status`` field, which is how pandas writes None) into null,
    i.e. "absent". So a literal empty-string status can be given in Parquet or JSONL, not in CSV.
    """
    pcsv = require("pyarrow.csv")
    return pcsv.ConvertOptions(
        column_types=dict(column_types or {}),
        include_columns=list(include) if include is not None else None,
    )


_CSV_COLUMN = re.compile(r"CSV column #(\d+)")


def name_csv_columns(message: str, header: Sequence[str]) -> str:
    """Arrow's ``In CSV column #8: ...`` with the column's name: ``In CSV column 'rsi': ...``.

    Arrow counts the file's columns from 0, whatever subset is read.
    """

    def name(match: re.Match[str]) -> str:
        i = int(match.group(1))
        return f"CSV column {header[i]!r}" if i < len(header) else match.group(0)

    return _CSV_COLUMN.sub(name, message)


def inspect_input(path: str | os.PathLike[str]) -> InputSource:
    """Check the input exists and is readable, and learn its columns, before scoring starts."""
    pa = pyarrow()
    p = Path(path)
    if not p.exists():
        raise M7Error(f"input {p} does not exist")
    if p.is_dir():
        return _inspect_parquet(p, parquet_files(p))
    fmt = file_format(p, what="input")
    if fmt == "parquet":
        return _inspect_parquet(p, [p])
    size = p.stat().st_size
    try:
        if fmt == "csv":
            pcsv = require("pyarrow.csv")
            reader = pcsv.open_csv(
                p,
                read_options=pcsv.ReadOptions(block_size=SNIFF_BYTES, use_threads=False),
                convert_options=csv_options(),
            )
        else:
            pjson = require("pyarrow.json")
            reader = pjson.open_json(p, read_options=pjson.ReadOptions(block_size=SNIFF_BYTES, use_threads=False))
        schema = reader.schema
        try:
            first = reader.read_next_batch()
            sniffed = first.num_rows
        except StopIteration:
            sniffed = 0
        reader.close()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise M7Error(f"cannot read {p} as {fmt.upper()}: {exc}") from exc
    per_row = (min(size, SNIFF_BYTES) / sniffed) if sniffed else 100.0
    return InputSource(p, fmt, (p,), schema, None, per_row)


def _inspect_parquet(root: Path, files: list[Path]) -> InputSource:
    pa = pyarrow()
    pq = require("pyarrow.parquet")
    schema = None
    rows = 0
    raw_bytes = 0
    groups_per_file: list[tuple[int, ...]] = []
    for f in files:
        try:
            meta = pq.ParquetFile(f).metadata
        except (pa.ArrowException, OSError) as exc:
            raise M7Error(f"cannot read {f} as Parquet: {exc}") from exc
        file_schema = meta.schema.to_arrow_schema()
        if schema is None:
            schema = file_schema
        elif set(file_schema.names) != set(schema.names):
            extra = sorted(set(file_schema.names) - set(schema.names))
            lacks = sorted(set(schema.names) - set(file_schema.names))
            raise M7Error(
                f"{f} does not have the columns of {files[0]}: extra {extra}, lacking {lacks}; "
                "every file of a Parquet dataset must have the same columns"
            )
        rows += meta.num_rows
        groups = [meta.row_group(i) for i in range(meta.num_row_groups)]
        raw_bytes += sum(g.total_byte_size for g in groups)
        groups_per_file.append(tuple(g.num_rows for g in groups))
    max_group = max((n for g in groups_per_file for n in g), default=0)
    return InputSource(
        root,
        "parquet",
        tuple(files),
        schema,
        rows,
        raw_bytes / rows if rows else 100.0,
        max_group,
        tuple(groups_per_file),
    )
