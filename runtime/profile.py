"""The reference profile in a manifest: the distribution each input and the output had in reference data.

``m7onnx convert ... --reference DATA`` bins each feature and the model's output into
quantile bins (missing values apart); monitoring compares live traffic with these bins
(population stability index). Part of the manifest schema (:mod:`m7_runtime.artifact`)
and of the hashed contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fields import Fields, enc_float

MAX_BINS = 1 << 12


@dataclass(frozen=True)
class Histogram:
    """A distribution as bins: ``edges`` are ascending interior cut points, so ``len(edges) + 1``
    bins ``(-inf, e0), [e0, e1), ..., [e_last, inf)`` hold ``fractions``; ``missing`` is the
    fraction of missing values, counted apart (the fractions and ``missing`` sum to 1)."""

    edges: tuple[float, ...]
    fractions: tuple[float, ...]
    missing: float = 0.0


@dataclass(frozen=True)
class ReferenceProfile:
    """The reference distribution of each input feature and of the output, from ``rows`` rows."""

    rows: int
    features: Mapping[str, Histogram]
    prediction: Histogram


def histogram_from_json(f: Fields) -> Histogram:
    h = Histogram(
        edges=f.floats("edges", max_len=MAX_BINS),
        fractions=f.floats("fractions", max_len=MAX_BINS + 1),
        missing=f.float("missing", 0.0),
    )
    f.done()
    if any(b <= a for a, b in zip(h.edges, h.edges[1:], strict=False)):
        raise f.error("edges", "must be strictly ascending")
    if len(h.fractions) != len(h.edges) + 1:
        raise f.error("fractions", f"must hold len(edges) + 1 = {len(h.edges) + 1} bins, got {len(h.fractions)}")
    if any(not 0.0 <= p <= 1.0 for p in (*h.fractions, h.missing)) or abs(sum(h.fractions) + h.missing - 1.0) > 1e-6:
        raise f.error("fractions", "must be fractions in [0, 1] that sum to 1 together with 'missing'")
    return h


def profile_from_json(f: Fields, features: tuple[str, ...]) -> ReferenceProfile:
    profile = ReferenceProfile(
        rows=f.int("rows", lo=1),
        features=f.mapping("features", histogram_from_json),
        prediction=histogram_from_json(f.obj("prediction")),
    )
    f.done()
    if set(profile.features) != set(features):
        raise f.error("features", "must profile exactly the model's features")
    return profile


def histogram_to_json(h: Histogram) -> dict[str, Any]:
    return {"edges": [enc_float(e) for e in h.edges], "fractions": list(h.fractions), "missing": h.missing}


def profile_to_json(r: ReferenceProfile) -> dict[str, Any]:
    return {
        "rows": r.rows,
        "features": {k: histogram_to_json(h) for k, h in r.features.items()},
        "prediction": histogram_to_json(r.prediction),
    }
