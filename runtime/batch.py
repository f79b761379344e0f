"""Batch scoring of feature files: one scoring plan, one per-chunk function, two engines.

Backtests and simulations score millions to billions of snapshot rows, far more than fit in
memory. So a file is never read whole: the local engine streams bounded pyarrow batches
(``--batch-size`` rows) through :func:`score_table` and appends each result to the output;
the Dask engine (:mod:`m7_runtime.dask_engine`) runs the same :func:`score_table` on each
partition. Everything that decides *what* to compute lives in :class:`ScoringPlan`, built
and validated before the first row is read, so a missing column or an unknown model fails
in a second with one message instead of an hour into a run.

Semantics are the runtime's, not new ones: each model is scored with :meth:`Model.score`,
which applies its caller policy column-wise (reject or zero-fill, the one-hot from a
string column, the clamp), row for row the same as :meth:`Model.predict_one`. A model
whose feature is produced by another scored model (``input_policy.upstream`` in its
manifest, declared in ``models/spec.toml``) runs after it and takes that output when the
input lacks the column.

Output is written to a hidden temporary file beside the final path and renamed into place
only when everything succeeded: a failed or interrupted run never leaves a partial file
under the final name.

pyarrow and tqdm (the ``batch`` extra) are imported inside the functions that use them, so
``import m7_runtime`` still loads only numpy and onnxruntime.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .artifact import MANIFEST_SUFFIX, Manifest
from .errors import M7Error
from .model import Model, load

log = logging.getLogger("m7_runtime.batch")

DEFAULT_BATCH_ROWS = 131_072
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
TMP_MARK = ".m7tmp-"
_SNIFF_BYTES = 1 << 20  # the first block of a CSV/JSONL file, read to learn its columns and types
_MAX_BLOCK_BYTES = 512 << 20


def _require(module: str, extra: str = "batch") -> Any:
    """Import an optional dependency, or say which extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise M7Error(
            f"batch scoring needs {module.split('.')[0]}: pip install 'market7-onnx[{extra}]' ({exc})"
        ) from exc


def _pa() -> Any:
    return _require("pyarrow")


# ---- formats ----------------------------------------------------------------------------


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
class Source:
    """What an input is, learned from metadata (Parquet) or its first block (CSV/JSONL)."""

    path: Path
    format: str  # parquet | csv | jsonl
    files: tuple[Path, ...]
    schema: Any  # pyarrow.Schema of every column, types as read
    rows: int | None  # known for Parquet from the footers; None for text
    bytes_per_row: float  # on disk (text) or uncompressed (Parquet): sizes blocks of --batch-size rows
    max_row_group: int = 0  # Parquet: Arrow decodes a row group whole, so memory is bounded by this too

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.schema.names)


def csv_options(*, column_types: Mapping[str, Any] | None = None, include: Sequence[str] | None = None) -> Any:
    """How every CSV is read, by both engines.

    Numbers: an empty field and the usual spellings (NA, NaN, null, ...) are missing (NaN).
    Strings are read literally; :func:`csv_nulls` then turns an empty one-hot input (an empty
    ``btc_status`` field, which is how pandas writes None) into null, i.e. "absent". So a
    literal empty-string status can be given in Parquet or JSONL, not in CSV.
    """
    pcsv = _require("pyarrow.csv")
    return pcsv.ConvertOptions(
        column_types=dict(column_types or {}),
        include_columns=list(include) if include is not None else None,
    )


def csv_nulls(table: Any, plan: ScoringPlan) -> Any:
    """CSV has no null string: an empty one-hot input field means the input is absent."""
    pa = _pa()
    pc = _require("pyarrow.compute")
    for name in plan.categorical:
        i = table.schema.get_field_index(name)
        col = table.column(i)
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            table = table.set_column(i, name, pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col))
    return table


