"""The typed manifest schema (m7_runtime.artifact): exact round trips, schema 1 still loads, and every
wrong-typed or absurd field is an M7Error naming the field, never a raw exception.

Runtime-only: these run on the oldest onnxruntime/numpy CI claims too.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import runtime_support as rs

import m7_runtime
from m7_runtime import M7Error
from m7_runtime.artifact import SCHEMA_VERSION, Manifest

REC = "xgb_recovery_model"
SCHEMA1 = rs.ROOT / "tests" / "data" / "schema1"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return rs.copy_artifacts(tmp_path / "onnx")


def raw_manifest(name: str = REC) -> dict[str, Any]:
    return json.loads((rs.ONNX / f"{name}.manifest.json").read_text())


@pytest.mark.parametrize("name", sorted(rs.load_all()))
def test_bundled_manifests_are_schema_2_and_round_trip_byte_for_byte(name: str):
    """Every field the converter wrote is read back: from_json -> to_json reproduces the file exactly."""
    path = rs.ONNX / f"{name}.manifest.json"
    m = Manifest.read(path)
    assert m.schema_version == SCHEMA_VERSION == 2
    assert m.dumps() == path.read_text()
    assert Manifest.from_json(m.to_json()) == m
    assert m.policy_origin is not None and m.policy_origin.kind == "spec"


def test_a_schema_1_manifest_still_loads_and_predicts_the_same(tmp_path: Path):
    """The first converter's artifacts (kept in tests/data/schema1) load and give the same predictions."""
    old = m7_runtime.load(SCHEMA1 / "xgb_spend_model.manifest.json", provider="cpu")
    new = m7_runtime.load(rs.ONNX / "xgb_spend_model.manifest.json", provider="cpu")
    assert old.manifest.schema_version == 1 and old.manifest.policy_origin is None
    assert old.manifest.contract().keys() < new.manifest.contract().keys()
    X = np.random.default_rng(0).normal(50, 30, (500, len(new.feature_names))).astype(np.float32)
    np.testing.assert_array_equal(old.predict(X), new.predict(X))
    row = rs.SNAPSHOT
    assert old.predict_one(row) == new.predict_one(row)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit that sets the dotted ``path`` (creating it) to ``value``."""

    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for p in parents:
            node = node[p]
        node[last] = value

    return edit


WRONG: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "split_ranges_number": (_set("split_ranges", 5), "'split_ranges'"),
    "split_range_min_text": (_set("split_ranges.rsi.min", "low"), "'split_ranges.rsi.min'"),
    "split_range_inverted": (_set("split_ranges.rsi.max", -1e9), "'split_ranges.rsi.max'"),
    "policy_number": (_set("input_policy", 7), "'input_policy'"),
    "policy_on_missing": (_set("input_policy.on_missing", "maybe"), "'input_policy.on_missing'"),
    "policy_clamp_text": (_set("input_policy.clamp_min", "zero"), "'input_policy.clamp_min'"),
    "policy_one_hot_columns": (_set("input_policy.one_hot", [{"input": "s", "columns": 5}]), "one_hot.columns"),
    "policy_unknown_key": (_set("input_policy.clamp", 0), "unknown field(s) ['clamp']"),
    "bytes_per_row_text": (_set("flavors.tensor.bytes_per_row", "many"), "'flavors.tensor.bytes_per_row'"),
    "cpu_min_rows_negative": (_set("flavors.tensor.cpu_min_rows", -5), "'flavors.tensor.cpu_min_rows'"),
    "sha_not_hex": (_set("flavors.tree.sha256", "z" * 64), "'flavors.tree.sha256'"),
    "opsets_text": (_set("flavors.tree.opsets", "17"), "'flavors.tree.opsets'"),
    "unknown_flavor": (_set("flavors.gpu", {"file": "x.onnx", "sha256": "0" * 64, "bytes": 1}), "'flavors'"),
    "n_outputs_huge": (_set("output.n_outputs", 10**30), "'output.n_outputs'"),
    "n_outputs_float": (_set("output.n_outputs", 1.5), "'output.n_outputs'"),
    "n_outputs_bool": (_set("output.n_outputs", True), "'output.n_outputs'"),
    "output_not_object": (_set("output", "prediction"), "'output'"),
    "output_no_n_outputs": (lambda raw: raw["output"].pop("n_outputs"), "'output.n_outputs' is missing"),
    "targets_wrong_count": (_set("output.targets", ["a", "b"]), "'output.targets'"),
    "features_text": (_set("features", "rsi"), "'features'"),
    "features_numbers": (_set("features", [1, 2, 3]), "'features'"),
    "task_number": (_set("task", 5), "'task'"),
    "name_path": (_set("name", "../evil"), "'name'"),
    "missing_value_text": (_set("missing_value", "none"), "'missing_value'"),
    "source_trees_text": (_set("source.n_trees", "66"), "'source.n_trees'"),
    "source_unknown_key": (_set("source.pickle", True), "unknown field(s) ['pickle'] at 'source'"),
    "parity_rows": (_set("parity.rows", [1]), "'parity.rows'"),
    "parity_worst_rows": (_set("parity.flavors.tree.onnx_vs_xgboost.worst", [{"row": "x"}] * 3), "worst[0].row"),
    "origin_kind": (_set("policy_origin.kind", "magic"), "'policy_origin.kind'"),
    "converter_numbers": (_set("converter.numpy", 2), "'converter'"),
    "reference_bad_sum": (
        _set("reference", {"rows": 5, "features": {}, "prediction": {"edges": [0.5], "fractions": [0.2, 0.2]}}),
        "'reference.prediction.fractions'",
    ),
    "top_level_unknown": (_set("created_by", "me"), "unknown field(s) ['created_by']"),
}


@pytest.mark.parametrize("case", sorted(WRONG))
def test_a_wrong_field_is_an_m7error_naming_it(folder: Path, case: str):
    change, named = WRONG[case]
    raw = raw_manifest()
    change(raw)
    path = folder / f"{REC}.manifest.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(M7Error) as err:
        m7_runtime.load(path, provider="cpu")
    assert named in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (lambda text: text.replace('"n_outputs": 1,', '"n_outputs": 1e400,').encode(), "'output.n_outputs'"),
        (lambda text: ("[" * 100_000 + "]" * 100_000).encode(), "nests deeper"),
        (lambda text: b"\xff\xfe" + text.encode(), "cannot read"),
    ],
    ids=["n_outputs_1e400", "100k_deep", "not_text"],
)
def test_hostile_manifest_text_is_an_m7error(folder: Path, content, expected: str):
    path = folder / f"{REC}.manifest.json"
    path.write_bytes(content(path.read_text()))
    with pytest.raises(M7Error, match=expected):
        Manifest.read(path)


def test_an_oversized_manifest_is_refused_before_parsing(folder: Path, monkeypatch):
    from m7_runtime import artifact

    monkeypatch.setattr(artifact, "MAX_MANIFEST_BYTES", 1000)
    with pytest.raises(M7Error, match="larger than"):
        Manifest.read(folder / f"{REC}.manifest.json")


@pytest.mark.parametrize(
    "change",
    [
        _set("split_ranges.rsi.max", 99.5),
        _set("flavors.tensor.bytes_per_row", 1),
        _set("flavors.tensor.cpu_min_rows", 10**9),
        _set("flavors.tensor.strategy", "gemm"),
    ],
    ids=["split_ranges", "bytes_per_row", "cpu_min_rows", "strategy"],
)
def test_every_behaviour_field_is_in_the_hashed_contract(folder: Path, change):
    """Fields that change what the runtime does cannot be edited without the ONNX's stamp disagreeing."""
    raw = raw_manifest()
    change(raw)
    path = folder / f"{REC}.manifest.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(M7Error, match="disagrees with"):
        m7_runtime.load(path, provider="cpu", flavor="tensor")


