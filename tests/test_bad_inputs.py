"""The bad-input matrix against the original pickles: what xgboost does decides what we must do.

The matrix itself (tests/runtime_only/runtime_support.py) and the checks of our runtime
against it (tests/runtime_only/test_rt_inputs.py) need no xgboost, so they also run against
the oldest onnxruntime. Here, with xgboost, the pickle's answers are recomputed through the
model map's call sites and must equal the recorded ``reference.json``; and every batch case
is given to the pickle's ``predict_proba``/``predict`` to check that it errors exactly where
we raise, apart from the documented deviations.

It also checks ``parity_reference.npz``: rows (random, NaN, split thresholds ±1 ulp, ±inf) and
the pickles' predictions on them, which the runtime-only suite compares with onnxruntime.

Run ``python tests/test_bad_inputs.py`` to rewrite both files after retraining the models.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "runtime_only"))  # shared with the runtime-only tests

import runtime_support as rs

import m7_runtime
import market7_callsites as callsites
from conftest import MODELS
from m7_runtime import M7Error

CALLSITES = {
    "recovery": callsites.predict_recovery_odds,
    "confidence": callsites.predict_confidence_score,
    "spend": callsites.predict_spend_volume,
    "dca_spend": lambda f: callsites.predict_spend_volume(f, use_dca_model=True),
    "safu": callsites.predict_safu_exit,
    "legacy": callsites.predict_legacy,
}


def _pickle_answer(which: str, features: Any) -> float | None:
    """The map's call site on the original pickle; a crash counts as "no prediction" (None)."""
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = CALLSITES[which](features)
    except Exception:
        out = None
    finally:
        logging.disable(logging.NOTSET)
    return None if out is None else float(out)


def compute_reference() -> dict[str, dict[str, float | None]]:
    table: dict[str, dict[str, float | None]] = {}
    for which in rs.DROP_INS:
        row = {f"value:{c}": _pickle_answer(which, rs.value_case(which, c)) for c in rs.VALUES}
        row |= {f"structure:{c}": _pickle_answer(which, make(which)) for c, make in rs.STRUCTURE.items()}
        table[which] = row
    return table


def test_recorded_reference_is_what_the_pickles_answer_today():
    recorded, fresh = rs.reference(), compute_reference()
    assert recorded.keys() == fresh.keys()
    stale = [
        (which, case, recorded[which].get(case), fresh[which][case])
        for which in fresh
        for case in fresh[which]
        if not rs.same(recorded[which].get(case, "absent"), fresh[which][case])  # type: ignore[arg-type]
    ]
    assert not stale, f"reference.json is stale, rerun `python tests/test_bad_inputs.py`: {stale[:5]}"


def test_reference_covers_both_outcomes():
    """Guard against a matrix that silently lost its teeth: both predictions and refusals occur."""
    ref = rs.reference()
    values = [v for row in ref.values() for v in row.values()]
    assert sum(v is None for v in values) >= 40 and sum(v is not None for v in values) >= 100
    assert ref["recovery"]["value:numeric_string"] is None and ref["recovery"]["value:nan"] is not None
    assert ref["recovery"]["structure:missing_target"] is None and ref["spend"]["structure:missing_target"] is not None


@pytest.mark.parametrize("which", rs.DROP_INS)
def test_a_pandas_series_row_is_a_mapping_as_for_the_map(which: str):
    """``for _, row in df.iterrows(): predict(row)``: the map's callers predict on a Series, so do we."""
    pd = pytest.importorskip("pandas")
    _, ours = rs.DROP_INS[which]
    series = pd.Series(rs.snapshot_row())
    expected = _pickle_answer(which, series)
    assert expected is not None
    assert rs.same(ours(series, model_dir=rs.ONNX), expected)
    frame = pd.DataFrame([rs.snapshot_row()])  # a whole frame is not a row: both sides give nothing
    assert ours(frame, model_dir=rs.ONNX) is None and _pickle_answer(which, frame) is None


#: batch cases where we deliberately differ from xgboost (README, "Bad input")
BATCH_DEVIATIONS = {
    "mapping_of_columns": "columns are matched by name (xgboost takes no dict)",
    "mapping_reordered_with_extra": "columns are matched by name (xgboost takes no dict)",
    "object_numeric_string": "strings are refused even in object arrays (numpy would parse '2.5')",
}
#: xgboost 3.2 reads a big-endian array's bytes as if they were native: silently wrong numbers.
#: We convert, so we predict what xgboost predicts for the same values in native order.
XGBOOST_MISREADS = {"big_endian"}


@pytest.fixture(scope="module")
def pickles() -> dict[str, Any]:
    import joblib

    return {name: joblib.load(MODELS / f"{name}.pkl") for name in ("xgb_recovery_model", "xgb_spend_model")}


