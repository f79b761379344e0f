"""The drop-ins agree with the map's call sites run on the original pickles, case by case."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

import market7_callsites as ref
from conftest import ONNX
from m7_runtime import market7

#: short test ids -> (our drop-in, the map's call site)
FUNCS = dict(
    zip(["recovery", "confidence", "spend", "dca_spend", "safu", "legacy"], ref.drop_in_pairs().values(), strict=True)
)


def same(ours, theirs) -> bool:
    if ours is None or theirs is None:
        return ours is None and theirs is None
    return abs(ours - theirs) <= 1e-5 * max(1.0, abs(theirs))


def as_dicts(df, n: int) -> list[dict]:
    """Rows as the bot builds them: plain Python values, NaN where an indicator is missing."""
    rows = []
    for rec in df.head(n).to_dict("records"):
        row = {k: (v.item() if hasattr(v, "item") else v) for k, v in rec.items()}
        if not isinstance(row.get("btc_status"), str):  # no status known: the bot leaves the key out
            row.pop("btc_status", None)
        rows.append(row)
    return rows


@pytest.fixture(autouse=True)
def _bundled(monkeypatch):
    monkeypatch.delenv("M7_MODEL_DIR", raising=False)
    monkeypatch.setenv("M7_CONFIG", "/nonexistent/config.json")
    market7.clear_cache()
    yield
    market7.clear_cache()


@pytest.mark.parametrize("which", FUNCS)
def test_full_rows_agree(which: str, snapshots):
    ours, theirs = FUNCS[which]
    for row in as_dicts(snapshots, 150):
        assert same(ours(row), theirs(row)), (which, row)


@pytest.mark.parametrize("which", FUNCS)
def test_missing_features_agree(which: str, snapshots, caplog):
    """reject models: warning + None; zero-fill models: predict on 0.0."""
    ours, theirs = FUNCS[which]
    rng = np.random.default_rng(0)
    for row in as_dicts(snapshots, 40):
        keys = list(row)
        for k in rng.choice(keys, size=rng.integers(1, 6), replace=False):
            row.pop(k)
        assert same(ours(row), theirs(row)), (which, sorted(row))
    assert same(ours({}), theirs({}))


def test_missing_feature_logs_the_maps_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert market7.predict_recovery_odds({"step": 1}) is None
        assert market7.predict_confidence_score({"step": 1}) is None
    texts = [r.getMessage() for r in caplog.records]
    assert any(t.startswith("Missing features for recovery prediction: {") and "'rsi'" in t for t in texts)
    assert any(t.startswith("Missing confidence features: {") for t in texts)


BTC_CASES = ["bullish", "bearish", "neutral", "nan", "", "ish", "BULLISH", "sideways", "status_bullish", "h"]


@pytest.mark.parametrize("status", [*BTC_CASES, "<absent>"])
def test_btc_status_one_hot_agrees(status: str, snapshots):
    for row in as_dicts(snapshots, 20):
        row.pop("btc_status", None)
        if status != "<absent>":
            row["btc_status"] = status
        for which in ("spend", "dca_spend"):
            ours, theirs = FUNCS[which]
            assert same(ours(row), theirs(row)), (which, status)


def test_btc_status_none_is_absent_a_documented_deviation(snapshots):
    """The map's `key.endswith(None)` raises TypeError; we treat None like an absent status."""
    row = as_dicts(snapshots, 1)[0]
    row["btc_status"] = None
    with pytest.raises(TypeError):
        ref.predict_spend_volume(row)
    absent = {k: v for k, v in row.items() if k != "btc_status"}
    assert market7.predict_spend_volume(row) == ref.predict_spend_volume(absent)


def test_btc_status_of_the_wrong_type_gives_none(snapshots, caplog):
    row = as_dicts(snapshots, 1)[0]
    row["btc_status"] = 3
    with pytest.raises(TypeError):
        ref.predict_spend_volume(row)  # the map's caller would crash here
    with caplog.at_level(logging.ERROR):
        assert market7.predict_spend_volume(row) is None
    assert any(r.getMessage().startswith("Spend prediction failed:") for r in caplog.records)


