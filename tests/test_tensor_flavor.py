"""The tensor flavor: parity on every model the converter covers, CUDA readiness, chunking, placement.

No GPU here, so the GPU path is proven in parts: every tensor graph runs on onnxruntime's
CPU provider against the source model (same tolerance and probe rows as the tree flavor,
and bit-identical to the tree flavor, since both add leaves in xgboost's order); every
node is one the CUDA provider implements for its opset and element types (list from
onnxruntime's OperatorKernels.md, tests/data/ort_cuda_kernels.json); the runtime's
provider fallback and memory-bounded runs are exercised for real.
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, shape_inference

import m7_runtime
from conftest import MODELS, SIX, assert_parity, build_case, pipeline_rows
from m7_convert import UnsupportedModelError, convert, load_source, reference
from m7_convert.driver import build_forest, emit
from m7_convert.emit_tensor import (
    CUDA_STRATEGIES,
    STRATEGY_FUNCTIONS,
    bytes_per_row,
    choose_strategy,
    declines,
    emit_tensor,
)
from m7_convert.emit_tree import emit_tree
from m7_convert.ir import Forest, Tree
from m7_convert.objectives import objective
from m7_convert.spec import resolve
from m7_convert.tune import CPU_MIN_ROWS
from m7_convert.verify import probes, xgboost_predict
from m7_runtime import batches as runtime_batches
from m7_runtime import providers
from zoo import CASES

KERNELS = json.loads((Path(__file__).parent / "data" / "ort_cuda_kernels.json").read_text())
LEGACY = Path(__file__).parent / "fixtures"
STRATEGIES = sorted(STRATEGY_FUNCTIONS)


def _run(model: onnx.ModelProto | bytes, X: np.ndarray) -> np.ndarray:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: np.ascontiguousarray(X, dtype=np.float32)})[0]


def _rel_error(got: np.ndarray, ref: np.ndarray) -> float:
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(got - ref) / np.maximum(1.0, np.abs(ref)), initial=0.0))


# ---- the graphs under test, built once per session -----------------------------------------
@cache
def _zoo_graphs(name: str, root: Path) -> dict:
    """Source, forest, probe rows (booster space and, for pipelines, input space), and every graph."""
    built = build_case(name, root)
    source = load_source(built.path)
    forest, _ = build_forest(source, None)
    X, _labels = probes(forest, n_random=600).stacked()
    graphs = {s: emit_tensor(forest, strategy=s) for s in STRATEGIES if declines(forest, s) is None}
    out = {"built": built, "source": source, "forest": forest, "X": X, "graphs": graphs, "tree": emit_tree(forest)}
    if source.preprocessor is not None:  # the artifact includes the preprocessing: rows in the input space
        out["X_input"] = pipeline_rows(source, X)
        out["artifact"] = emit(source, forest, "tensor")
    return out


@cache
def _bundled_graphs(name: str) -> dict:
    path = MODELS / f"{name}.pkl"
    source = load_source(path)
    forest, _ = build_forest(source, resolve(path)[0])
    X, _labels = probes(forest, n_random=2000).stacked()
    return {
        "source": source,
        "forest": forest,
        "X": X,
        "graphs": {s: emit_tensor(forest, strategy=s) for s in STRATEGIES if declines(forest, s) is None},
        "tree": emit_tree(forest),
    }


LEGACY_CASES = sorted(
    (d.name, p.name) for d in LEGACY.glob("xgb-*") for p in sorted(d.iterdir()) if p.suffix in (".pkl", ".pickle")
)


# ---- parity ----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", [c.name for c in CASES])
def test_zoo_tensor_parity(case: str, zoo_dir: Path):
    """Both strategies agree with the source object and are bit-identical to the tree flavor."""
    g = _zoo_graphs(case, zoo_dir)
    tree_out = _run(g["tree"], g["X"])
    ref = xgboost_predict(g["source"], g["X"], transformed=True)
    for strategy, m in g["graphs"].items():
        got = _run(m, g["X"])
        assert_parity(got, ref, f"{case}: tensor/{strategy} vs xgboost")
        np.testing.assert_array_equal(got, tree_out, err_msg=f"{case}: tensor/{strategy} differs from the tree flavor")
    if "artifact" in g:  # a Pipeline: the whole graph against the pipeline object itself
        got = _run(g["artifact"], g["X_input"])
        assert_parity(got, g["built"].predict(g["X_input"]), f"{case}: tensor artifact vs pipeline")
    else:
        assert_parity(_run(g["graphs"][choose_strategy(g["forest"])], g["X"]), g["built"].predict(g["X"]), case)


@pytest.mark.parametrize("name", sorted(SIX))
def test_bundled_tensor_parity(name: str):
    """The six Market7 models (spend: base margin 89.6, 120 trees) within tolerance, with margin to spare."""
    g = _bundled_graphs(name)
    ref = xgboost_predict(g["source"], g["X"])
    tree_out = _run(g["tree"], g["X"])
    for strategy, m in g["graphs"].items():
        got = _run(m, g["X"])
        assert_parity(got, ref, f"{name}: tensor/{strategy}")
        err = _rel_error(got, ref)
        assert err <= 1e-6, f"{name}/{strategy}: max rel error {err:.2e} leaves less than 10x margin"
        np.testing.assert_array_equal(got, tree_out)


@pytest.mark.parametrize(("version", "file"), LEGACY_CASES, ids=[f"{v}-{f}" for v, f in LEGACY_CASES])
def test_legacy_pickles_tensor_parity(version: str, file: str):
    """Pickles written by xgboost 1.7-3.0, against the predictions those versions made."""
    folder = LEGACY / version
    refs = np.load(folder / "reference.npz")
    stem = file.split(".")[0]
    source = load_source(folder / file)
    forest, _ = build_forest(source, None)
    for strategy in STRATEGIES:
        if declines(forest, strategy) is not None:
            continue
        got = _run(emit_tensor(forest, strategy=strategy), refs[f"X_{stem}"])
        assert_parity(got, refs[f"y_{stem}"], f"{version}/{file}/{strategy}")


def _tree(left, right, feature, threshold, default_left, value) -> Tree:
    return Tree(
        left=np.asarray(left, np.int32),
        right=np.asarray(right, np.int32),
        feature=np.asarray(feature, np.int32),
        threshold=np.asarray(threshold, np.float32),
        default_left=np.asarray(default_left, bool),
        leaf_value=np.asarray(value, np.float32),
    )


def test_infinite_thresholds_and_missing_directions():
    """Splits at -inf/+inf with both default directions: the one case the NaN -> ±inf trick cannot
    express (default left at -inf) reads the 0/1 "present" block instead."""
    inf = np.inf
    trees = tuple(
        _tree([1, -1, -1], [2, -1, -1], [f, 0, 0], [t, 0, 0], [dl, False, False], [0, 1.0 + k, -2.0 - k])
        for k, (f, t, dl) in enumerate(
            [(0, -inf, True), (0, -inf, False), (1, inf, True), (1, inf, False), (0, 0.5, True)]
        )
    )
    forest = Forest(
        trees=trees,
        feature_names=("a", "b"),
        n_groups=1,
        base_margin=np.array([0.25], np.float32),
        objective=objective("reg:squarederror"),
    ).validate()
    vals = np.array([np.nan, -inf, inf, -1e30, 0.0, 0.5, 1e30], np.float32)
    X = np.array([[a, b] for a in vals for b in vals], np.float32)
    want = reference.predict(forest, X)
    for strategy in STRATEGIES:
        m = emit_tensor(forest, strategy=strategy)
        assert any(n.op_type == "Not" for n in m.graph.node), "the present block should be emitted"
        np.testing.assert_array_equal(_run(m, X), want, err_msg=strategy)


def test_unequal_trees_per_group_are_padded_in_order():
    """A multiclass forest whose groups have different tree counts (padding with zero trees)."""
    leaf = lambda v: _tree([-1], [-1], [0], [0], [False], [v])  # noqa: E731
    split = lambda v: _tree([1, -1, -1], [2, -1, -1], [0, 0, 0], [0.0, 0, 0], [True, 0, 0], [0, v, -v])  # noqa: E731
    trees = [split(0.5), leaf(0.25), split(-1.5), split(2.0)]
    trees = tuple(Tree(**{**t.__dict__, "group": g}) for t, g in zip(trees, [0, 1, 0, 0], strict=True))
    forest = Forest(
        trees=trees,
        feature_names=("a",),
        n_groups=2,
        base_margin=np.array([0.1, -0.2], np.float32),
        objective=objective("multi:softprob"),
    ).validate()
    X = np.array([[np.nan], [-1.0], [0.0], [3.0]], np.float32)
    for strategy in STRATEGIES:
        np.testing.assert_array_equal(_run(emit_tensor(forest, strategy=strategy), X), _run(emit_tree(forest), X))


# ---- CUDA readiness ------------------------------------------------------------------------
def _type_name(elem_type: int) -> str:
    return TensorProto.DataType.Name(elem_type).lower()


def cuda_problems(model: onnx.ModelProto) -> list[str]:
    """Every node that onnxruntime's CUDA provider would not run, for its opset and element types."""
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    g = shape_inference.infer_shapes(model, strict_mode=True).graph
    types = {vi.name: vi.type.tensor_type.elem_type for vi in [*g.input, *g.value_info, *g.output]}
    types.update({t.name: t.data_type for t in g.initializer})
    problems = []
    for node in g.node:
        domain = node.domain or "ai.onnx"
        where = f"{domain}.{node.op_type} ({node.name or node.output[0]})"
        if domain != KERNELS["domain"]:
            problems.append(f"{where}: domain {domain} has no CUDA kernels")
            continue
        kernel = KERNELS["kernels"].get(node.op_type)
        if kernel is None:
            problems.append(f"{where}: no CUDA kernel")
            continue
        since = onnx.defs.get_schema(node.op_type, opsets["ai.onnx"]).since_version
        rows = [r for r in kernel["versions"] if r["since"] <= since <= (r["until"] or math.inf)]
        if not rows:
            problems.append(f"{where}: no CUDA kernel for opset version {since}")
            continue
        allowed = rows[0]["types"]
        for kind, names in (("inputs", node.input), ("outputs", node.output)):
            spec = kernel[kind]
            for pos, name in enumerate(names):
                if not name:
                    continue
                constraint = spec[min(pos, len(spec) - 1)] if spec[-1].endswith("*") else spec[pos]
                constraint = constraint.rstrip("*")
                got = _type_name(types[name]) if name in types else "unknown"
                ok = got == constraint if constraint not in allowed else got in allowed[constraint]
                if not ok:
                    problems.append(
                        f"{where}: {kind[:-1]} {pos} is {got}; CUDA takes {allowed.get(constraint, constraint)}"
                    )
    return problems


