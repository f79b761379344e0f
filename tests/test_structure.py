"""Property tests over model *structure* (in the style of treelite's): any model xgboost trains converts exactly.

Hypothesis draws what a user chooses when training: booster (gbtree, dart, gblinear),
objective, rounds, depth, ``num_parallel_tree``, categorical columns and how they split
(one-hot style or partitions), several targets and how their trees are built, the
missing value, and how the model is saved. A tiny real xgboost model is trained, saved
and converted with both flavors: ``convert`` itself refuses to write anything that
disagrees with xgboost on its probe rows (random, NaN/sentinel, every threshold and
category code ±1 ulp, ±inf where xgboost takes it), so a pass is a parity pass. On top,
the two flavors must give identical bits and the runtime the shape xgboost gives.

The draws keep to what xgboost trains (it refuses categorical features with gblinear or
vector-leaf trees, and dart with vector leaves); within that space nothing is refused.
``derandomize=True`` and a modest example count keep CI reproducible and fast.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import onnxruntime as ort
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import m7_runtime
from m7_convert import convert, load_source
from m7_convert.driver import build_forest
from m7_convert.verify import probes, xgboost_predict

N_ROWS, N_FEATURES = 240, 5
#: objective -> (kind of label, can it have several targets)
OBJECTIVES = {
    "reg:squarederror": ("real", True),
    "reg:absoluteerror": ("real", True),
    "reg:pseudohubererror": ("real", True),
    "reg:quantileerror": ("real", True),  # several targets = several quantile_alpha
    "reg:squaredlogerror": ("positive", False),
    "reg:logistic": ("unit", True),
    "binary:logistic": ("binary", True),  # several targets = multi-label
    "binary:logitraw": ("binary", False),
    "binary:hinge": ("binary", False),
    "multi:softprob": ("class", False),
    "multi:softmax": ("class", False),
    "count:poisson": ("count", False),
    "reg:gamma": ("positive", False),
    "reg:tweedie": ("positive", False),
    "survival:cox": ("survival", False),
    "survival:aft": ("interval", False),
    "rank:ndcg": ("grade", False),
    "rank:pairwise": ("grade", False),
    "rank:map": ("binary-rank", False),
}


@dataclass(frozen=True)
class Structure:
    booster: str
    objective: str
    rounds: int
    depth: int
    parallel: int
    categorical: tuple[int, ...]  # feature indices holding category codes
    one_hot_below: int  # max_cat_to_onehot: features with fewer categories split one-hot style
    targets: int
    vector_leaf: bool
    missing: float
    fmt: str
    seed: int


@st.composite
def structures(draw: st.DrawFn) -> Structure:
    booster = draw(st.sampled_from(["gbtree", "gbtree", "dart", "gblinear"]))
    objective = draw(st.sampled_from(sorted(OBJECTIVES)))
    _, multi = OBJECTIVES[objective]
    targets = draw(st.integers(1, 3)) if multi else 1
    several = targets > 1 or objective.startswith("multi:")
    vector_leaf = booster == "gbtree" and several and draw(st.booleans())
    categorical: tuple[int, ...] = ()
    if booster != "gblinear" and not vector_leaf:
        categorical = tuple(sorted(draw(st.sets(st.sampled_from([1, 3]), max_size=2))))
    return Structure(
        booster=booster,
        objective=objective,
        rounds=draw(st.integers(1, 4)),
        depth=draw(st.integers(1, 4)),
        parallel=draw(st.integers(1, 2)) if booster != "gblinear" else 1,
        categorical=categorical,
        one_hot_below=draw(st.sampled_from([1, 8, 64])),
        targets=targets,
        vector_leaf=vector_leaf,
        missing=draw(st.sampled_from([np.nan, np.nan, -999.0])),
        fmt=draw(st.sampled_from(["json", "ubj", "pickle"])),
        seed=draw(st.integers(0, 2**16)),
    )


def _rows(s: Structure) -> np.ndarray:
    rng = np.random.default_rng(s.seed)
    X = rng.normal(size=(N_ROWS, N_FEATURES)).astype(np.float32)
    X[:, 1] = rng.integers(0, 5, N_ROWS)  # codes 0..4 (categorical when drawn so, else numbers)
    X[:, 3] = rng.integers(0, 24, N_ROWS)
    X[rng.random(X.shape) < 0.08] = np.nan
    return X


def _labels(s: Structure, X: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(s.seed + 1)
    Z = np.nan_to_num(X)
    signal = Z[:, 0] + 0.4 * Z[:, 2] + 0.3 * np.isin(Z[:, 1], [1, 4]) + 0.1 * (Z[:, 3] % 5) + rng.normal(0, 0.3, len(X))
    signals = np.stack([signal + k * Z[:, 4] for k in range(s.targets)], axis=1)
    kind, _ = OBJECTIVES[s.objective]
    if kind == "real":
        y = signals
    elif kind == "unit":
        y = 1 / (1 + np.exp(-signals))
    elif kind in ("binary", "binary-rank"):
        y = (signals > np.median(signals, axis=0)).astype(np.float32)
    elif kind == "class":
        y = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))
    elif kind == "count":
        y = rng.poisson(np.exp(np.clip(signal, -2, 2)))
    elif kind in ("positive", "interval"):
        y = np.exp(0.5 * signal) + 0.1
    elif kind == "survival":
        y = (np.exp(0.5 * signal) + 0.1) * np.where(rng.random(len(X)) < 0.2, -1, 1)
    else:  # grade
        y = np.digitize(signal, [-1, 0, 1])
    return y if y.ndim == 1 or y.shape[1] > 1 else y[:, 0]


def _train(s: Structure, X: np.ndarray) -> xgb.Booster:
    y = _labels(s, X)
    params: dict = {"objective": s.objective, "booster": s.booster, "nthread": 1, "seed": s.seed}
    if s.booster != "gblinear":
        params |= {"max_depth": s.depth, "num_parallel_tree": s.parallel, "tree_method": "hist"}
        params |= {"max_cat_to_onehot": s.one_hot_below}
    if s.booster == "dart":
        params |= {"rate_drop": 0.3, "skip_drop": 0.0}
    if s.objective.startswith("multi:"):
        params["num_class"] = 3
    if s.objective == "reg:quantileerror":
        params["quantile_alpha"] = [0.2, 0.5, 0.8][: s.targets] if s.targets > 1 else 0.4
        y = y[:, 0] if y.ndim == 2 else y
    if s.vector_leaf:
        params["multi_strategy"] = "multi_output_tree"
    types = ["c" if f in s.categorical else "q" for f in range(N_FEATURES)]
    Xm = X.copy()
    if not np.isnan(s.missing):  # half the missing cells carry the sentinel
        Xm[np.isnan(Xm) & (np.random.default_rng(s.seed + 2).random(X.shape) < 0.5)] = s.missing
    d = xgb.DMatrix(Xm, missing=s.missing, feature_types=types, enable_categorical=bool(s.categorical))
    if s.objective == "survival:aft":
        d.set_float_info("label_lower_bound", y)
        d.set_float_info("label_upper_bound", np.where(np.arange(len(y)) % 5 == 0, np.inf, y))
    else:
        d.set_label(y)
    if s.objective.startswith("rank:"):
        d.set_group([N_ROWS // 4] * 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xgb.train(params, d, num_boost_round=s.rounds)


def _save(bst: xgb.Booster, s: Structure, folder: Path) -> Path:
    path = folder / f"model.{ {'pickle': 'pkl'}.get(s.fmt, s.fmt) }"
    if s.fmt == "pickle":
        joblib.dump(bst, path)
    else:
        bst.save_model(path)
    return path


def _run(data: bytes, X: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})[0]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("structure")


@settings(
    max_examples=int(__import__("os").environ.get("M7_STRUCTURE_EXAMPLES", "30")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(s=structures())
def test_any_trained_model_converts_exactly(s: Structure, workdir: Path):
    folder = workdir / f"case{abs(hash(s))}"
    folder.mkdir(exist_ok=True)
    bst = _train(s, _rows(s))
    path = _save(bst, s, folder)
    missing = None if np.isnan(s.missing) else s.missing
    result = convert(path, out_dir=folder / "out", n_random=150, missing=missing)  # raises on any disagreement
    flavors = result.manifest.to_json()["flavors"]
    assert {"tree", "tensor"} <= set(flavors) <= {"tree", "tensor", "tensor_cpu"}, result.skipped  # + the CPU graph
    for report in result.reports.values():
        assert report.passed and report.checks["onnx_vs_xgboost"]["max_rel_error"] <= 1e-5

    source = load_source(path, missing=missing)
    forest, _ = build_forest(source, None)
    X = probes(forest, n_random=150, seed=1).stacked()[0]
    tree_bytes, *tensor_bytes = ((folder / "out" / flavors[f]["file"]).read_bytes() for f in sorted(flavors, key=len))
    for data in tensor_bytes:  # tensor, and tensor_cpu when written
        np.testing.assert_array_equal(_run(tree_bytes, X), _run(data, X), err_msg=f"flavors differ: {s}")

    model = m7_runtime.load(result.paths[-1], provider="cpu")
    expected = xgboost_predict(source, X)
    got = model.predict(X)
    assert got.shape == expected.shape, (s, got.shape, expected.shape)
    targets = result.manifest.to_json()["output"].get("targets")
    assert (targets is None) == (got.ndim == 1) and (targets is None or len(targets) == got.shape[1])


@pytest.mark.parametrize(
    "params",
    [
        {"objective": "multi:softmax", "num_class": 3, "base_score": 0.5},  # three equal margins: class 0
        {"objective": "binary:hinge", "base_score": 0.0},  # margin exactly 0: class 0 (xgboost: margin > 0)
    ],
    ids=["softmax-tie", "hinge-at-zero"],
)
def test_ties_resolve_as_xgboost_resolves_them(params: dict, workdir: Path):
    """``eta=0`` leaves every leaf at 0, so every row sits on the tie; both flavors must break it as xgboost does."""
    X = np.random.default_rng(0).normal(size=(60, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bst = xgb.train({**params, "eta": 0.0, "nthread": 1}, xgb.DMatrix(X, label=np.arange(60) % 2), 2)
    path = workdir / f"tie_{params['objective'].replace(':', '_')}.json"
    bst.save_model(path)
    result = convert(path, out_dir=workdir / "ties", n_random=100)
    expected = bst.inplace_predict(X)
    assert np.all(expected == 0)
    for flavor in ("tree", "tensor"):
        model = m7_runtime.load(result.paths[-1], provider="cpu", flavor=flavor)
        np.testing.assert_array_equal(model.predict(X), expected)