def test_spend_is_clamped_at_zero(snapshots):
    """Find rows where the spend model predicts below zero; both sides must give 0.0."""
    import joblib

    from conftest import MODELS

    model = joblib.load(MODELS / "xgb_spend_model.pkl")
    rng = np.random.default_rng(1)
    rows = as_dicts(snapshots, 400)
    negatives = []
    for row in rows:
        row.update(zombie_tagged=1, btc_status="bearish", recovery_odds=0.0, confidence_score=0.0, step=0)
        row["drawdown_pct"] = float(rng.uniform(0, 2))
        vec = [row.get(f, 0.0) for f in model.feature_names_in_[:15]] + [0.0, 1.0, 0.0, 0.0]
        if model.predict([vec])[0] < 0:
            negatives.append(row)
    assert negatives, "no row with a negative raw spend prediction found"
    for row in negatives[:20]:
        assert market7.predict_spend_volume(row) == 0.0 == ref.predict_spend_volume(row)


def test_safu_uses_the_models_own_feature_names(snapshots):
    import joblib

    from conftest import MODELS

    names = list(joblib.load(MODELS / "safu_exit_model.pkl").feature_names_in_)
    manifest = json.loads((ONNX / "safu_exit_model.manifest.json").read_text())
    assert manifest["features"] == names and manifest["input_policy"]["on_missing"] == "zero"
    row = {n: v for n, v in as_dicts(snapshots, 1)[0].items() if n in names[:5]}
    assert same(market7.predict_safu_exit(row), ref.predict_safu_exit(row))


@pytest.mark.parametrize("value", [None, math.nan, True, np.float32(12.5), np.int64(3)])
def test_odd_values_agree(value, snapshots):
    row = as_dicts(snapshots, 1)[0]
    row["rsi"] = value
    for which, (ours, theirs) in FUNCS.items():
        assert same(ours(row), theirs(row)), (which, value)


@pytest.mark.parametrize("bad", [None, [1, 2, 3], "step=1", 42])
def test_non_mapping_input_gives_none_and_never_raises(bad, caplog):
    with caplog.at_level(logging.ERROR):
        for ours, _ in FUNCS.values():
            assert ours(bad) is None
    assert any("prediction failed" in r.getMessage() for r in caplog.records)


def test_numeric_string_gives_none_like_the_pickle(snapshots):
    for which, (ours, theirs) in FUNCS.items():
        row = as_dicts(snapshots, 1)[0]
        row["rsi" if which != "legacy" else "ind_rsi"] = "41.5"
        assert ours(row) is None and theirs(row) is None, which


def test_model_dir_resolution_order(tmp_path: Path, monkeypatch, snapshots):
    """argument, then $M7_MODEL_DIR, then the config file, then the bundled artifacts."""
    row = as_dicts(snapshots, 1)[0]
    expected = market7.predict_recovery_odds(row)
    assert market7.model_dir() == ONNX.resolve() or market7.model_dir().samefile(ONNX)

    empty = tmp_path / "empty"
    empty.mkdir()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_dir": str(empty)}))
    monkeypatch.setenv("M7_CONFIG", str(config))
    assert market7.model_dir() == empty
    assert market7.predict_recovery_odds(row) is None  # nothing there: logged, None

    monkeypatch.setenv("M7_MODEL_DIR", str(ONNX))
    assert market7.model_dir() == ONNX
    assert market7.predict_recovery_odds(row) == expected
    assert market7.predict_recovery_odds(row, model_dir=empty) is None
    assert market7.model_dir(empty) == empty


def test_load_failure_logs_the_maps_error(tmp_path: Path, caplog):
    with caplog.at_level(logging.ERROR):
        assert market7.predict_recovery_odds({"step": 1}, model_dir=tmp_path) is None
    assert any(r.getMessage().startswith("Failed to load recovery model:") for r in caplog.records)


def test_models_load_once_per_process(snapshots):
    row = as_dicts(snapshots, 1)[0]
    market7.predict_recovery_odds(row)
    first = market7.get_model(market7.RECOVERY)
    market7.predict_recovery_odds(row)
    assert market7.get_model(market7.RECOVERY) is first
