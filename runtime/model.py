"""A loaded artifact: batch prediction, the single-row hot path, and the caller policy.

One onnxruntime session per artifact, created on first use with one intra-op thread:
onnxruntime then sums each row's trees in order starting from the base margin, exactly
as xgboost does, so predictions are bit-identical to xgboost's (a multi-threaded tree
ensemble splits the trees of a row across threads and reorders the float32 sums). Large
batches are split into row chunks that run in parallel on a thread pool (onnxruntime
releases the GIL). Sessions are thread-safe; models with byte-identical artifacts share
one session.
"""

from __future__ import annotations

import functools
import itertools
import logging
import operator
import os
import struct
import threading
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from .artifact import Manifest, SplitRange
from .errors import M7Error
from .integrity import artifact_bytes
from .policy import to_float
from .providers import Placement, place

log = logging.getLogger("m7_runtime")

_FAST = frozenset({float, int})  # values taken as they are on the hot path
_fast_types = _FAST.issuperset
CHUNK_ROWS = 4096  # rows per task when a batch is split across threads
_RANGE_BATCH = 4096  # predict_one rows queued before their out-of-range count is taken
#: Tensor flavor: the bytes of intermediate tensors one run may hold, by provider. A run
#: takes floor(budget / the manifest's ``bytes_per_row``) rows; the CPU runs at most
#: ``threads`` at once, CUDA one. 16 MiB is also where CPU runs are fastest (NOTES.md).
TENSOR_RUN_BYTES = {"cpu": 16 * 2**20, "cuda": 256 * 2**20}
_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None


def _thread_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="m7_runtime")
        return _pool


def range_bounds(features: tuple[str, ...], split_ranges: Mapping[str, SplitRange]) -> tuple[np.ndarray, np.ndarray]:
    """Per feature, the band outside which an input counts as out of range (never rejected).

    The split thresholds are all the model knows of its training data, and a normal value
    often lies beyond the outermost one (a 0/1 flag's only threshold is 1.0). So the band is
    the threshold range widened on each side by its width or the thresholds' magnitude,
    whichever is larger: it flags inputs far from anything the trees tell apart (a price in
    cents, minutes given as seconds), not the ordinary tails.
    """
    lo = np.full(len(features), -np.inf, np.float32)
    hi = np.full(len(features), np.inf, np.float32)
    for i, f in enumerate(features):
        if f in split_ranges:
            a, b = split_ranges[f].min, split_ranges[f].max
            pad = max(b - a, abs(a), abs(b)) or 1.0
            lo[i], hi[i] = a - pad, b + pad
    return lo, hi


class Sessions:
    """The onnxruntime session of one artifact, created lazily and shared by identical artifacts."""

    def __init__(self, data: bytes, placement: Placement) -> None:
        self._data = data
        self.placement = placement
        self._lock = threading.Lock()
        self._session: ort.InferenceSession | None = None

    def _make(self) -> ort.InferenceSession:
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            return ort.InferenceSession(self._data, sess_options=opts, providers=list(self.placement.ort_providers))
        except Exception as exc:  # onnxruntime raises its own exception types
            raise M7Error(f"onnxruntime cannot load the artifact: {exc}") from exc

    def get(self) -> ort.InferenceSession:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._make()
        return self._session

    @property
    def actual_provider(self) -> str:
        """What onnxruntime really placed the graph on (it may fall back from CUDA)."""
        return "cuda" if self.get().get_providers()[0] == "CUDAExecutionProvider" else "cpu"


