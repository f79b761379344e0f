"""The Dask engine of batch scoring: the local engine's plan and per-chunk function, on a cluster.

``m7onnx score ... --engine dask`` reads the input as a Dask DataFrame (Parquet with
``dask.dataframe.read_parquet``; CSV and JSONL as byte-range blocks parsed by the same
pyarrow code as the local engine, so both engines read a file identically), scores every
partition with :func:`m7_runtime.batch.score_table` through ``map_partitions`` with an
explicit ``meta``, and writes Parquet with ``to_parquet`` (CSV/JSONL: one part per
partition, concatenated in order). Row order is the input's: partitions keep file order
and part files are numbered.

onnxruntime sessions cannot be pickled, so none is ever sent. The artifacts' bytes travel
once in the task graph (a few hundred KB, so workers need not see the client's model
folder), and each worker process loads them on first use into a module-level cache, with
as many row-chunk threads as the worker has threads. Each session stays single-threaded,
which keeps predictions bit-identical to xgboost's.

Needs the ``dask`` extra (``dask[dataframe,distributed]``); imported only by
``--engine dask``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import batch
from .artifact import Manifest
from .batch import ScoringPlan, Source
from .errors import M7Error
from .model import Model, load

log = logging.getLogger("m7_runtime.dask_engine")

PROGRESS_TOPIC = "m7onnx-score-rows"


def _dask() -> tuple[Any, Any, Any]:
    dask = batch._require("dask", "dask")
    dd = batch._require("dask.dataframe", "dask")
    distributed = batch._require("distributed", "dask")
    return dask, dd, distributed


# ---- what workers receive ----------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """Every artifact file the plan needs, as bytes: what a worker loads its models from."""

    key: str  # sha256 over the contents: the worker cache key
    files: tuple[tuple[str, bytes], ...]  # relative path -> bytes
    manifests: tuple[tuple[str, str], ...]  # model name -> relative manifest path

    @classmethod
    def of(cls, plan: ScoringPlan) -> Bundle:
        files: list[tuple[str, bytes]] = []
        manifests: list[tuple[str, str]] = []
        digest = hashlib.sha256()
        for i, step in enumerate(plan.models):
            m = Manifest.read(step.manifest)
            names = [m.path.name] + [entry.file for entry in m.flavors.values()]
            for name in names:
                try:
                    data = (m.path.parent / name).read_bytes()
                except OSError as exc:
                    raise M7Error(f"{step.name}: cannot read {m.path.parent / name}: {exc}") from exc
                rel = f"{i}/{name}"
                files.append((rel, data))
                digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
            manifests.append((step.name, f"{i}/{m.path.name}"))
        return cls(digest.hexdigest(), tuple(files), tuple(manifests))


_cache_lock = threading.Lock()
_worker_models: dict[tuple[str, str, int], dict[str, Model]] = {}


def _worker() -> Any:
    try:
        from distributed import get_worker

        return get_worker()
    except (ImportError, ValueError):  # not inside a Dask worker (e.g. meta computed on the client)
        return None


def worker_threads() -> int:
    """The threads of the worker this runs on (its ``nthreads``), else the machine's cores."""
    w = _worker()
    return int(w.state.nthreads) if w is not None else (os.cpu_count() or 1)


