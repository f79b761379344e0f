"""Batch scoring (issue 8): both engines on real files and a real LocalCluster, no mocks.

The reference for every prediction is the runtime itself: ``Model.predict`` on a feature
matrix built independently of the policy code (the training script's one-hot), and
``Model.score``/``predict_one`` for the caller policy. Engines must agree exactly: they run
the same float32 inputs through the same single-threaded sessions.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq
import pytest

import m7_runtime
from conftest import MODELS, ONNX, ROOT, build_case, import_make_models
from m7_runtime import M7Error
from m7_runtime.cli import main as cli_main
from m7_runtime.market7 import CONFIDENCE, DCA_SPEND, LEGACY, RECOVERY, SAFU, SPEND
from m7_runtime.scoring import ScoreResult, score_file
from m7_runtime.scoring.inputs import csv_options, parquet_files
from m7_runtime.scoring.output import TMP_MARK

ALL = [RECOVERY, CONFIDENCE, SPEND, DCA_SPEND, SAFU, LEGACY]
ROWS_PER_FILE = 2000
N_FILES = 3


# ---- data ----------------------------------------------------------------------------------


def _json_value(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v


def write_jsonl(df: pd.DataFrame, path: Path) -> None:
    """Exact JSON Lines (Python's repr of floats round-trips), null for None/NaN."""
    with open(path, "w", encoding="utf-8") as f:
        for row in df.to_dict(orient="records"):
            f.write(json.dumps({k: _json_value(v) for k, v in row.items()}) + "\n")


def read_output(path: Path) -> pd.DataFrame:
    """An output file or Dask part folder, as the engines wrote it."""
    if path.is_dir():
        table = pq.read_table(parquet_files(path))
    elif path.suffix == ".parquet":
        table = pq.read_table(path)
    elif path.suffix == ".csv":
        table = pcsv.read_csv(path, convert_options=csv_options())
    else:
        table = pjson.read_json(path)
    return table.to_pandas()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    mm = import_make_models()
    parts = []
    for i in range(N_FILES):
        df = mm.generate_snapshots(ROWS_PER_FILE, seed=900 + i)
        df.insert(0, "row_id", np.arange(i * ROWS_PER_FILE, (i + 1) * ROWS_PER_FILE) * 7 + 3)
        parts.append(df)
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="module")
def data(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same rows as a multi-file Parquet folder (small row groups), one Parquet file, CSV and JSONL."""
    root = tmp_path_factory.mktemp("batch_data")
    folder = root / "snapshots"
    folder.mkdir()
    for i in range(N_FILES):
        part = frame.iloc[i * ROWS_PER_FILE : (i + 1) * ROWS_PER_FILE]
        pq.write_table(
            pa.Table.from_pandas(part, preserve_index=False), folder / f"part.{i}.parquet", row_group_size=500
        )
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / "all.parquet", row_group_size=700)
    frame.to_csv(root / "all.csv", index=False)
    write_jsonl(frame, root / "all.jsonl")
    return {"folder": folder, "parquet": root / "all.parquet", "csv": root / "all.csv", "jsonl": root / "all.jsonl"}


@pytest.fixture(scope="module")
def models() -> dict[str, m7_runtime.Model]:
    return m7_runtime.load_dir(ONNX, provider="cpu")


@pytest.fixture(scope="module")
def cluster():
    """One real LocalCluster (2 processes x 1 thread) shared by the Dask tests."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
    ) as lc:
        yield lc.scheduler_address


def reference(models: dict[str, m7_runtime.Model], frame: pd.DataFrame, name: str) -> np.ndarray:
    """Model.predict on a matrix built without the runtime's policy code, then the callers' clamp."""
    mm = import_make_models()
    model = models[name]
    table = pd.concat(
        [frame.reset_index(drop=True), mm.btc_one_hot(frame["btc_status"].reset_index(drop=True))], axis=1
    )
    y = model.predict(table[list(model.feature_names)].to_numpy(dtype=np.float64))
    return np.maximum(y, 0.0) if model.policy.clamp_min == 0.0 else y


def _strings(column: pd.Series) -> list:
    """Strings with None for missing, whatever missing marker this pandas version uses."""
    return [v if isinstance(v, str) else None for v in column]


