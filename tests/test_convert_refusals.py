"""What the converter refuses, and how: a clear error naming what it saw, and nothing written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from m7_convert import ParityError, SourceError, UnsupportedModelError, convert, load_source
from m7_convert import driver as driver_module
from m7_convert.booster_json import _base_scores, from_booster_json
from m7_convert.emit_tree import emit_tree
from zoo import data, y_binary, y_reg


def _train(params: dict, y, *, rounds: int = 3, X=None) -> xgb.Booster:
    X = data() if X is None else X
    return xgb.train({"nthread": 1, "max_depth": 2, **params}, xgb.DMatrix(X, label=y), rounds)


def _save(bst: xgb.Booster, path: Path) -> Path:
    bst.save_model(path)
    return path


def _doc(bst: xgb.Booster) -> dict:
    import json

    return json.loads(bst.save_raw("json"))


def _write(doc: dict, path: Path) -> Path:
    import json

    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda d: d["learner"]["objective"].update(name="mylogistic"), "objective 'mylogistic' is not supported"),
        (lambda d: d["learner"]["gradient_booster"].update(name="gbfancy"), "booster 'gbfancy' is not supported"),
    ],
    ids=["custom-objective", "unknown-booster"],
)
def test_unsupported_objectives_and_boosters_are_named(edit, expected: str, tmp_path: Path):
    """Every objective xgboost registers converts (tests/zoo.py); a plugin's custom one, or an unknown booster, not."""
    doc = _doc(_train({"objective": "binary:logistic"}, y_binary(data())))
    edit(doc)
    path = _write(doc, tmp_path / "m.json")
    with pytest.raises(UnsupportedModelError, match=expected):
        convert(path, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def _categorical_doc() -> dict:
    X = data()
    df = pd.DataFrame(X, columns=[f"c{i}" for i in range(X.shape[1])])
    df["c3"] = pd.Categorical(np.nan_to_num(X[:, 3]).astype(int))
    m = xgb.XGBClassifier(n_estimators=3, enable_categorical=True, tree_method="hist", max_cat_to_onehot=1).fit(
        df, y_binary(X)
    )
    return _doc(m.get_booster())


def test_categorical_splits_convert_and_an_untabulable_set_is_refused(tmp_path: Path):
    """Category sets become membership tables; codes up to 2**24 - 1 in one set would need 64 MiB: refused by name."""
    doc = _categorical_doc()
    convert(_write(doc, tmp_path / "cat.json"), out_dir=tmp_path / "ok", n_random=200)
    tree = next(t for t in doc["learner"]["gradient_booster"]["model"]["trees"] if t["categories"])
    begin, size = tree["categories_segments"][0], tree["categories_sizes"][0]
    tree["categories"][begin + size - 1] = 2**24 - 1  # the largest valid code, still sorted last
    with pytest.raises(UnsupportedModelError, match=r"feature 'c3' has category codes up to 16777215"):
        convert(_write(doc, tmp_path / "huge.json"), out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.update(categories_nodes=t["categories_nodes"][1:]), "categorical split records do not match"),
        (lambda t: t.update(categories_sizes=[10**6] * len(t["categories_sizes"])), "out of range"),
        (lambda t: t["categories"].__setitem__(0, -3), "not distinct codes >= 0"),
    ],
    ids=["nodes", "segment", "negative"],
)
def test_malformed_categorical_records_are_named(edit, expected: str):
    doc = _categorical_doc()
    tree = next(t for t in doc["learner"]["gradient_booster"]["model"]["trees"] if t["categories"])
    edit(tree)
    with pytest.raises(SourceError, match=expected):
        from_booster_json(doc)


