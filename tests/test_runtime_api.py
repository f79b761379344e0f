"""m7_runtime's public contract on the bundled artifacts: loading, inputs, outputs, policy, errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

import m7_runtime
from conftest import MODELS, ONNX, SIX, assert_parity
from m7_runtime import M7Error


@pytest.fixture(scope="module")
def models() -> dict[str, m7_runtime.Model]:
    return m7_runtime.load_dir(ONNX, provider="cpu")


@pytest.fixture(scope="module")
def pickles() -> dict:
    return {p.stem: joblib.load(p) for p in MODELS.glob("*.pkl")}


def _source_predict(model, X: pd.DataFrame) -> np.ndarray:
    return model.predict_proba(X)[:, 1] if hasattr(model, "predict_proba") else model.predict(X)


def test_load_accepts_manifest_or_onnx_path():
    a = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="cpu")
    b = m7_runtime.load(ONNX / "xgb_recovery_model.onnx", provider="cpu")
    assert a.name == b.name == "xgb_recovery_model"
    assert a.feature_names == b.feature_names and len(a.feature_names) == 18
    assert a.provider == "cpu" and a.flavor == "tree" and a.task == "binary"
    assert a.manifest.schema_version == 2
    assert "xgb_recovery_model" in repr(a)


def test_load_dir_shares_sessions_of_identical_artifacts(models):
    assert set(models) == SIX
    assert models["xgb_spend_model"]._state.sessions is models["xgb_dca_spend_model"]._state.sessions
    assert models["xgb_spend_model"]._state.sessions is not models["xgb_recovery_model"]._state.sessions


@pytest.mark.parametrize(
    "name", ["xgb_recovery_model", "xgb_confidence_model", "xgb_spend_model", "xgb_model", "safu_exit_model"]
)
def test_predict_equals_the_pickle_on_snapshots(name, models, pickles, snapshots, make_models):
    table = make_models.feature_table(snapshots)
    model = models[name]
    X = table[list(model.feature_names)]
    expected = _source_predict(pickles[name], X)
    assert_parity(model.predict(X.to_numpy(np.float32)), expected, f"{name} array")
    assert_parity(model.predict(X), expected, f"{name} DataFrame")
    shuffled = {c: X[c].to_numpy() for c in reversed(X.columns)} | {"unrelated": np.zeros(len(X))}
    assert_parity(model.predict(shuffled), expected, f"{name} mapping, reordered")
    assert_parity(model.predict(X.to_numpy(np.float64)), expected, f"{name} float64")


def test_output_shapes_and_dtypes(models):
    m = models["xgb_recovery_model"]
    out = m.predict(np.zeros((5, 18), np.float32))
    assert out.shape == (5,) and out.dtype == np.float32
    empty = m.predict(np.zeros((0, 18), np.float32))
    assert empty.shape == (0,) and empty.dtype == np.float32
    ints = m.predict(np.ones((3, 18), dtype=np.int64))
    np.testing.assert_array_equal(ints, m.predict(np.ones((3, 18), np.float32)))


def test_large_batch_is_chunked_across_threads_without_changing_results(models):
    m = models["xgb_spend_model"]
    X = np.random.default_rng(0).normal(50, 30, (20_000, 19)).astype(np.float32)
    whole = m.predict(X)
    from m7_runtime.state import run

    state = m._state
    pieces = np.concatenate([run(state, state.sessions.get(), X[i : i + 1000]) for i in range(0, len(X), 1000)])
    np.testing.assert_array_equal(whole, pieces)


def test_predict_errors_name_the_problem(models):
    m = models["xgb_recovery_model"]
    with pytest.raises(M7Error, match=r"expected 18 columns.*got 17"):
        m.predict(np.zeros((2, 17)))
    with pytest.raises(M7Error, match=r"2-D array.*shape \(18,\).*predict_one"):
        m.predict(np.zeros(18))
    with pytest.raises(M7Error, match="lacks column"):
        m.predict({"step": np.zeros(3)})
    with pytest.raises(M7Error, match="not numeric"):
        m.predict(np.full((1, 18), "x"))


def test_predict_one_equals_predict_and_the_pickle(models, pickles, snapshots, make_models):
    table = make_models.feature_table(snapshots).head(200)
    for name in ("xgb_recovery_model", "xgb_confidence_model", "xgb_model", "safu_exit_model"):
        model = models[name]
        X = table[list(model.feature_names)]
        batch = model.predict(X)
        ones = np.array([model.predict_one(dict(zip(X.columns, row, strict=True))) for row in X.to_numpy()])
        np.testing.assert_array_equal(ones.astype(np.float32), batch)
        assert_parity(ones, _source_predict(pickles[name], X), name)


def test_predict_one_policies(models):
    recovery, spend = models["xgb_recovery_model"], models["xgb_spend_model"]
    with pytest.raises(M7Error) as err:
        recovery.predict_one({"step": 1, "rsi": 30.0})
    message = str(err.value)
    assert "'entry_score'" in message and "'snapshot_min_rsi'" in message and "'rsi'" not in message.split("[")[1]
    # zero-fill + one-hot + clamp
    zero = spend.predict_one({})
    as_zeros = spend.predict(np.array([[0.0] * 15 + [0.0, 0.0, 0.0, 1.0]], np.float32))[0]
    assert zero == pytest.approx(max(0.0, float(as_zeros)), abs=0)
    bullish = spend.predict_one({"btc_status": "bullish"})
    assert bullish == max(0.0, float(spend.predict(np.array([[0.0] * 15 + [1.0, 0, 0, 0]], np.float32))[0]))
    # extra keys are ignored
    full = {f: 1.0 for f in recovery.feature_names}
    assert recovery.predict_one(full | {"extra": "ignored", "another": None}) == recovery.predict_one(full)
    with pytest.raises(M7Error, match="mapping"):
        recovery.predict_one([1.0] * 18)


def test_score_is_predict_one_column_wise(models, snapshots):
    spend = models["xgb_spend_model"]
    df = snapshots.head(300).drop(columns=["tp1_shift"])  # zero-filled
    col = spend.score(df)
    rows = df.to_dict("records")
    one = np.array(
        [
            spend.predict_one({k: v for k, v in r.items() if not (k == "btc_status" and not isinstance(v, str))})
            for r in rows
        ]
    )
    np.testing.assert_array_equal(col, one.astype(np.float32))
    assert (col >= 0).all()
    with pytest.raises(M7Error, match="missing column"):
        models["xgb_recovery_model"].score(df.drop(columns=["rsi"]))


def test_out_of_range_inputs_are_counted_never_rejected(models, caplog):
    m = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="cpu")
    row = {f: 0.5 for f in m.feature_names} | {"rsi": 1e6}
    with caplog.at_level(logging.DEBUG, logger="m7_runtime"):
        y = m.predict_one(row)
    assert 0.0 <= y <= 1.0
    assert m.out_of_range.get("rsi") == 1
    assert any("outside the training split range" in r.getMessage() for r in caplog.records)


def test_provider_validation_and_cuda_fallback():
    with pytest.raises(M7Error, match="provider must be"):
        m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="gpu")
    with pytest.raises(M7Error, match="flavor 'nope'"):
        m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", flavor="nope")


def test_artifact_problems_raise_m7error(tmp_path: Path):
    for f in ONNX.glob("xgb_recovery_model*"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    onnx_file = tmp_path / "xgb_recovery_model.onnx"  # the tree flavor (beside .tensor.onnx and .tensor-cpu.onnx)
    manifest = tmp_path / "xgb_recovery_model.manifest.json"
    data = onnx_file.read_bytes()
    onnx_file.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    with pytest.raises(M7Error, match=r"does not match its manifest: sha256 [0-9a-f]{64} but .* says [0-9a-f]{64}"):
        m7_runtime.load(manifest, flavor="tree")
    onnx_file.write_bytes(data)
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(raw | {"schema_version": 99}))
    with pytest.raises(M7Error, match="schema_version 99"):
        m7_runtime.load(manifest)
    with pytest.raises(M7Error, match="does not exist"):
        m7_runtime.load(tmp_path / "other.manifest.json")


def test_thread_safety_of_one_shared_model(models, snapshots):
    from concurrent.futures import ThreadPoolExecutor

    m = models["xgb_confidence_model"]
    rows = [{k: v for k, v in r.items() if k in m.feature_names} for r in snapshots.head(400).to_dict("records")]
    sequential = [m.predict_one(r) for r in rows]
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(m.predict_one, rows))
    assert parallel == sequential


def test_runtime_imports_nothing_heavy_in_a_fresh_interpreter():
    """import m7_runtime + load all six + predict: numpy and onnxruntime only."""
    code = textwrap.dedent(
        f"""
        import sys, json, numpy as np
        import m7_runtime
        from m7_runtime import market7
        models = m7_runtime.load_dir({str(ONNX)!r}, provider="cpu")
        snap = json.load(open({str(MODELS / "example_snapshot.json")!r}))
        for m in models.values():
            m.predict_one(snap)
            m.predict(np.zeros((3, len(m.feature_names)), np.float32))
        assert market7.predict_recovery_odds(snap, model_dir={str(ONNX)!r}) is not None
        heavy = ["xgboost", "sklearn", "joblib", "onnxmltools", "skl2onnx", "pandas", "onnx", "m7_convert"]
        print(json.dumps([h for h in heavy if h in sys.modules]))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_predict_proba_is_xgboosts_predict_proba(models, pickles, snapshots, make_models, zoo_dir):
    """Binary: (n, 2) = [1 - p, p] in float32, as xgboost's sklearn wrapper computes it; multiclass: (n, k)."""
    from conftest import build_case
    from m7_convert import convert

    X = snapshots[list(models["xgb_recovery_model"].feature_names)].astype("float32")
    got = models["xgb_recovery_model"].predict_proba(X.to_numpy())
    want = pickles["xgb_recovery_model"].predict_proba(X)
    assert got.shape == (len(X), 2) and got.dtype == np.float32
    assert_parity(got, want, "recovery predict_proba")
    np.testing.assert_array_equal(got[:, 0], np.float32(1) - got[:, 1])
    built = build_case("multi_softprob", zoo_dir)
    multi = m7_runtime.load(convert(built.path, out_dir=zoo_dir / "proba", n_random=100).paths[-1], provider="cpu")
    rows = np.random.default_rng(0).normal(size=(50, len(multi.feature_names))).astype(np.float32)
    assert_parity(multi.predict_proba(rows), built.model.predict_proba(rows), "multiclass predict_proba")
    with pytest.raises(M7Error, match="predict_proba needs a classifier that predicts probabilities"):
        models["xgb_spend_model"].predict_proba(rows[:, :1].repeat(19, axis=1))


