"""A model's life after training: the caller policy is never lost, re-conversion is deterministic,
and ``m7onnx verify`` tells a retrained source from a broken artifact with stable codes."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pytest

from conftest import MODELS, ONNX, SIX, build_case
from m7_convert import ConvertError, convert, recheck
from m7_runtime import M7Error, market7
from m7_runtime.artifact import Manifest
from m7_runtime.cli import main

SPEND = "xgb_spend_model"


def retrain(pickled: Path, *, seed: int = 3, rounds: int = 5) -> None:
    """Refit the pickled model in place on other data (a retrain in CI)."""
    model = joblib.load(pickled)
    n = model.n_features_in_
    X = np.random.default_rng(seed).normal(50, 20, size=(400, n)).astype(np.float32)
    y = X[:, 1] > 50 if hasattr(model, "predict_proba") else X[:, 1] * 2.0
    model.set_params(n_estimators=rounds).fit(X, y)
    joblib.dump(model, pickled)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """The spend pickle in a retraining folder without a spec beside it (how CI jobs hold it)."""
    folder = tmp_path / "retrain"
    folder.mkdir()
    shutil.copy(MODELS / f"{SPEND}.pkl", folder)
    return folder


# ---- policy resolution -----------------------------------------------------------


def test_a_market7_pickle_anywhere_keeps_its_bundled_policy(elsewhere: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert main(["convert", str(elsewhere / f"{SPEND}.pkl"), "--out-dir", str(out), "--rows", "200"]) == 0
    printed = capsys.readouterr().out
    assert f"{SPEND}: policy from bundled: {SPEND}.manifest.json bundled with m7_runtime" in printed
    made, bundled = Manifest.read(out / f"{SPEND}.manifest.json"), Manifest.read(ONNX / f"{SPEND}.manifest.json")
    assert made.policy == bundled.policy and made.policy.clamp_min == 0.0 and made.policy.one_hot
    assert made.features == bundled.features and made.policy_origin.kind == "bundled"
    row = json.loads((MODELS / "example_snapshot.json").read_text())
    market7.clear_cache()
    try:
        assert market7.predict_spend_volume(row, model_dir=out) == market7.predict_spend_volume(row)
        assert market7.predict_spend_volume(row, model_dir=out) is not None
    finally:
        market7.clear_cache()
    assert main(["info", str(out)]) == 0
    assert f"{SPEND}: bundled: {SPEND}.manifest.json bundled with m7_runtime" in capsys.readouterr().out


def test_spec_entries_match_by_model_name_or_file_name_wherever_the_pickle_is(elsewhere: Path, tmp_path: Path):
    spec = MODELS / "spec.toml"
    by_name = convert(elsewhere / f"{SPEND}.pkl", out_dir=tmp_path / "a", spec_path=spec, n_random=200)
    assert by_name.policy_origin.kind == "spec" and "[models.xgb_spend_model]" in by_name.policy_origin.detail
    renamed = elsewhere / "candidate.pkl"
    shutil.copy(elsewhere / f"{SPEND}.pkl", renamed)
    with_name = convert(renamed, out_dir=tmp_path / "b", name=SPEND, spec_path=spec, n_random=200)
    assert with_name.manifest.policy == by_name.manifest.policy and with_name.name == SPEND
    by_file = convert(elsewhere / f"{SPEND}.pkl", out_dir=tmp_path / "c", name="spend_v2", spec_path=spec, n_random=200)
    assert by_file.name == "spend_v2" and by_file.manifest.policy == by_name.manifest.policy
    with pytest.raises(ConvertError, match=r"has no entry \[models.candidate\] and none with source = 'candidate.pkl'"):
        convert(renamed, out_dir=tmp_path / "d", spec_path=spec, n_random=200)


def test_reconversion_inherits_the_existing_artifacts_policy(zoo_dir: Path, tmp_path: Path):
    built = build_case("named_features", zoo_dir)
    spec = tmp_path / "spec.toml"
    spec.write_text('[models.named]\ntask = "binary"\ndescription = "mine"\non_missing = "zero"\nclamp_max = 0.9\n')
    out = tmp_path / "out"
    first = convert(built.path, out_dir=out, name="named", spec_path=spec, n_random=200)
    assert first.policy_origin.kind == "spec"
    first_bytes = first.paths[-1].read_bytes()
    again = convert(built.path, out_dir=out, name="named", n_random=200)
    assert again.policy_origin.kind == "existing" and again.policy_origin.detail.startswith("named.manifest.json")
    assert again.manifest.policy_origin == first.manifest.policy_origin  # where it was defined, kept
    assert again.paths[-1].read_bytes() == first_bytes  # so re-converting the same source changes nothing
    assert again.manifest.policy == first.manifest.policy and again.manifest.description == "mine"
    assert again.manifest.policy.on_missing == "zero" and again.manifest.policy.clamp_max == 0.9


def test_a_changed_feature_list_is_refused_with_both_lists_unless_a_spec_is_given(zoo_dir: Path, tmp_path: Path):
    built = build_case("named_features", zoo_dir)
    out = tmp_path / "out"
    convert(built.path, out_dir=out, name="named", n_random=200)
    path = out / "named.manifest.json"
    features = list(Manifest.read(path).features)
    other = build_case("binary_logistic", zoo_dir)  # same width, default f0..f5 names
    renamed = json.loads(path.read_text())
    renamed["features"] = [f"x_{f}" for f in features]
    path.write_text(json.dumps(renamed))  # an artifact of another feature set under this name
    with pytest.raises(ConvertError) as err:
        convert(built.path, out_dir=out, name="named", n_random=200)
    message = str(err.value)
    assert str(features) in message and str(renamed["features"]) in message and "--spec" in message
    spec = tmp_path / "spec.toml"
    spec.write_text(f"[models.named]\nfeatures = {json.dumps(features)}\n")
    assert convert(built.path, out_dir=out, name="named", spec_path=spec, n_random=200).policy_origin.kind == "spec"
    assert convert(other.path, out_dir=out, name="named", n_random=200).manifest.features == tuple(features)


def test_an_unknown_model_gets_the_default_policy_and_says_so(zoo_dir: Path, tmp_path: Path, capsys):
    built = build_case("binary_logistic", zoo_dir)
    assert main(["convert", str(built.path), "--out-dir", str(tmp_path), "--name", "fresh", "--rows", "200"]) == 0
    assert "fresh: policy from default: features from the model; a missing feature rejects the row" in (
        capsys.readouterr().out
    )
    assert Manifest.read(tmp_path / "fresh.manifest.json").policy_origin.kind == "default"


# ---- determinism ---------------------------------------------------------------


def test_the_readme_convert_command_reproduces_the_committed_artifacts(tmp_path: Path):
    """``m7onnx convert models/*.pkl --out-dir onnx`` rewrites onnx/ byte for byte: a fresh clone stays clean."""
    models = tmp_path / "models"
    shutil.copytree(MODELS, models, ignore=shutil.ignore_patterns("__pycache__"))
    onnx = tmp_path / "onnx"
    shutil.copytree(ONNX, onnx, ignore=shutil.ignore_patterns("__pycache__", "*.py"))
    assert main(["convert", *sorted(str(p) for p in models.glob("*.pkl")), "--out-dir", str(onnx)]) == 0
    written = sorted(p.name for p in onnx.iterdir())
    assert written == sorted(p.name for p in ONNX.iterdir() if p.suffix in (".json", ".onnx"))
    changed = [name for name in written if (onnx / name).read_bytes() != (ONNX / name).read_bytes()]
    assert not changed, f"re-conversion changed {changed}"


# ---- verify: stable problem codes ------------------------------------------------


@pytest.fixture
def artifact(elsewhere: Path, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    convert(elsewhere / f"{SPEND}.pkl", out_dir=out, n_random=200)
    return out / f"{SPEND}.manifest.json"


def codes(report: dict) -> list[str]:
    return [p["code"] for p in report["problems"]]


def test_verify_passes_on_an_untouched_artifact(artifact: Path):
    report = recheck(artifact, n_random=200)
    assert report["pass"] and not report["problems"] and set(report["flavors"]) == {"tree", "tensor"}


def test_verify_source_changed_is_information_not_blame(artifact: Path, elsewhere: Path, capsys):
    pickled = elsewhere / f"{SPEND}.pkl"
    retrain(pickled)
    (problem,) = recheck(artifact, n_random=200)["problems"]
    assert problem["code"] == "source_changed"
    details = problem["details"]
    assert details["rows"] > 0 and details["max_abs_diff"] > 0 and details["flips"] is None  # a regressor
    assert "not a converter error" in problem["message"] and "m7onnx convert" in problem["message"]
    assert "stage" not in problem["message"] and "report this" not in problem["message"]
    assert main(["verify", str(artifact)]) == 3
    assert "[source_changed]" in capsys.readouterr().out


def test_verify_counts_decision_flips_of_a_retrained_classifier(tmp_path: Path):
    folder = tmp_path / "m"
    folder.mkdir()
    shutil.copy(MODELS / "xgb_recovery_model.pkl", folder)
    out = tmp_path / "out"
    convert(folder / "xgb_recovery_model.pkl", out_dir=out, n_random=300)
    old = market7.get_model("xgb_recovery_model", out)
    retrain(folder / "xgb_recovery_model.pkl")
    (problem,) = recheck(out / "xgb_recovery_model.manifest.json", n_random=300)["problems"]
    d = problem["details"]
    assert problem["code"] == "source_changed" and d["threshold"] == 0.5 and d["flips"] > 0
    # the same numbers from the two models directly: the artifact vs a conversion of the retrained pickle
    fresh = convert(folder / "xgb_recovery_model.pkl", out_dir=tmp_path / "new", n_random=300)
    new = market7.get_model("xgb_recovery_model", fresh.paths[-1].parent)
    from m7_convert.driver import build_forest
    from m7_convert.load import load_source
    from m7_convert.verify import probes

    forest, _ = build_forest(load_source(folder / "xgb_recovery_model.pkl"), None)
    X, _ = probes(forest, n_random=300).stacked()
    a, b = old.predict(X), new.predict(X)
    assert d["rows"] == len(X)
    assert d["max_abs_diff"] == pytest.approx(float(np.abs(a.astype(np.float64) - b).max()), abs=1e-6)
    assert d["flips"] == int(np.count_nonzero((a >= 0.5) != (b >= 0.5)))
    market7.clear_cache()


def test_verify_artifact_changed(artifact: Path):
    onnx_file = artifact.parent / f"{SPEND}.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[-3] ^= 1
    onnx_file.write_bytes(bytes(data))
    report = recheck(artifact, n_random=200)
    assert codes(report) == ["artifact_changed"] and report["problems"][0]["details"]["flavor"] == "tree"
    assert main(["verify", str(artifact)]) == 1


def test_verify_missing_files(artifact: Path, elsewhere: Path):
    (artifact.parent / f"{SPEND}.tensor.onnx").unlink()
    assert codes(recheck(artifact, n_random=200)) == ["missing_file"]
    (elsewhere / f"{SPEND}.pkl").unlink()
    assert codes(recheck(artifact, n_random=200)) == ["missing_file", "missing_file"]
    artifact.unlink()
    assert codes(recheck(artifact, n_random=200)) == ["missing_file"]


def test_verify_schema(artifact: Path):
    raw = json.loads(artifact.read_text())
    raw["schema_version"] = 99
    artifact.write_text(json.dumps(raw))
    assert codes(recheck(artifact, n_random=200)) == ["schema"]


def test_verify_source_unreadable(artifact: Path, elsewhere: Path):
    (elsewhere / f"{SPEND}.pkl").write_bytes(b"\x80\x04not a pickle at all")
    assert codes(recheck(artifact, n_random=200)) == ["source_unreadable"]


def test_verify_parity_when_the_source_is_unchanged_but_the_artifact_disagrees(
    artifact: Path, elsewhere: Path, tmp_path: Path
):
    """A consistent artifact (hashes and contract fine) from another model, recorded as this source: parity."""
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(elsewhere / f"{SPEND}.pkl", other)
    retrain(other / f"{SPEND}.pkl")
    wrong = convert(other / f"{SPEND}.pkl", out_dir=tmp_path / "wrong", n_random=200)
    for p in wrong.paths:
        shutil.copy(p, artifact.parent / p.name)
    raw = json.loads(artifact.read_text())  # now the other model's manifest: record this source as its own
    raw["source"]["sha256"] = hashlib.sha256((elsewhere / f"{SPEND}.pkl").read_bytes()).hexdigest()
    raw["source"]["path"] = str(elsewhere / f"{SPEND}.pkl")
    artifact.write_text(json.dumps(raw))
    report = recheck(artifact, n_random=200)
    assert codes(report) == ["parity", "parity"]  # both flavors
    assert {p["details"]["flavor"] for p in report["problems"]} == {"tree", "tensor"}
    assert main(["verify", str(artifact)]) == 1


def test_verify_json_lists_codes_for_every_bundled_model(capsys):
    assert main(["verify", str(ONNX), "--json", "--rows", "100"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in reports} == SIX and all(r["pass"] and r["problems"] == [] for r in reports)


def test_a_broken_manifest_is_not_a_traceback(tmp_path: Path, capsys):
    path = tmp_path / "x.manifest.json"
    path.write_text("{")
    assert main(["verify", str(path)]) == 1
    assert "[schema]" in capsys.readouterr().out
    with pytest.raises(M7Error):
        Manifest.read(path)