def score(models_, **kwargs) -> ScoreResult:
    kwargs.setdefault("model_dir", ONNX)
    kwargs.setdefault("progress", False)
    return score_file(models_, **kwargs)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TMP_MARK in p.name)


# ---- both engines against Model.predict ------------------------------------------------------


def test_local_engine_on_multifile_parquet_equals_model_predict(data, frame, models, tmp_path):
    out = tmp_path / "scored.parquet"
    result = score(ALL, input=data["folder"], output=out, keep=["row_id"], batch_size=700)
    got = read_output(out)
    assert list(got.columns) == ["row_id", *ALL]
    assert got["row_id"].tolist() == frame["row_id"].tolist()  # order and ids preserved across files
    for name in ALL:
        np.testing.assert_array_equal(got[name].to_numpy(), reference(models, frame, name), err_msg=name)
        np.testing.assert_array_equal(got[name].to_numpy(), models[name].score(frame), err_msg=name)
    assert result.rows == len(frame)
    assert result.chunks >= len(frame) // 700
    assert result.max_chunk_rows <= 700
    assert got[SPEND].min() >= 0.0


def test_dask_engine_on_multifile_parquet_equals_model_predict(data, frame, models, tmp_path, cluster):
    out = tmp_path / "scored.parquet"
    result = score(ALL, input=data["folder"], output=out, engine="dask", scheduler=cluster, keep=["row_id"])
    assert out.is_dir()
    assert sorted(p.name for p in out.iterdir())[0] == "part.000000.parquet"
    got = read_output(out)
    assert list(got.columns) == ["row_id", *ALL]
    assert got["row_id"].tolist() == frame["row_id"].tolist()
    for name in ALL:
        np.testing.assert_array_equal(got[name].to_numpy(), reference(models, frame, name), err_msg=name)
    assert result.engine == "dask"
    assert result.rows == len(frame)
    assert result.chunks >= 1
    assert leftovers(tmp_path) == []


def test_dask_engine_starts_and_stops_its_own_local_cluster(data, frame, models, tmp_path):
    out = tmp_path / "scored.parquet"
    result = score([RECOVERY], input=data["parquet"], output=out, engine="dask", workers=1, keep=["row_id"])
    got = read_output(out)
    assert result.rows == len(frame)
    np.testing.assert_array_equal(got[RECOVERY].to_numpy(), reference(models, frame, RECOVERY))


# ---- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "src", "dst"),
    [
        ("local", "csv", "csv"),
        ("local", "csv", "jsonl"),
        ("local", "jsonl", "parquet"),
        ("local", "jsonl", "jsonl"),
        ("local", "parquet", "csv"),
        ("dask", "csv", "parquet"),
        ("dask", "jsonl", "csv"),
        ("dask", "parquet", "jsonl"),
    ],
)
def test_formats_in_and_out(engine, src, dst, data, frame, models, tmp_path, request):
    kwargs = {"engine": engine}
    if engine == "dask":
        kwargs["scheduler"] = request.getfixturevalue("cluster")
    out = tmp_path / f"scored.{dst}"
    # small batches: the Dask engine splits text files into several byte-range partitions
    result = score(
        [SPEND, RECOVERY], input=data[src], output=out, keep=["row_id", "btc_status"], batch_size=1500, **kwargs
    )
    got = read_output(out)
    assert list(got.columns) == ["row_id", "btc_status", SPEND, RECOVERY]
    assert got["row_id"].tolist() == frame["row_id"].tolist()
    for name in (SPEND, RECOVERY):
        np.testing.assert_array_equal(
            got[name].to_numpy(dtype=np.float32), reference(models, frame, name), err_msg=name
        )
    assert result.rows == len(frame)
    if engine == "dask" and src != "parquet":
        assert result.chunks >= 3


def test_dask_and_local_write_identical_text(data, tmp_path, cluster):
    for fmt in ("csv", "jsonl"):
        local, dask = tmp_path / f"l.{fmt}", tmp_path / f"d.{fmt}"
        score([SPEND], input=data["folder"], output=local)
        score([SPEND], input=data["folder"], output=dask, engine="dask", scheduler=cluster, batch_size=1000)
        assert local.read_bytes() == dask.read_bytes(), fmt