def inspect_input(path: str | os.PathLike[str]) -> Source:
    """Check the input exists and is readable, and learn its columns, before scoring starts."""
    pa = _pa()
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
            pcsv = _require("pyarrow.csv")
            reader = pcsv.open_csv(
                p,
                read_options=pcsv.ReadOptions(block_size=_SNIFF_BYTES, use_threads=False),
                convert_options=csv_options(),
            )
        else:
            pjson = _require("pyarrow.json")
            reader = pjson.open_json(p, read_options=pjson.ReadOptions(block_size=_SNIFF_BYTES, use_threads=False))
        schema = reader.schema
        try:
            first = reader.read_next_batch()
            sniffed = first.num_rows
        except StopIteration:
            sniffed = 0
        reader.close()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise M7Error(f"cannot read {p} as {fmt.upper()}: {exc}") from exc
    per_row = (min(size, _SNIFF_BYTES) / sniffed) if sniffed else 100.0
    return Source(p, fmt, (p,), schema, None, per_row)


def _inspect_parquet(root: Path, files: list[Path]) -> Source:
    pa = _pa()
    pq = _require("pyarrow.parquet")
    schema = None
    rows = 0
    raw_bytes = 0
    max_group = 0
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
        max_group = max([max_group, *(g.num_rows for g in groups)])
    return Source(root, "parquet", tuple(files), schema, rows, raw_bytes / rows if rows else 100.0, max_group)


# ---- the plan ---------------------------------------------------------------------------


def resolve_model(arg: str | os.PathLike[str], *, model_dir: str | os.PathLike[str] | None = None) -> Path:
    """A MODEL argument as a manifest path: a path as given, or a name in the model folder.

    The folder is ``model_dir``, else ``$M7_MODEL_DIR``, else the config file's, else the
    bundled artifacts: the drop-ins' lookup (:func:`m7_runtime.market7.model_dir`).
    """
    from .market7 import model_dir as resolve_dir

    text = os.fspath(arg)
    looks_like_path = text.endswith((MANIFEST_SUFFIX, ".onnx")) or "/" in text or os.sep in text
    if looks_like_path:
        path = Path(text)
        if not path.exists():
            raise M7Error(f"unknown model {text!r}: no such file")
        return path
    try:
        folder = resolve_dir(model_dir)
    except ImportError as exc:  # the bundled artifacts are not importable (e.g. some editable installs)
        raise M7Error(
            f"cannot look up model {text!r}: no model folder given and the bundled artifacts are not "
            f"importable ({exc}); pass --model-dir DIR or set $M7_MODEL_DIR"
        ) from exc
    path = folder / f"{text}{MANIFEST_SUFFIX}"
    if not path.is_file():
        there = sorted(p.name[: -len(MANIFEST_SUFFIX)] for p in folder.glob(f"*{MANIFEST_SUFFIX}"))
        raise M7Error(
            f"unknown model {text!r}: no {path.name} in {folder} (models there: {there or 'none'}); "
            "give a manifest path, or the folder with --model-dir or $M7_MODEL_DIR"
        )
    return path


@dataclass(frozen=True)
class PlannedModel:
    name: str
    manifest: Path
    outputs: tuple[str, ...]  # output column(s): NAME, or NAME_0..NAME_{k-1} for k class probabilities
    fed: tuple[tuple[str, str], ...] = ()  # (feature, model whose output feeds it)


@dataclass(frozen=True)
class ScoringPlan:
    """What to compute, decided once from the manifests and the input's column names.

    Plain data (paths and names), so it pickles cheaply to Dask workers, which load the
    models themselves.
    """

    models: tuple[PlannedModel, ...]  # in run order: producers before the models they feed
    keep: tuple[str, ...]  # input columns copied to the output
    numeric: tuple[str, ...]  # input columns read as model features
    categorical: tuple[str, ...]  # input columns read as one-hot inputs (strings)
    outputs: tuple[str, ...]  # output columns: keep, then each model's in the order asked
    notes: tuple[str, ...] = field(default=(), compare=False)  # zero-filled or defaulted inputs, for the user

    @property
    def read(self) -> tuple[str, ...]:
        """Input columns to read (kept and needed), in first-seen order."""
        return tuple(dict.fromkeys((*self.keep, *self.numeric, *self.categorical)))


