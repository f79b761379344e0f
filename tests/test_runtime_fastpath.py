"""The single-row fast path is the slow path made cheap, never a different answer.

``predict_one`` packs rows with ``struct`` into a per-thread buffer, runs onnxruntime through
an I/O binding, counts out-of-range inputs later in one numpy pass, and clamps with Python
floats; the drop-ins remember their model per environment. Each test pins one of those
shortcuts to the plain computation it replaces.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import m7_runtime
from conftest import ONNX, SIX
from m7_runtime import market7, observe, sessions
from m7_runtime.integrity import artifact_bytes
from m7_runtime.policy import to_float


def plain_session(model: m7_runtime.Model) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    data = artifact_bytes(model.manifest, model.flavor)
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


def awkward_rows(model: m7_runtime.Model, snapshots) -> list[dict]:
    """Snapshot rows plus values that take every branch of the packing code."""
    rows = [{k: v for k, v in r.items() if v is not None} for r in snapshots.head(200).to_dict("records")]
    f = model.feature_names
    extra = [
        {n: 0 for n in f},  # ints
        {n: True for n in f},  # bools (slow path)
        {n: np.float32(1.5) for n in f},  # numpy scalars (slow path)
        {n: None for n in f},  # None -> NaN (slow path)
        {n: -0.0 for n in f},
        {n: 1e300 for n in f},  # beyond float32: numpy's cast decides (inf)
        {n: -1e300 for n in f},
        {n: 2**70 for n in f},  # big ints
        {n: 3.4028235677973366e38 for n in f},  # rounds to float32 max
    ]
    return rows + [r | {"btc_status": "bullish"} for r in extra]


def reference_row(model: m7_runtime.Model, row: dict) -> np.ndarray:
    """The row as the original code built it: policy values through numpy's float32 cast."""
    if model.policy.one_hot:
        vals = model.policy.row(model.feature_names, row)
    else:
        vals = [to_float(f, row.get(f, 0.0)) for f in model.feature_names]
    with np.errstate(over="ignore"):
        return np.asarray([vals], dtype=np.float64).astype(np.float32)


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
@pytest.mark.parametrize("name", sorted(SIX))
def test_predict_one_is_session_run_bit_for_bit(name: str, snapshots):
    model = m7_runtime.load(ONNX / f"{name}.manifest.json", provider="cpu")
    sess = plain_session(model)
    out_name = sess.get_outputs()[0].name
    for row in awkward_rows(model, snapshots):
        got = model.predict_one(row)
        x = reference_row(model, row)
        want = sess.run([out_name], {sess.get_inputs()[0].name: x})[0]
        want = model.policy.clamp(want[0]) if model.policy.clamp_min is not None else want[0]
        assert np.asarray(got, dtype=np.float32).tobytes() == np.asarray(want, dtype=np.float32).tobytes(), row


def test_spend_clamp_matches_np_clip():
    """The scalar clamp gives np.clip's answer, -0.0 and NaN included."""
    spend = m7_runtime.load(ONNX / "xgb_spend_model.manifest.json", provider="cpu")
    spend.predict_one({})
    runner = spend._local.runner
    for y in (-5.0, -0.0, 0.0, 3.5, math.nan, math.inf, -math.inf):

        def crafted(y=y):
            runner.out[...] = y

        runner.run = crafted
        got = spend.predict_one({})
        want = float(np.clip(np.float32(y), spend.policy.clamp_min, spend.policy.clamp_max))
        assert (math.isnan(got) and math.isnan(want)) or (
            got == want and math.copysign(1, got) == math.copysign(1, want)
        ), (y, got, want)


def test_out_of_range_counts_are_exact_when_read(snapshots, monkeypatch):
    monkeypatch.setattr(observe, "BATCH_ROWS", 64)  # cross the flush boundary several times
    model = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="cpu")
    rows = [{k: v for k, v in r.items() if v is not None} for r in snapshots.head(300).to_dict("records")]
    x = np.array([[r[f] for f in model.feature_names] for r in rows], dtype=np.float32)
    for r in rows:
        model.predict_one(r)
    assert len(model.observers.pending) == 300 % 64  # delivered at each boundary, the rest still queued
    outside = (x < model._range.lo) | (x > model._range.hi)
    want = {f: int(c) for f, c in zip(model.feature_names, outside.sum(axis=0), strict=True) if c}
    assert model.out_of_range == want
    assert not model.observers.pending
    model.predict_one(rows[0])
    model.out_of_range = {}  # a new period: queued rows are dropped with the old counts
    assert model.out_of_range == {}
    model.predict_one(rows[0])
    assert sum(model.out_of_range.values()) == int(outside[0].sum())


