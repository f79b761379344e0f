"""The runtime reads ONNX + JSON only: no pickle-based loader is imported or used, at run time or in source.

numpy imports the ``pickle`` module itself, so "pickle is in sys.modules" proves nothing; what
is checked instead: no unpickling resolves a single global while the runtime loads all six
models and predicts (an audit hook on ``pickle.find_class``, which every unpickler calls), no
heavy or pickle-based package is imported, and the runtime's sources contain no such import
or call. In the runtime-only CI environment (no xgboost, scikit-learn, joblib or pandas
installed) the same run also proves the runtime needs nothing but numpy and onnxruntime.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import runtime_support as rs

FORBIDDEN = [
    *("xgboost", "sklearn", "joblib", "onnx", "onnxmltools", "skl2onnx"),
    *("pandas", "m7_convert", "cloudpickle", "dill"),
]


def test_loading_and_predicting_imports_and_unpickles_nothing(tmp_path: Path):
    code = textwrap.dedent(
        f"""
        import json, sys
        forbidden = {FORBIDDEN!r}
        events = {{"find_class": [], "imports": []}}

        def hook(event, args):
            if event == "pickle.find_class":
                events["find_class"].append(".".join(map(str, args)))
            elif event == "import" and str(args[0]).split(".")[0] in forbidden:
                events["imports"].append(str(args[0]))

        sys.addaudithook(hook)
        import numpy as np
        import m7_runtime
        from m7_runtime import market7

        folder = market7.bundled_dir()
        models = m7_runtime.load_dir(folder, provider="cpu")
        snap = json.load(open({str(rs.ROOT / "models" / "example_snapshot.json")!r}))
        for m in models.values():
            m.predict_one(snap)
            m.predict(np.zeros((3, len(m.feature_names)), np.float32))
            m.score({{k: [v] for k, v in snap.items()}})
        for f in (market7.predict_recovery_odds, market7.predict_confidence_score, market7.predict_spend_volume,
                  market7.predict_safu_exit, market7.predict_legacy):
            assert f(snap) is not None
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
        print(json.dumps({{"models": sorted(models), "loaded": loaded, **events}}))
        """
    )
    env = {"PATH": "/usr/bin:/bin", "M7_CONFIG": str(tmp_path / "none.json")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(report["models"]) == 6
    assert report["loaded"] == [] and report["imports"] == [], report
    assert report["find_class"] == [], f"something unpickled: {report['find_class']}"


_BANNED_IMPORT = re.compile(
    r"^\s*(?:import|from)\s+(pickle|_pickle|cPickle|joblib|xgboost|sklearn|cloudpickle|dill|shelve|marshal)\b", re.M
)
_BANNED_CALL = re.compile(
    r"(?<![\w.])(?:eval|exec|__import__)\s*\(|\b(?:np|numpy)\.load\s*\(|allow_pickle"
    r"|\b(?:pickle|joblib|marshal|dill|cloudpickle)\.(?:loads?|Unpickler)\b"
)


def test_runtime_sources_hold_no_pickle_loader():
    """A second, static check (ruff's banned-api rule in pyproject.toml is the third)."""
    sources = sorted((rs.ROOT / "runtime").glob("**/*.py"))
    assert len(sources) >= 8
    found = []
    for path in sources:
        text = path.read_text()
        found += [(path.name, m.group(0).strip()) for m in _BANNED_IMPORT.finditer(text)]
        found += [(path.name, m.group(0)) for m in _BANNED_CALL.finditer(text)]
    assert not found, found


def test_artifacts_are_onnx_and_json_only():
    suffixes = {p.suffix for p in rs.ONNX.iterdir() if p.is_file()}
    assert suffixes <= {".onnx", ".json"}, suffixes
    for manifest in rs.ONNX.glob("*.manifest.json"):
        json.loads(manifest.read_text())  # plain JSON, nothing else