def worker_models(bundle: Bundle, provider: str) -> dict[str, Model]:
    """This process's models for ``bundle``: written to disk and loaded once, then reused by every task."""
    threads = worker_threads()
    key = (bundle.key, provider, threads)
    models = _worker_models.get(key)
    if models is not None:
        return models
    with _cache_lock:
        models = _worker_models.get(key)
        if models is None:
            w = _worker()
            root = Path(w.local_directory) if w is not None else Path(tempfile.gettempdir())
            folder = root / f"m7onnx-models-{bundle.key[:16]}"
            if not folder.is_dir():
                staging = Path(tempfile.mkdtemp(prefix=".m7onnx-", dir=root))
                for rel, data in bundle.files:
                    (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                    (staging / rel).write_bytes(data)
                try:
                    os.replace(staging, folder)
                except OSError:  # another process of this machine got there first
                    shutil.rmtree(staging, ignore_errors=True)
            models = {name: load(folder / rel, provider=provider, threads=threads) for name, rel in bundle.manifests}
            _worker_models[key] = models
    return models


def score_partition(df: Any, plan: ScoringPlan, bundle: Bundle, provider: str) -> Any:
    """One partition (pandas) scored by :func:`batch.score_table` with this worker's models."""
    pa = batch._pa()
    pd = batch._require("pandas", "dask")
    models = worker_models(bundle, provider)
    table = pa.Table.from_pandas(df, preserve_index=False)
    out = batch.score_table(plan, models, table)
    w = _worker()
    if w is not None and len(df):
        w.log_event(PROGRESS_TOPIC, len(df))
    return out.to_pandas(types_mapper=pd.ArrowDtype)


# ---- reading CSV/JSONL in blocks -----------------------------------------------------------


@dataclass(frozen=True)
class TextSpec:
    """How every block of one CSV/JSONL file is parsed: the local engine's options and types."""

    path: str
    format: str  # csv | jsonl
    header: tuple[str, ...]  # CSV column names (the blocks after the first have no header line)
    schema: Any  # pyarrow.Schema of the columns read, with their types fixed up front
    plan: ScoringPlan


def _line_start(f: Any, offset: int) -> int:
    """The first line start at or after ``offset``."""
    if offset == 0:
        return 0
    f.seek(offset - 1)
    f.readline()
    return f.tell()


def read_text_block(block: tuple[int, int], spec: TextSpec) -> Any:
    """Lines starting in ``[start, end)`` of the file, parsed as the local engine parses them."""
    import io

    pa = batch._pa()
    pd = batch._require("pandas", "dask")
    start, end = block
    names = list(spec.schema.names)
    with open(spec.path, "rb") as f:
        a, b = _line_start(f, start), _line_start(f, end)
        f.seek(a)
        data = f.read(max(b - a, 0))
    try:
        if not data.strip():
            table = spec.schema.empty_table()
        elif spec.format == "csv":
            pcsv = batch._require("pyarrow.csv")
            table = pcsv.read_csv(
                io.BytesIO(data),
                read_options=pcsv.ReadOptions(column_names=list(spec.header), use_threads=False),
                convert_options=batch.csv_options(column_types={f.name: f.type for f in spec.schema}, include=names),
            )
            table = batch.csv_nulls(table, spec.plan)
        else:
            pjson = batch._require("pyarrow.json")
            table = pjson.read_json(
                io.BytesIO(data),
                read_options=pjson.ReadOptions(use_threads=False, block_size=max(len(data), 1 << 16)),
                parse_options=pjson.ParseOptions(explicit_schema=spec.schema, unexpected_field_behavior="ignore"),
            )
    except (pa.ArrowException, ValueError) as exc:
        raise M7Error(
            f"cannot read bytes {a}-{b} of {spec.path} as {spec.format.upper()}: {exc} "
            "(the Dask engine splits text files at line ends: a quoted value spanning lines breaks that)"
        ) from exc
    return table.select(names).to_pandas(types_mapper=pd.ArrowDtype)


def _text_frame(source: Source, plan: ScoringPlan, batch_rows: int) -> Any:
    pd = batch._require("pandas", "dask")
    _, dd, _ = _dask()
    schema = batch.read_schema(plan, source)
    header: tuple[str, ...] = ()
    begin = 0
    if source.format == "csv":
        with open(source.path, "rb") as f:
            begin = _line_start(f, 1)  # just past the header line
        header = source.columns
    size = source.path.stat().st_size
    step = batch._block_bytes(source, batch_rows)
    blocks = [(s, min(s + step, size)) for s in range(begin, size, step)] or [(begin, begin)]
    spec = TextSpec(str(source.path), source.format, header, schema, plan)
    meta = schema.empty_table().to_pandas(types_mapper=pd.ArrowDtype)
    return dd.from_map(read_text_block, blocks, spec=spec, meta=meta, label="m7onnx-read", enforce_metadata=False)


def read_frame(source: Source, plan: ScoringPlan, batch_rows: int) -> Any:
    """The input as a Dask DataFrame of the plan's columns, partitions in file order."""
    if source.format != "parquet":
        return _text_frame(source, plan, batch_rows)
    _, dd, _ = _dask()
    # Partitions of about batch_rows rows: a file larger than that is split at its row groups.
    blocksize = max(int(batch_rows * source.bytes_per_row), 1 << 20)
    return dd.read_parquet(
        [str(f) for f in source.files],
        columns=list(batch.read_names(plan, source)),
        dtype_backend="pyarrow",
        blocksize=blocksize,
    )


# ---- running -------------------------------------------------------------------------------


def _worker_info() -> dict[str, Any]:
    from . import __version__
    from .providers import cuda_available

    return {"m7_runtime": __version__, "nthreads": worker_threads(), "cuda": cuda_available()}


def connect(scheduler: str | None, workers: int | None) -> tuple[Any, Any]:
    """A client on ``scheduler``, or on a new LocalCluster of ``workers`` single-threaded processes."""
    _, _, distributed = _dask()
    if scheduler is not None:
        if workers is not None:
            raise M7Error("--workers sizes a LocalCluster; with --scheduler the cluster is already sized")
        try:
            return distributed.Client(scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise M7Error(f"cannot connect to the Dask scheduler at {scheduler}: {exc}") from exc
    n = workers or os.cpu_count() or 1
    if n < 1:
        raise M7Error(f"--workers must be at least 1, got {n}")
    # Processes, one thread each: each runs its own single-threaded sessions without sharing
    # a GIL, and a model's row chunks need no second thread to keep a core busy.
    cluster = distributed.LocalCluster(
        n_workers=n,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # a free port: never collide with another cluster on this machine
        silence_logs=logging.ERROR,
    )
    return distributed.Client(cluster), cluster


def _check_workers(client: Any, provider: str) -> None:
    from . import __version__

    try:
        info = client.run(_worker_info)
    except Exception as exc:  # a worker without market7-onnx fails to unpickle the function
        raise M7Error(
            f"the Dask workers cannot run m7_runtime ({type(exc).__name__}: {exc}); "
            "install market7-onnx[dask] in every worker's environment"
        ) from exc
    if not info:
        raise M7Error("the Dask cluster has no workers")
    versions = {v["m7_runtime"] for v in info.values()}
    if versions != {__version__}:
        log.warning("workers run m7_runtime %s, this client %s", sorted(versions), __version__)
    if provider == "cuda" and not all(v["cuda"] for v in info.values()):
        log.warning(
            "--provider cuda: %d of %d workers have no CUDAExecutionProvider and run on their CPU",
            sum(not v["cuda"] for v in info.values()),
            len(info),
        )


def _part_name(i: int) -> str:
    return f"part.{i:06d}.parquet"


def write_part(df: Any, path: str, fmt: str, schema: Any) -> int:
    """One scored partition as a headerless CSV or JSONL part; returns its rows."""
    pa = batch._pa()
    table = pa.Table.from_pandas(df, preserve_index=False)
    table = table if table.schema == schema else table.cast(schema)
    writer = batch.TableWriter(Path(path), fmt, schema, header=False)
    try:
        writer.write(table)
    finally:
        writer.close()
    return table.num_rows


def run(
    plan: ScoringPlan,
    source: Source,
    out: Path,
    out_format: str,
    *,
    scheduler: str | None,
    workers: int | None,
    provider: str,
    batch_rows: int,
    progress: bool | None,
) -> tuple[int, int, int]:
    """Score ``source`` into ``out`` on a Dask cluster; returns (rows, partitions, largest partition)."""
    dask, _, _ = _dask()
    pa = batch._pa()
    ddf = read_frame(source, plan, batch_rows)
    bundle = Bundle.of(plan)
    # meta, explicitly: score_table on the input's empty meta (no session is created for 0 rows).
    client_models = batch.load_models(plan, provider="cpu")
    meta_table = batch.score_table(plan, client_models, pa.Table.from_pandas(ddf._meta, preserve_index=False))
    pd = batch._require("pandas", "dask")
    meta = meta_table.to_pandas(types_mapper=pd.ArrowDtype)
    schema = meta_table.schema
    scored = ddf.map_partitions(
        score_partition, plan, dask.delayed(bundle, pure=True), provider, meta=meta, enforce_metadata=False
    )
    client, cluster = connect(scheduler, workers)
    bar: Any = batch.progress_bar(0, enabled=False, desc="")
    try:
        _check_workers(client, provider)
        n_workers = len(client.scheduler_info().get("workers", {}))
        bar = batch.progress_bar(source.rows, enabled=progress, desc=f"scoring on {n_workers} workers")
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: bar.update(int(event[1])))
        with batch.atomic_output(out) as tmp:
            try:
                if out_format == "parquet":
                    scored.to_parquet(str(tmp), write_index=False, name_function=_part_name, schema=schema)
                    counts = [_rows_of(p) for p in sorted(tmp.glob("part.*.parquet"))]
                else:
                    counts = _write_text(scored, tmp, out_format, schema)
            except OSError as exc:  # raised on a worker: usually a path the workers cannot see
                raise M7Error(
                    f"a Dask worker could not read or write a file ({exc}); with --scheduler, the input and "
                    "the output's folder must be on storage every worker sees at the same path"
                ) from exc
    finally:
        bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    return sum(counts), len(counts), max(counts, default=0)


def _rows_of(path: Path) -> int:
    return int(batch._require("pyarrow.parquet").ParquetFile(path).metadata.num_rows)


def _write_text(scored: Any, tmp: Path, fmt: str, schema: Any) -> list[int]:
    """Each partition to a headerless part in a temp folder, then the parts concatenated in order."""
    dask, _, _ = _dask()
    parts_dir = batch.temp_path(tmp.with_name(tmp.name + "-parts"))
    parts_dir.mkdir()
    try:
        paths = [parts_dir / f"part.{i:06d}.{fmt}" for i in range(scored.npartitions)]
        tasks = [
            dask.delayed(write_part)(p, str(path), fmt, schema)
            for p, path in zip(scored.to_delayed(), paths, strict=True)
        ]
        counts = list(dask.compute(*tasks))
        header = batch.TableWriter(tmp, fmt, schema)  # the CSV header line (nothing for JSONL)
        header.close()
        with open(tmp, "ab") as dst:
            for path in paths:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        return counts
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
