"""Drift monitoring with the runtime alone (numpy + onnxruntime, also the oldest pair CI tests):
the bundled artifacts' reference profiles and model.drift() on every prediction path."""

from __future__ import annotations

import json

import numpy as np
import runtime_support as rs

import m7_runtime

REC = "xgb_recovery_model"


def rows_like_the_reference(model: m7_runtime.Model, n: int, seed: int) -> np.ndarray:
    """Rows drawn bin by bin from the reference profile itself: each feature's bins at their reference fractions."""
    rng = np.random.default_rng(seed)
    ref = model.manifest.reference
    cols = []
    for f in model.feature_names:
        h = ref.features[f]
        p = np.array([*h.fractions, h.missing])
        b = rng.choice(len(p), n, p=p / p.sum())
        edges = np.array([h.edges[0] - 1.0, *h.edges, h.edges[-1] + 1.0]) if h.edges else np.array([0.0, 1.0])
        lo, hi = edges[np.minimum(b, len(edges) - 2)], edges[np.minimum(b + 1, len(edges) - 1)]
        x = lo + (hi - lo) * rng.uniform(0, 0.999, n)
        cols.append(np.where(b == len(p) - 1, np.nan, x))
    return np.stack(cols, axis=1).astype(np.float32)


def test_bundled_artifacts_carry_profiles_and_drift_is_counted_on_every_path():
    model = m7_runtime.load(rs.ONNX / f"{REC}.manifest.json", provider="cpu")
    assert model.manifest.reference is not None and model.manifest.reference.rows == 20_000
    x = rows_like_the_reference(model, 3000, 1)
    for row in x[:1000]:
        model.predict_one(dict(zip(model.feature_names, row.tolist(), strict=True)))
    model.predict(x[1000:2000])
    model.score({f: x[2000:, i] for i, f in enumerate(model.feature_names)})
    report = model.drift(reset=True)
    assert report.rows == 3000
    assert all(v < 0.1 for v in report.features.values()), report.features
    shifted = x.copy()
    shifted[:, model.feature_names.index("rsi")] += 60
    model.predict(shifted)
    report = model.drift()
    assert report.levels["rsi"] == "drifted" and report.drifted() == ["rsi"]
    assert json.loads(json.dumps(report.to_json()))["features"]["rsi"] == report.features["rsi"]
