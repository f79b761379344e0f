"""Parity with the original pickles, without xgboost: recorded predictions on hard rows.

parity_reference.npz holds, per bundled model, ~280 rows (random, 30% NaN, values exactly on
split thresholds and one float32 ulp either side, ±inf) and what the pickle predicted for
them (tests/test_bad_inputs.py re-derives it). Here the runtime must match on whatever
onnxruntime is installed, which is how CI checks the oldest supported one.
"""

from __future__ import annotations

import numpy as np
import pytest
import runtime_support as rs


@pytest.fixture(scope="module")
def recorded():
    return np.load(rs.PARITY_REFERENCE)


@pytest.mark.parametrize("name", sorted(rs.load_all()))
def test_predict_matches_the_pickle_on_hard_rows(name: str, recorded):
    model = rs.load_all()[name]
    X, y = recorded[f"X_{name}"], recorded[f"y_{name}"].astype(np.float64)
    got = model.predict(X).astype(np.float64)
    bad = np.flatnonzero(np.abs(got - y) > 1e-5 * np.maximum(1.0, np.abs(y)))
    assert bad.size == 0, [(int(i), got[i], y[i]) for i in bad[:5]]
    if model.policy.one_hot:
        return  # (its single-row input is btc_status, not the one-hot columns these rows hold)
    for i in range(0, len(X), 7):  # the single-row path: None for NaN, the policy's clamp
        row = {f: (None if np.isnan(v) else float(v)) for f, v in zip(model.feature_names, X[i], strict=True)}
        assert np.float32(model.predict_one(row)) == np.float32(model.policy.clamp(got[i])), i