def _all_tensor_graphs(root: Path):
    """Every graph the ``tensor`` flavor (the one that may run on CUDA) can be built with."""
    for case in CASES:
        g = _zoo_graphs(case.name, root)
        for strategy, m in g["graphs"].items():
            if strategy in CUDA_STRATEGIES:
                yield f"zoo/{case.name}/{strategy}", m
        if "artifact" in g:
            yield f"zoo/{case.name}/artifact", g["artifact"]
    for name in sorted(SIX):
        for strategy, m in _bundled_graphs(name)["graphs"].items():
            if strategy in CUDA_STRATEGIES:
                yield f"bundled/{name}/{strategy}", m


def test_every_tensor_graph_runs_on_cuda_kernels(zoo_dir: Path):
    problems = {}
    for label, m in _all_tensor_graphs(zoo_dir):
        assert {o.domain for o in m.opset_import} <= {"", "ai.onnx"}, f"{label} imports a non-standard opset"
        if found := cuda_problems(m):
            problems[label] = found
    assert not problems, json.dumps(problems, indent=1)


def test_committed_tensor_artifacts_run_on_cuda_kernels():
    onnx_dir = MODELS.parent / "onnx"
    files = sorted(onnx_dir.glob("*.tensor.onnx"))
    assert {f.name.removesuffix(".tensor.onnx") for f in files} == SIX
    for f in files:
        assert cuda_problems(onnx.load(f)) == [], f.name


