"""Issue 16: the complete-tree layouts, the CPU graph (one CumSum) and how it is chosen.

* exactness: every strategy with either summation is bit-identical to the tree flavor and
  within tolerance of xgboost on the zoo, the six bundled models and the legacy pickles
  (probe rows: random, NaN, every threshold and one float32 ulp either side);
* CUDA: the ``tensor`` flavor is only ever built from strategies whose operators all have
  CUDA kernels, with the ordered ``Add`` chain; the CPU graphs fail that check (so they
  can never be mistaken for the CUDA graph);
* the node budget: deep forests keep the compact traversal, and say why;
* tuning: measured, inherited from a same-source artifact, or by rule; re-conversion is
  byte-identical and no timing reaches the files;
* the runtime's pick: ``tensor_cpu`` for large CPU batches, the tree flavor for small ones
  and ``predict_one``, ``tensor`` on CUDA.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import given
from test_forest_generator import SETTINGS, forests
from test_tensor_flavor import LEGACY, LEGACY_CASES, _bundled_graphs, _run, _zoo_graphs, cuda_problems

import m7_runtime
from conftest import MODELS, SIX, assert_parity
from m7_convert import convert, load_source, reference, tensor_layouts, tune
from m7_convert.driver import build_forest
from m7_convert.emit_tensor import (
    COMPLETE_STRATEGIES,
    CUDA_STRATEGIES,
    STRATEGY_FUNCTIONS,
    choose_strategy,
    declines,
    emit_tensor,
)
from m7_convert.emit_tree import emit_tree
from m7_convert.ir import Forest, Tree
from m7_convert.objectives import objective
from m7_convert.verify import probes, xgboost_predict
from m7_runtime import providers
from m7_runtime.artifact import Manifest
from m7_runtime.cli import main
from zoo import CASES

STRATEGIES = sorted(STRATEGY_FUNCTIONS)


def _cpu_graphs(forest: Forest) -> dict[str, object]:
    return {s: emit_tensor(forest, strategy=s, summation="cumsum") for s in STRATEGIES if declines(forest, s) is None}


# ---- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_zoo_cpu_graphs_are_bit_identical_to_the_tree_flavor(case: str, zoo_dir: Path):
    g = _zoo_graphs(case, zoo_dir)
    tree_out = _run(g["tree"], g["X"])
    ref = xgboost_predict(g["source"], g["X"], transformed=True)
    graphs = _cpu_graphs(g["forest"])
    depth = g["forest"].max_depth()
    expected = depth == 0 or depth > tensor_layouts.COMPLETE_MAX_DEPTH  # single leaves; the node budget
    assert set(COMPLETE_STRATEGIES) <= set(graphs) or expected, "the new layouts declined"
    for strategy, m in graphs.items():
        got = _run(m, g["X"])
        assert_parity(got, ref, f"{case}: cumsum/{strategy} vs xgboost")
        np.testing.assert_array_equal(got, tree_out, err_msg=f"{case}: cumsum/{strategy} vs the tree flavor")


@pytest.mark.parametrize("name", sorted(SIX))
def test_bundled_cpu_graphs_are_bit_identical_to_the_tree_flavor(name: str):
    g = _bundled_graphs(name)
    ref = xgboost_predict(g["source"], g["X"])
    tree_out = _run(g["tree"], g["X"])
    for strategy, m in _cpu_graphs(g["forest"]).items():
        got = _run(m, g["X"])
        assert_parity(got, ref, f"{name}: cumsum/{strategy}")
        np.testing.assert_array_equal(got, tree_out, err_msg=f"{name}: cumsum/{strategy}")
    for strategy in COMPLETE_STRATEGIES:  # and the chain versions, which test_tensor_flavor also covers
        np.testing.assert_array_equal(_run(g["graphs"][strategy], g["X"]), tree_out)


@pytest.mark.parametrize(("version", "file"), LEGACY_CASES, ids=[f"{v}-{f}" for v, f in LEGACY_CASES])
def test_legacy_pickles_cpu_graphs(version: str, file: str):
    folder = LEGACY / version
    refs = np.load(folder / "reference.npz")
    stem = file.split(".")[0]
    forest, _ = build_forest(load_source(folder / file), None)
    X = refs[f"X_{stem}"]
    tree_out = _run(emit_tree(forest), X)
    for strategy, m in _cpu_graphs(forest).items():
        got = _run(m, X)
        assert_parity(got, refs[f"y_{stem}"], f"{version}/{file}/cumsum/{strategy}")
        np.testing.assert_array_equal(got, tree_out)


def _tree(left, right, feature, threshold, default_left, value, group=0) -> Tree:
    return Tree(
        left=np.asarray(left, np.int32),
        right=np.asarray(right, np.int32),
        feature=np.asarray(feature, np.int32),
        threshold=np.asarray(threshold, np.float32),
        default_left=np.asarray(default_left, bool),
        leaf_value=np.asarray(value, np.float32),
        group=group,
    )


def _stump(f: int, t: float, dl: bool, a: float, b: float, group: int = 0) -> Tree:
    return _tree([1, -1, -1], [2, -1, -1], [f, 0, 0], [t, 0, 0], [dl, False, False], [0, a, b], group)


def test_the_sum_order_is_xgboosts_where_any_other_order_differs():
    """Leaves chosen so that float32 sums in another order (or from zero, or base last) give other bits."""
    big = np.float32(2.0**24)
    trees = (
        _stump(0, 0.5, True, 1.0, -1.0),
        _stump(1, 0.5, False, big, -big),
        _stump(0, 1.5, True, 1.0, 3.0),
        _stump(1, -0.5, True, -big, big),
        _stump(0, 0.25, False, 0.5, 1.5),
    )
    forest = Forest(
        trees=trees,
        feature_names=("a", "b"),
        n_groups=1,
        base_margin=np.array([0.75], np.float32),
        objective=objective("reg:squarederror"),
    ).validate()
    vals = np.array([np.nan, -1.0, 0.25, 0.5, 1.0, 1.5, 2.0], np.float32)
    X = np.array([[a, b] for a in vals for b in vals], np.float32)
    want = reference.predict(forest, X)
    pairwise = np.float32(0.75) + np.sum(  # a plausible other order: the leaves first, the base last
        np.stack([t.leaf_value[reference.leaf_index(forest, X, i)] for i, t in enumerate(trees)]), axis=0
    )
    assert not np.array_equal(pairwise.astype(np.float32), want), "the rows must tell the orders apart"
    for strategy in STRATEGIES:
        if declines(forest, strategy) is None:
            got = _run(emit_tensor(forest, strategy=strategy, summation="cumsum"), X)
            np.testing.assert_array_equal(got, want, err_msg=strategy)


def test_multiclass_with_unequal_groups_folds_the_base_into_each_groups_first_tree():
    trees = (
        _stump(0, 0.0, True, 0.5, -0.5, group=0),
        _stump(0, 1.0, False, 0.25, 2.0, group=1),
        _stump(0, -1.0, True, -1.5, 1.5, group=0),
        _stump(0, 2.0, True, 2.0, -2.0, group=0),
    )
    forest = Forest(
        trees=trees,
        feature_names=("a",),
        n_groups=3,  # group 2 has no tree at all: its slots are zero trees, its margin the base
        base_margin=np.array([0.1, -0.2, 0.3], np.float32),
        objective=objective("multi:softprob"),
    ).validate()
    X = np.array([[np.nan], [-2.0], [-1.0], [0.0], [1.0], [2.0], [3.0]], np.float32)
    tree_out = _run(emit_tree(forest), X)
    for strategy in STRATEGIES:
        if declines(forest, strategy) is None:
            np.testing.assert_array_equal(_run(emit_tensor(forest, strategy=strategy, summation="cumsum"), X), tree_out)


def test_padding_below_shallow_leaves_never_changes_a_path():
    """Trees of depth 1 to 4 side by side, ±inf and NaN inputs: padded nodes compare with NaN and go right."""
    inf = np.inf
    deep = _tree(
        [1, 3, 5, 7, -1, -1, -1, 9, -1, -1, -1],
        [2, 4, 6, 8, -1, -1, -1, 10, -1, -1, -1],
        [0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0],
        [0.5, -inf, inf, 2.0, 0, 0, 0, 1.0, 0, 0, 0],
        [True, True, False, False, 0, 0, 0, True, 0, 0, 0],
        [0, 0, 0, 0, 4.0, 5.0, 6.0, 0, 7.0, 8.0, 9.0],
    )
    trees = (_stump(1, 0.0, False, -1.0, 1.0), deep, _tree([-1], [-1], [0], [0], [False], [0.125]))
    forest = Forest(
        trees=trees,
        feature_names=("a", "b"),
        n_groups=1,
        base_margin=np.array([0.5], np.float32),
        objective=objective("reg:squarederror"),
    ).validate()
    vals = np.array([np.nan, -inf, inf, -1e30, -1.0, 0.0, 0.5, 1.0, 2.0, 1e30], np.float32)
    X = np.array([[a, b] for a in vals for b in vals], np.float32)
    want = reference.predict(forest, X)
    for strategy in COMPLETE_STRATEGIES:
        for summation in ("chain", "cumsum"):
            got = _run(emit_tensor(forest, strategy=strategy, summation=summation), X)
            np.testing.assert_array_equal(got, want, err_msg=f"{strategy}/{summation}")


# ---- CUDA: the tensor flavor stays standard and ordered ------------------------------------------
def test_the_cuda_graph_is_only_built_from_cuda_strategies_with_the_chain(zoo_dir: Path, tmp_path: Path):
    for case in CASES:
        forest = _zoo_graphs(case.name, zoo_dir)["forest"]
        assert choose_strategy(forest) in CUDA_STRATEGIES
    result = convert(MODELS / "xgb_recovery_model.pkl", out_dir=tmp_path, n_random=300, tune=False)
    tensor = Manifest.read(result.paths[-1]).flavors["tensor"]
    assert tensor.strategy in CUDA_STRATEGIES
    import onnx

    m = onnx.load(tmp_path / tensor.file)
    props = {p.key: p.value for p in m.metadata_props}
    assert props["m7.tensor_summation"] == "chain" and not any(n.op_type == "CumSum" for n in m.graph.node)
    assert cuda_problems(m) == []
    cpu = onnx.load(tmp_path / "xgb_recovery_model.tensor-cpu.onnx")
    assert {p.key: p.value for p in cpu.metadata_props}["m7.tensor_summation"] == "cumsum"


def test_cpu_graphs_fail_the_cuda_check(zoo_dir: Path):
    """``CumSum`` and ``MatMulInteger`` are not in the CUDA kernel list: the check would refuse them as ``tensor``."""
    forest = _zoo_graphs("binary_logistic", zoo_dir)["forest"]
    assert any("CumSum" in p for p in cuda_problems(emit_tensor(forest, strategy="complete", summation="cumsum")))
    assert any("MatMulInteger" in p for p in cuda_problems(emit_tensor(forest, strategy="code")))


# ---- the node budget -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def deep_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two trees that reach depth 12 (beyond the complete layout's budget)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4000, 6)).astype(np.float32)
    y = np.sin(3 * X[:, 0]) * X[:, 1] + X[:, 2] ** 2 + rng.normal(0, 0.1, len(X))
    model = xgb.XGBRegressor(n_estimators=2, max_depth=12, min_child_weight=0, learning_rate=0.5).fit(X, y)
    path = tmp_path_factory.mktemp("deep") / "deep.json"
    model.save_model(path)
    return path


def test_deep_forests_fall_back_to_the_traversal_and_say_so(deep_model: Path, tmp_path: Path, capsys):
    forest, _ = build_forest(load_source(deep_model), None)
    assert forest.max_depth() > tensor_layouts.COMPLETE_MAX_DEPTH
    assert "budget" in declines(forest, "complete") and "budget" in declines(forest, "code")
    assert choose_strategy(forest) == "traversal"
    candidates, _ = tune.cpu_candidates(forest)
    assert "traversal" in candidates and not set(COMPLETE_STRATEGIES) & set(candidates)
    assert tune.rule_choice(forest, candidates).strategy == "traversal"
    assert main(["convert", str(deep_model), "--out-dir", str(tmp_path), "--no-tune", "--rows", "300"]) == 0
    printed = capsys.readouterr().out
    assert "complete and code layouts declined: depth 12 is beyond the complete layout's budget" in printed
    man = Manifest.read(tmp_path / "deep.manifest.json")
    assert man.flavors["tensor"].strategy == "traversal" and man.flavors["tensor_cpu"].strategy == "traversal"
    assert "budget" in man.flavors["tensor"].note
    assert main(["info", str(tmp_path)]) == 0
    info = capsys.readouterr().out
    assert "tensor=traversal" in info and "deep (tensor): complete and code layouts declined" in info


def test_the_padded_node_budget(monkeypatch):
    forest, _ = build_forest(load_source(MODELS / "xgb_spend_model.pkl"), None)
    assert declines(forest, "complete") is None
    monkeypatch.setattr(tensor_layouts, "COMPLETE_MAX_NODES", 1000)
    assert "pad to 3,720 nodes, beyond the complete layout's budget of 1,000" in declines(forest, "code")
    assert choose_strategy(forest) == "traversal"


# ---- tuning and determinism --------------------------------------------------------------------
def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix in (".onnx", ".json")}


def test_rule_mode_is_reproducible_across_folders(tmp_path: Path):
    a = convert(MODELS / "xgb_model.pkl", out_dir=tmp_path / "a", n_random=300, tune=False)
    convert(MODELS / "xgb_model.pkl", out_dir=tmp_path / "b", n_random=300, tune=False)
    assert a.plan.origin == "rule" and not a.plan.report
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")


def test_measured_choice_is_inherited_and_no_timing_reaches_the_files(zoo_dir: Path, tmp_path: Path, capsys):
    built = _zoo_graphs("reg_squarederror", zoo_dir)["built"]
    out = tmp_path / "out"
    report = tmp_path / "timings.json"
    args = ["convert", str(built.path), "--out-dir", str(out), "--name", "m", "--rows", "300"]
    assert main([*args, "--tune", "--tune-report", str(report)]) == 0
    printed = capsys.readouterr().out
    assert "(measured)" in printed and "measured ns/row (one thread)" in printed
    timings = json.loads(report.read_text())
    assert timings["model"] == "m" and "tensor_cpu:code" in timings["layouts"]
    first = _bytes(out)
    assert not any(b"ns_per_row" in data for data in first.values())
    man = Manifest.read(out / "m.manifest.json")
    choice = timings["choice"]
    bulk = man.flavors.get("tensor_cpu") or man.flavors["tensor"]
    assert (bulk.rows_per_run, bulk.cpu_min_rows) == (choice["rows_per_run"], choice["cpu_min_rows"])
    assert main(args) == 0  # default: inherit (the policy now comes from the existing artifact too)
    assert "(inherited)" in capsys.readouterr().out
    second = _bytes(out)
    assert {k: v for k, v in second.items() if k.endswith(".onnx")} == {
        k: v for k, v in first.items() if k.endswith(".onnx")
    }
    assert Manifest.read(out / "m.manifest.json").flavors == man.flavors
    again = convert(built.path, out_dir=out, name="m", n_random=300)
    assert again.plan.origin == "inherited" and _bytes(out) == second


def test_only_the_same_source_inherits_and_a_new_model_gets_the_rule(tmp_path: Path, zoo_dir: Path):
    """Nothing measured is written unless asked for: a new model (or a retrained one) gets the rule."""
    a = _zoo_graphs("reg_squarederror", zoo_dir)["built"]
    b = _zoo_graphs("reg_gamma", zoo_dir)["built"]
    assert convert(a.path, out_dir=tmp_path, name="m", n_random=200).plan.origin == "rule"
    assert convert(a.path, out_dir=tmp_path, name="m", n_random=200, tune=True).plan.origin == "measured"
    assert convert(a.path, out_dir=tmp_path, name="m", n_random=200).plan.origin == "inherited"
    assert convert(a.path, out_dir=tmp_path, name="m", n_random=200, tune=False).plan.origin == "rule"
    assert convert(b.path, out_dir=tmp_path / "b", name="m", n_random=200).plan.origin == "rule"


def test_bundled_artifacts_are_inherited_for_their_own_pickles(tmp_path: Path):
    """Converting a bundled model's pickle anywhere reuses the bundled choice: no measurement, same bytes."""
    result = convert(MODELS / "xgb_recovery_model.pkl", out_dir=tmp_path, n_random=2000)
    assert result.plan.origin == "inherited"
    bundled = Manifest.read(MODELS.parent / "onnx" / "xgb_recovery_model.manifest.json")
    assert result.manifest.flavors.keys() == bundled.flavors.keys()
    for flavor, entry in bundled.flavors.items():
        assert result.manifest.flavors[flavor].facts() == entry.facts()