def test_keep_selects_and_orders_columns(data, frame, tmp_path):
    out = tmp_path / "k.parquet"
    score([CONFIDENCE], input=data["parquet"], output=out, keep=["btc_status", "row_id"])
    got = read_output(out)
    assert list(got.columns) == ["btc_status", "row_id", CONFIDENCE]
    assert _strings(got["btc_status"]) == _strings(frame["btc_status"])
    out2 = tmp_path / "only.parquet"
    score([CONFIDENCE], input=data["parquet"], output=out2, keep=[])
    assert list(read_output(out2).columns) == [CONFIDENCE]
    out3 = tmp_path / "all.parquet"
    score([CONFIDENCE], input=data["parquet"], output=out3)
    assert list(read_output(out3).columns) == [*frame.columns, CONFIDENCE]


# ---- chained models ------------------------------------------------------------------------------


def test_spend_takes_recovery_odds_from_the_recovery_model_when_the_input_lacks_it(frame, models, tmp_path):
    src = tmp_path / "no_recovery_odds.parquet"
    pq.write_table(pa.Table.from_pandas(frame.drop(columns=["recovery_odds"]), preserve_index=False), src)
    out = tmp_path / "chained.parquet"
    result = score([SPEND, DCA_SPEND, RECOVERY], input=src, output=out, keep=["row_id"], batch_size=1000)
    assert result.models.index(RECOVERY) < result.models.index(SPEND)  # run order follows the spec's upstream
    got = read_output(out)
    assert list(got.columns) == ["row_id", SPEND, DCA_SPEND, RECOVERY]  # output order is the order asked
    # computing them first and then spend, by hand:
    by_hand = frame.drop(columns=["recovery_odds"]).assign(recovery_odds=models[RECOVERY].score(frame))
    for name in (SPEND, DCA_SPEND):
        np.testing.assert_array_equal(got[name].to_numpy(), models[name].score(by_hand), err_msg=name)
        np.testing.assert_array_equal(got[name].to_numpy(), reference(models, by_hand, name), err_msg=name)
    # and it matters: with the input's own recovery_odds the spend differs
    assert not np.array_equal(got[SPEND].to_numpy(), models[SPEND].score(frame))


def test_spend_takes_confidence_from_the_confidence_model_when_the_input_lacks_it(frame, models, tmp_path):
    src = tmp_path / "no_confidence.csv"
    frame.drop(columns=["confidence_score"]).to_csv(src, index=False)
    out = tmp_path / "chained.jsonl"
    score([SPEND, CONFIDENCE], input=src, output=out, keep=[])
    by_hand = frame.drop(columns=["confidence_score"]).assign(confidence_score=models[CONFIDENCE].score(frame))
    np.testing.assert_array_equal(read_output(out)[SPEND].to_numpy(dtype=np.float32), models[SPEND].score(by_hand))


def test_the_input_column_wins_over_an_upstream_model(frame, models, tmp_path):
    out = tmp_path / "o.parquet"
    score([SPEND, RECOVERY, CONFIDENCE], input=_parquet(frame, tmp_path), output=out, keep=[])
    np.testing.assert_array_equal(read_output(out)[SPEND].to_numpy(), models[SPEND].score(frame))


def test_recovery_needs_confidence_score_from_the_input_as_its_spec_declares_no_upstream(frame, tmp_path):
    """The bundled spec: recovery reads a confidence_score column but declares no producer for it."""
    src = _parquet(frame.drop(columns=["recovery_odds", "confidence_score"]), tmp_path)
    out = tmp_path / "o.parquet"
    with pytest.raises(M7Error) as err:
        score([RECOVERY, CONFIDENCE, SPEND], input=src, output=out)
    msg = str(err.value)
    assert "xgb_recovery_model: ['confidence_score']" in msg
    assert "declares no upstream" in msg
    assert "[models.xgb_recovery_model.upstream]" in msg
    assert not out.exists()