def make_plan(
    models: Sequence[str | os.PathLike[str]],
    *,
    columns: Sequence[str],
    keep: Sequence[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
) -> ScoringPlan:
    """Resolve and order the models, and check the input has what each needs.

    Raises one :class:`M7Error` naming every missing column of every model (and how it could
    be supplied), so a backtest fails before reading its first row rather than in its last.
    """
    if not models:
        raise M7Error("no model given; name at least one (e.g. xgb_recovery_model) or a manifest path")
    manifests: dict[str, Manifest] = {}
    for arg in models:
        m = Manifest.read(resolve_model(arg, model_dir=model_dir))
        if m.name in manifests:
            raise M7Error(f"model {m.name!r} is given twice ({manifests[m.name].path} and {m.path})")
        manifests[m.name] = m
    present = set(columns)
    producers = {f: p for m in manifests.values() for f, p in m.policy.upstream.items()}
    problems: list[str] = []
    notes: list[str] = []
    numeric: list[str] = []
    categorical: list[str] = []
    fed: dict[str, list[tuple[str, str]]] = {}
    for m in manifests.values():
        policy = m.policy
        derived = policy.derived()
        missing: list[str] = []
        hints: list[str] = []
        zeroed: list[str] = []
        fed[m.name] = []
        for f in m.features:
            if f in derived:
                continue
            if f in present:
                numeric.append(f)
                continue
            producer = policy.upstream.get(f)
            if producer in manifests:
                if manifests[producer].n_outputs != 1:
                    raise M7Error(
                        f"{m.name}: feature {f!r} is declared to come from {producer!r}, which outputs "
                        f"{manifests[producer].n_outputs} values per row, not one"
                    )
                fed[m.name].append((f, producer))
                continue
            if producer is not None:
                hints.append(f"score {producer} in the same pass to compute {f!r}")
            elif producers.get(f) in manifests and producers[f] != m.name:
                hints.append(
                    f"{producers[f]} produces {f!r} for other models, but {m.name}'s spec declares no "
                    f"upstream for it; add it under [models.{m.name}.upstream] if that is what it means"
                )
            (missing if policy.on_missing == "reject" else zeroed).append(f)
        if missing:
            problems.append(f"{m.name}: {missing}" + (f" ({'; '.join(hints)})" if hints else ""))
        if zeroed:
            notes.append(
                f"{m.name}: the input has no column(s) {zeroed}; filled with 0.0 per its policy"
                + (f" ({'; '.join(hints)})" if hints else "")
            )
        for o in policy.one_hot:
            if o.input in present:
                categorical.append(o.input)
                shadowed = [c for c in o.columns if c in present]
                if shadowed:
                    notes.append(f"{m.name}: input columns {shadowed} are ignored; they are derived from {o.input!r}")
            else:
                notes.append(f"{m.name}: the input has no {o.input!r} column; every row takes {o.default!r}")
    if problems:
        shown = list(columns)[:40]
        more = f" ... (+{len(columns) - 40})" if len(columns) > 40 else ""
        raise M7Error(
            "the input lacks column(s) the models need; their policy rejects rows without them:\n  "
            + "\n  ".join(problems)
            + f"\ninput columns: {shown}{more}"
        )
    order = _run_order(list(manifests), {n: [p for _, p in fed[n]] for n in manifests})
    kept = list(columns) if keep is None else list(dict.fromkeys(keep))
    unknown = [c for c in kept if c not in present]
    if unknown:
        raise M7Error(f"--keep names column(s) {unknown} that the input does not have; it has {list(columns)}")
    planned = {}
    for name, m in manifests.items():
        names = m.output.targets or range(m.n_outputs)  # several targets by name, class probabilities by index
        outputs = (name,) if m.n_outputs == 1 else tuple(f"{name}_{t}" for t in names)
        clash = [c for c in outputs if c in kept]
        if clash:
            raise M7Error(
                f"the input already has column(s) {clash}, the output name of model {name!r} "
                "(is it an already scored file?); drop them with --keep"
            )
        planned[name] = PlannedModel(name, m.path, outputs, tuple(fed[name]))
    for n in notes:
        log.warning(n)
    return ScoringPlan(
        models=tuple(planned[n] for n in order),
        keep=tuple(kept),
        numeric=tuple(dict.fromkeys(numeric)),
        categorical=tuple(dict.fromkeys(categorical)),
        outputs=tuple(kept) + tuple(c for m in manifests for c in planned[m].outputs),
        notes=tuple(notes),
    )


def _run_order(names: list[str], needs: Mapping[str, list[str]]) -> list[str]:
    """Producers before consumers; otherwise the order given. Refuses a cycle, naming it."""
    order: list[str] = []
    done: set[str] = set()
    remaining = list(names)
    while remaining:
        ready = [n for n in remaining if all(p in done for p in needs[n])]
        if not ready:
            raise M7Error(
                f"the models' upstream declarations form a cycle among {remaining}; "
                "fix input_policy.upstream in their specs"
            )
        order.append(ready[0])
        done.add(ready[0])
        remaining.remove(ready[0])
    return order


def load_models(plan: ScoringPlan, *, provider: str = "cpu", threads: int | None = None) -> dict[str, Model]:
    """The plan's models, by name (sessions are created on first use)."""
    return {m.name: load(m.manifest, provider=provider, threads=threads) for m in plan.models}


# ---- the per-chunk function both engines run ------------------------------------------


class _Columns(dict):
    """Named 1-D columns plus their row count: a table :meth:`Model.score` reads.

    ``num_rows`` is how ``Model.score`` sizes a table (as for a pyarrow Table), so a model
    all of whose inputs are absent (zero-filled) still gets one row per input row.
    """

    def __init__(self, num_rows: int, columns: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__(columns or {})
        self.num_rows = num_rows


def _is_string_type(t: Any) -> bool:
    pa = _pa()
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def _is_numeric_type(t: Any) -> bool:
    pa = _pa()
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (
        pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_boolean(t)
        or pa.types.is_decimal(t)
        or pa.types.is_null(t)
    )


def check_types(plan: ScoringPlan, schema: Any, *, where: Path | str) -> None:
    """Feature columns must hold numbers, one-hot inputs strings: checked on the schema, up front."""
    bad = [f"{c!r} is {schema.field(c).type}" for c in plan.numeric if not _is_numeric_type(schema.field(c).type)]
    bad += [
        f"{c!r} is {schema.field(c).type} (a one-hot input must be strings)"
        for c in plan.categorical
        if not _is_string_type(schema.field(c).type)
    ]
    if bad:
        raise M7Error(f"{where}: model input column(s) of the wrong type: {'; '.join(bad)}; features must be numbers")


def _numeric(col: Any) -> np.ndarray:
    """A feature column as float64 with NaN for null: what predict_one gets for None."""
    pa = _pa()
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    if col.type != pa.float64():
        col = col.cast(pa.float64())
    return col.to_numpy()


def _strings(col: Any) -> np.ndarray:
    """A one-hot input as an object array of str, with None for null (an absent status)."""
    pa = _pa()
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), None, dtype=object)
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def predict_columns(plan: ScoringPlan, models: Mapping[str, Model], columns: _Columns) -> dict[str, np.ndarray]:
    """Each model's output over one chunk, in run order, feeding upstream outputs forward."""
    produced: dict[str, np.ndarray] = {}
    for step in plan.models:
        table = columns
        if step.fed:
            table = _Columns(columns.num_rows, columns)
            for feature, producer in step.fed:
                table[feature] = produced[producer]
        produced[step.name] = models[step.name].score(table)
    return produced


