"""The six Market7 stand-ins: the map's estimator classes, feature names and sizes, reproducibly."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import tomllib
import xgboost as xgb

from conftest import MODELS

# Transcribed from ../shared/market7_ml_model_map.md, independently of models/spec.toml.
RECOVERY = [
    "step", "entry_score", "current_score", "drawdown_pct", "safu_score",
    "macd_lift", "rsi", "rsi_slope", "adx", "confidence_score", "tp1_shift",
    "safu_good_but_zombie", "snapshot_score_trend", "snapshot_rsi_trend",
    "snapshot_max_drawdown", "snapshot_min_score", "snapshot_min_rsi",
    "snapshot_time_to_max_drawdown_min",
]  # fmt: skip
CONFIDENCE = [
    "step", "entry_score", "current_score", "tp1_shift", "safu_score",
    "rsi", "macd_histogram", "adx", "macd_lift", "rsi_slope", "drawdown_pct",
    "snapshot_score_trend", "snapshot_rsi_trend", "snapshot_max_drawdown",
    "snapshot_min_score", "snapshot_min_rsi", "snapshot_time_to_max_drawdown_min",
]  # fmt: skip
SPEND = [
    "entry_score", "current_score", "drawdown_pct", "safu_score", "macd_lift",
    "rsi", "rsi_slope", "adx", "tp1_shift", "recovery_odds", "confidence_score",
    "zombie_tagged", "btc_rsi", "btc_macd_histogram", "btc_adx",
]  # fmt: skip
BTC_STATUS_KEYS = ["btc_status_bullish", "btc_status_bearish", "btc_status_neutral", "btc_status_nan"]
FEATURES_USED = [
    "ind_ema50", "ind_rsi", "ind_adx", "ind_atr", "ind_stoch_rsi_k", "ind_stoch_rsi_d",
    "ind_macd", "ind_macd_signal", "ind_macd_hist", "ind_macd_hist_prev",
    "ind_macd_lift", "btc_rsi", "btc_adx", "btc_macd_histogram",
    "btc_ema_50", "btc_ema_200", "btc_market_condition_num",
]  # fmt: skip

#: file -> (class, expected features or None for "its own feature_names_in_", size in KB per the map)
EXPECTED = {
    "xgb_recovery_model.pkl": (xgb.XGBClassifier, RECOVERY, 110),
    "xgb_confidence_model.pkl": (xgb.XGBClassifier, CONFIDENCE, 154),
    "xgb_spend_model.pkl": (xgb.XGBRegressor, SPEND + BTC_STATUS_KEYS, 202),
    "xgb_dca_spend_model.pkl": (xgb.XGBRegressor, SPEND + BTC_STATUS_KEYS, 202),
    "xgb_model.pkl": (xgb.XGBClassifier, FEATURES_USED, 147),
    "safu_exit_model.pkl": (xgb.XGBClassifier, None, 160),
}


@pytest.mark.parametrize("file", sorted(EXPECTED))
def test_pickle_is_the_maps_model(file: str):
    cls, features, size_kb = EXPECTED[file]
    path = MODELS / file
    model = joblib.load(path)
    assert type(model) is cls
    names = list(model.feature_names_in_)
    if features is not None:
        assert names == features
    assert model.get_booster().feature_names == names
    kb = path.stat().st_size / 1024
    assert 0.7 * size_kb <= kb <= 1.3 * size_kb, f"{file}: {kb:.0f} KB vs the map's {size_kb} KB"


def test_features_used_json_is_the_maps_list():
    assert json.loads((MODELS / "features_used.json").read_text()) == FEATURES_USED


def test_spec_describes_all_six():
    spec = tomllib.loads((MODELS / "spec.toml").read_text())["models"]
    assert {e["source"] for e in spec.values()} == set(EXPECTED)
    for name, entry in spec.items():
        assert entry["task"] in ("binary", "regression")
        assert entry["on_missing"] in ("reject", "zero")
        assert "features" in entry or "features_from" in entry, name
    assert spec["xgb_recovery_model"]["features"] == RECOVERY
    assert spec["xgb_confidence_model"]["features"] == CONFIDENCE
    for spend in ("xgb_spend_model", "xgb_dca_spend_model"):
        assert spec[spend]["features"] == SPEND + BTC_STATUS_KEYS
        assert spec[spend]["clamp_min"] == 0.0
        assert spec[spend]["one_hot"][0]["columns"] == BTC_STATUS_KEYS
        assert spec[spend]["one_hot"][0]["match"] == "suffix"
        assert spec[spend]["one_hot"][0]["default"] == "nan"
    assert spec["safu_exit_model"]["features_from"] == "model"
    assert spec["xgb_model"]["features_from"] == "features_used.json"


def test_snapshots_are_realistic(snapshots):
    s = snapshots
    assert s["rsi"].between(0, 100).all() and s["adx"].between(0, 100).all()
    assert (s["step"] == s["step"].round()).all() and s["step"].between(0, 8).all()
    assert set(s["zombie_tagged"].unique()) <= {0, 1} and set(s["safu_good_but_zombie"].unique()) <= {0, 1}
    assert s["snapshot_time_to_max_drawdown_min"].between(0, 7 * 24 * 60).all()
    assert (s["drawdown_pct"] >= 0).all()
    assert set(s["btc_status"].dropna().unique()) == {"bullish", "bearish", "neutral"}
    assert s["btc_status"].isna().any()
    assert s["snapshot_rsi_trend"].isna().any() and s["btc_rsi"].isna().any()


@pytest.mark.slow
def test_make_models_is_reproducible(make_models, tmp_path: Path, snapshots):
    make_models.make_all(tmp_path, verbose=False)
    data = make_models.feature_table(snapshots)
    for file in EXPECTED:
        committed, again = joblib.load(MODELS / file), joblib.load(tmp_path / file)
        X = data[list(committed.feature_names_in_)]
        if isinstance(committed, xgb.XGBClassifier):
            a, b = committed.predict_proba(X), again.predict_proba(X)
        else:
            a, b = committed.predict(X), again.predict(X)
        np.testing.assert_array_equal(a, b, err_msg=file)
    # the reference data of the bundled drift profiles (spec.toml: reference) is the same training snapshots
    reference = make_models.REFERENCE_FILE
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / reference), pd.read_parquet(MODELS / reference))
