"""Monitoring (issue 12): reference profiles at conversion, live drift on every prediction path, ``m7onnx drift``,
``m7onnx diff`` and its Python API, shadow scoring, and bad input. Real models, real Parquet files, real CLI."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import m7_runtime
from conftest import MODELS, ONNX
from m7_convert import convert
from m7_runtime.artifact import Manifest
from m7_runtime.cli import main
from m7_runtime.compare import RunningComparison, compare_outputs
from m7_runtime.drift import LiveProfile, level, psi
from m7_runtime.errors import M7Error
from m7_runtime.monitor_files import diff_files, drift_file
from m7_runtime.profile import build_profile, prediction_values
from m7_runtime.shadow import attach

REC = "xgb_recovery_model"


@pytest.fixture(scope="module")
def normal(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The recovery model converted with a reference of N(mu, sigma) data, and samples of the same distribution."""
    root = tmp_path_factory.mktemp("normal")
    features = m7_runtime.load(ONNX / f"{REC}.manifest.json").feature_names
    rng = np.random.default_rng(12)
    mu = rng.uniform(-50, 50, len(features))
    sigma = rng.uniform(0.5, 20, len(features))

    def sample(n: int, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        return pd.DataFrame(r.normal(mu, sigma, (n, len(features))), columns=list(features))

    sample(20_000, 1).to_parquet(root / "reference.parquet")
    src = root / "src"
    src.mkdir()
    shutil.copy(MODELS / f"{REC}.pkl", src)  # no spec beside it: the policy comes from the bundled artifact
    out = root / "out"
    argv = ["convert", str(src / f"{REC}.pkl"), "--out-dir", str(out), "--rows", "300"]
    assert main([*argv, "--reference", str(root / "reference.parquet")]) == 0
    return {"root": root, "out": out, "manifest": out / f"{REC}.manifest.json", "sample": sample, "sigma": sigma}


def test_same_distribution_is_stable_and_a_shifted_feature_drifts(normal: dict):
    model = m7_runtime.load(normal["manifest"])
    assert model.manifest.reference is not None and model.manifest.reference.rows == 20_000
    live = normal["sample"](4000, 2)
    for row in live.iloc[:2000].to_dict("records"):
        model.predict_one(row)
    model.predict(live.iloc[2000:])
    report = model.drift(reset=True)
    assert report.rows == 4000 and report.seen == 4000
    assert all(v < 0.1 for v in report.features.values()), report.features
    assert report.prediction < 0.1 and set(report.levels.values()) == {"stable"}
    assert model.drift().rows == 0 and model.drift().features["rsi"] is None  # the reset started a new window

    shifted = normal["sample"](4000, 3)
    feature = "drawdown_pct"
    shifted[feature] += 2.5 * normal["sigma"][model.feature_names.index(feature)]
    for row in shifted.iloc[:2000].to_dict("records"):
        model.predict_one(row)
    model.score(shifted.iloc[2000:])
    report = model.drift()
    assert report.features[feature] > 0.25 and report.levels[feature] == "drifted"
    assert all(v < 0.1 for f, v in report.features.items() if f != feature), report.features
    assert report.drifted() == [feature]


def test_m7onnx_drift_gives_the_same_psi_on_a_file(normal: dict, capsys):
    rows = normal["sample"](3000, 4)
    rows["rsi"] += 3.0 * normal["sigma"][list(rows.columns).index("rsi")]
    path = normal["root"] / "live.csv"
    rows.to_csv(path, index=False)
    model = m7_runtime.load(normal["manifest"])
    for row in rows.to_dict("records"):
        model.predict_one(row)
    expected = model.drift()
    assert main(["drift", str(normal["manifest"]), "--input", str(path), "--json"]) == 0
    [got] = json.loads(capsys.readouterr().out)
    assert got["rows"] == expected.rows == 3000
    assert got["features"] == expected.features and got["prediction"] == expected.prediction
    assert got["levels"]["rsi"] == "drifted"
    assert main(["drift", str(normal["out"]), "--input", str(path)]) == 0  # the table, for a folder
    assert "rsi" in capsys.readouterr().out


def test_the_bundled_profiles_are_their_training_snapshots():
    """Each bundled artifact's profile is of models/reference_snapshots.parquet: that file against it drifts by 0."""
    reports = drift_file(ONNX, input=MODELS / "reference_snapshots.parquet")
    assert len(reports) == 6
    for r in reports:
        assert r.rows == r.reference.rows == 20_000
        assert set(r.features.values()) == {0.0} and r.prediction == 0.0, r.name


def test_a_model_without_a_profile_says_how_to_add_one(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(MODELS / f"{REC}.pkl", src)
    assert main(["convert", str(src / f"{REC}.pkl"), "--out-dir", str(tmp_path / "out"), "--rows", "200"]) == 0
    model = m7_runtime.load(tmp_path / "out" / f"{REC}.manifest.json")
    assert model.manifest.reference is None
    with pytest.raises(M7Error, match=r"no reference profile.*--reference DATA"):
        model.drift()
    with pytest.raises(M7Error, match="no reference profile"):
        drift_file(tmp_path / "out" / f"{REC}.manifest.json", input=MODELS / "reference_snapshots.parquet")


def test_reconversion_keeps_the_profile_unless_a_new_reference_is_given(normal: dict, tmp_path: Path, capsys):
    out = tmp_path / "out"
    shutil.copytree(normal["out"], out)
    before = {p.name: p.read_bytes() for p in out.glob("*.onnx")}  # the stamped contract holds the profile
    profile = m7_runtime.load(out / f"{REC}.manifest.json").manifest.reference
    src = normal["root"] / "src" / f"{REC}.pkl"
    assert main(["convert", str(src), "--out-dir", str(out), "--rows", "300"]) == 0
    assert "reference profile kept from" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in out.glob("*.onnx")} == before
    assert m7_runtime.load(out / f"{REC}.manifest.json").manifest.reference == profile
    other = normal["sample"](5000, 9)
    other.to_json(tmp_path / "other.jsonl", orient="records", lines=True)
    argv = ["convert", str(src), "--out-dir", str(out), "--rows", "300"]
    assert main([*argv, "--reference", str(tmp_path / "other.jsonl")]) == 0
    assert m7_runtime.load(out / f"{REC}.manifest.json").manifest.reference.rows == 5000


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda df: df.drop(columns=["rsi", "adx"]), "['rsi', 'adx']"),
        (lambda df: df.assign(rsi="high"), "'rsi'"),
        (lambda df: df.iloc[:0], "has no rows"),
    ],
    ids=["missing_columns", "strings", "empty"],
)
def test_bad_reference_data_is_a_clear_error_and_nothing_is_written(normal, tmp_path: Path, change, named, capsys):
    data = tmp_path / "ref.parquet"
    change(normal["sample"](100, 5)).to_parquet(data)
    out = tmp_path / "out"
    src = normal["root"] / "src" / f"{REC}.pkl"
    assert main(["convert", str(src), "--out-dir", str(out), "--reference", str(data), "--rows", "200"]) == 1
    err = capsys.readouterr().err
    assert named in err and str(data) in err
    assert not out.exists() or not any(out.iterdir())