def test_cuda_check_fails_on_ml_operators_and_wrong_types(zoo_dir: Path):
    """The check can fail: the tree flavor (ai.onnx.ml) and a Where on booleans (no CUDA kernel) are caught."""
    tree = _zoo_graphs("binary_logistic", zoo_dir)["tree"]
    assert any("ai.onnx.ml.TreeEnsembleRegressor" in p for p in cuda_problems(tree))
    nodes = [helper.make_node("Where", ["c", "c", "c"], ["y"])]
    g = helper.make_graph(
        nodes,
        "w",
        [helper.make_tensor_value_info("c", TensorProto.BOOL, [2])],
        [helper.make_tensor_value_info("y", TensorProto.BOOL, [2])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    assert any("input 1 is bool" in p for p in cuda_problems(m))
    mod = helper.make_graph(
        [helper.make_node("Mod", ["a", "a"], ["b"])],
        "m",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, [2])],
    )
    assert cuda_problems(helper.make_model(mod, opset_imports=[helper.make_opsetid("", 17)])) == [
        "ai.onnx.Mod (b): no CUDA kernel"
    ], "operators not transcribed count as missing"


def test_kernel_list_records_its_source():
    src = KERNELS["source"]
    assert src["repository"] == "microsoft/onnxruntime" and src["path"] == "docs/OperatorKernels.md"
    assert len(src["commit"]) == 40


