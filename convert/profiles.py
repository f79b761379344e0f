"""Which reference profile a conversion stores (``--reference DATA``), and building it.

A profile is what drift monitoring compares live traffic with (:mod:`m7_runtime.drift`):
quantile bins of each feature and of the model's output on reference data, typically the
training data. It is part of the manifest's hashed contract, so it is decided before the
graphs are stamped, in this order (and ``convert`` says which it used):

1. ``--reference DATA`` (``reference=`` in Python);
2. the ``reference`` file of the model's spec entry (``models/spec.toml``: the six bundled
   models are profiled on their stand-ins' training snapshots, so re-conversion from a
   fresh clone gives the same bytes);
3. the profile of the artifact of the same name already in the output folder, if it has
   the same features: re-conversion keeps it (say ``--reference`` to rebuild it; after a
   retrain the kept prediction profile is the old model's);
4. none: the artifact converts, and ``model.drift()`` says how to add one.

Reference data is read like ``m7onnx score`` input (Parquet, CSV, JSONL) but strictly:
every feature must be a column of numbers (:func:`m7_runtime.monitor_files.reference_rows`).
The outputs are the emitted graph's, on the same float32 rows, after the caller's clamp:
what the runtime's live profile will see.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from m7_runtime.artifact import MANIFEST_SUFFIX, Manifest
from m7_runtime.errors import M7Error
from m7_runtime.policy import InputPolicy
from m7_runtime.profile import ReferenceProfile, build_profile

from .errors import ConvertError
from .spec import ModelSpec
from .write import relpath


def build_from_file(
    data: Path,
    features: tuple[str, ...],
    policy: InputPolicy,
    predict: Callable[[np.ndarray], np.ndarray],
    prediction_of: str = "value",
) -> ReferenceProfile:
    from m7_runtime.monitor_files import reference_rows

    try:
        rows = reference_rows(data, features, policy)
    except M7Error as exc:
        raise ConvertError(str(exc)) from None
    return build_profile(rows, policy.clamp(predict(rows)), features, of=prediction_of)


def choose(
    *,
    reference: Path | None,
    spec: ModelSpec | None,
    out_dir: Path,
    name: str,
    features: tuple[str, ...],
    policy: InputPolicy,
    predict: Callable[[np.ndarray], np.ndarray],
    prediction_of: str = "value",
) -> tuple[ReferenceProfile | None, str]:
    """The profile to store and a line saying where it came from (module docstring)."""
    data = reference if reference is not None else (spec.reference if spec is not None else None)
    if data is not None:
        profile = build_from_file(data, features, policy, predict, prediction_of)
        where = "--reference" if reference is not None else "named by its spec entry"
        return profile, f"reference profile from {relpath(data, Path.cwd())} ({profile.rows:,} rows, {where})"
    existing = out_dir / f"{name}{MANIFEST_SUFFIX}"
    if existing.is_file():
        try:
            old = Manifest.read(existing)
        except M7Error:
            old = None  # spec.resolve() has already said what is wrong with it, if it was used
        if old is not None and old.reference is not None:
            if old.features == features:
                return old.reference, f"reference profile kept from {existing.name} (--reference DATA rebuilds it)"
            return None, f"no reference profile: {existing.name} profiles other features (give --reference DATA)"
    return None, "no reference profile (give --reference DATA to monitor drift)"
