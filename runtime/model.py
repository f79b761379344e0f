"""A loaded artifact: batch prediction, the single-row hot path, the caller policy, observers, live reload.

One onnxruntime session per artifact, created on first use with one intra-op thread:
onnxruntime then sums each row's trees in order starting from the base margin, exactly
as xgboost does, so predictions are bit-identical to xgboost's (a multi-threaded tree
ensemble splits the trees of a row across threads and reorders the float32 sums). Large
batches are split into row chunks or memory-bounded runs on a thread pool
(:mod:`m7_runtime.batches`). Sessions are thread-safe; models with byte-identical artifacts share
one session.

Everything a prediction reads lives in one immutable :class:`~m7_runtime.state.State`; a live reload
(:mod:`m7_runtime.reload`) builds and verifies a new one and replaces it in a single
assignment, and every prediction reads ``self._state`` once, so it sees the old model or
the new one, never a mix.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from . import reload
from .artifact import Manifest
from .batches import rows_per_run, run_batch
from .drift import DriftReport, LiveProfile, no_reference_error
from .errors import M7Error
from .fields import short_repr
from .inputs import column_view, matrix, n_rows
from .observe import Observer, Observers, RangeCounter
from .policy import InputPolicy
from .rows import RowRunner
from .state import Origin, SessionCache, State, load_state, verified_replacement

log = logging.getLogger("m7_runtime")


class Model:
    """One model. ``predict`` is the model; ``predict_one`` and ``score`` add its caller policy."""

    def __init__(
        self,
        state: State,
        *,
        threads: int | None = None,
        origin: Origin | None = None,
        reload_seconds: float | None = None,
    ) -> None:
        self._state = state
        self.threads = max(1, threads or os.cpu_count() or 1)
        self._origin = origin
        self._local = threading.local()  # this thread's RowRunner
        self.observers = Observers(len(state.manifest.features), state.manifest.n_outputs, state.name)
        self._range = RangeCounter(state.manifest.features, state.manifest.split_ranges, state.name)
        if self._range.tracks:
            self.observers.add(self._range)
        self._profile: LiveProfile | None = None
        self._watch_drift(state.manifest)
        self._signature: reload.Signature = ()
        self._bad_signature: reload.Signature | None = None
        self.reload_seconds = reload_seconds
        if reload_seconds:
            if origin is None:
                raise M7Error(f"{state.name}: live reload needs a model loaded from a manifest path")
            self._signature = self._files_signature(state)
            reload.WATCHER.watch(self)

    # ---- what the model is --------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        return self._state.manifest

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self._state.manifest.features

    @property
    def policy(self) -> InputPolicy:
        return self._state.policy

    @property
    def task(self) -> str:
        return self._state.manifest.task

    @property
    def provider(self) -> str:
        return self._state.sessions.actual_provider

    @property
    def flavor(self) -> str:
        return self._state.sessions.placement.flavor

    def __repr__(self) -> str:
        m = self.manifest
        return f"<m7_runtime.Model {m.name!r} {m.task} {self.flavor}@{self.provider} {len(m.features)} features>"

    def flavor_for(self, n_rows: int) -> str:
        """The flavor a batch of ``n_rows`` runs: on the CPU, large batches use a tensor graph when faster
        (``tensor_cpu`` when the artifact has one, else ``tensor``: :func:`~m7_runtime.state.bulk_flavor`)."""
        return self._state.batch_sessions(n_rows).placement.flavor

    def rows_per_run(self, provider: str) -> int:
        """Rows in one tensor-graph run on ``provider`` ("cpu" or "cuda"): :func:`m7_runtime.batches.rows_per_run`."""
        return rows_per_run(self._state, provider)

    # ---- batch -------------------------------------------------------------------
    def predict(self, X: Any) -> np.ndarray:
        """What the source model returns for each row: (n,) values/P(class 1), or (n, k) outputs.

        ``X``: a 2-D array in ``feature_names`` order, a pandas DataFrame, a pyarrow Table, or a
        mapping of column name -> 1-D array (reordered by name; extra columns ignored).
        """
        state = self._state
        x = matrix(X, state.manifest.features, state.name)
        y = self._run_batch(state, x)
        self._observe_batch(x, y)
        return y

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities as xgboost's sklearn ``predict_proba`` gives them: (n, 2), (n, k) or (n, labels)."""
        m = self._state.manifest
        if m.task == "binary" and m.source.link == "sigmoid":
            p = self.predict(X)
            return np.stack([np.float32(1) - p, p], axis=1)
        if (m.task, m.source.link) in (("multiclass", "softmax"), ("multilabel", "sigmoid")):
            return self.predict(X)  # class probabilities, or P(label j) per label as xgboost's multi-label
        raise M7Error(
            f"{m.name}: predict_proba needs a classifier that predicts probabilities; this {m.task} model's "
            f"output is {m.output.meaning!r} (objective {m.source.objective}); use predict"
        )

    def score(self, table: Any) -> np.ndarray:
        """Column-wise ``predict_one``: the caller policy applied to a table of named columns.

        Missing columns are zero-filled or rejected per the policy, one-hot columns are derived
        from their string input, and the output is clamped; row for row the same as
        ``predict_one``.
        """
        state = self._state
        columns = column_view(table)
        try:
            x = state.policy.columns(state.manifest.features, columns, n_rows(table))
        except M7Error:
            raise
        except Exception as exc:
            raise M7Error(
                f"{state.name}: cannot read the table ({type(exc).__name__}: {short_repr(str(exc))})"
            ) from exc
        y = state.policy.clamp(self._run_batch(state, x))
        self._observe_batch(x, y)
        return y

    def _observe_batch(self, x: np.ndarray, y: np.ndarray) -> None:
        if self.observers.batch_active and len(x):
            self.observers.deliver(x, y)

    def _run_batch(self, state: State, x: np.ndarray) -> np.ndarray:
        return run_batch(state, x, self.threads)

    # ---- single row --------------------------------------------------------------
    def predict_one(self, features: Mapping[str, Any]) -> float | np.ndarray:
        """One prediction from a mapping of feature name -> value, under the model's caller policy.

        "reject" models raise :class:`M7Error` naming every missing feature; "zero" models fill
        0.0. Extra keys are ignored; None means missing (NaN), as in xgboost.

        The bot's hot path, in three steps: read the mapping (:func:`~m7_runtime.rows.row_reader`),
        run this thread's bound row (:class:`~m7_runtime.rows.RowRunner`), post-process (clamp,
        queue the row for the observers: :meth:`Observers.push <m7_runtime.observe.Observers.push>`
        written out, as a call costs more than the append).
        """
        state = self._state
        if features.__class__ is not dict and not isinstance(features, Mapping):
            raise M7Error(
                f"{state.name}: predict_one takes a mapping of feature name -> value, got {type(features).__name__}"
            )
        try:
            vals = state.read(features)
        except M7Error:
            raise
        except Exception as exc:  # a mapping or a value that breaks while being read
            raise M7Error(f"{state.name}: cannot read the features ({type(exc).__name__}: {exc})") from exc
        runner = getattr(self._local, "runner", None)
        if runner is None or runner.owner is not state:
            runner = self._local.runner = self._runner(state)
        try:
            runner(vals)
        except M7Error:
            raise
        except Exception as exc:  # onnxruntime's own exception types
            raise M7Error(f"{state.name}: onnxruntime failed on an input of shape {runner.buf.shape}: {exc}") from exc
        if state.multi:
            return self._post_vector(state, runner)
        # the post-processing of a single output, inline: each call here costs the hot path
        y = runner.out.item()
        # np.clip's result for a scalar, without its ~3 µs: NaN stays NaN, -0.0 -> 0.0 at 0
        lo = state.clamp_min
        if lo is not None and y <= lo:
            y = lo
        hi = state.clamp_max
        if hi is not None and y >= hi:
            y = hi
        observers = self.observers
        if observers.active:  # Observers.push, inline
            pending = observers.pending
            pending.append((runner.view.tobytes(), y))
            # a per-row debug line (RangeCounter) needs the row observed now
            if len(pending) >= observers.batch_rows or log.isEnabledFor(logging.DEBUG):
                observers.flush()
        return y

    def _post_vector(self, state: State, runner: RowRunner) -> np.ndarray:
        """A multi-output row as returned (clamped, a copy of the buffer), queued for the observers."""
        y = state.policy.clamp(runner.out[0].copy())
        if self.observers.active:
            self.observers.push(runner.view.tobytes(), y.astype(np.float32).tobytes())
        return y

    def _runner(self, state: State) -> RowRunner:
        m = state.manifest
        return RowRunner(
            state.sessions.get(), state.sessions.placement, state.names, m.features, m.n_outputs, owner=state
        )

    # ---- observers ---------------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        """Attach an :class:`~m7_runtime.observe.Observer`: it receives every row this model predicts on."""
        self.observers.add(observer)

    def remove_observer(self, observer: Observer) -> None:
        self.observers.remove(observer)

    def flush(self) -> None:
        """Deliver the rows ``predict_one`` queued to every observer now (reports read after this are exact)."""
        self.observers.flush()

    @property
    def out_of_range(self) -> dict[str, int]:
        """How many single-row inputs fell far outside the split thresholds, per feature
        (:func:`~m7_runtime.observe.range_bounds`): a copy, exact when read."""
        self.observers.flush()
        return self._range.counts()

    @out_of_range.setter
    def out_of_range(self, value: dict[str, int]) -> None:
        """Replace the counts (e.g. ``model.out_of_range = {}`` to start a new period)."""
        self.observers.flush()
        self._range.reset(value)

    # ---- drift -------------------------------------------------------------------
    def _watch_drift(self, manifest: Manifest) -> None:
        """Profile live traffic against the artifact's reference profile, when it has one (m7_runtime.drift)."""
        if manifest.reference is not None and self._profile is None:
            self._profile = LiveProfile(manifest.reference, manifest.features, name=manifest.name)
            self.observers.add(self._profile)

    def drift(self, reset: bool = False) -> DriftReport:
        """Feature and prediction drift of the traffic since the window started, against the reference profile.

        Every prediction path feeds the window (``predict_one``, ``predict``, ``score``, the
        drop-ins). ``reset=True`` returns the report and starts a new window. The report's
        ``features`` map each feature to its PSI (below 0.1 stable, 0.1 to 0.25 watch, above
        0.25 drifted), ``prediction`` is the output's PSI, ``out_of_range`` the counts of
        :attr:`out_of_range`. See :class:`~m7_runtime.drift.DriftReport`.
        """
        manifest = self.manifest
        if self._profile is None or manifest.reference is None:
            raise no_reference_error(manifest.name, manifest.path)
        self.observers.flush()
        return self._profile.report(reset=reset, out_of_range=self._range.counts())

    # ---- live reload -------------------------------------------------------------
    def _files_signature(self, state: State) -> reload.Signature:
        assert self._origin is not None and state.manifest.path is not None
        folder = state.manifest.path.parent
        return reload.signature([state.manifest.path, *(folder / e.file for e in state.manifest.flavors.values())])

    def reload_if_changed(self) -> bool:
        """Swap in the artifact on disk if its files changed and it verifies; True when swapped.

        Called by the reload thread every ``reload_seconds``; safe to call any time.
        """
        if self._origin is None:
            return False
        old = self._state
        seen = self._files_signature(old)
        if seen == self._signature or seen == self._bad_signature:
            return False
        try:
            new = verified_replacement(old, self._origin)
        except M7Error as exc:
            self._bad_signature = seen
            log.error("%s: not reloading the changed artifact (%s); still serving the last good model", old.name, exc)
            return False
        self.observers.flush()  # rows predicted by the old model are delivered before the swap
        self._range.rebind(new.manifest.split_ranges)
        for observer in self.observers:
            rebind = getattr(observer, "rebind", None)
            if rebind is not None and observer is not self._range:
                rebind(new.manifest)
        self._watch_drift(new.manifest)
        self._state = new
        self._signature, self._bad_signature = seen, None
        log.info("%s: reloaded from %s", new.name, new.manifest.path)
        return True

    def close(self) -> None:
        """Stop watching the files (live reload)."""
        reload.WATCHER.unwatch(self)


