"""The tensor flavor on whatever onnxruntime is installed (CI: also the oldest claimed), runtime only.

Each bundled artifact's tensor flavor must match the pickle's recorded predictions on the
hard rows of parity_reference.npz, equal the tree flavor bit for bit (both add leaves in
xgboost's order), and give the same answer whether a batch runs in one piece or in many
memory-bounded runs.
"""

from __future__ import annotations

import numpy as np
import pytest
import runtime_support as rs

import m7_runtime
from m7_runtime import batches as runtime_batches

NAMES = sorted(p.name.removesuffix(".manifest.json") for p in rs.ONNX.glob("*.manifest.json"))


@pytest.fixture(scope="module")
def recorded():
    return np.load(rs.PARITY_REFERENCE)


@pytest.mark.parametrize("name", NAMES)
def test_tensor_flavor_matches_the_pickle_and_the_tree_flavor(name: str, recorded, monkeypatch):
    manifest = rs.ONNX / f"{name}.manifest.json"
    tensor = m7_runtime.load(manifest, provider="cpu", flavor="tensor")
    tree = m7_runtime.load(manifest, provider="cpu", flavor="tree")
    X, y = recorded[f"X_{name}"], recorded[f"y_{name}"].astype(np.float64)
    got = tensor.predict(X)
    bad = np.flatnonzero(np.abs(got.astype(np.float64) - y) > 1e-5 * np.maximum(1.0, np.abs(y)))
    assert bad.size == 0, [(int(i), got[i], y[i]) for i in bad[:5]]
    np.testing.assert_array_equal(got, tree.predict(X))
    per_row = tensor.manifest.flavors["tensor"].bytes_per_row
    monkeypatch.setitem(runtime_batches.TENSOR_RUN_BYTES, "cpu", 17 * per_row)  # 17 rows per run
    assert tensor.rows_per_run("cpu") == 17
    np.testing.assert_array_equal(tensor.predict(X), got)


def test_the_bundled_artifacts_carry_cpu_graphs():
    """The CPU graphs (CumSum; ``code``: MatMulInteger) exist, so the test below runs them on this onnxruntime."""
    assert any("tensor_cpu" in m7_runtime.load(rs.ONNX / f"{n}.manifest.json").manifest.flavors for n in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_cpu_graph_matches_the_pickle_and_the_tree_flavor(name: str, recorded, monkeypatch):
    """``tensor_cpu`` runs on every onnxruntime the runtime claims (1.17: CumSum since opset 11, MatMulInteger 10)."""
    manifest = rs.ONNX / f"{name}.manifest.json"
    auto = m7_runtime.load(manifest, provider="cpu")
    if "tensor_cpu" not in auto.manifest.flavors:
        pytest.skip(f"{name} has no CPU graph (its tensor graph was as fast)")
    cpu = m7_runtime.load(manifest, provider="cpu", flavor="tensor_cpu")
    tree = m7_runtime.load(manifest, provider="cpu", flavor="tree")
    X, y = recorded[f"X_{name}"], recorded[f"y_{name}"].astype(np.float64)
    got = cpu.predict(X)
    bad = np.flatnonzero(np.abs(got.astype(np.float64) - y) > 1e-5 * np.maximum(1.0, np.abs(y)))
    assert bad.size == 0, [(int(i), got[i], y[i]) for i in bad[:5]]
    np.testing.assert_array_equal(got, tree.predict(X))
    big = np.concatenate([X] * max(1, -(-3000 // len(X))))
    assert auto.flavor_for(len(big)) == "tensor_cpu"
    np.testing.assert_array_equal(auto.predict(big), tree.predict(big))
    per_row = cpu.manifest.flavors["tensor_cpu"].bytes_per_row
    monkeypatch.setitem(runtime_batches.TENSOR_RUN_BYTES, "cpu", 17 * per_row)  # 17 rows per run
    assert cpu.rows_per_run("cpu") == 17
    np.testing.assert_array_equal(cpu.predict(X), got)