def _model_dir_with(tmp_path: Path, upstream: dict[str, dict[str, str]]) -> Path:
    """A copy of the bundled artifacts re-issued with other upstream features declared.

    As if re-converted from a spec declaring them: the policy is part of the contract stamped
    into each ONNX file, so the files are re-stamped and their hashes updated.
    """
    import hashlib

    import onnx

    from m7_convert.write import stamp_contract
    from m7_runtime.artifact import Manifest

    folder = tmp_path / "models"
    folder.mkdir()
    for f in ONNX.iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    for name, ups in upstream.items():
        path = folder / f"{name}.manifest.json"
        manifest = json.loads(path.read_text())
        manifest["input_policy"]["upstream"] = ups
        path.write_text(json.dumps(manifest))
        contract = Manifest.read(path).contract_text
        for entry in manifest["flavors"].values():
            artifact = folder / entry["file"]
            data = stamp_contract(onnx.load(artifact), contract).SerializeToString()
            artifact.write_bytes(data)
            entry["sha256"] = hashlib.sha256(data).hexdigest()
        path.write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_three_level_chain_declared_in_the_manifests(engine, frame, tmp_path, request):
    """Declare recovery's confidence_score as the confidence model's output: confidence -> recovery -> spend."""
    folder = _model_dir_with(tmp_path, {RECOVERY: {"confidence_score": CONFIDENCE}})
    chained = m7_runtime.load_dir(folder, provider="cpu")
    src = _parquet(frame.drop(columns=["recovery_odds", "confidence_score"]), tmp_path)
    out = tmp_path / "o.parquet"
    kwargs = {"scheduler": request.getfixturevalue("cluster")} if engine == "dask" else {}
    result = score(
        [SPEND, RECOVERY, CONFIDENCE], input=src, output=out, keep=[], model_dir=folder, engine=engine, **kwargs
    )
    assert result.models == (CONFIDENCE, RECOVERY, SPEND)
    got = read_output(out)
    step1 = frame.drop(columns=["recovery_odds", "confidence_score"])
    step1 = step1.assign(confidence_score=chained[CONFIDENCE].score(step1))
    step2 = step1.assign(recovery_odds=chained[RECOVERY].score(step1))
    np.testing.assert_array_equal(got[CONFIDENCE].to_numpy(), step1["confidence_score"].to_numpy())
    np.testing.assert_array_equal(got[RECOVERY].to_numpy(), step2["recovery_odds"].to_numpy())
    np.testing.assert_array_equal(got[SPEND].to_numpy(), chained[SPEND].score(step2))


def test_an_upstream_cycle_is_refused(frame, tmp_path):
    folder = _model_dir_with(
        tmp_path, {RECOVERY: {"confidence_score": CONFIDENCE}, CONFIDENCE: {"macd_histogram": RECOVERY}}
    )
    src = _parquet(frame.drop(columns=["confidence_score", "macd_histogram"]), tmp_path)
    with pytest.raises(M7Error, match="cycle"):
        score([RECOVERY, CONFIDENCE], input=src, output=tmp_path / "o.parquet", model_dir=folder)


def test_zero_filled_upstream_features_are_noted(frame, tmp_path, caplog):
    src = _parquet(frame.drop(columns=["recovery_odds"]), tmp_path)
    result = score([SPEND], input=src, output=tmp_path / "o.parquet")
    assert any("['recovery_odds']" in n and "score xgb_recovery_model" in n for n in result.notes)
    assert any("recovery_odds" in r.getMessage() for r in caplog.records)


def _parquet(df: pd.DataFrame, tmp_path: Path, name: str = "in.parquet") -> Path:
    path = tmp_path / name
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    return path


# ---- the policy, column-wise vs predict_one row by row ----------------------------------------------

STATUSES = [None, float("nan"), "", "ish", "sideways", "BULLISH", "bullish", "bearish", "neutral", "nan"]


