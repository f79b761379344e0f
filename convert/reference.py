"""A numpy evaluator over the IR (treelite's GTIL idea).

It is deliberately plain: walk every tree for all rows at once, add leaf values in float32
in tree order starting from the base margin (as xgboost's CPU predictor does), then apply
the link. A linear model adds ``x * w`` feature by feature in float32. Tests compare it
with xgboost (does parsing keep the model?) and with the ONNX graphs (does emitting keep
the IR?), so a failure names the stage that broke.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .ir import CATEGORY_LIMIT, Forest, Tree


def _softmax(m: np.ndarray) -> np.ndarray:
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _flat(m: np.ndarray) -> np.ndarray:
    """One output per row -> (n,); several (targets) -> (n, k), as ``Booster.predict``."""
    return m[:, 0] if m.shape[1] == 1 else m


#: link name -> numpy implementation (float32 margins in, predictions out; elementwise links per target)
LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": _flat,
    "sigmoid": lambda m: _flat(1.0 / (1.0 + np.exp(-m.astype(np.float64)))),
    "exp": lambda m: _flat(np.exp(m.astype(np.float64))),
    "hinge": lambda m: _flat((m > 0).astype(np.float32)),
    "softmax": lambda m: _softmax(m.astype(np.float64)),
    "argmax": lambda m: np.argmax(m, axis=1).astype(np.float32),
}


def missing_mask(forest: Forest, X: np.ndarray) -> np.ndarray:
    """NaN is always missing; a sentinel ``missing`` value is missing too (xgboost's rule)."""
    mask = np.isnan(X)
    if not np.isnan(forest.missing):
        mask |= np.float32(forest.missing) == X
    return mask


def in_category_set(x: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """xgboost's categorical ``Decision`` negated: is ``x`` a valid code (0 <= x < 2**24, truncated) in the set."""
    with np.errstate(invalid="ignore"):
        valid = (x >= 0) & (x < CATEGORY_LIMIT)
        codes = np.where(valid, x, -1).astype(np.int64)
    return valid & np.isin(codes, categories)


def _goes_left(t: Tree, node: np.ndarray, x: np.ndarray) -> np.ndarray:
    left = x < t.threshold[node]
    if t.categories:
        cat = t.is_categorical[node]
        for n in np.unique(node[cat]):
            rows = node == n
            left[rows] = ~in_category_set(x[rows], t.categories[n])
    return left


def leaf_index(forest: Forest, X: np.ndarray, tree_index: int, missing: np.ndarray | None = None) -> np.ndarray:
    """The leaf each row reaches in one tree."""
    t = forest.trees[tree_index]
    missing = missing_mask(forest, X) if missing is None else missing
    rows = np.arange(len(X))
    node = np.zeros(len(X), dtype=np.int64)
    while True:
        inner = t.left[node] >= 0
        if not inner.any():
            return node
        f = t.feature[node]
        x = X[rows, f]
        with np.errstate(invalid="ignore"):
            go_left = np.where(missing[rows, f], t.default_left[node], _goes_left(t, node, x))
        nxt = np.where(go_left, t.left[node], t.right[node])
        node = np.where(inner, nxt, node)


def _linear_margins(forest: Forest, X: np.ndarray, missing: np.ndarray) -> np.ndarray:
    assert forest.linear is not None
    w, bias = forest.linear.weights, forest.linear.bias
    out = np.tile((bias + forest.base_margin).astype(np.float32), (len(X), 1))
    with np.errstate(over="ignore", invalid="ignore"):
        for f in range(forest.n_features):
            term = (X[:, f : f + 1] * w[f]).astype(np.float32)
            out = np.where(missing[:, f : f + 1], out, (out + term).astype(np.float32))
    return out


def margins(forest: Forest, X: np.ndarray) -> np.ndarray:
    """Summed margins, shape (n, n_groups), float32."""
    X = np.asarray(X, dtype=np.float32)
    missing = missing_mask(forest, X)
    if forest.linear is not None:
        return _linear_margins(forest, X, missing)
    out = np.tile(forest.base_margin.astype(np.float32), (len(X), 1))
    for i, t in enumerate(forest.trees):
        leaves = leaf_index(forest, X, i, missing)
        if t.is_vector:
            out += t.weighted_leaf_values()[leaves]
        else:
            out[:, t.group] += t.weighted_leaf_values()[leaves]
    return out


def predict(forest: Forest, X: np.ndarray) -> np.ndarray:
    """What ``Booster.predict`` returns: (n,) for one output, (n, k) for class probabilities or targets."""
    with np.errstate(over="ignore"):
        return LINKS[forest.objective.link](margins(forest, X)).astype(np.float32)
