"""Property tests: for random feature dicts and arrays, predict_one == predict on one row == the pickle.

Hypothesis draws rows of every kind of value xgboost reads as a number (floats including NaN,
±inf, subnormals and values beyond float32; ints; bools; None; numpy scalars; exact split
thresholds), with keys missing and extra keys present, and compares the runtime with the
original pickle run through the model map's call site. ``derandomize=True`` keeps CI
reproducible; the example counts keep the whole file to a few seconds.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import m7_runtime
import market7_callsites as callsites
from conftest import MODELS, ONNX

#: values beyond float32 (1e39) become inf when cast, exactly as xgboost casts them
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")

DROP_INS = callsites.drop_in_pairs()
MODELS_ = {name: m7_runtime.load(ONNX / f"{name}.manifest.json", provider="cpu") for name in DROP_INS}
SETTINGS = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow], database=None
)


def _thresholds(model: m7_runtime.Model) -> list[float]:
    """Each feature's split range ends: values that sit exactly on a threshold."""
    return sorted({float(v) for r in model.manifest.split_ranges.values() for v in (r.min, r.max)})


def values(model: m7_runtime.Model) -> st.SearchStrategy[Any]:
    edges = _thresholds(model) or [0.0]
    return st.one_of(
        st.floats(min_value=-200, max_value=200),
        st.floats(allow_nan=True, allow_infinity=True),
        st.sampled_from(edges),
        st.sampled_from(edges).map(lambda v: float(np.nextafter(np.float32(v), np.float32(np.inf)))),
        st.integers(-1000, 100_000),
        st.booleans(),
        st.none(),
        st.floats(width=32, allow_nan=True).map(np.float32),
        st.integers(-(2**31), 2**31).map(np.int64),
        st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 5e-324, 1e39]),
    )


@st.composite
def rows(draw: st.DrawFn, name: str) -> dict[str, Any]:
    model = MODELS_[name]
    inputs = [f for f in model.feature_names if f not in model.policy.derived()]
    row = {f: draw(values(model)) for f in inputs}
    for f in draw(st.lists(st.sampled_from(inputs), max_size=3 if model.policy.on_missing == "zero" else 1)):
        if draw(st.integers(0, 9)) == 0 or model.policy.on_missing == "zero":
            row.pop(f, None)
    row |= draw(st.dictionaries(st.text(max_size=6), st.one_of(st.floats(), st.text(max_size=3)), max_size=2))
    if model.policy.one_hot:
        status = draw(st.sampled_from(["bullish", "bearish", "neutral", "nan", "", "ish", "BULL", "<absent>"]))
        row.pop("btc_status", None)
        if status != "<absent>":
            row["btc_status"] = status
    return row


def _pickle(name: str, row: dict[str, Any]) -> float | None:
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return DROP_INS[name][1](row)
    finally:
        logging.disable(logging.NOTSET)


def _same(ours: float | None, theirs: float | None) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return abs(ours - theirs) <= 1e-5 * max(1.0, abs(theirs))


def _as_matrix_row(model: m7_runtime.Model, row: dict[str, Any]) -> np.ndarray:
    """The row as the zero-fill caller sees it: absent -> 0.0, None -> NaN."""
    return np.array([[np.nan if f in row and row[f] is None else float(row.get(f, 0.0)) for f in model.feature_names]])


@pytest.mark.parametrize("name", DROP_INS)
def test_random_rows_agree_with_the_pickle(name: str):
    model = MODELS_[name]
    ours_fn, _ = DROP_INS[name]

    @SETTINGS
    @given(row=rows(name))
    def check(row: dict[str, Any]) -> None:
        theirs = _pickle(name, row)
        ours = ours_fn(row, model_dir=ONNX)
        assert _same(ours, theirs), (ours, theirs)
        if theirs is None:
            with pytest.raises(m7_runtime.M7Error):
                model.predict_one(row)
            return
        one = model.predict_one(row)
        assert one == ours
        table = {k: [v] for k, v in row.items()}
        assert np.float32(one) == model.score(table)[0]  # the batch applier of the same policy
        if not model.policy.one_hot:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # float32 overflow of 1e39 is intended
                batch = model.predict(_as_matrix_row(model, row))[0]
            assert np.float32(one) == np.float32(model.policy.clamp(batch))

    check()


@pytest.mark.parametrize("name", ["xgb_recovery_model", "xgb_spend_model", "safu_exit_model"])
def test_random_arrays_agree_with_the_pickle(name: str):
    import joblib

    pk = joblib.load(MODELS / f"{name}.pkl")
    model = MODELS_[name]
    k = len(model.feature_names)
    cell = st.one_of(
        st.floats(min_value=-100, max_value=1e4, width=32),
        st.sampled_from([np.nan, np.inf, -np.inf, 0.0]),
        st.sampled_from(_thresholds(model) or [0.0]),
    )

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(X=st.lists(st.lists(cell, min_size=k, max_size=k), min_size=1, max_size=20).map(np.array))
    def check(X: np.ndarray) -> None:
        X = X.astype(np.float32)
        theirs = pk.predict_proba(X)[:, 1] if hasattr(pk, "predict_proba") else pk.predict(X)
        ours = model.predict(X)
        assert np.all(np.abs(ours - theirs) <= 1e-5 * np.maximum(1.0, np.abs(theirs)))
        if not model.policy.one_hot:
            for row, expected in zip(X, ours, strict=True):
                features = {f: float(v) for f, v in zip(model.feature_names, row, strict=True)}
                assert np.float32(model.predict_one(features)) == expected

    check()