# ---- conversion and manifest ---------------------------------------------------------------
@pytest.fixture(scope="module")
def spend_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spend")
    convert(MODELS / "xgb_spend_model.pkl", out_dir=out, n_random=500, tune=False)  # the rule: no timing
    return out


def test_convert_writes_both_flavors_by_default(spend_dir: Path):
    man = json.loads((spend_dir / "xgb_spend_model.manifest.json").read_text())
    assert set(man["flavors"]) == {"tree", "tensor", "tensor_cpu"}  # + the CPU graph (issue 16)
    tensor = man["flavors"]["tensor"]
    assert tensor["file"] == "xgb_spend_model.tensor.onnx"
    assert tensor["opsets"] == {"ai.onnx": 17}
    data = (spend_dir / tensor["file"]).read_bytes()
    assert tensor["sha256"] == hashlib.sha256(data).hexdigest()
    m = onnx.load_from_string(data)
    assert tensor["strategy"] == choose_strategy(build_forest(load_source(MODELS / "xgb_spend_model.pkl"), None)[0])
    assert tensor["bytes_per_row"] == bytes_per_row(m)
    assert tensor["cpu_min_rows"] == CPU_MIN_ROWS
    assert man["parity"]["flavors"]["tensor"]["onnx_vs_xgboost"]["pass"]