def test_several_targets_convert_with_named_outputs(tmp_path: Path):
    X = data()
    m = xgb.XGBRegressor(n_estimators=3, objective="reg:quantileerror", quantile_alpha=np.array([0.2, 0.8])).fit(
        X, y_reg(X)
    )
    joblib.dump(m, tmp_path / "q.pkl")
    result = convert(tmp_path / "q.pkl", out_dir=tmp_path / "out", n_random=200)
    assert result.manifest.to_json()["output"]["n_outputs"] == 2
    assert result.manifest.to_json()["output"]["targets"] == ["quantile_0.2", "quantile_0.8"]
    assert result.manifest.to_json()["task"] == "regression"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"hello, not a model", "unknown file type"),
        (b"binf\x00\x00\x00?", "old binary format"),
        (b'{"learner": ', "not valid JSON"),
        (b'{"something": 1}', "not an xgboost model"),
    ],
)
def test_unreadable_files_name_the_problem(content: bytes, expected: str, tmp_path: Path):
    path = tmp_path / "bad.bin"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=expected):
        load_source(path)


def test_truncated_pickle_and_ubj(tmp_path: Path):
    X = data()
    m = xgb.XGBClassifier(n_estimators=3).fit(X, y_binary(X))
    joblib.dump(m, tmp_path / "m.pkl")
    m.save_model(tmp_path / "m.ubj")
    for name in ("m.pkl", "m.ubj"):
        raw = (tmp_path / name).read_bytes()
        (tmp_path / f"cut-{name}").write_bytes(raw[: len(raw) // 2])
        with pytest.raises(SourceError, match="truncated"):
            load_source(tmp_path / f"cut-{name}")


def test_not_a_model_pickle(tmp_path: Path):
    joblib.dump({"weights": np.arange(3)}, tmp_path / "dict.pkl")
    with pytest.raises(SourceError, match="not an XGBoost model"):
        load_source(tmp_path / "dict.pkl")
    joblib.dump(xgb.XGBClassifier(), tmp_path / "unfitted.pkl")
    with pytest.raises(SourceError, match="unfitted"):
        load_source(tmp_path / "unfitted.pkl")


def test_missing_file_and_unwritable_output(tmp_path: Path):
    with pytest.raises(SourceError, match="cannot read"):
        load_source(tmp_path / "nope.pkl")
    X = data()
    joblib.dump(xgb.XGBClassifier(n_estimators=2).fit(X, y_binary(X)), tmp_path / "m.pkl")
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    with pytest.raises(Exception, match="cannot write to output folder"):
        convert(tmp_path / "m.pkl", out_dir=blocker / "sub")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5E-1", [0.5]), ("[4.5E-1]", [0.45]), ("[1E0,2E0,-3.5E0]", [1.0, 2.0, -3.5]), (0.25, [0.25])],
)
def test_base_score_forms(text, expected):
    np.testing.assert_allclose(_base_scores(text), expected, rtol=1e-7)


def test_parity_failure_writes_nothing_and_reports_worst_rows(tmp_path: Path, monkeypatch):
    """A deliberately wrong emitter (thresholds one ulp high) must be caught on the edge rows."""

    def off_by_one_ulp(forest):
        trees = tuple(replace(t, threshold=np.nextafter(t.threshold, np.float32(np.inf))) for t in forest.trees)
        return emit_tree(replace(forest, trees=trees))

    X = data()
    joblib.dump(xgb.XGBRegressor(n_estimators=5, max_depth=3).fit(X, y_reg(X)), tmp_path / "m.pkl")
    monkeypatch.setitem(driver_module.EMITTERS, "tree", off_by_one_ulp)
    with pytest.raises(ParityError) as err:
        convert(tmp_path / "m.pkl", out_dir=tmp_path / "out", flavors=("tree",))
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    report = err.value.report["tree"]
    assert not report["onnx_vs_ir"]["pass"] and report["ir_vs_xgboost"]["pass"]
    worst = report["onnx_vs_xgboost"]["worst"]
    assert worst and {w["set"] for w in worst} <= {"edge", "edge_nan", "random", "nan"}
    assert "emitting" in str(err.value)


def test_iteration_range_keeps_whole_rounds():
    X = data()
    bst = _train({"objective": "multi:softprob", "num_class": 3, "num_parallel_tree": 2}, y_binary(X) + 1, rounds=4)
    import json

    doc = json.loads(bst.save_raw("json"))
    forest = from_booster_json(doc, iteration_range=(0, 2))
    assert len(forest.trees) == 2 * 3 * 2
    assert [t.group for t in forest.trees[:6]] == [0, 0, 1, 1, 2, 2]
