"""The Dask engine: the local engine's plan, reading and per-chunk function, on a cluster.

``m7onnx score ... --engine dask`` reads the input as a Dask DataFrame of independent pieces
(:mod:`.read`: Parquet row ranges, so one large file still splits, and CSV/JSONL byte
ranges), scores every partition with :func:`.score.score_table` through ``map_partitions``
with an explicit ``meta``, and writes Parquet with ``to_parquet`` (CSV/JSONL: one part per
partition, concatenated in order). Row order is the input's: partitions keep file order and
part files are numbered.

onnxruntime sessions cannot be pickled, so none is ever sent. The artifacts' bytes travel
once in the task graph (a few hundred KB, so workers need not see the client's model
folder), and each worker process loads them on first use into a module-level cache, with
as many row-chunk threads as the worker has threads. Each session stays single-threaded,
which keeps predictions bit-identical to xgboost's.

Needs the ``dask`` extra (``dask[dataframe,distributed]``); imported only by ``--engine dask``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from m7_runtime.artifact import Manifest
from m7_runtime.errors import M7Error
from m7_runtime.model import Model, load

from .deps import pyarrow, require
from .job import Counts, Job, progress_bar
from .output import atomic_output, remove_path, table_writer, temp_path
from .plan import ScoringPlan
from .read import ReadSpec, parquet_ranges, read_row_range, read_text_block, text_blocks
from .score import load_models, score_table

log = logging.getLogger(__name__)

PROGRESS_TOPIC = "m7onnx-score-rows"


def _dask() -> tuple[Any, Any, Any]:
    return require("dask", "dask"), require("dask.dataframe", "dask"), require("distributed", "dask")


def _pandas() -> Any:
    return require("pandas", "dask")


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
    """One partition (pandas) scored by :func:`score_table` with this worker's models."""
    models = worker_models(bundle, provider)
    out = score_table(plan, models, pyarrow().Table.from_pandas(df, preserve_index=False))
    w = _worker()
    if w is not None and len(df):
        w.log_event(PROGRESS_TOPIC, len(df))
    return out.to_pandas(types_mapper=_pandas().ArrowDtype)


# ---- reading -------------------------------------------------------------------------------


def _parquet_piece(piece: Any, spec: ReadSpec) -> Any:
    return read_row_range(piece, spec).to_pandas(types_mapper=_pandas().ArrowDtype)


def _text_piece(block: tuple[int, int], path: str, spec: ReadSpec) -> Any:
    return read_text_block(path, block, spec).to_pandas(types_mapper=_pandas().ArrowDtype)


def read_frame(job: Job) -> Any:
    """The input as a Dask DataFrame of the plan's columns, partitions of at most ``batch_rows`` in file order."""
    _, dd, _ = _dask()
    spec = ReadSpec.of(job.source, job.plan)
    meta = spec.schema.empty_table().to_pandas(types_mapper=_pandas().ArrowDtype)
    if job.source.format == "parquet":
        pieces: list[Any] = parquet_ranges(job.source, job.batch_rows)
        read, kwargs = _parquet_piece, {"spec": spec}
    else:
        pieces = text_blocks(job.source, job.batch_rows)
        read, kwargs = _text_piece, {"path": str(job.source.path), "spec": spec}
    return dd.from_map(read, pieces, **kwargs, meta=meta, label="m7onnx-read", enforce_metadata=False)


# ---- the cluster ---------------------------------------------------------------------------


