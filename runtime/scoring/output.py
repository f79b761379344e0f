"""Writing the output: all or nothing, under the final name only when everything succeeded.

Output is written to a hidden temporary file (or folder) beside the final path and renamed
into place at the end, so a failed or interrupted run never leaves a partial file under the
final name. Temporary names carry the writing process's id and a tag of its host
(``.NAME.m7tmp-PID-HOST-RANDOM``): a run killed outright (``kill -9``, power loss) cannot
clean up, so the next run for the same output deletes such leftovers when that process is
gone. Failures to write (a full disk, a read-only or missing folder) are :class:`M7Error`
naming the output and the reason.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import socket
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from m7_runtime.errors import M7Error

from .deps import pyarrow, require

log = logging.getLogger(__name__)

TMP_MARK = ".m7tmp-"
_TMP_TAIL = re.compile(r"(\d+)-([0-9a-f]{8})-[0-9a-f]{8}")


def _host_tag() -> str:
    """8 hex digits naming this machine: a process id means nothing on another host of a shared folder."""
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def temp_path(final: Path) -> Path:
    """A hidden sibling of ``final``: same folder (so the rename is atomic), skipped by dataset readers."""
    return final.with_name(f".{final.name}{TMP_MARK}{os.getpid()}-{_host_tag()}-{uuid.uuid4().hex[:8]}")


def remove_path(path: Path) -> None:
    """Delete a temporary file or folder, best effort: never raises, so it cannot hide the error
    that made the cleanup necessary (on a read-only file system even deleting nothing fails).

    A folder is renamed before it is deleted: a Dask task that was still running when the run
    failed (a cancelled task runs to its end) then finds no folder to write its part into,
    instead of adding a file behind ``rmtree``'s back and leaving the folder in place.
    """
    try:
        if path.is_dir() and not path.is_symlink():
            doomed = path.with_name(f"{path.name}.removing")
            try:
                os.replace(path, doomed)
            except OSError:
                doomed = path
            shutil.rmtree(doomed, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only the existence check (POSIX)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def remove_stale_temps(final: Path) -> list[Path]:
    """Delete temporary files of ``final`` left by runs of this tool that died without cleaning up.

    Only names this module makes, only from this host, and only when the process that made
    them no longer exists (a live one may still be writing). POSIX only: elsewhere
    ``os.kill(pid, 0)`` is not an existence check, and nothing is deleted.
    """
    if os.name != "posix":
        return []
    prefix = f".{final.name}{TMP_MARK}"
    host = _host_tag()
    removed = []
    try:
        entries = [e.name for e in os.scandir(final.parent) if e.name.startswith(prefix)]
    except OSError:
        return []
    for name in entries:
        match = _TMP_TAIL.fullmatch(name[len(prefix) :])
        if match is None or match.group(2) != host:
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or _process_exists(pid):
            continue
        path = final.parent / name
        remove_path(path)
        if not (path.exists() or path.is_symlink()):
            removed.append(path)
    return removed


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def prepare_output(final: Path) -> tuple[list[Path], list[str]]:
    """Create the output's folder if needed and clear stale temporary files beside it.

    Returns the folders created (deepest first, for removal if the run fails) and notes for
    the user. A folder that cannot be created is an :class:`M7Error`.
    """
    created: list[Path] = []
    folder = final.parent
    while not (folder.exists() or folder.is_symlink()):
        created.append(folder)
        folder = folder.parent
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocker = f" ({folder} is not a folder)" if folder.exists() and not folder.is_dir() else ""
        raise M7Error(f"cannot create the output folder {final.parent}: {_reason(exc)}{blocker}") from exc
    notes = [f"created the output folder {created[-1]}"] if created else []
    notes += [f"removed {p.name}, a temporary file left by an interrupted run" for p in remove_stale_temps(final)]
    return created, notes


def remove_created(folders: list[Path]) -> None:
    """Undo :func:`prepare_output`'s folders after a failed run, where they are still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def publish(tmp: Path, final: Path) -> None:
    """Move a finished ``tmp`` (file or folder) to ``final``, replacing what was there."""
    if (final.exists() or final.is_symlink()) and (final.is_dir() or tmp.is_dir()):
        # rename() cannot replace a folder (or put one over a file): move the old one aside first
        old = temp_path(final)
        os.replace(final, old)
        os.replace(tmp, final)
        remove_path(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; publish it on success, delete it on any error.

    An ``OSError`` escaping the block is a failure to write (input errors are already
    :class:`M7Error` where they are read) and becomes one naming ``final``.
    """
    tmp = temp_path(final)
    try:
        yield tmp
    except OSError as exc:
        remove_path(tmp)
        raise M7Error(f"cannot write the output {final}: {_reason(exc)}") from exc
    except BaseException:
        remove_path(tmp)
        raise
    try:
        publish(tmp, final)
    except OSError as exc:
        remove_path(tmp)
        raise M7Error(f"cannot move the finished output to {final}: {_reason(exc)}") from exc


class TableWriter:
    """Appends pyarrow Tables to one Parquet, CSV or JSONL file (chosen by ``fmt``)."""

    def __init__(self, path: Path, fmt: str, schema: Any, *, header: bool = True) -> None:
        self.fmt = fmt
        self.schema = schema
        if fmt == "parquet":
            self._w = require("pyarrow.parquet").ParquetWriter(path, schema)
        elif fmt == "csv":
            pcsv = require("pyarrow.csv")
            self._w = pcsv.CSVWriter(path, schema, write_options=pcsv.WriteOptions(include_header=header))
        else:
            self._w = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed by close())

    def write(self, table: Any) -> None:
        if self.fmt == "jsonl":
            self._w.write(jsonl_text(table))
        else:
            self._w.write_table(table)

    def close(self) -> None:
        self._w.close()


@contextlib.contextmanager
def table_writer(path: Path, fmt: str, schema: Any, *, header: bool = True) -> Iterator[TableWriter]:
    """A :class:`TableWriter` closed at the end; after an error its close is best effort, so a
    second failure (flushing to a full disk) cannot replace the first."""
    writer = TableWriter(path, fmt, schema, header=header)
    try:
        yield writer
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        raise
    writer.close()


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def jsonl_text(table: Any) -> str:
    """Rows as JSON Lines. JSON has no NaN or Infinity: non-finite floats are written as null."""
    pa = pyarrow()
    pc = require("pyarrow.compute")
    cols = []
    for col in table.columns:
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
        cols.append(col)
    rows = pa.Table.from_arrays(cols, names=table.column_names).to_pylist()
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default).encode
    return "".join(dumps(r) + "\n" for r in rows)