def test_onnxruntime_provider_names_and_session_options():
    import onnxruntime as ort

    named = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="CPUExecutionProvider")
    assert named.provider == "cpu"
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    mine = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="cpu", options=opts)
    used = mine._state.sessions.get().get_session_options()
    assert used.graph_optimization_level == ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    X = np.random.default_rng(2).normal(40, 20, (100, 18)).astype(np.float32)
    np.testing.assert_array_equal(mine.predict(X), named.predict(X))
    with pytest.raises(M7Error, match="CUDAExecutionProvider"):
        m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="TensorrtExecutionProvider")


def test_out_of_range_is_a_copy_safe_to_read_while_another_thread_counts(models):
    import threading

    model = m7_runtime.load(ONNX / "xgb_recovery_model.manifest.json", provider="cpu")
    row = dict.fromkeys(model.feature_names, 0.5)
    stop = threading.Event()

    def predict() -> None:
        i = 0
        while not stop.is_set():
            model.predict_one(row | {model.feature_names[i % 18]: 1e9})  # a new feature out of range each time
            i += 1

    t = threading.Thread(target=predict)
    t.start()
    try:
        for _ in range(300):
            counts = model.out_of_range
            sum(counts.values())  # iterating a live dict here raised "dictionary changed size during iteration"
            counts["mine"] = 1  # and a copy is the caller's
    finally:
        stop.set()
        t.join()
    assert "mine" not in model.out_of_range