# ---- the runtime's pick --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spend_rule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spend_rule")
    convert(MODELS / "xgb_spend_model.pkl", out_dir=out, n_random=300, tune=False)
    return out / "xgb_spend_model.manifest.json"


def test_cpu_batches_use_the_cpu_graph_with_its_run_size(spend_rule: Path):
    model = m7_runtime.load(spend_rule, provider="cpu")
    entry = model.manifest.flavors["tensor_cpu"]
    assert model.flavor == "tree" and model.flavor_for(1) == "tree"
    assert model.flavor_for(entry.cpu_min_rows - 1) == "tree" and model.flavor_for(entry.cpu_min_rows) == "tensor_cpu"
    assert model.rows_per_run("cpu") == entry.rows_per_run == tune.RULE_RUN_ROWS
    assert (
        model.rows_per_run("cuda")
        == m7_runtime.batches.TENSOR_RUN_BYTES["cuda"] // model.manifest.flavors["tensor"].bytes_per_row
    )
    X = np.random.default_rng(1).normal(50, 30, size=(5000, len(model.feature_names))).astype(np.float32)
    X[::4, 3] = np.nan
    tree = m7_runtime.load(spend_rule, provider="cpu", flavor="tree")
    for threads in (1, 2):
        np.testing.assert_array_equal(
            m7_runtime.load(spend_rule, provider="cpu", threads=threads).predict(X), tree.predict(X)
        )
    row = dict(zip(model.feature_names, X[0].tolist(), strict=True))
    assert model.predict_one(row) == tree.predict_one(row)