def _mutations(raw: dict[str, Any], rng: random.Random, n: int):
    """Random single edits: a value anywhere in the document replaced by a junk value of another type."""
    junk = [None, True, -1, 0, 2**70, 1.5, -1e308, "", "x" * 300, [], [1, "a"], {}, {"k": [None]}]
    paths: list[tuple[Any, ...]] = []

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        paths.append(path)
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node[:3]):
                walk(v, (*path, i))

    walk(raw, ())
    for _ in range(n):
        doc = copy.deepcopy(raw)
        path = rng.choice(paths[1:])
        node = doc
        for p in path[:-1]:
            node = node[p]
        node[path[-1]] = rng.choice(junk)
        yield path, doc


def test_random_field_mutations_never_escape_as_raw_exceptions(folder: Path):
    """600 random wrong-typed values anywhere in a manifest: each loads or is an M7Error, nothing else."""
    path = folder / f"{REC}.manifest.json"
    outcomes = {"loaded": 0, "refused": 0}
    for where, doc in _mutations(raw_manifest(), random.Random(7), 600):
        path.write_text(json.dumps(doc))
        try:
            m7_runtime.load(path, provider="cpu")
            outcomes["loaded"] += 1
        except M7Error:
            outcomes["refused"] += 1
        except Exception as exc:  # pragma: no cover - the failure this test exists to catch
            raise AssertionError(f"editing {where} escaped as {type(exc).__name__}: {exc}") from exc
    assert outcomes["refused"] > 400, outcomes
