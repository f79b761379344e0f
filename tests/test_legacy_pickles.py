"""Pickles written by older xgboost versions (1.7 to 3.0) convert and match *their* predictions.

The fixtures (tests/fixtures/xgb-*/) were written by tests/fixtures/make_legacy.py, each in
an environment with that xgboost; reference.npz holds the predictions that xgboost made
itself on random, NaN and split-threshold (+-1 ulp) rows. Nothing old runs here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import m7_runtime
from conftest import assert_parity
from m7_convert import convert, load_source

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CASES = sorted(
    (d.name.removeprefix("xgb-"), p.name)
    for d in FIXTURES.glob("xgb-*")
    for p in sorted(d.iterdir())
    if p.suffix in (".pkl", ".pickle")
)


def test_every_supported_major_version_is_covered():
    versions = {v.split(".")[0] + "." + v.split(".")[1] for v, _ in CASES}
    assert {"1.7", "2.0", "2.1", "3.0"} <= versions


@pytest.mark.parametrize(("version", "file"), CASES, ids=[f"{v}-{f}" for v, f in CASES])
def test_legacy_pickle_converts_with_parity(version: str, file: str, tmp_path: Path):
    folder = FIXTURES / f"xgb-{version}"
    refs = np.load(folder / "reference.npz")
    stem = file.split(".")[0]
    source = load_source(folder / file)
    assert source.xgboost_version == version
    result = convert(folder / file, out_dir=tmp_path, flavors=("tree",))
    model = m7_runtime.load(result.paths[-1], provider="cpu")
    assert_parity(model.predict(refs[f"X_{stem}"]), refs[f"y_{stem}"], f"{version}/{file}")


def test_legacy_dataframe_names_survive(tmp_path: Path):
    for folder in FIXTURES.glob("xgb-*"):
        source = load_source(folder / "clf_binary_df.pkl")
        assert source.feature_names == ("step", "drawdown_pct", "rsi", "macd lift", "adx", "btc_status_nan")


def test_legacy_early_stopping_uses_best_iteration():
    for folder in FIXTURES.glob("xgb-*"):
        source = load_source(folder / "reg_early_stopping.pkl")
        assert source.iteration_range is not None
        n_rounds = len(source.document["learner"]["gradient_booster"]["model"]["trees"])
        assert source.iteration_range[1] < n_rounds, folder.name