def score_table(plan: ScoringPlan, models: Mapping[str, Model], table: Any) -> Any:
    """Score one chunk (a pyarrow Table): the kept columns plus one column per model output.

    The only scoring code path: the local engine calls it per batch and the Dask engine
    per partition. Each model's caller policy is applied by :meth:`Model.score`.
    """
    pa = _pa()
    n = table.num_rows
    cols = _Columns(n)
    for name in plan.numeric:
        cols[name] = _numeric(table.column(name))
    for name in plan.categorical:
        cols[name] = _strings(table.column(name))
    produced = predict_columns(plan, models, cols)
    arrays = [table.column(c) for c in plan.keep]
    for step in plan.models:
        y = produced[step.name]
        if len(step.outputs) == 1:
            arrays.append(pa.array(np.asarray(y, dtype=np.float32).reshape(n)))
        else:
            arrays.extend(pa.array(np.ascontiguousarray(y[:, i], dtype=np.float32)) for i in range(len(step.outputs)))
    names = list(plan.keep) + [c for s in plan.models for c in s.outputs]
    out = pa.Table.from_arrays(arrays, names=names)
    return out.select(list(plan.outputs))


def output_schema(plan: ScoringPlan, input_schema: Any) -> Any:
    """The output's Arrow schema: kept input fields, then float32 predictions."""
    pa = _pa()
    fields = [input_schema.field(c) for c in plan.keep]
    fields += [pa.field(c, pa.float32()) for c in plan.outputs[len(plan.keep) :]]
    return pa.schema(fields)