def test_a_spec_reference_with_one_hot_columns_or_their_input(tmp_path: Path, make_models):
    """The spend models' btc_status one-hot: from the string column, or the one-hot columns given directly."""
    snaps = make_models.generate_snapshots(2000, seed=3)
    raw, table = tmp_path / "raw.parquet", tmp_path / "table.parquet"
    snaps.to_parquet(raw)
    make_models.feature_table(snaps).to_parquet(table)
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(MODELS / "xgb_spend_model.pkl", src)
    profiles = []
    for data in (raw, table):
        out = tmp_path / data.stem
        argv = ["convert", str(src / "xgb_spend_model.pkl"), "--out-dir", str(out), "--rows", "200"]
        assert main([*argv, "--reference", str(data)]) == 0
        profiles.append(m7_runtime.load(out / "xgb_spend_model.manifest.json").manifest.reference)
    assert profiles[0] == profiles[1]
    assert profiles[0].features["btc_status_nan"].fractions[1] == pytest.approx((snaps["btc_status"].isna()).mean())


# ---- diff --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def retrained(tmp_path_factory: pytest.TempPathFactory, make_models) -> Path:
    """A retrained recovery model (other data, fewer trees), converted: what a CI retrain produces."""
    root = tmp_path_factory.mktemp("retrained")
    snaps = make_models.generate_snapshots(5000, seed=31)
    data = make_models.feature_table(snaps)
    features = list(m7_runtime.load(ONNX / f"{REC}.manifest.json").feature_names)
    model = xgb.XGBClassifier(n_estimators=40, max_depth=3, random_state=1, n_jobs=1)
    model.fit(data[features], make_models.labels(snaps)["recover"])
    (root / "src").mkdir()
    joblib.dump(model, root / "src" / f"{REC}.pkl")
    assert main(["convert", str(root / "src" / f"{REC}.pkl"), "--out-dir", str(root / "out"), "--rows", "300"]) == 0
    snaps.assign(snapshot_id=np.arange(5000) + 100_000).to_parquet(root / "live.parquet")
    return root