def test_without_a_cpu_graph_the_tensor_graph_serves_large_batches(tmp_path: Path):
    convert(MODELS / "xgb_spend_model.pkl", out_dir=tmp_path, flavors=("tree", "tensor"), n_random=300, tune=False)
    model = m7_runtime.load(tmp_path / "xgb_spend_model.manifest.json", provider="cpu")
    assert "tensor_cpu" not in model.manifest.flavors
    assert model.flavor_for(tune.CPU_MIN_ROWS) == "tensor" and model.flavor_for(tune.CPU_MIN_ROWS - 1) == "tree"


def test_cuda_runs_the_tensor_graph_never_the_cpu_graph(spend_rule: Path, monkeypatch):
    monkeypatch.setattr(providers, "cuda_available", lambda: True)
    flavors = ("tree", "tensor", "tensor_cpu")
    assert providers.place("cuda", flavors=flavors, flavor=None).flavor == "tensor"
    assert providers.place("auto", flavors=flavors, flavor=None) == providers.place(
        "cuda", flavors=flavors, flavor=None
    )
    monkeypatch.setattr(providers, "_warned", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        forced = providers.place("cuda", flavors=flavors, flavor="tensor_cpu")
    assert (forced.provider, forced.flavor) == ("cpu", "tensor_cpu")
    assert any("CPU-only graph" in str(w.message) for w in caught)


# ---- random forests (the IR generator of test_forest_generator: categorical, vector leaves, DART...) ----


@SETTINGS
@given(forest=forests())
def test_random_forests_cpu_graphs_are_bit_identical_to_the_tree_flavor(forest: Forest):
    """Every strategy with the CumSum sum, on random IR forests (any shape, groups, vector leaves, categories)."""
    X, _labels = probes(forest, n_random=200, seed=5).stacked()
    tree_out = _run(emit_tree(forest), X)
    for strategy in STRATEGIES:
        if declines(forest, strategy) is None:
            got = _run(emit_tensor(forest, strategy=strategy, summation="cumsum"), X)
            np.testing.assert_array_equal(got, tree_out, err_msg=f"cumsum/{strategy} differs from the tree flavor")