def test_out_of_range_logs_each_row_at_debug(caplog):
    model = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="cpu")
    row = dict.fromkeys(model.feature_names, 0.5) | {"rsi": 1e6}
    model.predict_one(row)  # queued: no debug logging
    with caplog.at_level(logging.DEBUG, logger="m7_runtime"):
        model.predict_one(row)
    assert sum("outside the training split range" in r.getMessage() for r in caplog.records) >= 1
    assert model.out_of_range["rsi"] == 2


def test_binding_problems_fall_back_to_session_run(monkeypatch, snapshots):
    rows = [{k: v for k, v in r.items() if v is not None} for r in snapshots.head(50).to_dict("records")]
    fast = m7_runtime.load(ONNX / "xgb_confidence_model.manifest.json", provider="cpu")
    want = [fast.predict_one(r) for r in rows]

    def broken(self):
        raise RuntimeError("no binding here")

    monkeypatch.setattr(ort.InferenceSession, "io_binding", broken)
    slow = m7_runtime.load(ONNX / "xgb_confidence_model.manifest.json", provider="cpu")
    assert [slow.predict_one(r) for r in rows] == want
    monkeypatch.undo()

    monkeypatch.setattr(sessions, "writes_like_plain", lambda run, out, plain: False)
    unchecked = m7_runtime.load(ONNX / "xgb_confidence_model.manifest.json", provider="cpu")
    assert [unchecked.predict_one(r) for r in rows] == want


def test_dropin_cache_follows_the_environment_and_the_cwd(tmp_path: Path, monkeypatch, snapshots):
    monkeypatch.delenv("M7_MODEL_DIR", raising=False)
    monkeypatch.setenv("M7_CONFIG", "/nonexistent/config.json")
    market7.clear_cache()
    row = {k: v for k, v in snapshots.head(1).to_dict("records")[0].items() if v is not None}
    expected = market7.predict_recovery_odds(row)
    assert expected is not None
    # a relative folder is resolved against the cwd on every call, never cached
    (tmp_path / "models").symlink_to(ONNX)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("M7_MODEL_DIR", "models")
    assert market7.predict_recovery_odds(row) == expected
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert market7.predict_recovery_odds(row) is None
    # an absolute folder is remembered per environment; a new value resolves again
    monkeypatch.setenv("M7_MODEL_DIR", str(tmp_path / "models"))
    assert market7.predict_recovery_odds(row) == expected
    monkeypatch.setenv("M7_MODEL_DIR", str(elsewhere))
    assert market7.predict_recovery_odds(row) is None
    market7.clear_cache()


def test_env_reader_matches_os_environ(monkeypatch):
    monkeypatch.setenv("M7_MODEL_DIR", "/x/y")
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    got = market7._env_values()
    want = tuple(os.environ.get(k) for k in market7._ENV)
    assert [None if v is None else os.fsdecode(v) for v in got] == list(want)


def test_spend_one_hot_fast_path_matches_policy_row(snapshots):
    """The zero-fill one-hot path (and its memo of encodings) is policy.row, edge cases included."""
    spend = m7_runtime.load(ONNX / "xgb_spend_model.manifest.json", provider="cpu")
    sess = plain_session(spend)
    base = {k: v for k, v in snapshots.head(1).to_dict("records")[0].items() if k != "btc_status"}
    statuses = ["bullish", "bearish", "neutral", "", "ish", "BULLISH", "sideways", None, math.nan, "nan"]
    for _ in range(2):  # the second pass reads the memo
        for status in [*statuses, "absent"]:
            row = base if status == "absent" else base | {"btc_status": status}
            x = np.asarray([spend.policy.row(spend.feature_names, row)], dtype=np.float32)
            want = max(0.0, float(sess.run(None, {sess.get_inputs()[0].name: x})[0][0]))
            assert spend.predict_one(row) == want, status
    with pytest.raises(m7_runtime.M7Error, match="btc_status"):
        spend.predict_one(base | {"btc_status": 3})
    memo = spend._state.read.memos[0]
    assert set(memo) <= {s for s in statuses if s is None or isinstance(s, str)}