def test_diff_of_a_model_with_itself_is_zero(retrained: Path, capsys):
    manifest = ONNX / f"{REC}.manifest.json"
    assert main(["diff", str(manifest), str(manifest), "--input", str(retrained / "live.parquet"), "--json"]) == 0
    [d] = json.loads(capsys.readouterr().out)
    assert d["rows"] == 5000 and d["max_abs_diff"] == 0.0 and d["mean_abs_diff"] == 0.0
    assert d["flips"] == 0 and d["threshold"] == 0.5 and d["moved_most"] == []


def test_diff_against_a_retrained_version_gives_the_exact_numbers(retrained: Path, capsys):
    old = m7_runtime.load(ONNX / f"{REC}.manifest.json")
    new = m7_runtime.load(retrained / "out" / f"{REC}.manifest.json")
    live = pd.read_parquet(retrained / "live.parquet")
    a, b = old.score(live).astype(np.float64), new.score(live).astype(np.float64)
    argv = ["diff", str(ONNX / f"{REC}.manifest.json"), str(retrained / "out" / f"{REC}.manifest.json")]
    assert main([*argv, "--input", str(retrained / "live.parquet"), "--json", "--batch-size", "777"]) == 0
    [d] = json.loads(capsys.readouterr().out)
    assert d["max_abs_diff"] == np.abs(a - b).max() > 0
    assert d["flips"] == np.count_nonzero((a >= 0.5) != (b >= 0.5)) > 0
    assert d["mean_abs_diff"] == pytest.approx(np.abs(a - b).mean(), rel=1e-9)
    assert d["correlation"] == pytest.approx(np.corrcoef(a, b)[0, 1], rel=1e-9)
    top = int(np.argmax(np.abs(a - b)))
    assert d["moved_most"][0]["row"] == int(live["snapshot_id"][top])  # named by the id column
    # the Python API: the same numbers, and a plot for people
    [result], notes = diff_files(ONNX, retrained / "out", input=retrained / "live.parquet")
    assert result.comparison.max_abs_diff == d["max_abs_diff"] and result.comparison.flips == d["flips"]
    assert any("only in" in n for n in notes)  # the five other bundled models have no retrained version
    assert main([*argv, "--input", str(retrained / "live.parquet"), "--plot", str(retrained / "diff.png")]) == 0
    assert (retrained / "diff.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_diff_of_models_with_other_features_names_the_difference(tmp_path: Path):
    with pytest.raises(M7Error, match=r"features only in the first: \[.*'step'.*\]; only in the second: \[.*'btc_rsi'"):
        diff_files(
            ONNX / f"{REC}.manifest.json",
            ONNX / "xgb_spend_model.manifest.json",
            input=MODELS / "reference_snapshots.parquet",
        )


def test_running_comparison_over_batches_equals_one_pass():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(9000, 3)).astype(np.float32)
    b = (a + rng.normal(0, 0.05, a.shape)).astype(np.float32)
    once = compare_outputs(a, b, top=7)
    running = RunningComparison(top=7)
    for i in range(0, 9000, 1234):
        running.add(a[i : i + 1234], b[i : i + 1234])
    got = running.result()
    assert (got.rows, got.max_abs_diff, got.flips, got.moved_most) == (
        once.rows,
        once.max_abs_diff,
        once.flips,
        once.moved_most,
    )
    assert got.mean_abs_diff == pytest.approx(once.mean_abs_diff, rel=1e-12)
    assert got.correlation == pytest.approx(once.correlation, rel=1e-12)


