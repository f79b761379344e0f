"""One artifact read, verified and placed: the immutable :class:`State` every prediction reads.

:mod:`m7_runtime.model` holds a model's *behaviour* (batches, the single-row hot path,
observers, reload); this module holds what it runs: the manifest, the sessions of the
placed flavor and of the CPU's large-batch graph, the row reader, and the few policy facts
the hot path reads on every call, resolved once here so ``predict_one`` does not walk
properties for them. A live reload builds a new State with :func:`verified_replacement`
and the model swaps it in one assignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from .artifact import Manifest
from .errors import M7Error
from .integrity import artifact_bytes
from .policy import InputPolicy
from .providers import Placement, place
from .rows import Reader, row_reader
from .sessions import Sessions

#: the tensor graphs: "tensor" (standard operators, CUDA too), "tensor_cpu" (CPU only, optional)
TENSOR_FLAVORS = ("tensor", "tensor_cpu")
#: sessions shared by byte-identical artifacts within one load_dir: (sha256, placement) -> sessions
SessionCache = dict[tuple[str, Placement], Sessions]


@dataclass(frozen=True, eq=False)
class State:
    """One verified artifact, ready to run: what every prediction reads (replaced whole on reload)."""

    manifest: Manifest
    sessions: Sessions  # the placement's flavor: single rows and small batches
    bulk: Sessions | None  # a tensor graph on the CPU (bulk_flavor), for batches of at least bulk_min_rows
    read: Reader  # predict_one's reader of a feature mapping under the policy
    # resolved from the manifest once, for the hot path
    multi: bool  # more than one output per row
    clamp_min: float | None
    clamp_max: float | None
    bulk_min_rows: int | None  # from how many rows ``bulk`` runs a batch (None: never)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def policy(self) -> InputPolicy:
        return self.manifest.policy

    @property
    def names(self) -> tuple[str, str]:
        return self.manifest.input_name, self.manifest.output_name

    def batch_sessions(self, n_rows: int) -> Sessions:
        """The sessions a batch of ``n_rows`` runs on: the CPU's tensor graph from ``bulk_min_rows``."""
        if self.bulk is not None and self.bulk_min_rows is not None and n_rows >= self.bulk_min_rows:
            return self.bulk
        return self.sessions


@dataclass(frozen=True)
class Origin:
    """How a model was loaded, so a reload loads its replacement the same way."""

    path: Path
    provider: str
    flavor: str | None
    options: ort.SessionOptions | None


def run(state: State, sess: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """One onnxruntime run of a float32 batch; its failures become an M7Error naming the model."""
    try:
        return sess.run([state.manifest.output_name], {state.manifest.input_name: x})[0]
    except Exception as exc:  # onnxruntime's own exception types
        raise M7Error(f"{state.name}: onnxruntime failed on an input of shape {x.shape}: {exc}") from exc


def load_state(origin: Origin, cache: SessionCache | None) -> State:
    """Read, verify and place one artifact (sessions are created on first use unless on CUDA)."""
    manifest = Manifest.read(origin.path)
    placement = place(origin.provider, flavors=tuple(manifest.flavors), flavor=origin.flavor)
    sessions = _sessions(manifest, placement, cache, origin.options)
    if placement.provider == "cuda":
        sessions.get()  # create now, so Model.provider reports a fallback at once
    bulk = _cpu_tensor(manifest, placement, origin, cache)
    policy = manifest.policy
    return State(
        manifest=manifest,
        sessions=sessions,
        bulk=bulk,
        read=row_reader(manifest.name, manifest.features, policy),
        multi=manifest.n_outputs > 1,
        clamp_min=policy.clamp_min,
        clamp_max=policy.clamp_max,
        bulk_min_rows=None if bulk is None else manifest.flavors[bulk.placement.flavor].cpu_min_rows,
    )


def verified_replacement(old: State, origin: Origin) -> State:
    """The artifact now on disk as a new State, verified in full (schema, hashes, contract, probe run)."""
    new = load_state(origin, cache=None)
    before, after = old.manifest, new.manifest
    if after.features != before.features or after.n_outputs != before.n_outputs:
        raise M7Error(
            f"the replacement has other features or outputs ({list(after.features)}, {after.n_outputs} output(s)) "
            f"than the model being served ({list(before.features)}, {before.n_outputs}); restart to adopt it"
        )
    probe = np.zeros((1, len(after.features)), dtype=np.float32)
    for sessions in (new.sessions, new.bulk):
        if sessions is not None:
            out = run(new, sessions.get(), probe)
            expected = (1, after.n_outputs) if after.n_outputs > 1 else (1,)
            if out.shape != expected or out.dtype != np.float32:
                raise M7Error(f"its {sessions.placement.flavor} graph returns {out.dtype} {out.shape}, not {expected}")
    return new


def _sessions(
    manifest: Manifest, placement: Placement, cache: SessionCache | None, options: ort.SessionOptions | None
) -> Sessions:
    """The flavor's sessions, shared through ``cache`` by byte-identical artifacts (each manifest still verified)."""
    data = artifact_bytes(manifest, placement.flavor)
    key = (manifest.flavors[placement.flavor].sha256, placement)
    if cache is not None and key in cache:
        return cache[key]
    sessions = Sessions(data, placement, options)
    if cache is not None:
        cache[key] = sessions
    return sessions


def bulk_flavor(manifest: Manifest) -> str | None:
    """The graph that runs large CPU batches: ``tensor_cpu`` when present, else ``tensor``, when the
    converter recorded from how many rows it beats the tree flavor (``cpu_min_rows``); else None."""
    for flavor in ("tensor_cpu", "tensor"):
        entry = manifest.flavors.get(flavor)
        if entry is not None and entry.cpu_min_rows is not None:
            return flavor
    return None


def _cpu_tensor(
    manifest: Manifest, placement: Placement, origin: Origin, cache: SessionCache | None
) -> Sessions | None:
    """The CPU sessions of :func:`bulk_flavor`, for large batches.

    The converter records ``cpu_min_rows`` per tensor graph (measured, or inherited from a
    measurement: ``m7_convert.tune``); margins are bit-identical between the flavors, so
    only speed differs. Not when a flavor was forced, and not on CUDA (which runs the
    ``tensor`` graph for everything: ``tensor_cpu``'s ``CumSum`` has no fast CUDA kernel).
    """
    if placement.provider != "cpu" or origin.flavor is not None or placement.flavor in TENSOR_FLAVORS:
        return None
    flavor = bulk_flavor(manifest)
    if flavor is None:
        return None
    return _sessions(manifest, Placement("cpu", flavor, placement.ort_providers), cache, origin.options)
