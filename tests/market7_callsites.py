"""The model map's call sites, transcribed literally, running the original pickles with joblib.

This is the behaviour the drop-ins in ``m7_runtime.market7`` must reproduce. The feature
lists come from the pickles themselves (they carry the map's names, see test_models.py).
"""

from __future__ import annotations

import logging
from pathlib import Path

import joblib

from conftest import MODELS

log = logging.getLogger("market7.callsites")
_cache: dict[str, object] = {}


def _load(name: str):
    if name not in _cache:
        _cache[name] = joblib.load(Path(MODELS) / f"{name}.pkl")
    return _cache[name]


def _features(name: str) -> list[str]:
    return list(_load(name).feature_names_in_)


def predict_recovery_odds(features):
    try:
        model = _load("xgb_recovery_model")
    except Exception as e:
        log.error(f"Failed to load recovery model: {e}")
        return None
    EXPECTED_FEATURES = _features("xgb_recovery_model")
    missing_features = set(EXPECTED_FEATURES) - set(features.keys())
    if missing_features:
        log.warning(f"Missing features for recovery prediction: {missing_features}")
        return None
    feature_vector = [features[f] for f in EXPECTED_FEATURES]
    try:
        prob = model.predict_proba([feature_vector])[0][1]
        return float(prob)
    except Exception as e:
        log.error(f"Recovery prediction failed: {e}")
        return None


def predict_confidence_score(features):
    try:
        model = _load("xgb_confidence_model")
    except Exception as e:
        log.error(f"Failed to load confidence model: {e}")
        return None
    FEATURE_COLUMNS = _features("xgb_confidence_model")
    missing_features = set(FEATURE_COLUMNS) - set(features.keys())
    if missing_features:
        log.warning(f"Missing confidence features: {missing_features}")
        return None
    feature_vector = [features[f] for f in FEATURE_COLUMNS]
    try:
        confidence = model.predict_proba([feature_vector])[0][1]
        return float(confidence)
    except Exception as e:
        log.error(f"Confidence prediction failed: {e}")
        return None


BTC_STATUS_KEYS = ["btc_status_bullish", "btc_status_bearish", "btc_status_neutral", "btc_status_nan"]


def predict_spend_volume(features, *, use_dca_model: bool = False):
    name = "xgb_dca_spend_model" if use_dca_model else "xgb_spend_model"
    try:
        model = _load(name)
    except Exception as e:
        log.error(f"Failed to load spend model: {e}")
        return None
    BASE_FEATURES = _features(name)[:15]
    feature_vector = []
    for feature in BASE_FEATURES:
        if feature in features:
            feature_vector.append(features[feature])
        else:
            feature_vector.append(0.0)
    btc_status = features.get("btc_status", "nan")
    for status_key in BTC_STATUS_KEYS:
        feature_vector.append(1.0 if status_key.endswith(btc_status) else 0.0)
    try:
        predicted_spend = model.predict([feature_vector])[0]
        return max(0.0, float(predicted_spend))
    except Exception as e:
        log.error(f"Spend prediction failed: {e}")
        return None


def predict_safu_exit(indicators):
    try:
        model = _load("safu_exit_model")
    except Exception as e:
        log.error(f"Failed to load SAFU model: {e}")
        return None
    available_features = []
    for feature_name in model.feature_names_in_:
        if feature_name in indicators:
            available_features.append(indicators[feature_name])
        else:
            available_features.append(0.0)
    try:
        safu_prob = model.predict_proba([available_features])[0][1]
        return float(safu_prob)
    except Exception as e:
        log.error(f"SAFU prediction failed: {e}")
        return None


def predict_legacy(features):
    """The map gives no code for xgb_model ("basic loading and prediction"): the recovery shape."""
    model = _load("xgb_model")
    names = _features("xgb_model")
    if set(names) - set(features.keys()):
        return None
    try:
        return float(model.predict_proba([[features[f] for f in names]])[0][1])
    except Exception:
        return None


def drop_in_pairs() -> dict:
    """Artifact name -> (our drop-in, this module's call site): the pairs the tests compare."""
    from m7_runtime import market7

    return {
        market7.RECOVERY: (market7.predict_recovery_odds, predict_recovery_odds),
        market7.CONFIDENCE: (market7.predict_confidence_score, predict_confidence_score),
        market7.SPEND: (market7.predict_spend_volume, predict_spend_volume),
        market7.DCA_SPEND: (
            lambda f, **kw: market7.predict_spend_volume(f, use_dca_model=True, **kw),
            lambda f: predict_spend_volume(f, use_dca_model=True),
        ),
        market7.SAFU: (market7.predict_safu_exit, predict_safu_exit),
        market7.LEGACY: (market7.predict_legacy, predict_legacy),
    }
