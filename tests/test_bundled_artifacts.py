"""The committed artifacts in onnx/ are exactly what the converter makes of models/: no drift."""

from __future__ import annotations

import json

import pytest

from conftest import MODELS, ONNX, SIX
from m7_convert import recheck

MANIFESTS = sorted(ONNX.glob("*.manifest.json"))


def test_all_six_are_committed():
    assert [m.name.removesuffix(".manifest.json") for m in MANIFESTS] == sorted(SIX)


@pytest.mark.parametrize("manifest", MANIFESTS, ids=[m.name.split(".")[0] for m in MANIFESTS])
def test_committed_artifact_reverifies_against_its_pickle(manifest):
    report = recheck(manifest, n_random=1000)
    assert report["pass"], report["problems"]
    recorded = json.loads(manifest.read_text())
    assert (ONNX / recorded["source"]["path"]).resolve() == (MODELS / recorded["source"]["file"]).resolve()
    assert recorded["parity"]["pass"]


def test_identical_spend_models_give_identical_artifacts():
    a = json.loads((ONNX / "xgb_spend_model.manifest.json").read_text())
    b = json.loads((ONNX / "xgb_dca_spend_model.manifest.json").read_text())
    assert a["flavors"] == {
        k: {**v, "file": v["file"].replace("xgb_dca_spend_model", "xgb_spend_model")} for k, v in b["flavors"].items()
    }
