"""docs/ci.md's workflow, run for real: its shell steps, as written there, in a scratch git repository
holding stand-in pickles, with a retraining command that refits one of them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import MODELS, ROOT

DOC = ROOT / "docs" / "ci.md"
SKIPPED = {"install", "push"}  # need the network / a remote; the doc marks them "ci-test: skip"

RETRAIN = """
import sys
import joblib
import numpy as np

path = sys.argv[1]
model = joblib.load(path)
X = np.random.default_rng(11).normal(40, 25, size=(400, model.n_features_in_)).astype(np.float32)
model.set_params(n_estimators=6).fit(X, X[:, 0] > 40)
joblib.dump(model, path)
"""


def workflow() -> dict:
    text = DOC.read_text()
    block = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    for name in SKIPPED:  # the doc says why the test does not run these
        assert re.search(rf"- name: {name}\n\s+# ci-test: skip", block), name
    return yaml.safe_load(block)


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with two Market7 pickles (no spec beside them) and their committed artifacts."""
    repo = tmp_path / "repo"
    models = repo / "ml" / "models"
    models.mkdir(parents=True)
    for name in ("xgb_recovery_model", "xgb_spend_model"):
        shutil.copy(MODELS / f"{name}.pkl", models)
    (repo / "retrain.py").write_text(RETRAIN)
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    run = subprocess.run(
        [_bin("m7onnx"), "convert", *map(str, sorted(models.glob("*.pkl"))), "--out-dir", "ml/onnx"],  # as the recipe
        cwd=repo,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "models and artifacts")
    return repo


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def run_steps(repo: Path, env_overrides: dict[str, str]) -> list[str]:
    flow = workflow()
    env = {**os.environ, **{k: str(v) for k, v in flow["env"].items()}, **env_overrides}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    ran = []
    for step in flow["jobs"]["retrain"]["steps"]:
        if "run" not in step or step["name"] in SKIPPED:
            continue
        proc = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", step["run"]], cwd=repo, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, f"step {step['name']!r} failed:\n{proc.stdout}\n{proc.stderr}"
        ran.append(step["name"])
    return ran


def test_the_recipe_commits_the_reconverted_artifact_of_a_retrained_model(repo: Path):
    before = {p.name: p.read_bytes() for p in (repo / "ml" / "onnx").iterdir()}
    retrain = f"{sys.executable} retrain.py ml/models/xgb_recovery_model.pkl"
    assert run_steps(repo, {"RETRAIN": retrain}) == ["retrain", "convert", "verify", "commit"]
    log = git(repo, "log", "--format=%s")
    assert log.splitlines()[0].startswith("Retrain and re-convert models")
    changed = set(git(repo, "show", "--name-only", "--format=", "HEAD").split())
    assert "ml/models/xgb_recovery_model.pkl" in changed and "ml/onnx/xgb_recovery_model.manifest.json" in changed
    assert not any("xgb_spend_model" in f for f in changed)  # unchanged pickle: byte-identical artifacts
    after = {p.name: p.read_bytes() for p in (repo / "ml" / "onnx").iterdir()}
    assert all(after[n] == before[n] for n in before if n.startswith("xgb_spend_model"))
    manifest = json.loads((repo / "ml" / "onnx" / "xgb_spend_model.manifest.json").read_text())
    assert manifest["input_policy"]["clamp_min"] == 0.0  # the Market7 policy survived, with no spec anywhere
    report = json.loads((repo / "verify.json").read_text())
    assert all(r["pass"] for r in report)

    # a run that retrained nothing commits nothing
    head = git(repo, "rev-parse", "HEAD")
    assert run_steps(repo, {"RETRAIN": "true"}) == ["retrain", "convert", "verify", "commit"]
    assert git(repo, "rev-parse", "HEAD") == head


def test_the_pull_request_check_says_stale_with_exit_3(repo: Path):
    subprocess.run([sys.executable, "retrain.py", "ml/models/xgb_recovery_model.pkl"], cwd=repo, check=True)
    check = subprocess.run([_bin("m7onnx"), "verify", "ml/onnx"], cwd=repo, capture_output=True, text=True)
    assert check.returncode == 3, check.stdout + check.stderr
    assert "[source_changed]" in check.stdout and "m7onnx convert" in check.stdout
