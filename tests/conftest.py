"""Shared fixtures: the zoo built once per session, the bundled Market7 models, probe rows."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from m7_runtime import market7

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
ONNX = ROOT / "onnx"
SIX = {market7.RECOVERY, market7.CONFIDENCE, market7.SPEND, market7.DCA_SPEND, market7.LEGACY, market7.SAFU}
sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo import BY_NAME, Built  # noqa: E402


def import_make_models():
    """models/make_models.py is a script, not a package: import it by path."""
    spec = importlib.util.spec_from_file_location("make_models", MODELS / "make_models.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_models", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def make_models():
    return import_make_models()


@pytest.fixture(scope="session")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("zoo")


_built: dict[str, Built] = {}


def build_case(name: str, root: Path) -> Built:
    """Train and save one zoo case once per session."""
    if name not in _built:
        folder = root / name
        folder.mkdir(exist_ok=True)
        _built[name] = BY_NAME[name].build(folder)
    return _built[name]


@pytest.fixture(scope="session")
def snapshots(make_models):
    """2,000 synthetic Market7 position snapshots (a different seed from training)."""
    return make_models.generate_snapshots(2000, seed=123)


def pipeline_rows(source, booster_rows: np.ndarray) -> np.ndarray:
    """Probe rows for a Pipeline's input: booster-space rows mapped back through its steps when they invert,
    else (a ColumnTransformer) the converter's own input-space probes."""
    pre = source.preprocessor
    if hasattr(pre, "inverse_transform") and all(hasattr(s, "inverse_transform") for _, s in pre.steps):
        finite = booster_rows[np.isfinite(booster_rows).all(axis=1)]
        return np.asarray(pre.inverse_transform(finite), np.float32)
    from m7_convert.pipeline import input_space_probes

    return input_space_probes(source, 600, 0).stacked()[0]


def within_tolerance(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """The project's parity rule, elementwise: |got - ref| <= 1e-5 * max(1, |ref|)."""
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    both_nan = np.isnan(got) & np.isnan(ref)
    with np.errstate(invalid="ignore"):  # equal infinities (an exp link overflowing on both sides) agree
        return both_nan | (got == ref) | (np.abs(got - ref) <= 1e-5 * np.maximum(1.0, np.abs(ref)))


def assert_parity(got: np.ndarray, ref: np.ndarray, what: str = "") -> None:
    ok = within_tolerance(got, ref)
    if not ok.all():
        bad = np.flatnonzero(~ok.reshape(len(ok), -1).all(axis=1))[:5]
        rows = [(int(i), np.asarray(got)[i].tolist(), np.asarray(ref)[i].tolist()) for i in bad]
        raise AssertionError(f"{what}: {int((~ok).sum())} value(s) out of tolerance; first rows {rows}")