# ---- shadow scoring ---------------------------------------------------------------------------------


def test_shadow_scoring_leaves_served_predictions_alone_and_reports_the_diff(retrained: Path, make_models):
    snapshots = make_models.generate_snapshots(6000, seed=77)
    served = m7_runtime.load(ONNX / f"{REC}.manifest.json")
    plain = m7_runtime.load(ONNX / f"{REC}.manifest.json")
    candidate = m7_runtime.load(retrained / "out" / f"{REC}.manifest.json")
    shadow = attach(served, candidate)
    rows = snapshots.iloc[:1500]
    got = [served.predict_one(r) for r in rows.to_dict("records")]
    assert got == [plain.predict_one(r) for r in rows.to_dict("records")]
    batch = snapshots.iloc[1500:6000]
    np.testing.assert_array_equal(served.score(batch), plain.score(batch))
    everything = snapshots.iloc[:6000]
    a, b = plain.score(everything).astype(np.float64), candidate.score(everything).astype(np.float64)
    stats = shadow.stats()
    assert stats.rows == 6000 and stats.max_abs_diff == np.abs(a - b).max()
    assert stats.flips == np.count_nonzero((a >= 0.5) != (b >= 0.5))
    final = shadow.detach()
    assert final.rows == 6000 and shadow not in list(served.observers)
    with pytest.raises(M7Error, match="features only in"):
        attach(served, m7_runtime.load(ONNX / "xgb_spend_model.manifest.json"))


# ---- counting never makes a prediction fail; thread safety; exactness -----------------------------


def test_counting_never_makes_a_prediction_fail(caplog):
    model = m7_runtime.load(ONNX / f"{REC}.manifest.json")
    other = m7_runtime.load(ONNX / "xgb_spend_model.manifest.json")
    broken = LiveProfile(other.manifest.reference, other.feature_names, name="wrong model")  # 19 columns, not 18
    model.add_observer(broken)
    row = json.loads((MODELS / "example_snapshot.json").read_text())
    expected = m7_runtime.load(ONNX / f"{REC}.manifest.json").predict_one(row)
    assert model.predict_one(row) == expected
    model.predict(np.zeros((3, len(model.feature_names)), np.float32))
    model.flush()
    assert "observer" in caplog.text and "failed" in caplog.text


