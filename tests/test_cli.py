"""The m7onnx command: convert, verify, info, predict; exit codes and messages a CI can rely on."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import pytest
import xgboost as xgb

from conftest import MODELS, ONNX, SIX
from m7_runtime.cli import main
from zoo import data, y_binary


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recovery and spend models converted by the CLI into a fresh folder (with their sources)."""
    root = tmp_path_factory.mktemp("cli")
    src = root / "models"
    src.mkdir()
    for f in ("xgb_recovery_model.pkl", "xgb_spend_model.pkl", "spec.toml", "reference_snapshots.parquet"):
        shutil.copy(MODELS / f, src / f)
    sources = [str(src / "xgb_recovery_model.pkl"), str(src / "xgb_spend_model.pkl")]
    assert main(["convert", *sources, "--out-dir", str(root / "out"), "--flavor", "tree"]) == 0
    return root


def test_convert_writes_artifacts_named_by_the_spec(converted: Path):
    out = converted / "out"
    assert sorted(p.name for p in out.iterdir()) == [
        "xgb_recovery_model.manifest.json",
        "xgb_recovery_model.onnx",
        "xgb_spend_model.manifest.json",
        "xgb_spend_model.onnx",
    ]
    man = json.loads((out / "xgb_spend_model.manifest.json").read_text())
    assert man["input_policy"]["clamp_min"] == 0.0 and man["input_policy"]["on_missing"] == "zero"
    assert man["source"]["path"] == "../models/xgb_spend_model.pkl"


def test_verify_passes_then_fails_on_tampering_and_retraining(converted: Path, capsys):
    out, src = converted / "out", converted / "models"
    assert main(["verify", str(out)]) == 0
    assert "ok   xgb_recovery_model" in capsys.readouterr().out

    # a changed byte in the artifact
    onnx_file = out / "xgb_recovery_model.onnx"
    original = onnx_file.read_bytes()
    onnx_file.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    assert main(["verify", str(out / "xgb_recovery_model.manifest.json")]) == 1
    assert "does not match its manifest" in capsys.readouterr().out
    onnx_file.write_bytes(original)

    # a retrained pickle under the same name
    pickled = src / "xgb_recovery_model.pkl"
    kept = pickled.read_bytes()
    model = joblib.load(pickled)
    model.set_params(n_estimators=5).fit(*_recovery_data(model))
    joblib.dump(model, pickled)
    assert main(["verify", str(out), "--json"]) == 3  # stale, not broken: re-convert and commit
    report = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert not report["xgb_recovery_model"]["pass"] and report["xgb_spend_model"]["pass"]
    (problem,) = report["xgb_recovery_model"]["problems"]
    assert problem["code"] == "source_changed" and "retrained or replaced" in problem["message"]
    assert "m7onnx convert" in problem["message"] and "stage" not in problem["message"]  # no converter blame
    assert problem["details"]["rows"] > 0 and problem["details"]["max_abs_diff"] > 0
    pickled.write_bytes(kept)
    assert main(["verify", str(out)]) == 0


def _recovery_data(model):
    import numpy as np
    import pandas as pd

    X = pd.DataFrame(np.random.default_rng(3).normal(size=(300, 18)), columns=model.feature_names_in_)
    return X, (X.iloc[:, 1] > 0).astype(int)


def test_info_prints_a_table(capsys):
    assert main(["info", str(ONNX)]) == 0
    out = capsys.readouterr().out
    for name in ("xgb_recovery_model", "xgb_confidence_model", "xgb_spend_model", "safu_exit_model", "xgb_model"):
        assert name in out
    assert "pass" in out and "binary:logistic" in out


def test_predict_prints_each_model(capsys):
    assert main(["predict", str(ONNX), "--features", str(MODELS / "example_snapshot.json"), "--json"]) == 0
    values = json.loads(capsys.readouterr().out)
    assert set(values) == SIX
    assert all(isinstance(v, float) for v in values.values())
    assert values["xgb_spend_model"] >= 0.0 and 0.0 <= values["xgb_recovery_model"] <= 1.0


def test_errors_exit_nonzero_with_a_message(tmp_path: Path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a model")
    assert main(["convert", str(bad), "--out-dir", str(tmp_path / "o")]) == 1
    assert "unknown file type" in capsys.readouterr().err
    assert main(["info", str(tmp_path)]) == 2
    assert "no *.manifest.json" in capsys.readouterr().err
    X = data()
    joblib.dump(xgb.XGBClassifier(n_estimators=2).fit(X, y_binary(X)), tmp_path / "a.pkl")
    assert (
        main(["convert", str(tmp_path / "a.pkl"), str(tmp_path / "a.pkl"), "--name", "x", "--out-dir", str(tmp_path)])
        == 2
    )
    assert "--name applies to one SRC" in capsys.readouterr().err


def test_console_script_runs(tmp_path: Path):
    exe = Path(sys.executable).with_name("m7onnx")
    result = subprocess.run([str(exe), "info", str(ONNX)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "xgb_recovery_model" in result.stdout


def test_converter_arguments_have_help_and_show_their_defaults():
    """The converter registers its arguments only when converting; then every one has help, defaults shown."""
    import argparse

    from m7_runtime.cli import CONVERTER_COMMANDS, build_parser

    parser = build_parser(converter=True)
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in CONVERTER_COMMANDS:
        for action in commands[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest}"
            if action.option_strings and action.default not in (None, argparse.SUPPRESS):
                assert "default" in action.help, f"{name} {action.dest}"
    out = subprocess.run(
        [sys.executable, "-m", "m7_runtime.cli", "convert", "--help"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "--trust-pickle" in out.stdout and "(default: 2000)" in out.stdout and "(default: all)" in out.stdout