def _materialised_bytes_per_row(m: onnx.ModelProto) -> float:
    """Run the graph with every node output exposed, at 8 and 24 rows: the per-row growth of their bytes."""
    probe = onnx.ModelProto()
    probe.CopyFrom(m)
    probe.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    known = {vi.name: vi for vi in shape_inference.infer_shapes(probe, strict_mode=True).graph.value_info}
    outputs = {o.name for o in probe.graph.output}
    for node in probe.graph.node:
        for out in node.output:
            if out not in outputs:
                probe.graph.output.append(known.get(out) or helper.make_value_info(out, onnx.TypeProto()))
    names = [o.name for o in probe.graph.output]
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(probe.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    width = m.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    X = np.random.default_rng(0).normal(size=(24, width)).astype(np.float32)
    small = sum(a.nbytes for a in sess.run(names, {sess.get_inputs()[0].name: X[:8]}))
    large = sum(a.nbytes for a in sess.run(names, {sess.get_inputs()[0].name: X}))
    return (large - small) / 16


def test_bytes_per_row_is_what_onnxruntime_materialises(spend_dir: Path, zoo_dir: Path):
    """The recorded bound equals the per-row growth of every node output, measured by running them all."""
    spend = onnx.load(spend_dir / "xgb_spend_model.tensor.onnx")
    assert _materialised_bytes_per_row(spend) == bytes_per_row(spend)
    gemm = _zoo_graphs("multi_softprob", zoo_dir)["graphs"]["gemm"]
    assert _materialised_bytes_per_row(gemm) == bytes_per_row(gemm)
    pipeline = _zoo_graphs("pipeline_scaler", zoo_dir)["artifact"]  # composed: a Reshape to [-1] inside
    assert _materialised_bytes_per_row(pipeline) == bytes_per_row(pipeline)


def test_pipeline_converts_with_both_flavors(zoo_dir: Path):
    built = build_case("pipeline_scaler", zoo_dir)
    result = convert(built.path, out_dir=zoo_dir / "pipeline_both", n_random=300)
    assert {"tree", "tensor"} <= set(result.manifest.flavors) and not result.skipped  # (+ tensor_cpu: issue 16)
    model = m7_runtime.load(result.paths[-1], provider="cpu", flavor="tensor")
    X = np.random.default_rng(5).normal(3, 5, size=(700, 6)).astype(np.float32)
    assert_parity(model.predict(X), built.predict(X), "pipeline tensor artifact")


def test_pipeline_with_ml_preprocessing_skips_the_tensor_flavor(tmp_path: Path):
    """An imputer becomes ai.onnx.ml.Imputer: no CUDA kernel. ``all`` skips the tensor flavor and says why."""
    import joblib
    import xgboost as xgb
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    X = np.random.default_rng(0).normal(size=(200, 4)).astype(np.float32)
    X[::7, 1] = np.nan
    pipe = Pipeline([("impute", SimpleImputer()), ("xgb", xgb.XGBRegressor(n_estimators=3, max_depth=2))])
    pipe.fit(X, X[:, 0] + np.nan_to_num(X[:, 1]))
    path = tmp_path / "pipe.pkl"
    joblib.dump(pipe, path)
    result = convert(path, out_dir=tmp_path / "out", n_random=200, trust_pickle=True)
    assert set(result.manifest.flavors) == {"tree"}
    assert "ai.onnx.ml.Imputer" in result.manifest.skipped_flavors["tensor"]
    with pytest.raises(UnsupportedModelError, match=r"ai\.onnx\.ml\.Imputer"):
        convert(path, out_dir=tmp_path / "out2", flavors=("tensor",), n_random=200, trust_pickle=True)


# ---- runtime: placement, fallback, chunking ------------------------------------------------
def test_cuda_request_without_cuda_warns_once_and_runs_the_tree_flavor_on_cpu(spend_dir, monkeypatch):
    if providers.cuda_available():
        pytest.skip("this machine has CUDA: the fallback path is not taken")
    monkeypatch.setattr(providers, "_warned", False)  # a fresh process's state
    manifest = spend_dir / "xgb_spend_model.manifest.json"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = m7_runtime.load(manifest, provider="cuda")
        second = m7_runtime.load(manifest, provider="cuda")
    runtime_warnings = [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(runtime_warnings) == 1, [str(w.message) for w in caught]
    assert "CUDAExecutionProvider" in str(runtime_warnings[0].message)
    for model in (first, second):
        assert (model.provider, model.flavor) == ("cpu", "tree")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        auto = m7_runtime.load(manifest, provider="auto")  # auto never warns
    assert (auto.provider, auto.flavor) == ("cpu", "tree")


def test_cpu_uses_the_tensor_flavor_for_large_batches_with_identical_results(spend_dir):
    manifest = spend_dir / "xgb_spend_model.manifest.json"
    model = m7_runtime.load(manifest, provider="cpu")
    forced_tree = m7_runtime.load(manifest, provider="cpu", flavor="tree")
    assert model.flavor == "tree" and model.flavor_for(1) == "tree"
    assert model.flavor_for(CPU_MIN_ROWS - 1) == "tree" and model.flavor_for(CPU_MIN_ROWS) == "tensor_cpu"
    assert forced_tree.flavor_for(10**7) == "tree"
    X = np.random.default_rng(3).normal(50, 30, size=(3000, len(model.feature_names))).astype(np.float32)
    X[::5, 2] = np.nan
    np.testing.assert_array_equal(model.predict(X), forced_tree.predict(X))


def test_tensor_runs_are_memory_bounded_and_chunking_changes_nothing(spend_dir, monkeypatch):
    manifest = spend_dir / "xgb_spend_model.manifest.json"
    per_row = json.loads(manifest.read_text())["flavors"]["tensor"]["bytes_per_row"]
    data = (spend_dir / "xgb_spend_model.tensor.onnx").read_bytes()
    X = np.random.default_rng(4).normal(40, 40, size=(1000, 19)).astype(np.float32)
    X[::3, 0] = np.nan
    whole = _run(data, X)  # one session run over every row
    budget = 100 * per_row + 7  # 100 rows per run
    monkeypatch.setitem(runtime_batches.TENSOR_RUN_BYTES, "cpu", budget)
    for threads in (1, 2, 3):
        model = m7_runtime.load(manifest, provider="cpu", flavor="tensor", threads=threads)
        rows = model.rows_per_run("cpu")
        assert rows == 100 and rows * per_row <= budget < (rows + 1) * per_row
        np.testing.assert_array_equal(model.predict(X), whole)
    assert m7_runtime.load(manifest, provider="cpu", flavor="tensor").rows_per_run("cuda") == max(
        1, runtime_batches.TENSOR_RUN_BYTES["cuda"] // per_row
    )


def test_gpu_batch_script_runs_without_a_gpu(spend_dir: Path, tmp_path: Path, capsys):
    """benchmarks/gpu_batch.py on this CPU-only machine: clear skip message, CPU rows measured, JSON written."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_batch", MODELS.parent / "benchmarks" / "gpu_batch.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "gpu.json"
    manifest = spend_dir / "xgb_spend_model.manifest.json"
    argv = ["--models", str(manifest), "--batch-sizes", "1,300", "--repeats", "1", "--min-time", "0", "--out", str(out)]
    assert script.main([*argv, "--strategies"]) == 0
    report = json.loads(out.read_text())
    engines = {r["engine"] for r in report["runs"][0]["results"]}
    assert {"tree-cpu", "tensor-cpu", "auto-cpu", "xgboost-cpu"} <= engines
    assert all(r["rows_per_s"] > 0 for r in report["runs"][0]["results"])
    printed = capsys.readouterr().out
    if not providers.cuda_available():
        assert "tensor-cuda" not in engines and "CUDAExecutionProvider" in report["runs"][0]["skipped"]["tensor-cuda"]
        assert "CUDA rows are skipped" in printed
    assert "skipped xgboost-cuda" in printed or "xgboost-cuda" in engines
