"""The benchmark harness runs end to end on a tiny configuration and writes what it promises.

No timing is asserted anywhere: this machine's numbers mean nothing in a test. The test
only proves that ``python -m benchmarks`` (here ``--smoke``: a few calls, one round, one
small scaling model) produces every JSON section, the summary and the plots.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SECTIONS = ("single", "batch", "cold", "convert", "scaling")
PLOTS = ("latency.png", "throughput.png", "scaling.png", "cold_start.png")


@pytest.mark.timeout(300)
def test_harness_runs_on_a_tiny_configuration(tmp_path: Path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--quiet", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for section in SECTIONS:
        doc = json.loads((tmp_path / f"{section}.json").read_text())
        assert doc["section"] == section and doc["mode"] == "smoke"
        assert doc["machine"]["logical_cores"] >= 1 and "onnxruntime" in doc["versions"]
        assert doc["results"]
    single = json.loads((tmp_path / "single.json").read_text())["results"]["models"]["xgb_recovery_model"]
    assert {"pickle", "bare", "predict_one", "dropin"} <= set(single["paths"])
    # every single-row path computes the pickle's answer
    assert all(d < 1e-5 for d in single["max_abs_diff_vs_pickle"].values())
    summary = (tmp_path / "summary.md").read_text()
    assert "## Targets" in summary and "## Conditions" in summary
    for plot in PLOTS:
        assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", plot


def test_report_renders_without_measuring(tmp_path: Path):
    """``python -m benchmarks.report`` on an empty folder writes an empty summary, no crash."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "# Benchmark results" in (tmp_path / "summary.md").read_text()
