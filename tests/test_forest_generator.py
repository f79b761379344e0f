"""Emitters against the reference evaluator on random forests, without xgboost (treelite's random-model tests).

Hypothesis builds IR forests directly: random tree shapes (including single leaves and
unreachable nodes), numerical thresholds (some ±inf or on a shared grid), categorical
splits with random category sets, default directions, DART weights, several output groups
with scalar trees per group or vector leaves, a missing sentinel, every link, and linear
models. Each emitter (the tree flavor and both tensor strategies) must reproduce
:func:`m7_convert.reference.predict` on the converter's own probe rows, and the flavors
must agree bit for bit. A failure here is an emitting bug, independent of parsing.
"""

from __future__ import annotations

import os

import numpy as np
import onnxruntime as ort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import assert_parity
from m7_convert import reference
from m7_convert.emit_tensor import STRATEGY_FUNCTIONS, emit_tensor
from m7_convert.emit_tree import emit_tree
from m7_convert.ir import Forest, Linear, Tree
from m7_convert.objectives import OBJECTIVES
from m7_convert.verify import probes

SETTINGS = settings(
    max_examples=int(os.environ.get("M7_FOREST_EXAMPLES", "60")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
LINKS = {o.link: o for o in OBJECTIVES.values()}  # one objective per link
GRID = np.array([-2.5, -1.0, 0.0, 0.5, 1.0, 3.0], np.float32)


@st.composite
def trees(draw: st.DrawFn, n_features: int, categorical: frozenset[int], width: int) -> Tree:
    """A random tree in xgboost's layout, nodes in a shuffled order, some of them unreachable."""
    n_inner = draw(st.integers(0, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = 2 * n_inner + 1
    # grow: each inner node in breadth order takes the next two ids as children
    left, right = np.full(n, -1, np.int32), np.full(n, -1, np.int32)
    open_leaves, next_id = [0], 1
    for _ in range(n_inner):
        node = open_leaves.pop(int(rng.integers(len(open_leaves))))
        left[node], right[node] = next_id, next_id + 1
        open_leaves += [next_id, next_id + 1]
        next_id += 2
    perm = np.concatenate([[0], 1 + rng.permutation(n - 1)])  # node ids shuffled, root stays 0
    inv = np.argsort(perm)
    left = np.where(left >= 0, inv[np.maximum(left, 0)], -1)[perm].astype(np.int32)
    right = np.where(right >= 0, inv[np.maximum(right, 0)], -1)[perm].astype(np.int32)
    extra = draw(st.integers(0, 2))  # unreachable nodes: must never matter
    left = np.concatenate([left, np.full(extra, -1, np.int32)])
    right = np.concatenate([right, np.full(extra, -1, np.int32)])
    n += extra
    feature = rng.integers(0, n_features, n).astype(np.int32)
    threshold = np.where(rng.random(n) < 0.5, rng.choice(GRID, n), rng.normal(0, 2, n)).astype(np.float32)
    special = rng.random(n)
    threshold[special < 0.05] = -np.inf
    threshold[(special >= 0.05) & (special < 0.1)] = np.inf
    categories = [np.empty(0, np.int64)] * n
    for i in range(n):
        if left[i] >= 0 and int(feature[i]) in categorical:
            size = int(rng.integers(1, 6))
            categories[i] = np.unique(rng.choice(np.r_[0:12, 40, 200], size, replace=False)).astype(np.int64)
            threshold[i] = 0
    values = rng.normal(0, 1, (n, width) if width > 1 else n).astype(np.float32)
    return Tree(
        left=left,
        right=right,
        feature=feature,
        threshold=threshold,
        default_left=rng.random(n) < 0.5,
        leaf_value=values,
        weight=float(draw(st.sampled_from([1.0, 1.0, 0.5, 0.3333]))),
        categories=tuple(categories) if categorical else (),
    )


@st.composite
def forests(draw: st.DrawFn) -> Forest:
    n_features = draw(st.integers(1, 4))
    link = draw(st.sampled_from(sorted(LINKS)))
    groups = 1 if link in ("hinge",) else draw(st.integers(1, 3))
    if link in ("softmax", "argmax"):
        groups = draw(st.integers(2, 3))
    missing = draw(st.sampled_from([np.nan, np.nan, -999.0, 0.0]))
    base = np.asarray(draw(st.lists(st.floats(-3, 3, width=32), min_size=groups, max_size=groups)), np.float32)
    common = {
        "feature_names": tuple(f"x{i}" for i in range(n_features)),
        "n_groups": groups,
        "base_margin": base,
        "objective": LINKS[link],
        "missing": float(missing),
        "targets": None if groups == 1 or link == "argmax" else tuple(f"t{g}" for g in range(groups)),
    }
    if draw(st.integers(0, 5)) == 0:  # a linear model
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        w = (rng.normal(0, 1, (n_features, groups)) * 10.0 ** rng.integers(-2, 3, (n_features, 1))).astype(np.float32)
        linear = Linear(weights=w, bias=rng.normal(0, 1, groups).astype(np.float32))
        return Forest(trees=(), linear=linear, booster="gblinear", **common).validate()
    categorical = frozenset(draw(st.sets(st.integers(0, n_features - 1), max_size=n_features)))
    vector = groups > 1 and draw(st.booleans())
    n_trees = draw(st.integers(1, 6))
    out = []
    for k in range(n_trees):
        t = draw(trees(n_features, categorical, groups if vector else 1))
        out.append(t if vector else Tree(**{**t.__dict__, "group": k % groups if draw(st.booleans()) else 0}))
    return Forest(trees=tuple(out), **common).validate()


def _run(model, X: np.ndarray) -> np.ndarray:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X})[0]


@SETTINGS
@given(forest=forests())
def test_every_emitter_matches_the_reference_evaluator(forest: Forest):
    X, _labels = probes(forest, n_random=200, seed=3).stacked()
    want = reference.predict(forest, X)
    tree_out = _run(emit_tree(forest), X)
    assert tree_out.shape == want.shape
    assert_parity(tree_out, want, "tree flavor vs reference")
    for strategy in sorted(STRATEGY_FUNCTIONS):
        got = _run(emit_tensor(forest, strategy=strategy), X)
        np.testing.assert_array_equal(got, tree_out, err_msg=f"tensor/{strategy} differs from the tree flavor")


@SETTINGS
@given(forest=forests())
def test_margins_are_bit_identical_to_the_reference(forest: Forest):
    """With the identity link the graphs output the margins: float32-exact, whatever the structure."""
    identity = Forest(**{**forest.__dict__, "objective": OBJECTIVES["reg:squarederror"]})
    if identity.n_groups > 1:
        identity = Forest(**{**identity.__dict__, "targets": tuple(f"t{g}" for g in range(identity.n_groups))})
    X, _labels = probes(identity, n_random=200, seed=4).stacked()
    want = reference.predict(identity, X)
    np.testing.assert_array_equal(_run(emit_tree(identity), X), want)
    for strategy in sorted(STRATEGY_FUNCTIONS):
        np.testing.assert_array_equal(_run(emit_tensor(identity, strategy=strategy), X), want)