def read_names(plan: ScoringPlan, source: Source) -> tuple[str, ...]:
    """The columns to read: the plan's, or just the first when it needs none (to count rows)."""
    return plan.read or source.columns[:1]


def read_schema(plan: ScoringPlan, source: Source) -> Any:
    """The types the input is read with: features as float64 (never an int type guessed from
    the first rows of a text file), one-hot inputs as strings, null-only columns as strings.
    """
    pa = _pa()
    fields = []
    for name in read_names(plan, source):
        t = source.schema.field(name).type
        if source.format != "parquet":
            if name in plan.numeric and (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t)):
                t = pa.float64()
            elif pa.types.is_null(t):
                t = pa.string()
        fields.append(pa.field(name, t))
    return pa.schema(fields)


# ---- reading ----------------------------------------------------------------------------


def _block_bytes(source: Source, batch_rows: int) -> int:
    return int(min(max(batch_rows * source.bytes_per_row * 1.1, _SNIFF_BYTES), _MAX_BLOCK_BYTES))


def iter_batches(source: Source, plan: ScoringPlan, *, batch_rows: int) -> Iterator[Any]:
    """The input's needed columns as pyarrow Tables of at most ``batch_rows`` rows, in file order."""
    pa = _pa()
    schema = read_schema(plan, source)
    names = list(schema.names)
    if source.format == "parquet":
        pq = _require("pyarrow.parquet")
        for f in source.files:
            try:
                # pre_buffer=False: the pre-buffer cache keeps every row group read so far until the
                # file is closed (memory grows with the file); unbuffered reads are faster on local disks.
                reader = pq.ParquetFile(f, pre_buffer=False)
                for batch in reader.iter_batches(batch_size=batch_rows, columns=names, use_threads=True):
                    table = pa.Table.from_batches([batch]).select(names)
                    yield table if table.schema == schema else _cast(table, schema, f)
            except (pa.ArrowException, OSError) as exc:
                raise M7Error(f"cannot read {f} as Parquet: {exc}") from exc
        return
    path = source.path
    try:
        if source.format == "csv":
            pcsv = _require("pyarrow.csv")
            reader = pcsv.open_csv(
                path,
                read_options=pcsv.ReadOptions(block_size=_block_bytes(source, batch_rows)),
                convert_options=csv_options(column_types={f.name: f.type for f in schema}, include=names),
            )
        else:
            pjson = _require("pyarrow.json")
            reader = pjson.open_json(
                path,
                read_options=pjson.ReadOptions(block_size=_block_bytes(source, batch_rows)),
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
        raise M7Error(f"cannot read {path} as {source.format.upper()}: {exc}") from exc


def _cast(table: Any, schema: Any, where: Path) -> Any:
    pa = _pa()
    try:
        return table.cast(schema)
    except (pa.ArrowException, ValueError) as exc:
        raise M7Error(f"{where}: its column types {table.schema} do not match the first file's ({exc})") from exc


# ---- writing ----------------------------------------------------------------------------


def temp_path(final: Path) -> Path:
    """A hidden sibling of ``final``: same folder (so the rename is atomic), skipped by dataset readers."""
    return final.with_name(f".{final.name}{TMP_MARK}{uuid.uuid4().hex[:12]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def publish(tmp: Path, final: Path) -> None:
    """Move a finished ``tmp`` (file or folder) to ``final``, replacing what was there."""
    if (final.exists() or final.is_symlink()) and (final.is_dir() or tmp.is_dir()):
        # rename() cannot replace a folder (or put one over a file): move the old one aside first
        old = temp_path(final)
        os.replace(final, old)
        os.replace(tmp, final)
        _remove(old)
    else:
        os.replace(tmp, final)


@contextlib.contextmanager
def atomic_output(final: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; publish it on success, delete it on any error."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    try:
        publish(tmp, final)
    except OSError as exc:
        _remove(tmp)
        raise M7Error(f"cannot move the finished output to {final}: {exc}") from exc


class TableWriter:
    """Appends pyarrow Tables to one Parquet, CSV or JSONL file (chosen by ``fmt``)."""

    def __init__(self, path: Path, fmt: str, schema: Any, *, header: bool = True) -> None:
        self.fmt = fmt
        self.schema = schema
        self._path = path
        if fmt == "parquet":
            self._w = _require("pyarrow.parquet").ParquetWriter(path, schema)
        elif fmt == "csv":
            pcsv = _require("pyarrow.csv")
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


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def jsonl_text(table: Any) -> str:
    """Rows as JSON Lines. JSON has no NaN or Infinity: non-finite floats are written as null."""
    pa = _pa()
    pc = _require("pyarrow.compute")
    cols = []
    for col in table.columns:
        if pa.types.is_floating(col.type):
            col = pc.if_else(pc.is_finite(col), col, pa.scalar(None, col.type))
        cols.append(col)
    rows = pa.Table.from_arrays(cols, names=table.column_names).to_pylist()
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default).encode
    return "".join(dumps(r) + "\n" for r in rows)


# ---- progress ---------------------------------------------------------------------------


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


# ---- the public entry point ---------------------------------------------------------------


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


def score_file(
    models: Sequence[str | os.PathLike[str]],
    *,
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    engine: str = "local",
    keep: Sequence[str] | None = None,
    model_dir: str | os.PathLike[str] | None = None,
    provider: str = "cpu",
    batch_size: int = DEFAULT_BATCH_ROWS,
    threads: int | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    progress: bool | None = None,
) -> ScoreResult:
    """Score a Parquet file or folder, CSV or JSONL file with one or more models into ``output``.

    ``models``: manifest paths or names in the model folder. ``output``'s suffix picks its
    format. ``engine="dask"`` runs on the cluster at ``scheduler``, or on a LocalCluster of
    ``workers`` processes. ``threads``: row chunks run in parallel per model (local engine;
    Dask workers use their own thread count). ``progress``: a bar on stderr (default: when
    stderr is a terminal).
    """
    if engine not in ("local", "dask"):
        raise M7Error(f"engine must be 'local' or 'dask', got {engine!r}")
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
    start = time.perf_counter()
    if engine == "dask":
        from . import dask_engine

        if threads is not None:
            raise M7Error("threads is for the local engine; each Dask worker uses its own thread count")

        rows, chunks, biggest = dask_engine.run(
            plan,
            source,
            out,
            out_format,
            scheduler=scheduler,
            workers=workers,
            provider=provider,
            batch_rows=batch_size,
            progress=progress,
        )
    else:
        if scheduler is not None or workers is not None:
            raise M7Error("--scheduler and --workers are for --engine dask")
        rows, chunks, biggest = _run_local(
            plan, source, out, out_format, provider=provider, threads=threads, batch_rows=batch_size, progress=progress
        )
    return ScoreResult(
        output=out,
        engine=engine,
        models=tuple(m.name for m in plan.models),
        rows=rows,
        chunks=chunks,
        max_chunk_rows=biggest,
        seconds=time.perf_counter() - start,
        notes=tuple(notes),
    )


def _run_local(
    plan: ScoringPlan,
    source: Source,
    out: Path,
    out_format: str,
    *,
    provider: str,
    threads: int | None,
    batch_rows: int,
    progress: bool | None,
) -> tuple[int, int, int]:
    """Stream the input through score_table into a temp file; rename it into place at the end."""
    models = load_models(plan, provider=provider, threads=threads)
    schema = output_schema(plan, read_schema(plan, source))
    rows = chunks = biggest = 0
    bar = progress_bar(source.rows, enabled=progress, desc="scoring")
    try:
        with atomic_output(out) as tmp:
            writer = TableWriter(tmp, out_format, schema)
            try:
                for table in iter_batches(source, plan, batch_rows=batch_rows):
                    scored = score_table(plan, models, table)
                    writer.write(scored if scored.schema == schema else scored.cast(schema))
                    rows += table.num_rows
                    chunks += 1
                    biggest = max(biggest, table.num_rows)
                    bar.update(table.num_rows)
            finally:
                writer.close()
    finally:
        bar.close()
    return rows, chunks, biggest


# ---- the `m7onnx score` command -----------------------------------------------------------


def add_cli_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``m7onnx score`` (registered by :func:`m7_runtime.cli.build_parser`)."""
    p.add_argument("models", nargs="+", metavar="MODEL", help="manifest path, or model name in the model folder")
    p.add_argument("--input", "-i", required=True, help="Parquet file or folder of Parquet files, CSV, or JSONL")
    p.add_argument("--output", "-o", required=True, help="output path; .parquet, .csv or .jsonl picks the format")
    p.add_argument("--engine", choices=["local", "dask"], default="local")
    p.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler to run on (default: start a LocalCluster)")
    p.add_argument("--workers", type=int, metavar="N", help="LocalCluster worker processes (default: one per core)")
    p.add_argument("--provider", choices=["cpu", "cuda", "auto"], default="cpu")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_ROWS, metavar="N", help="rows per chunk")
    p.add_argument("--threads", type=int, metavar="N", help="local engine: row chunks in parallel (default: cores)")
    p.add_argument("--keep", metavar="COLUMNS", help="comma-separated input columns to copy (default: all)")
    p.add_argument("--model-dir", metavar="DIR", help="where model names are looked up (default: $M7_MODEL_DIR, ...)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar, notes or summary")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def run_cli(args: argparse.Namespace) -> int:
    keep = None if args.keep is None else [c.strip() for c in args.keep.split(",") if c.strip()]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("m7onnx score: note: %(message)s"))
    for name in ("m7_runtime.batch", "m7_runtime.dask_engine"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR if args.quiet else logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False
    result = score_file(
        args.models,
        input=args.input,
        output=args.output,
        engine=args.engine,
        keep=keep,
        model_dir=args.model_dir,
        provider=args.provider,
        batch_size=args.batch_size,
        threads=args.threads,
        scheduler=args.scheduler,
        workers=args.workers,
        progress=False if args.quiet else None,
    )
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    elif not args.quiet:
        print(
            f"scored {result.rows:,} rows with {', '.join(result.models)} in {result.seconds:.1f} s "
            f"({result.rows_per_second:,.0f} rows/s, {args.engine}) -> {result.output}",
            file=sys.stderr,
        )
    return 0
