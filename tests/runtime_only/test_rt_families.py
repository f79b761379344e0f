"""Every model family on whatever onnxruntime is installed (CI: also the oldest claimed), runtime only.

One artifact per family the converter learnt in issue 13 (categorical splits, vector leaves
and several targets, quantiles, multi-label, survival, ranking, gblinear, a ColumnTransformer
pipeline), with what the source model predicted on the converter's probe rows, written by
tests/fixtures/make_families.py. Both flavors must match those predictions, agree with each
other bit for bit, and give the output shape and target names the manifest declares.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import m7_runtime

FAMILIES = Path(__file__).resolve().parent / "families"
CASES = sorted(p.name for p in FAMILIES.iterdir() if p.is_dir())


def test_every_family_is_recorded():
    assert len(CASES) >= 9, CASES


@pytest.mark.parametrize("case", CASES)
def test_both_flavors_match_the_source_model(case: str):
    folder = FAMILIES / case
    recorded = np.load(folder / "reference.npz")
    X, y = recorded["X"], recorded["y"].astype(np.float64)
    outputs = {}
    for flavor in ("tree", "tensor"):
        model = m7_runtime.load(folder / f"{case}.manifest.json", provider="cpu", flavor=flavor)
        got = model.predict(X)
        assert got.shape == y.shape, (flavor, got.shape, y.shape)
        with np.errstate(invalid="ignore"):
            ok = (got == y) | (np.isnan(got) & np.isnan(y)) | (np.abs(got - y) <= 1e-5 * np.maximum(1.0, np.abs(y)))
        bad = np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))
        assert bad.size == 0, (flavor, [(int(i), got[i].tolist(), y[i].tolist()) for i in bad[:3]])
        outputs[flavor] = got
        targets = model.manifest.output.targets
        assert model.manifest.n_outputs == (1 if y.ndim == 1 else y.shape[1])
        assert targets is None or len(targets) == y.shape[1]
    np.testing.assert_array_equal(outputs["tree"], outputs["tensor"])
    one = m7_runtime.load(folder / f"{case}.manifest.json", provider="cpu")
    row = dict(zip(one.feature_names, X[0].tolist(), strict=True))
    if one.policy.on_missing == "reject":  # predict_one on a complete row equals predict on it
        np.testing.assert_array_equal(np.asarray(one.predict_one(row), np.float32), outputs["tree"][0])


def test_a_multilabel_classifier_gives_probabilities_per_label():
    folder = FAMILIES / "multilabel"
    model = m7_runtime.load(folder / "multilabel.manifest.json", provider="cpu")
    X = np.load(folder / "reference.npz")["X"][:50]
    assert model.task == "multilabel" and model.manifest.output.targets == ("label_0", "label_1", "label_2")
    np.testing.assert_array_equal(model.predict_proba(X), model.predict(X))
