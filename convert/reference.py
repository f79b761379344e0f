"""A numpy evaluator over the IR (treelite's GTIL idea).

It is deliberately plain: walk every tree for all rows at once, add leaf values in float32
in tree order starting from the base margin (as xgboost's CPU predictor does), then apply
the link. Tests compare it with xgboost (does parsing keep the model?) and with the ONNX
graphs (does emitting keep the IR?), so a failure names the stage that broke.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .ir import Forest


def _softmax(m: np.ndarray) -> np.ndarray:
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


#: link name -> numpy implementation (float32 margins in, float32 predictions out)
LINKS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda m: m[:, 0],
    "sigmoid": lambda m: 1.0 / (1.0 + np.exp(-m[:, 0].astype(np.float64))),
    "exp": lambda m: np.exp(m[:, 0].astype(np.float64)),
    "hinge": lambda m: (m[:, 0] > 0).astype(np.float32),
    "softmax": lambda m: _softmax(m.astype(np.float64)),
    "argmax": lambda m: np.argmax(m, axis=1).astype(np.float32),
}


def missing_mask(forest: Forest, X: np.ndarray) -> np.ndarray:
    """NaN is always missing; a sentinel ``missing`` value is missing too (xgboost's rule)."""
    mask = np.isnan(X)
    if not np.isnan(forest.missing):
        mask |= np.float32(forest.missing) == X
    return mask


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
        go_left = np.where(missing[rows, f], t.default_left[node], x < t.threshold[node])
        nxt = np.where(go_left, t.left[node], t.right[node])
        node = np.where(inner, nxt, node)


def margins(forest: Forest, X: np.ndarray) -> np.ndarray:
    """Summed margins, shape (n, n_groups), float32."""
    X = np.asarray(X, dtype=np.float32)
    out = np.tile(forest.base_margin.astype(np.float32), (len(X), 1))
    missing = missing_mask(forest, X)
    for i, t in enumerate(forest.trees):
        leaves = leaf_index(forest, X, i, missing)
        out[:, t.group] += t.weighted_leaf_values()[leaves]
    return out


def predict(forest: Forest, X: np.ndarray) -> np.ndarray:
    """What ``Booster.predict`` returns: (n,) for one output, (n, k) for class probabilities."""
    with np.errstate(over="ignore"):
        return LINKS[forest.objective.link](margins(forest, X)).astype(np.float32)