class Model:
    """One Market7 model. ``predict`` is the model; ``predict_one`` and ``score`` add its caller policy."""

    def __init__(
        self, manifest: Manifest, sessions: Sessions, *, threads: int | None = None, bulk: Sessions | None = None
    ) -> None:
        self.manifest = manifest
        self._sessions = sessions
        tensor = manifest.flavors.get("tensor")
        self._tensor_bytes_per_row = (tensor.bytes_per_row if tensor else None) or 0
        self._bulk = bulk  # the tensor flavor on the CPU, for batches of at least _bulk_min_rows
        self._bulk_min_rows = tensor.cpu_min_rows if bulk is not None and tensor is not None else None
        self.threads = max(1, threads or os.cpu_count() or 1)
        self.name = manifest.name
        self.feature_names: tuple[str, ...] = manifest.features
        self.policy = manifest.policy
        self._n = len(self.feature_names)
        self._input = manifest.input_name
        self._output = [manifest.output_name]
        self._multi = manifest.n_outputs > 1
        self._fast_row = not self.policy.one_hot
        self._reject = self.policy.on_missing == "reject"
        self._clamp = self.policy.clamp_min is not None or self.policy.clamp_max is not None
        self._lo, self._hi = range_bounds(self.feature_names, manifest.split_ranges)
        self._range_lock = threading.Lock()
        self._local = threading.local()
        # predict_one's hot-path state (benchmarks/NOTES.md, "predict_one"): a C-level row reader,
        # a struct that packs a row into this thread's float32 buffer, the clamp as Python floats,
        # and the out-of-range rows waiting to be counted in one vectorised pass.
        names = self.feature_names
        self._getter = operator.itemgetter(*names) if self._n > 1 else (lambda d, _f=names[0]: (d[_f],))
        self._zeros = (0.0,) * self._n
        # zero-fill models with one-hot columns: (encoder, [(position in the row, encoded column)], memo of
        # encodings by input value: encoding a status costs ~1 µs, a dict lookup ~50 ns)
        position = {f: i for i, f in enumerate(names)}
        self._one_hot_slots: list[tuple[Any, list[tuple[int, int]], dict[Any, tuple[float, ...]]]] | None = (
            [(o, [(position[c], j) for j, c in enumerate(o.columns) if c in position], {}) for o in self.policy.one_hot]
            if self.policy.one_hot and not self._reject
            else None
        )
        self._pack = struct.Struct(f"={self._n}f").pack_into
        self._clamp_min, self._clamp_max = self.policy.clamp_min, self.policy.clamp_max
        self._track_range = bool(np.isfinite(self._lo).any() or np.isfinite(self._hi).any())
        self._pending_rows: deque[bytes] = deque()
        self._out_of_range: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<m7_runtime.Model {self.name!r} {self.manifest.task} {self.flavor}@{self.provider} {self._n} features>"

    @property
    def provider(self) -> str:
        return self._sessions.actual_provider

    @property
    def flavor(self) -> str:
        return self._sessions.placement.flavor

    @property
    def task(self) -> str:
        return self.manifest.task

    def flavor_for(self, n_rows: int) -> str:
        """The flavor a batch of ``n_rows`` runs: on the CPU, large batches use the tensor flavor when faster."""
        if self._bulk_min_rows is not None and n_rows >= self._bulk_min_rows:
            return "tensor"
        return self.flavor

    def rows_per_run(self, provider: str) -> int:
        """Rows in one tensor-flavor run on ``provider`` ("cpu" or "cuda"): the memory bound, see TENSOR_RUN_BYTES."""
        if not self._tensor_bytes_per_row:
            return CHUNK_ROWS
        return max(1, TENSOR_RUN_BYTES[provider] // self._tensor_bytes_per_row)

    # ---- batch -------------------------------------------------------------------
    def _matrix(self, X: Any) -> np.ndarray:
        if isinstance(X, Mapping) or (hasattr(X, "columns") and hasattr(X, "__getitem__")):
            return self._from_columns(X)
        try:
            arr = np.asarray(X)
        except (ValueError, TypeError) as exc:
            raise M7Error(f"{self.name}: cannot read the input as a 2-D array: {exc}") from exc
        if arr.ndim != 2:
            hint = " (for one row use predict_one(dict) or X.reshape(1, -1))" if arr.ndim == 1 else ""
            raise M7Error(f"{self.name}: expected a 2-D array of shape (n, {self._n}), got shape {arr.shape}{hint}")
        if arr.shape[1] != self._n:
            raise M7Error(
                f"{self.name}: expected {self._n} columns in the order of model.feature_names, got {arr.shape[1]}"
            )
        return self._as_float32(arr)

    def _as_float32(self, arr: np.ndarray) -> np.ndarray:
        if arr.dtype == np.float32:
            return np.ascontiguousarray(arr)
        if arr.dtype.kind in "fiub":
            return np.ascontiguousarray(arr, dtype=np.float32)
        if arr.dtype.kind == "O":
            flat = [to_float(self.feature_names[i % self._n], v) for i, v in enumerate(arr.ravel())]
            return np.asarray(flat, dtype=np.float32).reshape(arr.shape)
        raise M7Error(f"{self.name}: input dtype {arr.dtype} is not numeric; give float32/float64/int/bool values")

    def _from_columns(self, table: Any) -> np.ndarray:
        missing = [f for f in self.feature_names if f not in table]
        if missing:
            raise M7Error(f"{self.name}: input lacks column(s) {missing}")
        cols = [np.asarray(table[f]) for f in self.feature_names]
        n = {c.shape for c in cols}
        if len(n) != 1 or len(next(iter(n))) != 1:
            raise M7Error(f"{self.name}: columns must be 1-D and of one length, got shapes {sorted(n)}")
        return self._as_float32(
            np.stack(cols, axis=1) if cols[0].dtype.kind != "O" else np.stack(cols, axis=1).astype(object)
        )

    def predict(self, X: Any) -> np.ndarray:
        """What the source model returns for each row: (n,) values/P(class 1), or (n, k) probabilities.

        ``X``: a 2-D array in ``feature_names`` order, a pandas DataFrame, or a mapping of
        column name -> 1-D array (reordered by name; extra columns ignored).
        """
        return self._run_batch(self._matrix(X))

    def _run_batch(self, x: np.ndarray) -> np.ndarray:
        n = len(x)
        if n == 0:
            return np.empty((0, self.manifest.n_outputs) if self._multi else (0,), dtype=np.float32)
        sessions = self._bulk if self.flavor_for(n) == "tensor" and self._bulk is not None else self._sessions
        if sessions.placement.flavor == "tensor":
            return self._run_bounded(sessions, x)
        sess = self._sessions.get()
        tasks = min(self.threads, -(-n // CHUNK_ROWS))
        if tasks <= 1 or self._sessions.placement.provider == "cuda":
            return self._run(sess, x)
        bounds = np.linspace(0, n, tasks + 1).astype(int)
        parts = _thread_pool().map(lambda ab: self._run(sess, x[ab[0] : ab[1]]), itertools.pairwise(bounds))
        return np.concatenate(list(parts))

    def _run_bounded(self, sessions: Sessions, x: np.ndarray) -> np.ndarray:
        """Tensor flavor: runs of at most rows_per_run rows, so intermediates stay within TENSOR_RUN_BYTES per run.

        On the CPU up to ``threads`` runs are in flight (each thread takes every threads-th
        run, in order); on CUDA one at a time.
        """
        sess = sessions.get()
        provider = sessions.placement.provider
        n, rows = len(x), self.rows_per_run(provider)
        runs = [(a, min(a + rows, n)) for a in range(0, n, rows)]
        lanes = 1 if provider == "cuda" else min(self.threads, len(runs))
        if lanes == 1:
            return np.concatenate([self._run(sess, x[a:b]) for a, b in runs])
        parts = list(_thread_pool().map(lambda i: [self._run(sess, x[a:b]) for a, b in runs[i::lanes]], range(lanes)))
        return np.concatenate([parts[j % lanes][j // lanes] for j in range(len(runs))])

    def _run(self, sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
        try:
            return sess.run(self._output, {self._input: x})[0]
        except Exception as exc:  # onnxruntime's own exception types
            raise M7Error(f"{self.name}: onnxruntime failed on an input of shape {x.shape}: {exc}") from exc

    def score(self, table: Any) -> np.ndarray:
        """Column-wise ``predict_one``: the caller policy applied to a table of named columns.

        Missing columns are zero-filled or rejected per the policy, one-hot columns are derived
        from their string input, and the output is clamped; row for row the same as
        ``predict_one``.
        """
        n = _n_rows(table)
        return self.policy.clamp(self._run_batch(self.policy.columns(self.feature_names, table, n)))

    # ---- single row --------------------------------------------------------------
    def predict_one(self, features: Mapping[str, Any]) -> float | np.ndarray:
        """One prediction from a mapping of feature name -> value, under the model's caller policy.

        "reject" models raise :class:`M7Error` naming every missing feature; "zero" models fill
        0.0. Extra keys are ignored; None means missing (NaN), as in xgboost.

        This is the bot's hot path; every step is the cheapest one measured (benchmarks/NOTES.md,
        "predict_one"): ``itemgetter`` reads the row, ``struct`` packs it into a float32 buffer
        owned by this thread, and onnxruntime runs through an I/O binding to that buffer and to
        a preallocated output, which skips building the feed dict, converting the array and
        allocating the result on every call.
        """
        if features.__class__ is not dict and not isinstance(features, Mapping):
            raise M7Error(
                f"{self.name}: predict_one takes a mapping of feature name -> value, got {type(features).__name__}"
            )
        vals: Any
        if self._fast_row:
            if self._reject:
                try:
                    vals = self._getter(features)
                except KeyError:
                    missing = [f for f in self.feature_names if f not in features]
                    raise M7Error(
                        f"{self.name}: missing feature(s) {missing}; this model's policy rejects rows without them"
                    ) from None
            else:
                vals = list(map(features.get, self.feature_names, self._zeros))
            if not _fast_types(map(type, vals)):
                vals = [to_float(f, v) for f, v in zip(self.feature_names, vals, strict=True)]
        elif self._one_hot_slots is not None:  # zero-fill + one-hot (the spend models): policy.row, C-level
            vals = list(map(features.get, self.feature_names, self._zeros))
            for encoder, slots, memo in self._one_hot_slots:
                value = features.get(encoder.input)
                cacheable = value is None or value.__class__ is str
                encoded = memo.get(value) if cacheable else None
                if encoded is None:
                    encoded = encoder.encode(value)
                    if cacheable and len(memo) < 64:  # a few statuses in practice; never unbounded
                        memo[value] = encoded
                for i, j in slots:
                    vals[i] = encoded[j]
            if not _fast_types(map(type, vals)):
                vals = self.policy.row(self.feature_names, features)
        else:
            vals = self.policy.row(self.feature_names, features)
        try:
            view, buf, out, run = self._local.row
        except AttributeError:
            view, buf, out, run = self._local.row = self._row_runner()
        try:
            self._pack(view, 0, *vals)  # float64/int -> float32 as C rounds, like numpy's cast
        except (OverflowError, struct.error):  # beyond float32's range: numpy's cast (inf) decides, as in batches
            try:
                buf[0] = vals
            except (OverflowError, TypeError, ValueError):  # an int beyond float range: name it
                buf[0] = [to_float(f, v) for f, v in zip(self.feature_names, vals, strict=True)]
        try:
            run()
        except Exception as exc:  # onnxruntime's own exception types
            raise M7Error(f"{self.name}: onnxruntime failed on an input of shape {buf.shape}: {exc}") from exc
        if self._track_range:
            if log.isEnabledFor(logging.DEBUG):  # the per-row debug line needs the check now
                self._count_out_of_range(buf.copy())
            else:  # counted later, many rows at once: ~1k instead of ~28k instructions per call
                pending = self._pending_rows
                pending.append(view.tobytes())
                if len(pending) >= _RANGE_BATCH:
                    self._count_out_of_range(None)
        if self._multi:
            y = out[0].copy()
            return self.policy.clamp(y) if self._clamp else y
        y = out.item()
        if self._clamp:  # np.clip's result for a scalar, without its ~3 µs: NaN stays NaN, -0.0 -> 0.0 at 0
            if self._clamp_min is not None and y <= self._clamp_min:
                y = self._clamp_min
            if self._clamp_max is not None and y >= self._clamp_max:
                y = self._clamp_max
        return y

    def _row_runner(self) -> tuple[memoryview, np.ndarray, np.ndarray, Any]:
        """This thread's buffers and run callable for ``predict_one``.

        On the CPU the session runs through an I/O binding to a float32 input row and a
        preallocated output: about 1.5 µs less per call than ``session.run`` (measured,
        NOTES.md). The binding is checked once against ``session.run`` on a zero row; if an
        onnxruntime version does not write into the preallocated output, or the placement is
        CUDA (where input and output live on the device), plain ``session.run`` is used.
        """
        sess = self._sessions.get()
        buf = np.zeros((1, self._n), dtype=np.float32)
        shape = (1, self.manifest.n_outputs) if self._multi else (1,)
        out = np.zeros(shape, dtype=np.float32)
        view = memoryview(buf).cast("B")
        plain = self._plain_runner(sess, buf, out)
        if self._sessions.placement.provider != "cpu":
            return view, buf, out, plain
        try:
            binding = sess.io_binding()
            binding.bind_input(self._input, "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
            binding.bind_output(self._output[0], "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
            run = functools.partial(sess.run_with_iobinding, binding)
            inner, inner_binding = getattr(sess, "_sess", None), getattr(binding, "_iobinding", None)
            if inner is not None and inner_binding is not None:
                # What the public wrapper calls, minus one Python frame (~3.6k instructions a call).
                # Checked below like the public call; any failure falls back to the public call.
                direct = functools.partial(inner.run_with_iobinding, inner_binding, None)
                if self._bound_matches(direct, out, plain):
                    return view, buf, out, direct
            if self._bound_matches(run, out, plain):
                return view, buf, out, run
        except Exception:  # any binding problem: the plain path is always correct
            pass
        return view, buf, out, plain

    @staticmethod
    def _bound_matches(run: Any, out: np.ndarray, plain: Any) -> bool:
        """Does ``run`` write the same bytes into ``out`` as ``session.run`` (``plain``) does?"""
        try:
            out[...] = np.nan
            run()
            bound = out.tobytes()
        except Exception:
            return False
        plain()
        return bound == out.tobytes()

    def _plain_runner(self, sess: ort.InferenceSession, buf: np.ndarray, out: np.ndarray) -> Any:
        feed, names = {self._input: buf}, self._output

        def run() -> None:
            out[...] = sess.run(names, feed)[0]

        return run

    @property
    def out_of_range(self) -> dict[str, int]:
        """How many single-row inputs fell far outside the split thresholds, per feature (:func:`range_bounds`).

        ``predict_one`` queues its float32 rows and they are counted in one numpy pass here
        (or every few thousand rows), so the count is exact whenever it is read.
        """
        self._count_out_of_range(None)
        return self._out_of_range

    @out_of_range.setter
    def out_of_range(self, value: dict[str, int]) -> None:
        """Replace the counts (e.g. ``model.out_of_range = {}`` to start a new period); queued rows are dropped."""
        with self._range_lock:
            self._pending_rows.clear()
            self._out_of_range = value

    def _count_out_of_range(self, rows: np.ndarray | None) -> None:
        """Count ``rows`` (float32, one per input), or the queued rows when None."""
        with self._range_lock:
            if rows is None:
                queued = [self._pending_rows.popleft() for _ in range(len(self._pending_rows))]
                if not queued:
                    return
                rows = np.frombuffer(b"".join(queued), dtype=np.float32).reshape(len(queued), self._n)
            outside = (rows < self._lo) | (rows > self._hi)
            counts = outside.sum(axis=0)
            for i in np.flatnonzero(counts):
                f = self.feature_names[i]
                self._out_of_range[f] = self._out_of_range.get(f, 0) + int(counts[i])
        if log.isEnabledFor(logging.DEBUG):
            for row in outside:
                if row.any():
                    names = [self.feature_names[i] for i in np.flatnonzero(row)]
                    log.debug("%s: input outside the training split range for %s", self.name, names)


def _n_rows(table: Any) -> int:
    if hasattr(table, "num_rows"):  # pyarrow.Table / RecordBatch
        return int(table.num_rows)
    if hasattr(table, "columns") and hasattr(table, "__len__"):  # pandas DataFrame
        return len(table)
    if isinstance(table, Mapping):
        lengths = {len(np.asarray(v)) for v in table.values() if np.ndim(v) == 1}
        if len(lengths) > 1:
            raise M7Error(f"columns have different lengths {sorted(lengths)}")
        return lengths.pop() if lengths else 0
    raise M7Error(f"expected a table of named columns (mapping, DataFrame, pyarrow Table), got {type(table).__name__}")


def load(
    path: str | Path,
    *,
    provider: str = "auto",
    flavor: str | None = None,
    threads: int | None = None,
    _cache: dict[tuple[str, Placement], Sessions] | None = None,
) -> Model:
    """Load one artifact (a manifest, or the ``.onnx`` beside one) after checking its hash and contract.

    ``artifact_bytes`` verifies every manifest, even when byte-identical artifacts share a session.
    """
    manifest = Manifest.read(path)
    placement = place(provider, flavors=tuple(manifest.flavors), flavor=flavor)
    data = artifact_bytes(manifest, placement.flavor)
    key = (manifest.flavors[placement.flavor].sha256, placement)
    if _cache is not None and key in _cache:
        sessions = _cache[key]
    else:
        sessions = Sessions(data, placement)
        if _cache is not None:
            _cache[key] = sessions
    if placement.provider == "cuda":
        sessions.get()  # create now, so Model.provider reports a fallback at once
    return Model(manifest, sessions, threads=threads, bulk=_cpu_tensor(manifest, placement, flavor, _cache))


def _cpu_tensor(
    manifest: Manifest, placement: Placement, forced: str | None, cache: dict[tuple[str, Placement], Sessions] | None
) -> Sessions | None:
    """The tensor flavor's CPU sessions, for large batches, when the manifest says it is faster there.

    The converter records ``cpu_min_rows`` (measured: benchmarks/NOTES.md, "Tensor flavor");
    margins are bit-identical between the flavors, so only speed differs. Not when a
    flavor was forced, and not on CUDA (which runs the tensor flavor for everything).
    """
    if placement.provider != "cpu" or forced is not None or placement.flavor == "tensor":
        return None
    if "tensor" not in manifest.flavors or manifest.flavors["tensor"].cpu_min_rows is None:
        return None
    cpu = Placement("cpu", "tensor", placement.ort_providers)
    key = (manifest.flavors["tensor"].sha256, cpu)
    if cache is not None and key in cache:
        return cache[key]
    sessions = Sessions(artifact_bytes(manifest, "tensor"), cpu)
    if cache is not None:
        cache[key] = sessions
    return sessions


def load_dir(
    path: str | Path, *, provider: str = "auto", flavor: str | None = None, threads: int | None = None
) -> dict[str, Model]:
    """Every artifact in a folder, by name; byte-identical artifacts share one set of sessions."""
    folder = Path(path)
    if not folder.is_dir():
        raise M7Error(f"{folder} is not a folder of artifacts")
    manifests = sorted(folder.glob("*.manifest.json"))
    if not manifests:
        raise M7Error(f"{folder} holds no *.manifest.json; convert models into it first (m7onnx convert)")
    cache: dict[tuple[str, Placement], Sessions] = {}
    models = {}
    for m in manifests:
        model = load(m, provider=provider, flavor=flavor, threads=threads, _cache=cache)
        models[model.name] = model
    return models
