"""Tampered, mismatched or incomplete artifacts: each is refused at load with an M7Error that
names the file and what disagrees, before any onnxruntime session exists.

Each test copies the bundled onnx/ folder and damages the copy one way.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import runtime_support as rs

import m7_runtime
from m7_runtime import M7Error, market7
from m7_runtime.onnx_meta import _fields, _varint

REC = "xgb_recovery_model"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return rs.copy_artifacts(tmp_path / "onnx")


def manifest_of(folder: Path, name: str = REC) -> Path:
    return folder / f"{name}.manifest.json"


def edit(folder: Path, change: Callable[[dict[str, Any]], None], name: str = REC) -> None:
    path = manifest_of(folder, name)
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw, indent=2))


def replace_onnx(folder: Path, data: bytes, name: str = REC) -> None:
    """Write new ONNX bytes and record their hash, as someone covering their tracks would."""
    (folder / f"{name}.onnx").write_bytes(data)
    edit(folder, lambda raw: raw["flavors"]["tree"].update(sha256=hashlib.sha256(data).hexdigest()), name)


def load_error(path: Path) -> str:
    with pytest.raises(M7Error) as err:
        m7_runtime.load(path, provider="cpu")
    with pytest.raises(M7Error):  # the same through load_dir
        m7_runtime.load_dir(path.parent, provider="cpu")
    return str(err.value)


def test_a_changed_byte_in_the_onnx(folder: Path):
    onnx_file = folder / f"{REC}.onnx"
    data = bytearray(onnx_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx_file.write_bytes(bytes(data))
    recorded = json.loads(manifest_of(folder).read_text())["flavors"]["tree"]["sha256"]
    message = load_error(manifest_of(folder))
    assert str(onnx_file) in message and f"{REC}.manifest.json says {recorded}" in message
    assert f"sha256 {hashlib.sha256(bytes(data)).hexdigest()} but" in message


def test_an_edited_hash_in_the_manifest(folder: Path):
    edit(folder, lambda raw: raw["flavors"]["tree"].update(sha256="0" * 64))
    message = load_error(manifest_of(folder))
    actual = hashlib.sha256((folder / f"{REC}.onnx").read_bytes()).hexdigest()
    assert f"{REC}.onnx does not match its manifest: sha256 {actual} but {REC}.manifest.json says {'0' * 64}" in message


def test_reordered_features_in_the_manifest(folder: Path):
    def swap(raw):
        f = raw["features"]
        f[2], f[6] = f[6], f[2]

    edit(folder, swap)
    message = load_error(manifest_of(folder))
    assert f"{REC}.manifest.json disagrees with {REC}.onnx" in message
    assert "features in another order (position 2: the ONNX expects 'current_score', the manifest says 'rsi')" in (
        message
    )


def test_a_renamed_feature_in_the_manifest(folder: Path):
    edit(folder, lambda raw: raw["features"].__setitem__(6, "rsi_14"))
    message = load_error(manifest_of(folder))
    assert "other features (the ONNX lacks ['rsi_14'], the manifest lacks ['rsi'])" in message


def test_a_dropped_feature_is_an_input_width_mismatch(folder: Path):
    edit(folder, lambda raw: raw["features"].remove("rsi"))
    message = load_error(manifest_of(folder))
    assert f"{REC}.onnx takes 18 input features but {REC}.manifest.json lists 17" in message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda raw: raw["input_policy"].update(on_missing="zero"),
            "input_policy.on_missing 'reject' (the manifest says 'zero')",
        ),
        (lambda raw: raw.update(task="regression"), "task 'binary' (the manifest says 'regression')"),
        (lambda raw: raw["output"].update(n_outputs=2), "n_outputs 1 (the manifest says 2)"),
        (lambda raw: raw["input"].update(name="X"), "input 'features' (the manifest says 'X')"),
    ],
    ids=["policy", "task", "n_outputs", "input_name"],
)
def test_edited_semantics_in_the_manifest(folder: Path, change, expected: str):
    edit(folder, change)
    message = load_error(manifest_of(folder))
    assert f"{REC}.manifest.json disagrees with {REC}.onnx" in message and expected in message


def test_a_removed_clamp_on_a_spend_model(folder: Path):
    edit(folder, lambda raw: raw["input_policy"].update(clamp_min=None), name="xgb_spend_model")
    message = load_error(manifest_of(folder, "xgb_spend_model"))
    assert "input_policy.clamp_min 0.0 (the manifest says None)" in message


def test_another_models_onnx_under_this_name(folder: Path):
    replace_onnx(folder, (folder / "xgb_confidence_model.onnx").read_bytes())
    message = load_error(manifest_of(folder))
    assert f"{REC}.onnx takes 17 input features but {REC}.manifest.json lists 18" in message


def test_every_manifest_is_checked_even_when_artifacts_share_a_session(folder: Path):
    """spend and dca_spend are byte-identical and share one session: the second manifest is still checked."""

    def swap(raw):
        f = raw["features"]
        f[0], f[1] = f[1], f[0]

    edit(folder, swap, name="xgb_dca_spend_model")
    m7_runtime.load(manifest_of(folder, "xgb_spend_model"), provider="cpu")
    with pytest.raises(M7Error) as err:
        m7_runtime.load_dir(folder, provider="cpu")
    assert "xgb_dca_spend_model.manifest.json disagrees with xgb_dca_spend_model.onnx" in str(err.value)


def test_a_missing_onnx_file(folder: Path):
    (folder / f"{REC}.onnx").unlink()
    message = load_error(manifest_of(folder))
    assert f"cannot read {folder / (REC + '.onnx')} named by {REC}.manifest.json: No such file" in message


def test_a_missing_manifest(folder: Path):
    manifest_of(folder).unlink()
    for given in (manifest_of(folder), folder / f"{REC}.onnx"):  # the ONNX alone is not enough
        with pytest.raises(M7Error) as err:
            m7_runtime.load(given, provider="cpu")
        assert f"manifest {manifest_of(folder)} does not exist" in str(err.value)
    assert REC not in m7_runtime.load_dir(folder, provider="cpu")  # the folder holds the other five


@pytest.mark.parametrize("version", [99, 0, None, "1", 1.5])
def test_an_unknown_schema_version(folder: Path, version):
    edit(folder, lambda raw: raw.update(schema_version=version))
    message = load_error(manifest_of(folder))
    assert f"has schema_version {version!r}; this m7_runtime reads versions 1, 2" in message


def test_a_manifest_without_schema_version(folder: Path):
    edit(folder, lambda raw: raw.pop("schema_version"))
    assert "has schema_version None" in load_error(manifest_of(folder))


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda text: text[: len(text) // 2], "cannot read manifest"),
        (lambda text: "[1, 2]", "is not a JSON object"),
        (lambda text: text.replace('"features": [', '"features": "abc", "x": ['), "field 'features' must be a list"),
        (lambda text: text.replace('"step"', '"step", "step"', 1), "list of distinct names"),
    ],
    ids=["truncated", "not_an_object", "features_not_a_list", "duplicate_feature"],
)
def test_a_mangled_manifest(folder: Path, content, expected: str):
    path = manifest_of(folder)
    path.write_text(content(path.read_text()))
    message = load_error(path)
    assert str(path) in message and expected in message


def test_an_artifact_path_outside_the_folder(folder: Path, tmp_path: Path):
    elsewhere = tmp_path / "elsewhere.onnx"
    elsewhere.write_bytes((folder / f"{REC}.onnx").read_bytes())
    edit(folder, lambda raw: raw["flavors"]["tree"].update(file="../elsewhere.onnx"))
    message = load_error(manifest_of(folder))
    assert (
        "field 'flavors.tree.file' names '../elsewhere.onnx'; an artifact must be a file beside its manifest" in message
    )


def _without_metadata(data: bytes) -> bytes:
    """The same ModelProto minus its metadata_props (field 14), re-encoded by hand (no onnx package here)."""
    out, pos, buf = bytearray(), 0, memoryview(data)
    while pos < len(buf):
        start = pos
        key, pos = _varint(buf, pos)
        wire = key & 7
        if wire == 0:
            _, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            pos += n
        else:
            pos += 8 if wire == 1 else 4
        if key >> 3 != 14:
            out += buf[start:pos]
    return bytes(out)


def test_an_onnx_without_the_contract(folder: Path):
    original = (folder / f"{REC}.onnx").read_bytes()
    stripped = _without_metadata(original)
    assert len(stripped) < len(original) and not any(f == 14 for f, _, _ in _fields(memoryview(stripped)))
    replace_onnx(folder, stripped)
    message = load_error(manifest_of(folder))
    assert f"{REC}.onnx carries no 'm7.contract' metadata" in message and "re-convert" in message


def test_bytes_that_are_not_onnx(folder: Path):
    replace_onnx(folder, b"\xff" * 64)
    message = load_error(manifest_of(folder))
    assert f"{REC}.onnx is not a readable ONNX model" in message


def test_the_drop_in_logs_the_reason_and_returns_none(folder: Path, caplog):
    edit(folder, lambda raw: raw.update(schema_version=99))
    market7.clear_cache()
    try:
        with caplog.at_level(logging.ERROR, logger="m7_runtime.market7"):
            assert market7.predict_recovery_odds(rs.snapshot_row(), model_dir=folder) is None
    finally:
        market7.clear_cache()
    assert any(
        r.getMessage().startswith("Failed to load recovery model:") and "schema_version 99" in r.getMessage()
        for r in caplog.records
    )


def test_the_untouched_copy_loads(folder: Path):
    """The control: the copy itself is fine, so every failure above comes from its one change."""
    models = m7_runtime.load_dir(folder, provider="cpu")
    assert set(models) == set(rs.load_all())


def test_m7onnx_verify_also_reports_an_edited_manifest(folder: Path):
    pytest.importorskip("xgboost")
    from m7_convert import recheck

    edit(folder, lambda raw: raw["source"].update(path=str(rs.ROOT / "models" / f"{REC}.pkl")))
    assert recheck(manifest_of(folder), n_random=50)["pass"]
    edit(folder, lambda raw: raw["features"].reverse())
    report = recheck(manifest_of(folder), n_random=50)
    assert not report["pass"] and any(
        p["code"] == "artifact_changed" and "disagrees with" in p["message"] for p in report["problems"]
    )
