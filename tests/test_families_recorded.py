"""The runtime-only family fixtures are what today's converter and xgboost say (no stale recording).

tests/runtime_only/test_rt_families.py runs these artifacts without xgboost; here each one is
re-verified against its source model (``m7onnx verify``: hashes, contract, parity) and its
recorded predictions are recomputed with the installed xgboost.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from m7_convert import load_source, recheck
from m7_convert.verify import xgboost_predict

FAMILIES = Path(__file__).resolve().parent / "runtime_only" / "families"
CASES = sorted(p.name for p in FAMILIES.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_recorded_family_reverifies_against_its_source(case: str):
    folder = FAMILIES / case
    report = recheck(folder / f"{case}.manifest.json", n_random=200)
    assert report["pass"], report["problems"]
    recorded = np.load(folder / "reference.npz")
    source = load_source(report["source"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_array_equal(xgboost_predict(source, recorded["X"]), recorded["y"])
