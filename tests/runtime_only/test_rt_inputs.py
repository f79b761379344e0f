"""The bad-input matrix on the runtime: ``predict``, ``predict_one``, ``score`` and every drop-in.

Each case either predicts what the original pickle predicts (recorded in reference.json and
re-derived from the pickles by tests/test_bad_inputs.py) or fails the way the API promises:
``M7Error`` from the API, ``None`` (after a log line) from a drop-in, never another exception.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import runtime_support as rs

from m7_runtime import M7Error


@pytest.fixture(scope="module")
def models():
    return rs.load_all()


@pytest.fixture(scope="module")
def reference():
    return rs.reference()


def _check(which: str, case: str, features, models, reference) -> None:
    name, drop_in = rs.DROP_INS[which]
    model = models[name]
    expected = reference[which][case]
    ours = drop_in(features, model_dir=rs.ONNX)
    if case.removeprefix("value:") in rs.DEVIATIONS and case.startswith("value:"):
        assert expected is not None and ours is None, "documented deviation: refused although xgboost predicts"
        with pytest.raises(M7Error):
            model.predict_one(features)
        return
    assert rs.same(ours, expected), (which, case, ours, expected)
    if expected is None:
        with pytest.raises(M7Error):
            model.predict_one(features)
        with pytest.raises(M7Error):
            model.score({k: [v] for k, v in features.items()})
    else:
        one = float(model.predict_one(features))
        assert one == ours  # the drop-in is predict_one plus the call-site skeleton
        if features:  # (a table of no columns has no rows)
            assert np.float32(one) == model.score({k: [v] for k, v in features.items()})[0]  # batch = row rules


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # 1e39 -> float32 inf, as xgboost
@pytest.mark.parametrize("case", rs.VALUES)
@pytest.mark.parametrize("which", rs.DROP_INS)
def test_value_cases(which: str, case: str, models, reference):
    _check(which, f"value:{case}", rs.value_case(which, case), models, reference)


@pytest.mark.parametrize("case", rs.STRUCTURE)
@pytest.mark.parametrize("which", rs.DROP_INS)
def test_structure_cases(which: str, case: str, models, reference):
    _check(which, f"structure:{case}", rs.STRUCTURE[case](which), models, reference)


@pytest.mark.parametrize("case", rs.NOT_MAPPINGS)
def test_non_mappings_give_none_from_drop_ins_and_m7error_from_the_api(case: str, models, caplog):
    value = rs.NOT_MAPPINGS[case]()
    with caplog.at_level(logging.ERROR, logger="m7_runtime.market7"):
        for which, (name, drop_in) in rs.DROP_INS.items():
            assert drop_in(value, model_dir=rs.ONNX) is None, which
            with pytest.raises(M7Error, match="mapping"):
                models[name].predict_one(value)
    assert any("prediction failed: features must be a mapping" in r.getMessage() for r in caplog.records)


class _Hostile(dict):
    """A mapping whose every read blows up: the drop-ins must still not raise."""

    def keys(self):
        raise RuntimeError("keys() exploded")

    def __getitem__(self, key):
        raise RuntimeError("getitem exploded")

    def get(self, key, default=None):
        raise RuntimeError("get exploded")

    def __contains__(self, key):
        raise RuntimeError("contains exploded")


def test_a_mapping_that_raises_never_escapes_a_drop_in(caplog):
    hostile = _Hostile(rs.snapshot_row())
    with caplog.at_level(logging.ERROR, logger="m7_runtime.market7"):
        for which, (_, drop_in) in rs.DROP_INS.items():
            assert drop_in(hostile, model_dir=rs.ONNX) is None, which
    assert any("exploded" in r.getMessage() for r in caplog.records)


def test_errors_name_the_feature_and_the_value(models):
    m = models["xgb_recovery_model"]
    with pytest.raises(M7Error, match=r"feature 'rsi' must be a number .*got str '31\.5'"):
        m.predict_one(rs.value_case("recovery", "numeric_string"))
    with pytest.raises(M7Error, match=r"feature 'rsi': 1000000.* cannot be read as a float"):
        m.predict_one(rs.value_case("recovery", "int_beyond_float64"))
    with pytest.raises(M7Error, match=r"missing feature\(s\) \['rsi'\]"):
        m.predict_one(rs.STRUCTURE["missing_target"]("recovery"))


def test_special_floats_reach_the_trees_unchanged(models):
    """inf goes right of every threshold, -inf left, NaN the default way: all three differ here."""
    m = models["xgb_recovery_model"]
    got = {c: m.predict_one(rs.value_case("recovery", c)) for c in ("inf", "-inf", "nan", "none")}
    assert got["nan"] == got["none"]
    assert len({got["inf"], got["-inf"]}) == 2 and all(math.isfinite(v) for v in got.values())


@pytest.mark.parametrize("name", ["xgb_recovery_model", "xgb_spend_model", "safu_exit_model"])
def test_batch_matrix(name: str, models):
    model = models[name]
    for case, (given, meaning) in rs.batch_cases(model.feature_names).items():
        if meaning is None:
            with pytest.raises(M7Error):
                model.predict(given)
            continue
        got = model.predict(given)
        assert got.dtype == np.float32 and got.shape == (len(meaning),), case
        np.testing.assert_array_equal(got, model.predict(meaning), err_msg=case)


def test_one_row_batch_equals_predict_one(models):
    for name, model in models.items():
        if model.policy.one_hot:
            continue
        X = rs.base_matrix(model.feature_names)
        batch = model.predict(X)
        for row, expected in zip(X, batch, strict=True):
            features = {f: (None if math.isnan(v) else float(v)) for f, v in zip(model.feature_names, row, strict=True)}
            assert np.float32(model.predict_one(features)) == expected, name
