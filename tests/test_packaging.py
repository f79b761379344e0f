"""The README's install section, in fresh environments: a wheel built from this checkout, and from a git URL.

The package is not on the public index yet, so these are the ways in. The wheel must hold
both packages with their ``py.typed``, the bundled artifacts, the SPDX license and its file,
and work with the runtime's two dependencies alone.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from conftest import ONNX, ROOT, SIX

pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def _build_wheel(source: str, out: Path) -> Path:
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", out, source])
    (wheel,) = out.glob("market7_onnx-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_wheel(str(ROOT), tmp_path_factory.mktemp("dist"))


def _check_contents(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"m7_runtime/py.typed", "m7_convert/py.typed", "m7_runtime/scoring/__init__.py"} <= names
    bundled = {f"m7_runtime/models/{p.name}" for p in ONNX.iterdir() if p.suffix in (".onnx", ".json")}
    assert bundled <= names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "License-Expression: MIT" in text.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)


def test_a_wheel_installs_and_runs_in_a_fresh_environment(wheel: Path, tmp_path: Path):
    _check_contents(wheel)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    bin_dir = venv / "bin"
    _run([bin_dir / "pip", "install", "-q", wheel, "-c", ROOT / ".ci" / "constraints.txt"])
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "M7_CONFIG": str(tmp_path / "none.json"), "HOME": str(tmp_path)}
    version = _run([bin_dir / "m7onnx", "--version"], env=env, cwd=tmp_path)
    assert version.stdout.startswith("m7onnx ")
    info = _run([bin_dir / "m7onnx", "info"], env=env, cwd=tmp_path)  # the artifacts inside the wheel
    assert all(name in info.stdout for name in SIX)
    snapshot = str(ROOT / "models" / "example_snapshot.json")
    code = (
        "import json, sys; from m7_runtime import market7; "
        "print(market7.bundled_dir()); print(market7.predict_recovery_odds(json.load(open(sys.argv[1]))))"
    )
    dropin = _run([bin_dir / "python", "-c", code, snapshot], env=env, cwd=tmp_path)
    folder, value = dropin.stdout.split()
    assert Path(folder).is_relative_to(venv) and 0.0 <= float(value) <= 1.0
    # the runtime alone: the converter's commands say which extra they need
    convert = subprocess.run(
        [bin_dir / "m7onnx", "convert", "m.pkl", "--out-dir", "o"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert convert.returncode == 2
    assert "pip install 'market7-onnx[convert]'" in convert.stderr


def test_a_git_url_builds_the_package(tmp_path: Path):
    if shutil.which("git") is None or subprocess.run(["git", "-C", ROOT, "rev-parse"]).returncode != 0:
        pytest.skip("not a git checkout")
    wheel = _build_wheel(f"git+file://{ROOT}", tmp_path)  # the committed HEAD, as `pip install git+URL` builds it
    _check_contents(wheel)
