"""Categorical features: every value goes where xgboost sends it, and the README's recipe for codes holds.

The parity gate already probes each category code and its neighbours in both flavors; these
tests pin the cases one by one (codes in and out of a split's set, unseen, negative,
non-integer, too large, ±inf, NaN and the sentinel) against xgboost's own prediction, and
check that feeding codes made from a DataFrame's values the README's way reproduces what
xgboost predicts for the DataFrame itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import m7_runtime
from m7_convert import convert

CATEGORIES = ["bear", "bull", "chop", "crab", "moon", "rekt"]
#: values for the categorical column: codes in and out of sets, unseen (6, 7, 40), non-integer,
#: negative, -0.0, the last valid code and the first invalid one, infinities, missing
VALUES = [0, 1, 2, 3, 4, 5, 6, 7, 40, 2.5, 4.999, 0.5, -0.0, -0.5, -1, -7, 2**24 - 1, 2**24, 1e30]
VALUES += [np.inf, -np.inf, np.nan, -999.0]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"rsi": rng.normal(50, 15, n), "regime": rng.choice(CATEGORIES, n)})
    df.loc[rng.random(n) < 0.15, "regime"] = None
    df["regime"] = pd.Categorical(df["regime"], categories=CATEGORIES)
    return df


def _target(df: pd.DataFrame) -> np.ndarray:
    codes = df["regime"].cat.codes.to_numpy()
    return df["rsi"].to_numpy() / 50 + np.isin(codes, [1, 4]) * 2.0 - (codes == -1) * 1.5 + (codes == 5) * 0.7


@pytest.fixture(scope="module", params=[1, 16], ids=["partition", "one-hot"])
def converted(request, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp(f"cat{request.param}")
    df = _frame(1500, 0)
    m = xgb.XGBRegressor(
        n_estimators=15, max_depth=4, enable_categorical=True, max_cat_to_onehot=request.param, missing=-999.0,
        random_state=0, n_jobs=1,
    ).fit(df, _target(df))  # fmt: skip
    joblib.dump(m, folder / "regime.pkl")
    result = convert(folder / "regime.pkl", out_dir=folder / "out", n_random=300)
    return m, result


def test_every_value_goes_where_xgboost_sends_it(converted):
    m, result = converted
    splits = json.loads(m.get_booster().save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    assert any(t["categories_nodes"] for t in splits), "the model should split on the category"
    X = np.array([[rsi, v] for rsi in (20.0, 50.0, 80.0) for v in VALUES], np.float32)
    expected = m.get_booster().inplace_predict(X, missing=-999.0)
    for flavor in ("tree", "tensor"):
        model = m7_runtime.load(result.paths[-1], provider="cpu", flavor=flavor)
        np.testing.assert_array_equal(model.predict(X), expected, err_msg=flavor)
    assert result.manifest.to_json()["parity"]["rows"]["edge"] >= 3 * len(CATEGORIES)


def test_codes_from_the_readme_recipe_reproduce_the_dataframe_prediction(converted):
    """Values outside the categories (and None) become NaN: xgboost reads them from a DataFrame as missing."""
    m, result = converted
    assert result.manifest.to_json()["categories"] == {"regime": CATEGORIES}
    model = m7_runtime.load(result.paths[-1], provider="cpu")
    values = ["moon", "bear", "rekt", "sideways", None, "chop", "bull", "crab", "MOON"]
    rsi = np.linspace(20, 80, len(values))
    # a frame whose column declares fewer categories, in another order: xgboost re-codes it to the training codes
    declared = [v if v in ("rekt", "moon", "chop") else None for v in values]
    frame = pd.DataFrame({"rsi": rsi, "regime": pd.Categorical(declared, categories=["rekt", "moon", "chop"])})
    expected = m.predict(frame)

    training_categories = result.manifest.to_json()["categories"]["regime"]
    codes = pd.Index(training_categories).get_indexer(values).astype("float32")  # the README's recipe
    codes[codes == -1] = float("nan")
    # the frame declares three categories only: pandas made the others NaN, so they are missing in both
    codes[~pd.Series(values).isin(["rekt", "moon", "chop"]).to_numpy()] = float("nan")
    got = model.predict(np.column_stack([rsi, codes]).astype(np.float32))
    np.testing.assert_allclose(got, expected, rtol=1e-6)

    known = [v if v in CATEGORIES else None for v in values]
    full = pd.DataFrame({"rsi": rsi, "regime": pd.Categorical(known, categories=CATEGORIES)})
    codes = pd.Index(training_categories).get_indexer(values).astype("float32")
    codes[codes == -1] = float("nan")
    got = model.predict(np.column_stack([rsi, codes]).astype(np.float32))
    np.testing.assert_allclose(got, m.predict(full), rtol=1e-6)


def test_native_json_with_feature_types_converts_the_same(tmp_path: Path):
    """``feature_types=["q", "c"]`` on a numpy array, saved as .json: no stored categories, same semantics."""
    df = _frame(1200, 1)
    X = np.column_stack([df["rsi"], df["regime"].cat.codes.replace(-1, np.nan)]).astype(np.float32)
    bst = xgb.train(
        {"max_depth": 3, "max_cat_to_onehot": 1, "nthread": 1},
        xgb.DMatrix(X, label=_target(df), feature_types=["q", "c"], enable_categorical=True),
        num_boost_round=8,
    )
    bst.save_model(tmp_path / "m.json")
    result = convert(tmp_path / "m.json", out_dir=tmp_path / "out", n_random=300)
    assert "categories" not in result.manifest.to_json()
    probe = np.array([[50.0, v] for v in VALUES], np.float32)
    for flavor in ("tree", "tensor"):
        model = m7_runtime.load(result.paths[-1], provider="cpu", flavor=flavor)
        np.testing.assert_array_equal(model.predict(probe), bst.inplace_predict(probe), err_msg=flavor)