def test_nan_inf_and_huge_batches_count_where_they_should():
    ref = build_profile(np.arange(100, dtype=np.float32).reshape(-1, 1), np.linspace(0, 1, 100), ["x"])
    live = LiveProfile(ref, ["x"], stride=8, full_rows=64)
    live.observe(np.array([[np.nan], [np.inf], [-np.inf], [50.0]], np.float32), np.zeros(4, np.float32))
    r = live.report(reset=True)
    assert r.live["x"].missing == 0.25 and r.live["x"].fractions[0] == 0.25  # NaN apart, -inf lowest
    assert r.live["x"].fractions[5] == 0.25 and r.live["x"].fractions[-1] == 0.25  # 50 in [50, 60), inf highest
    live.observe(np.zeros((6400, 1), np.float32), np.zeros(6400, np.float32))  # above full_rows: a sample
    r = live.report()
    assert (r.seen, r.rows) == (6400, 64 + (6400 - 64) // 8)


def test_reference_data_against_its_own_profile_is_exactly_zero_and_threads_count_exactly():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20_000, 4)).astype(np.float32)
    x[rng.uniform(size=x.shape) < 0.05] = np.nan
    x[:, 3] = np.round(x[:, 3])  # atoms stay whole in one bin
    y = rng.uniform(size=20_000).astype(np.float32)
    ref = build_profile(x, y, ["a", "b", "c", "d"])
    live = LiveProfile(ref, ["a", "b", "c", "d"], stride=1)

    def feed(first: int) -> None:
        for j in range(first, 20_000, 37 * 4):
            live.observe(x[j : j + 37], y[j : j + 37])

    threads = [threading.Thread(target=feed, args=(i * 37,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r = live.report()
    assert r.rows == 20_000 and set(r.features.values()) == {0.0} and r.prediction == 0.0


def test_psi_levels_and_multiclass_predictions():
    assert [level(v) for v in (None, 0.0, 0.099, 0.1, 0.25, 0.2500001)] == [
        "no data",
        "stable",
        "stable",
        "watch",
        "watch",
        "drifted",
    ]
    probs = np.array([[0.1, 0.7, 0.2], [0.8, 0.1, 0.1]], np.float32)
    np.testing.assert_array_equal(prediction_values(probs, "class"), [1.0, 0.0])  # the predicted class
    ref = build_profile(np.zeros((4, 1), np.float32), np.array([[1, 0], [0, 1], [0, 1], [1, 0]]), ["x"])
    assert ref.prediction.edges == (1.0,) and ref.prediction.fractions == (0.5, 0.5)
    assert psi(ref.prediction, ref.prediction) == 0.0


def test_drift_plot_is_a_png(normal: dict, tmp_path: Path):
    rows = normal["sample"](2000, 8)
    rows["adx"] -= 4 * normal["sigma"][list(rows.columns).index("adx")]
    rows.to_parquet(tmp_path / "live.parquet")
    argv = ["drift", str(normal["manifest"]), "--input", str(tmp_path / "live.parquet")]
    assert main([*argv, "--plot", str(tmp_path / "d.png")]) == 0
    assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("case", "of"), [("multi_softprob", "class"), ("multi_target_trees", "mean"), ("multilabel", "mean")]
)
def test_multi_output_models_profile_their_class_or_the_mean_of_their_targets(case: str, of: str, zoo_dir, tmp_path):
    from conftest import build_case
    from zoo import data

    built = build_case(case, zoo_dir)
    out = tmp_path / "out"
    convert(built.path, out_dir=out, name="m", n_random=200, reference=_frame_file(data(3000, seed=4), tmp_path))
    model = m7_runtime.load(out / "m.manifest.json")
    ref = model.manifest.reference
    assert ref.prediction_of == of and model.manifest.n_outputs > 1
    assert Manifest.loads(model.manifest.dumps()).reference == ref  # "prediction_of" round-trips
    x = data(3000, seed=4)
    model.predict(x)
    report = model.drift()
    assert report.rows == 3000 and report.prediction == 0.0 and set(report.features.values()) == {0.0}


def _frame_file(x: np.ndarray, folder: Path) -> Path:
    path = folder / "reference.parquet"
    pd.DataFrame(x, columns=[f"f{i}" for i in range(x.shape[1])]).to_parquet(path)
    return path