def _policy_rows(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame.iloc[: len(STATUSES) * 4].copy().reset_index(drop=True)
    rows["btc_status"] = pd.array([STATUSES[i % len(STATUSES)] for i in range(len(rows))], dtype=object)
    rng = np.random.default_rng(3)
    numeric = [c for c in rows.columns if c not in ("btc_status", "row_id")]
    for c in numeric:  # missing values scattered everywhere
        rows.loc[rng.random(len(rows)) < 0.15, c] = np.nan
    return rows


def _as_mapping(row: pd.Series, drop: tuple[str, ...] = ()) -> dict:
    return {k: _json_value(v) if not isinstance(v, str) else v for k, v in row.items() if k not in drop}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_columnwise_policy_equals_predict_one_row_by_row(fmt, frame, models, tmp_path):
    rows = _policy_rows(frame)
    src = tmp_path / f"rows.{fmt}"
    if fmt == "parquet":
        _parquet(rows, tmp_path, src.name)
    else:
        write_jsonl(rows, src)
    out = tmp_path / "o.parquet"
    score(ALL, input=src, output=out, keep=["btc_status"])
    got = read_output(out)
    assert _strings(got["btc_status"])[:10] == [
        None,
        None,
        "",
        "ish",
        "sideways",
        "BULLISH",
        "bullish",
        "bearish",
        "neutral",
        "nan",
    ]
    for name in ALL:
        expected = np.array([models[name].predict_one(_as_mapping(r)) for _, r in rows.iterrows()], dtype=np.float32)
        np.testing.assert_array_equal(got[name].to_numpy(), expected, err_msg=name)


def test_absent_columns_equal_absent_keys(frame, models, tmp_path):
    """A column missing from the whole input is an absent key: the default status, zero-filled features."""
    rows = _policy_rows(frame).drop(columns=["btc_status", "btc_rsi", "zombie_tagged", "atr_pct"])
    out = tmp_path / "o.csv"
    result = score([SPEND, DCA_SPEND, SAFU], input=_parquet(rows, tmp_path), output=out)
    got = read_output(out)
    for name in (SPEND, DCA_SPEND, SAFU):
        expected = np.array([models[name].predict_one(_as_mapping(r)) for _, r in rows.iterrows()], dtype=np.float32)
        np.testing.assert_array_equal(got[name].to_numpy(dtype=np.float32), expected, err_msg=name)
    assert any("'btc_status'" in n and "'nan'" in n for n in result.notes)


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_csv_strings_are_literal_except_an_empty_one_hot_input(engine, frame, models, tmp_path, request):
    """CSV has no null: an empty btc_status (pandas' None) is absent; "NA" is the literal string "NA"."""
    statuses = [None, "NA", "bullish", "nan", "null", "ish"]
    rows = frame.iloc[: len(statuses) * 3].reset_index(drop=True)
    rows = rows.assign(btc_status=[statuses[i % len(statuses)] for i in range(len(rows))], symbol="NA")
    src = tmp_path / "rows.csv"
    rows.to_csv(src, index=False)
    kwargs = {"engine": engine, "scheduler": request.getfixturevalue("cluster")} if engine == "dask" else {}
    out = tmp_path / "o.parquet"
    score([SPEND], input=src, output=out, keep=["symbol", "btc_status"], **kwargs)
    got = read_output(out)
    assert got["symbol"].tolist() == ["NA"] * len(rows)
    assert _strings(got["btc_status"]) == _strings(rows["btc_status"])
    expected = [models[SPEND].predict_one(_as_mapping(r)) for _, r in rows.iterrows()]
    np.testing.assert_array_equal(got[SPEND].to_numpy(), np.array(expected, dtype=np.float32))


def test_a_numeric_btc_status_is_refused_up_front(frame, tmp_path):
    rows = frame.iloc[:50].assign(btc_status=1.0)
    out = tmp_path / "o.parquet"
    with pytest.raises(M7Error, match=r"'btc_status' is double \(a one-hot input must be strings\)"):
        score([SPEND], input=_parquet(rows, tmp_path), output=out)
    assert not out.exists()


# ---- errors and partial outputs -----------------------------------------------------------------------


def test_missing_columns_are_named_per_model_before_reading(data, frame, tmp_path):
    src = _parquet(frame.drop(columns=["rsi", "adx", "ind_rsi"]), tmp_path)
    out = tmp_path / "o.parquet"
    with pytest.raises(M7Error) as err:
        score([RECOVERY, LEGACY, SPEND], input=src, output=out)
    msg = str(err.value)
    assert "xgb_recovery_model: ['rsi', 'adx']" in msg
    assert "xgb_model: ['ind_rsi']" in msg
    assert "xgb_spend_model:" not in msg.split("input columns")[0]  # zero-fill model: not an error
    assert not out.exists()
    assert leftovers(tmp_path) == []


def test_unknown_model_lists_what_is_there(data, tmp_path):
    with pytest.raises(M7Error, match=r"unknown model 'xgb_nope'.*models there: \['safu_exit_model'"):
        score(["xgb_nope"], input=data["parquet"], output=tmp_path / "o.parquet")
    with pytest.raises(M7Error, match=r"unknown model 'nowhere/x\.manifest\.json': no such file"):
        score(["nowhere/x.manifest.json"], input=data["parquet"], output=tmp_path / "o.parquet")


def test_model_names_resolve_through_the_model_folder_lookup(data, tmp_path, monkeypatch):
    monkeypatch.setenv("M7_MODEL_DIR", str(ONNX))
    result = score_file([RECOVERY], input=data["parquet"], output=tmp_path / "o.parquet", progress=False)
    manifest = ONNX / f"{RECOVERY}.manifest.json"
    by_path = score_file([manifest], input=data["parquet"], output=tmp_path / "p.parquet", progress=False)
    assert result.rows == by_path.rows
    assert read_output(tmp_path / "o.parquet").equals(read_output(tmp_path / "p.parquet"))


def test_unreadable_inputs(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(M7Error, match=r"cannot read .*bad.parquet as Parquet"):
        score([RECOVERY], input=bad, output=tmp_path / "o.parquet")
    with pytest.raises(M7Error, match="does not exist"):
        score([RECOVERY], input=tmp_path / "missing.parquet", output=tmp_path / "o.parquet")
    sheet = tmp_path / "in.xlsx"
    sheet.write_bytes(b"PK")
    with pytest.raises(M7Error, match="cannot tell the format"):
        score([RECOVERY], input=sheet, output=tmp_path / "o.csv")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(M7Error, match="holds no Parquet files"):
        score([RECOVERY], input=empty, output=tmp_path / "o.parquet")
    assert not (tmp_path / "o.parquet").exists()
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_failure_mid_stream_leaves_no_partial_output(engine, frame, tmp_path, request):
    """A bad value far into the file fails the run; the previous output stays, and no temp is left."""
    src = tmp_path / "late_error.csv"
    rows = frame.astype({"rsi": object})
    rows.loc[len(rows) - 5, "rsi"] = "oops"
    rows.to_csv(src, index=False)
    kwargs = {"engine": engine, "batch_size": 500}
    if engine == "dask":
        kwargs["scheduler"] = request.getfixturevalue("cluster")
    for out in (tmp_path / "o.csv", tmp_path / "o.parquet"):
        out.write_text("previous results\n")
        with pytest.raises(M7Error, match=r"late_error.csv.*'oops'|'oops'.*late_error.csv"):
            score([RECOVERY], input=src, output=out, **kwargs)
        assert out.read_text() == "previous results\n"
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_a_bad_csv_value_names_its_column(engine, frame, tmp_path, request):
    src = tmp_path / "bad.csv"
    rows = frame.astype({"rsi": object})
    rows.loc[len(rows) - 5, "rsi"] = "oops"  # past the first block, which sets the column types
    rows.to_csv(src, index=False)
    kwargs = {"engine": engine, "scheduler": request.getfixturevalue("cluster")} if engine == "dask" else {}
    with pytest.raises(M7Error) as err:
        score([RECOVERY], input=src, output=tmp_path / "o.parquet", batch_size=500, **kwargs)
    assert "CSV column 'rsi'" in str(err.value) and "'oops'" in str(err.value)
    assert "column #" not in str(err.value)


def test_output_must_not_be_the_input(data, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(data["csv"].read_bytes())
    with pytest.raises(M7Error, match="is the input"):
        score([RECOVERY], input=src, output=src)


def test_an_existing_output_folder_is_replaced_whole(data, tmp_path, cluster):
    out = tmp_path / "o.parquet"
    out.mkdir()
    (out / "part.999999.parquet").write_bytes(b"stale")
    score([RECOVERY], input=data["folder"], output=out, engine="dask", scheduler=cluster)
    assert "part.999999.parquet" not in {p.name for p in out.iterdir()}
    assert len(read_output(out)) == N_FILES * ROWS_PER_FILE


def test_dask_splits_one_large_parquet_file_so_every_worker_works(frame, models, tmp_path):
    """One file, one row group: partitions of --batch-size rows (row ranges), spread over both workers."""
    distributed = pytest.importorskip("distributed")
    from m7_runtime.scoring import dask_engine

    src = tmp_path / "one_group.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src, row_group_size=len(frame))
    assert pq.ParquetFile(src).metadata.num_row_groups == 1
    out = tmp_path / "o.parquet"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40
        ) as lc,
        distributed.Client(lc) as client,
    ):
        result = score([RECOVERY], input=src, output=out, engine="dask", scheduler=lc.scheduler_address, batch_size=500)
        loaded = client.run(lambda: len(dask_engine._worker_models))
    assert result.chunks == math.ceil(len(frame) / 500)
    assert result.max_chunk_rows == 500
    assert sorted(loaded.values()) == [1, 1]  # each worker loaded the models: each scored partitions
    got = read_output(out)
    np.testing.assert_array_equal(got[RECOVERY].to_numpy(), reference(models, frame, RECOVERY))
    assert got["row_id"].tolist() == frame["row_id"].tolist()


def test_parquet_row_ranges_merge_small_groups_and_split_large_ones(tmp_path):
    from m7_runtime.scoring.inputs import inspect_input
    from m7_runtime.scoring.read import RowRange, parquet_ranges

    table = pa.table({"x": np.arange(2600.0)})
    pq.write_table(table.slice(0, 600), tmp_path / "a.parquet", row_group_size=200)  # 3 groups of 200
    pq.write_table(table.slice(600, 2000), tmp_path / "b.parquet", row_group_size=2000)  # 1 group of 2000
    source = inspect_input(tmp_path)
    a, b = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    assert parquet_ranges(source, 500) == [
        RowRange(a, (0, 1), 0, 400),
        RowRange(a, (2,), 0, 200),
        *(RowRange(b, (0,), s, 500) for s in range(0, 2000, 500)),
    ]


# ---- multiclass outputs --------------------------------------------------------------------------------


def test_multiclass_model_gives_one_column_per_class(tmp_path):
    pytest.importorskip("xgboost")
    from m7_convert import convert
    from zoo import data as zoo_data

    built = build_case("multi_softprob", tmp_path)
    convert(built.path, out_dir=tmp_path / "art", name="multi")
    model = m7_runtime.load(tmp_path / "art" / "multi.manifest.json", provider="cpu")
    X = zoo_data(300, seed=4)
    src = _parquet(pd.DataFrame(X, columns=list(model.feature_names)).assign(id=np.arange(300)), tmp_path)
    out = tmp_path / "o.parquet"
    score([tmp_path / "art" / "multi.manifest.json"], input=src, output=out, keep=["id"])
    got = read_output(out)
    k = model.manifest.n_outputs
    assert list(got.columns) == ["id", *(f"multi_{i}" for i in range(k))]
    np.testing.assert_array_equal(got[[f"multi_{i}" for i in range(k)]].to_numpy(), model.predict(X))


def test_several_targets_give_one_named_column_each(tmp_path):
    """A model of several quantiles scores to NAME_quantile_0.1 ...: its (n, k) prediction, column by column."""
    quantiles = Path(__file__).parent / "runtime_only" / "families" / "quantiles" / "quantiles.manifest.json"
    model = m7_runtime.load(quantiles, provider="cpu")
    X = np.random.default_rng(7).normal(size=(300, len(model.feature_names))).astype(np.float32)
    src = _parquet(pd.DataFrame(X, columns=list(model.feature_names)).assign(id=np.arange(300)), tmp_path)
    out = tmp_path / "o.parquet"
    score([quantiles], input=src, output=out, keep=["id"])
    got = read_output(out)
    columns = [f"quantiles_{t}" for t in model.manifest.output.targets]
    assert columns == ["quantiles_quantile_0.1", "quantiles_quantile_0.5", "quantiles_quantile_0.9"]
    assert list(got.columns) == ["id", *columns]
    np.testing.assert_array_equal(got[columns].to_numpy(), model.predict(X))


# ---- bounded memory ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("src", ["parquet", "csv", "jsonl"])
def test_reads_in_chunks_of_at_most_batch_size(src, data, frame, tmp_path):
    result = score([RECOVERY], input=data[src], output=tmp_path / "o.parquet", batch_size=400)
    assert result.max_chunk_rows <= 400
    assert result.chunks >= len(frame) // 400
    assert result.rows == len(frame)


_PEAK = """
import sys
from m7_runtime.scoring import score_file
r = score_file(["xgb_spend_model", "xgb_recovery_model"], input=sys.argv[1], output=sys.argv[2],
               model_dir=sys.argv[3], batch_size=int(sys.argv[4]), progress=False)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(int(hwm) // 1024, r.chunks)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the peak RSS from /proc (Linux)")
def test_peak_memory_does_not_grow_with_the_file(tmp_path):
    """A 20x larger file, same batch size: the peak RSS stays about the same (generous margin)."""
    mm = import_make_models()
    big = mm.generate_snapshots(300_000, seed=11)
    in_memory_mb = pa.Table.from_pandas(big).nbytes / 2**20
    # Arrow decodes a Parquet row group whole, so the bound is max(batch, row group): keep groups small.
    pq.write_table(pa.Table.from_pandas(big, preserve_index=False), tmp_path / "big.parquet", row_group_size=10_000)
    pq.write_table(pa.Table.from_pandas(big.iloc[:15_000], preserve_index=False), tmp_path / "small.parquet")
    del big

    def peak(name: str) -> int:
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would report this process.
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _PEAK,
                str(tmp_path / name),
                str(tmp_path / f"{name}.out.parquet"),
                str(ONNX),
                "5000",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        mb, chunks = map(int, out.stdout.split())
        assert chunks >= 3
        return mb

    small, large = peak("small.parquet"), peak("big.parquet")
    assert large - small < 0.5 * in_memory_mb, (small, large, in_memory_mb)


# ---- the thin runtime and the CLI ---------------------------------------------------------------------------


def test_runtime_and_cli_parser_stay_thin():
    code = textwrap.dedent(
        f"""
        import sys, numpy as np
        import m7_runtime
        from m7_runtime import cli
        cli.build_parser()
        m = m7_runtime.load({str(ONNX / (RECOVERY + ".manifest.json"))!r}, provider="cpu")
        m.predict(np.zeros((3, len(m.feature_names)), np.float32))
        heavy = ("xgboost", "sklearn", "joblib", "pandas", "pyarrow", "dask", "distributed", "tqdm")
        print(sorted(m for m in sys.modules if m.split(".")[0] in heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_cli_score(data, frame, tmp_path, capsys):
    out = tmp_path / "cli.csv"
    argv = ["score", RECOVERY, SPEND, "--input", str(data["jsonl"]), "--output", str(out), "--keep", "row_id"]
    assert cli_main([*argv, "--model-dir", str(ONNX), "--quiet", "--batch-size", "1000"]) == 0
    got = read_output(out)
    assert list(got.columns) == ["row_id", RECOVERY, SPEND]
    assert len(got) == len(frame)
    assert capsys.readouterr().err == ""
    assert cli_main([*argv, "--model-dir", str(ONNX), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == len(frame)
    assert summary["models"] == [RECOVERY, SPEND]
    assert cli_main(["score", "nope", "-i", str(data["csv"]), "-o", str(out), "--model-dir", str(ONNX)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("m7onnx score: error: unknown model 'nope'")


def test_cli_help_lists_score():
    out = subprocess.run(
        [sys.executable, "-m", "m7_runtime.cli", "score", "--help"], capture_output=True, text=True, check=True
    )
    for flag in ("--input", "--output", "--engine", "--scheduler", "--provider", "--batch-size", "--keep"):
        assert flag in out.stdout


def test_benchmark_script_runs_on_a_tiny_configuration(tmp_path):
    """The batch-scoring benchmark end to end on 20k rows (no timing assertions)."""
    script = ROOT / "benchmarks" / "batch_scoring.py"
    out = subprocess.run(
        [
            sys.executable,
            str(script),
            "--rows",
            "20000",
            "--files",
            "2",
            "--workers",
            "1",
            "--local-threads",
            "2",
            "--data-dir",
            str(tmp_path / "data"),
            "--results",
            str(tmp_path / "results"),
            "--model-dir",
            str(ONNX),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((tmp_path / "results" / "batch_scoring.json").read_text())
    runs = {(r["engine"], r["workers"]) for r in results["runs"]}
    assert runs == {("local", None), ("dask", 1)}
    for r in results["runs"]:
        assert r["rows"] == 20000
        assert r["rows_per_second"] > 0
        assert r["peak_rss_mb"] > 0
        assert r["cpu_seconds"] > 0
    assert (tmp_path / "results" / "batch_scoring.md").read_text().count("|") > 10
    assert (tmp_path / "results" / "batch_scoring_scaling.png").stat().st_size > 1000
    assert MODELS.is_dir()