def _worker_info() -> dict[str, Any]:
    from m7_runtime import __version__
    from m7_runtime.providers import cuda_available

    return {"m7_runtime": __version__, "nthreads": worker_threads(), "cuda": cuda_available()}


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT blocked, so a Ctrl-C reaches this process alone.

    A terminal sends Ctrl-C to the whole foreground process group: every worker would print
    its own KeyboardInterrupt traceback (hundreds of lines) while this process is closing
    the cluster anyway. The blocked mask is inherited by the threads started meanwhile
    (distributed's event loop and the threads that spawn worker processes) and by the
    processes they spawn; this thread's mask is restored after, and a Ctrl-C that arrived
    meanwhile is delivered then. The multiprocessing resource tracker is started first
    because starting it unblocks SIGINT in the calling thread.
    """
    if not hasattr(signal, "pthread_sigmask"):  # not POSIX: nothing to do
        yield
        return
    from multiprocessing import resource_tracker

    resource_tracker.ensure_running()
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


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
    with _workers_ignore_ctrl_c():
        cluster = distributed.LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # a free port: never collide with another cluster on this machine
            # This cluster is private to the run: its failures reach this process as exceptions. Its own
            # log lines would add nothing but noise, e.g. a heartbeat racing the scheduler's shutdown
            # logs an ERROR with a traceback after a Ctrl-C.
            silence_logs=logging.CRITICAL,
        )
    return distributed.Client(cluster), cluster


def _check_workers(client: Any, provider: str) -> None:
    from m7_runtime import __version__

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


def _compute(client: Any, work: Any) -> Any:
    """Run ``work`` (a collection or a list of delayed) on the cluster and return its result.

    Submitted, then waited for: a Ctrl-C while waiting leaves no half-cancelled gather behind
    (whose stray task logs an error at exit), and the futures are cancelled, so a shared
    cluster (``--scheduler``) stops working on this run.
    """
    _, _, distributed = _dask()
    futures = client.compute(work)
    try:
        distributed.wait(futures)
        return client.gather(futures)
    except distributed.comm.CommClosedError:
        _cancel(client, futures)
        raise
    except OSError as exc:  # raised on a worker: usually a path the workers cannot see
        _cancel(client, futures)
        raise M7Error(
            f"a Dask worker could not read or write a file ({exc}); with --scheduler, the input and "
            "the output's folder must be on storage every worker sees at the same path"
        ) from exc
    except BaseException:
        _cancel(client, futures)
        raise


def _cancel(client: Any, futures: Any) -> None:
    with contextlib.suppress(Exception):  # best effort: the error that led here matters more
        client.cancel(futures)


# ---- writing -------------------------------------------------------------------------------


def _part_name(i: int) -> str:
    return f"part.{i:06d}.parquet"


def write_part(df: Any, path: str, fmt: str, schema: Any) -> int:
    """One scored partition as a Parquet part, or a headerless CSV or JSONL part; returns its rows."""
    table = pyarrow().Table.from_pandas(df, preserve_index=False)
    table = table if table.schema == schema else table.cast(schema)
    with table_writer(Path(path), fmt, schema, header=False) as writer:
        writer.write(table)
    return table.num_rows


def _write_parquet(client: Any, scored: Any, tmp: Path, schema: Any) -> list[int]:
    """Each partition as one part of the Parquet dataset folder ``tmp``.

    The folder is made here, on the client, and the workers only write files into it (never
    create it): after a failure, a task still running cannot bring back a folder the cleanup
    removed.
    """
    dask, _, _ = _dask()
    tmp.mkdir()
    tasks = [
        dask.delayed(write_part)(p, str(tmp / _part_name(i)), "parquet", schema)
        for i, p in enumerate(scored.to_delayed())
    ]
    return list(_compute(client, tasks))


def _write_text(client: Any, scored: Any, tmp: Path, final: Path, fmt: str, schema: Any) -> list[int]:
    """Each partition to a headerless part in a temp folder, then the parts concatenated in order."""
    dask, _, _ = _dask()
    parts_dir = temp_path(final)
    parts_dir.mkdir()
    try:
        paths = [parts_dir / f"part.{i:06d}.{fmt}" for i in range(scored.npartitions)]
        tasks = [
            dask.delayed(write_part)(p, str(path), fmt, schema)
            for p, path in zip(scored.to_delayed(), paths, strict=True)
        ]
        counts = list(_compute(client, tasks))
        with table_writer(tmp, fmt, schema):  # the CSV header line (nothing for JSONL)
            pass
        with open(tmp, "ab") as dst:
            for path in paths:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        return counts
    finally:
        remove_path(parts_dir)


def run(job: Job, *, scheduler: str | None = None, workers: int | None = None) -> Counts:
    """Score ``job`` on the cluster at ``scheduler``, or on a LocalCluster of ``workers`` processes."""
    dask, _, _ = _dask()
    ddf = read_frame(job)
    bundle = Bundle.of(job.plan)
    # meta, explicitly: score_table on the input's empty meta (no session is created for 0 rows).
    client_models = load_models(job.plan, provider="cpu")
    empty = pyarrow().Table.from_pandas(ddf._meta, preserve_index=False)
    meta_table = score_table(job.plan, client_models, empty)
    schema = meta_table.schema
    scored = ddf.map_partitions(
        score_partition,
        job.plan,
        dask.delayed(bundle, pure=True),
        job.provider,
        meta=meta_table.to_pandas(types_mapper=_pandas().ArrowDtype),
        enforce_metadata=False,
    )
    client, cluster = connect(scheduler, workers)
    bar: Any = progress_bar(0, enabled=False, desc="")
    try:
        _check_workers(client, job.provider)
        n_workers = len(client.scheduler_info().get("workers", {}))
        bar = progress_bar(job.source.rows, enabled=job.progress, desc=f"scoring on {n_workers} workers")
        client.subscribe_topic(PROGRESS_TOPIC, lambda event: bar.update(int(event[1])))
        with atomic_output(job.output) as tmp:
            if job.out_format == "parquet":
                counts = _write_parquet(client, scored, tmp, schema)
            else:
                counts = _write_text(client, scored, tmp, job.output, job.out_format, schema)
    finally:
        bar.close()
        if cluster is not None:
            cluster.close()  # workers first, then the scheduler
        client.close()
    return Counts(sum(counts), len(counts), max(counts, default=0))