def test_pyarrow_tables_are_read_by_column_name(models, snapshots):
    import pyarrow as pa

    spend = models["xgb_spend_model"]
    table = pa.Table.from_pandas(snapshots.head(300), preserve_index=False)
    np.testing.assert_array_equal(spend.score(table), spend.score(snapshots.head(300)))
    rec = models["xgb_recovery_model"]
    np.testing.assert_array_equal(rec.predict(table), rec.predict(snapshots.head(300)))
    with pytest.raises(M7Error, match=r"lacks column\(s\) \['rsi'\]"):
        rec.predict(table.drop(["rsi"]))


class _Raises:
    def __float__(self) -> float:
        raise RuntimeError("no float here")

    def __array__(self, *args, **kwargs):
        raise RuntimeError("no array here")


class _BrokenMapping(dict):
    def __getitem__(self, key):
        raise RuntimeError("broken mapping")

    def get(self, key, default=None):
        raise RuntimeError("broken mapping")


@pytest.mark.parametrize("name", ["xgb_recovery_model", "xgb_spend_model"])
def test_inputs_that_raise_inside_are_m7errors(models, name):
    from m7_runtime import market7

    model = models[name]
    row = dict.fromkeys(model.feature_names, 1.0)
    with pytest.raises(M7Error, match="cannot read the features"):
        model.predict_one(_BrokenMapping(row))
    with pytest.raises(M7Error):
        model.predict_one(row | {model.feature_names[3]: _Raises()})
    with pytest.raises(M7Error, match="cannot read the input"):
        model.predict(_Raises())
    cells = np.empty((1, len(model.feature_names)), dtype=object)
    cells[0, :] = 1.0
    cells[0, 2] = _Raises()  # its __float__ raises
    with pytest.raises(M7Error):
        model.predict(cells)
    drop_in = {"xgb_recovery_model": market7.predict_recovery_odds, "xgb_spend_model": market7.predict_spend_volume}
    assert drop_in[name](_BrokenMapping(row)) is None