@pytest.mark.parametrize("name", ["xgb_recovery_model", "xgb_spend_model"])
def test_batch_cases_fail_where_xgboost_fails(name: str, pickles):
    model = m7_runtime.load(rs.ONNX / f"{name}.manifest.json", provider="cpu")
    pk = pickles[name]
    source = (lambda X: pk.predict_proba(X)[:, 1]) if hasattr(pk, "predict_proba") else pk.predict
    disagree = []
    for case, (given, meaning) in rs.batch_cases(model.feature_names).items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                theirs: np.ndarray | None = np.asarray(source(given), dtype=np.float64)
            except Exception:
                theirs = None
        if case in BATCH_DEVIATIONS:
            assert (theirs is None) != (meaning is None), f"{case} is no longer a deviation"
            continue
        if case in XGBOOST_MISREADS:
            native = source(np.asarray(given, dtype=np.float64))
            np.testing.assert_allclose(model.predict(given), native, rtol=1e-5, err_msg=case)
            assert not np.allclose(theirs, native), f"xgboost now reads {case} correctly: drop it from XGBOOST_MISREADS"
            continue
        if (theirs is None) != (meaning is None):
            disagree.append((case, "xgboost " + ("raises" if theirs is None else "predicts")))
        elif theirs is not None and len(theirs):
            ok = np.isclose(model.predict(given), theirs, rtol=1e-5, atol=1e-5, equal_nan=True)
            if not ok.all():
                disagree.append((case, "values"))
    assert not disagree, disagree


def test_dataframe_inputs(pickles):
    pd = pytest.importorskip("pandas")
    model = m7_runtime.load(rs.ONNX / "xgb_recovery_model.manifest.json", provider="cpu")
    X = rs.base_matrix(model.feature_names)
    df = pd.DataFrame(X, columns=list(model.feature_names))
    expected = pickles["xgb_recovery_model"].predict_proba(df)[:, 1]
    np.testing.assert_allclose(model.predict(df), expected, rtol=1e-5)
    nullable = df.astype("Float64")
    nullable.iloc[0, 2] = pd.NA
    np.testing.assert_allclose(
        model.predict(nullable), pickles["xgb_recovery_model"].predict_proba(nullable)[:, 1], rtol=1e-5
    )
    with pytest.raises(M7Error, match=r"lacks column\(s\) \['rsi'\]"):
        model.predict(df.drop(columns=["rsi"]))
    with pytest.raises(ValueError, match="feature_names mismatch"):
        pickles["xgb_recovery_model"].predict_proba(df.drop(columns=["rsi"]))
    with pytest.raises(M7Error, match="must be a number"):
        model.predict(df.assign(rsi="high"))
    np.testing.assert_array_equal(model.predict(df[df.columns[::-1]].assign(extra=1.0)), model.predict(df))
    assert model.predict(df.iloc[:0]).shape == (0,)


def compute_parity_rows(name: str, seed: int) -> np.ndarray:
    """Rows for the runtime-only parity check: random, with NaN, on every kind of split threshold ±1 ulp, ±inf."""
    from m7_convert import load_source
    from m7_convert.booster_json import from_booster_json

    model = m7_runtime.load(rs.ONNX / f"{name}.manifest.json", provider="cpu")
    source = load_source(MODELS / f"{name}.pkl")
    forest = from_booster_json(source.document, missing=source.missing, iteration_range=source.iteration_range)
    k = len(model.feature_names)
    thresholds: list[list[float]] = [[] for _ in range(k)]
    for tree in forest.trees:
        for f, t in zip(tree.feature[~tree.is_leaf], tree.threshold[~tree.is_leaf], strict=True):
            thresholds[int(f)].append(float(t))
    rng = np.random.default_rng(seed)
    base = np.nan_to_num(rs.base_matrix(model.feature_names)[0], nan=1.0)
    random = (base * rng.lognormal(0, 0.6, (100, k))).astype(np.float32)
    nan = random[:50].copy()
    nan[rng.random(nan.shape) < 0.3] = np.nan
    edge = np.empty((120, k), np.float32)
    for j in range(k):
        picks = rng.choice(np.array(thresholds[j] or [base[j]], np.float32), 120)
        away = np.nextafter(picks, np.where(rng.random(120) < 0.5, -np.inf, np.inf).astype(np.float32))
        edge[:, j] = np.where(np.arange(120) % 3 == 0, picks, away)  # on the threshold, or one ulp either side
    inf = random[:10].copy()
    inf[rng.random(inf.shape) < 0.3] = np.inf
    inf[rng.random(inf.shape) < 0.2] = -np.inf
    return np.concatenate([random, nan, edge, inf])


def compute_parity_reference() -> dict[str, np.ndarray]:
    import joblib

    out = {}
    for k, name in enumerate(sorted(m7_runtime.load_dir(rs.ONNX, provider="cpu"))):
        X = compute_parity_rows(name, seed=k)
        pk = joblib.load(MODELS / f"{name}.pkl")
        out[f"X_{name}"] = X
        out[f"y_{name}"] = (pk.predict_proba(X)[:, 1] if hasattr(pk, "predict_proba") else pk.predict(X)).astype(
            np.float32
        )
    return out


def test_recorded_parity_reference_is_what_the_pickles_predict():
    import joblib

    recorded = np.load(rs.PARITY_REFERENCE)
    names = sorted(k.removeprefix("y_") for k in recorded.files if k.startswith("y_"))
    assert len(names) == 6
    for name in names:
        pk = joblib.load(MODELS / f"{name}.pkl")
        X = recorded[f"X_{name}"]
        assert len(X) >= 250 and np.isnan(X).any() and np.isinf(X).any()
        fresh = pk.predict_proba(X)[:, 1] if hasattr(pk, "predict_proba") else pk.predict(X)
        np.testing.assert_array_equal(recorded[f"y_{name}"], fresh.astype(np.float32), err_msg=name)


if __name__ == "__main__":
    rs.REFERENCE.write_text(json.dumps(compute_reference(), indent=1, sort_keys=True, allow_nan=True) + "\n")
    np.savez_compressed(rs.PARITY_REFERENCE, **compute_parity_reference())
    print(f"wrote {rs.REFERENCE} and {rs.PARITY_REFERENCE}")