def load(
    path: str | Path,
    *,
    provider: str = "auto",
    flavor: str | None = None,
    threads: int | None = None,
    options: ort.SessionOptions | None = None,
    reload_seconds: float | None = None,
    _cache: SessionCache | None = None,
) -> Model:
    """Load one artifact (a manifest, or an ONNX file beside one) after checking its hashes and contract.

    ``provider``: "cpu", "cuda", "auto" (CUDA when onnxruntime has it), or onnxruntime's own
    names ("CUDAExecutionProvider"...). ``options``: your own ``onnxruntime.SessionOptions``
    (see :func:`m7_runtime.sessions.session_options`). ``reload_seconds``: watch the files
    and swap in a verified replacement (:mod:`m7_runtime.reload`).
    """
    origin = Origin(Path(path), provider, flavor, options)
    return Model(load_state(origin, _cache), threads=threads, origin=origin, reload_seconds=reload_seconds)


def load_dir(
    path: str | Path,
    *,
    provider: str = "auto",
    flavor: str | None = None,
    threads: int | None = None,
    options: ort.SessionOptions | None = None,
    reload_seconds: float | None = None,
) -> dict[str, Model]:
    """Every artifact in a folder, by name; byte-identical artifacts share one set of sessions."""
    folder = Path(path)
    if not folder.is_dir():
        raise M7Error(f"{folder} is not a folder of artifacts")
    manifests = sorted(folder.glob("*.manifest.json"))
    if not manifests:
        raise M7Error(f"{folder} holds no *.manifest.json; convert models into it first (m7onnx convert)")
    cache: SessionCache = {}
    models = {}
    for m in manifests:
        model = load(
            m,
            provider=provider,
            flavor=flavor,
            threads=threads,
            options=options,
            reload_seconds=reload_seconds,
            _cache=cache,
        )
        models[model.name] = model
    return models
