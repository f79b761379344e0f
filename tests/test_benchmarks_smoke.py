"""The benchmark harness runs end to end on a tiny configuration and writes what it promises.

No timing is asserted anywhere: this machine's numbers mean nothing in a test. The tests
prove that ``python -m benchmarks`` (here ``--smoke``: a few calls, one round, one small
scaling model) produces every JSON section, the summary and the plots; that the targets
table in that summary is the table-driven report's, judged as its rule says; that the
generic judgement gives each verdict where it should; and that the committed
``summary.md`` is what the report renders from the committed JSON files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

if str(ROOT) not in sys.path:  # the benchmarks package lives at the top of the checkout
    sys.path.insert(0, str(ROOT))

from benchmarks import RESULTS, report, targets
from benchmarks.markdown import fmt_range

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
    check_targets_table(summary, report.load_sections(tmp_path))


def check_targets_table(summary: str, sections: dict) -> None:
    """The summary's targets table: one row per target, in order, judged by the rule on the run's JSON."""
    body = summary.split("## Targets", 1)[1].split("\n\n")[1].splitlines()[2:]
    assessed = targets.assess_all(sections)
    assert len(body) == len(targets.TARGETS) == len(assessed)
    for line, a in zip(body, assessed, strict=True):
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        assert cells[:3] == [a.goal, a.measured, targets.VERDICTS[a.verdict]], line
    by_key = {a.target.key: a for a in assessed}
    # the smoke run measures 1 and 100 rows only: the 1M-row target is not measured, and says so
    assert by_key["batch_vs_inplace"].verdict == "not measured"
    for key in ("single_vs_pickle", "single_vs_bare", "cold_speedup", "cold_rss", "convert_seconds"):
        assert by_key[key].verdict in ("met", "not met", "inconclusive"), key
    # one target recomputed by hand from the JSON: predict_one's speed-up over the pickle
    m = sections["single"]["results"]["models"]["xgb_recovery_model"]
    ratio = m["ratios"]["pickle_over_predict_one"]
    best = m["paths"]["pickle"]["p50_us"]["min"] / m["paths"]["predict_one"]["p50_us"]["min"]
    a = by_key["single_vs_pickle"]
    assert a.value == ratio and a.best == pytest.approx(best)
    assert a.measured.startswith(f"{fmt_range(ratio)}×, best-vs-best ")
    expected = {2: "met", 1: "inconclusive", 0: "not met"}[(ratio["median"] >= 30) + (best >= 30)]
    assert a.verdict == expected
    assert (a.gap is None) == (expected == "met")
    if a.gap is not None:
        assert a.gap == pytest.approx(30 / min(ratio["median"], best))


def test_judge_gives_each_verdict_and_the_gap_from_the_worse_estimate():
    assert targets.judge(12.0, 11.0, 10.0, at_least=True) == ("met", None)
    assert targets.judge(9.0, 11.0, 10.0, at_least=True) == ("inconclusive", pytest.approx(10 / 9))
    assert targets.judge(8.0, 5.0, 10.0, at_least=True) == ("not met", pytest.approx(2.0))
    assert targets.judge(1.5, 1.9, 2.0, at_least=False) == ("met", None)
    assert targets.judge(2.5, 1.9, 2.0, at_least=False) == ("inconclusive", pytest.approx(1.25))
    assert targets.judge(3.0, 4.0, 2.0, at_least=False) == ("not met", pytest.approx(2.0))


def summary(median: float, lo: float, hi: float) -> dict:
    return {"n": 3, "median": median, "min": lo, "q1": lo, "q3": hi, "max": hi}


def test_one_generic_assessment_for_ratios_and_plain_quantities():
    """Rows of data only: a speed-up, a cost and an absent path are judged by the same function."""
    docs = {
        "lab": {
            "results": {
                "ours": {"s": summary(1.0, 0.8, 1.2), "rss": summary(12.0, 9.0, 13.0)},
                "base": {"s": summary(1.1, 0.9, 1.5)},
                "speedup": summary(1.05, 0.9, 1.2),
            }
        }
    }
    common = {"section": "lab", "comparison": "ours/s", "baseline": "base/s"}
    speedup = targets.Target(
        key="speedup",
        goal="ours {op} {threshold}× base",
        threshold=1.1,
        at_least=True,
        unit="×",
        ratio="speedup",
        note="{baseline} s vs {comparison} s",
        why="base takes {baseline} s",
        **common,
    )
    a = targets.assess(speedup, docs)
    # best round vs best round: 0.9 / 0.8 = 1.125 >= 1.1, the median 1.05 < 1.1: the two straddle the threshold
    assert (a.verdict, a.best, a.gap) == ("inconclusive", pytest.approx(1.125), pytest.approx(1.1 / 1.05))
    assert a.goal == "ours ≥ 1.1× base"
    assert a.measured == "1.05 [0.9–1.2]×, best-vs-best 1.12× (1.1 s vs 1 s)"
    assert (a.why, a.gap_text) == ("base takes 1.1 s", "1.05× short")
    rss = targets.Target(
        key="rss",
        section="lab",
        goal="RSS {op} {threshold} MB",
        threshold=10.0,
        at_least=False,
        unit="MB",
        comparison="ours/rss",
    )
    a = targets.assess(rss, docs)
    # a plain quantity: the median and the best (smallest) round, 12 and 9, straddle 10
    assert (a.verdict, a.best, a.measured, a.gap_text) == ("inconclusive", 9.0, "12 [9–13] MB", "1.20× over")
    missing = targets.Target(
        key="missing", goal="x {op} {threshold}", threshold=1.0, at_least=True, unit="×", ratio="nowhere", **common
    )
    assert targets.assess(missing, docs).verdict == "not measured"
    assert targets.assess(speedup, {}).verdict == "not measured"


def test_committed_summary_is_what_the_report_renders_from_the_committed_json():
    """summary.md is written from the JSON files only: re-rendering them changes nothing."""
    sections = report.load_sections(RESULTS)
    assert set(sections) == set(SECTIONS)
    rendered = report.summary_md(sections, report.notes_link(RESULTS))
    assert rendered == (RESULTS / "summary.md").read_text()


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
