"""The typed intermediate representation: a forest of trees (or a linear model) as arrays.

Built once from the booster JSON that every xgboost version writes (``save_raw("json")``,
``.ubj``, or the snapshot inside a pickle). Emitters and the reference evaluator read
only this, so a parsing bug and an emitting bug show up in different tests.

What a split does, exactly as xgboost's predictor (``src/predictor/predict_fn.h``,
``src/common/categorical.h``): a missing value (NaN, or the ``missing`` sentinel) takes the
node's default direction; otherwise a numerical split goes left when ``x < threshold``, and
a categorical split goes **right** when the value is a valid category code (``0 <= x <
2**24``, truncated to an integer: 2.7 is category 2) in the node's set, and left otherwise
(not in the set, negative, too large, ±inf).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .errors import SourceError, UnsupportedModelError
from .objectives import Objective

#: xgboost's ``OutOfRangeCat()`` + 1: inputs at or above it are invalid categories (go left)
CATEGORY_LIMIT = 2**24
_NO_CATEGORIES = np.empty(0, np.int64)


@dataclass(frozen=True, eq=False)
class Tree:
    """One regression tree in xgboost's node layout (node 0 is the root)."""

    left: np.ndarray  # int32, -1 at a leaf
    right: np.ndarray  # int32
    feature: np.ndarray  # int32 split feature
    threshold: np.ndarray  # float32: go left when x < threshold (0 at categorical splits)
    default_left: np.ndarray  # bool: where a missing value goes
    leaf_value: np.ndarray  # float32 [nodes], or [nodes, groups] for a vector-leaf tree; meaningful at leaves
    group: int = 0  # which output margin the tree adds to (class or target index); a vector-leaf tree adds to all
    weight: float = 1.0  # DART tree weight, 1.0 for gbtree
    #: per node, the sorted category codes that go right at a categorical split; empty at other
    #: nodes; () when the tree has no categorical split
    categories: tuple[np.ndarray, ...] = ()

    @classmethod
    def leaf(cls, value: float | np.ndarray, group: int = 0) -> Tree:
        """A tree that is a single leaf: the intercept trees, and padding (value 0) between groups."""
        one = np.zeros(1, np.int32)
        values = np.asarray(value, np.float32).reshape(1, -1)
        values = values[:, 0] if values.shape[1] == 1 else values
        return cls(one - 1, one - 1, one, np.zeros(1, np.float32), np.zeros(1, bool), values, group=group)

    @property
    def n_nodes(self) -> int:
        return len(self.left)

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left < 0

    @property
    def is_vector(self) -> bool:
        """A vector-leaf tree (``multi_strategy="multi_output_tree"``): each leaf holds one value per group."""
        return self.leaf_value.ndim == 2

    @property
    def is_categorical(self) -> np.ndarray:
        """Per node: is it a categorical split."""
        if not self.categories:
            return np.zeros(self.n_nodes, bool)
        return np.array([len(c) > 0 for c in self.categories]) & ~self.is_leaf

    def reachable(self) -> np.ndarray:
        """Node ids reachable from the root, parents before children, each right child just after its left sibling."""
        order, seen = [0], {0}
        for node in order:
            if self.left[node] >= 0:
                for child in (int(self.left[node]), int(self.right[node])):
                    if child in seen or not 0 <= child < self.n_nodes:
                        raise SourceError(f"tree node {node} points to child {child}: the tree is malformed")
                    seen.add(child)
                    order.append(child)
        return np.asarray(order, dtype=np.int64)

    def compact(self) -> Tree:
        """The reachable nodes renumbered 0.. in :meth:`reachable` order (siblings adjacent: right = left + 1).

        Leaves get children -1, feature 0, threshold 0 and default right; inner nodes leaf
        value 0. Both emitters read trees in this form, so node numbering lives here once.
        """
        order = self.reachable()
        renumber = np.full(self.n_nodes, -1, dtype=np.int64)
        renumber[order] = np.arange(len(order))
        leaf = self.is_leaf[order]
        values = self.leaf_value[order]
        mask = leaf if values.ndim == 1 else leaf[:, None]
        return Tree(
            left=np.where(leaf, -1, renumber[np.maximum(self.left[order], 0)]).astype(np.int32),
            right=np.where(leaf, -1, renumber[np.maximum(self.right[order], 0)]).astype(np.int32),
            feature=np.where(leaf, 0, self.feature[order]).astype(np.int32),
            threshold=np.where(leaf, np.float32(0), self.threshold[order]).astype(np.float32),
            default_left=np.where(leaf, False, self.default_left[order]),
            leaf_value=np.where(mask, values, np.float32(0)).astype(np.float32),
            group=self.group,
            weight=self.weight,
            categories=tuple(self.categories[i] if not leaf[j] else _NO_CATEGORIES for j, i in enumerate(order))
            if self.categories
            else (),
        )

    def for_group(self, group: int) -> Tree:
        """One group's scalar tree of a vector-leaf tree (the same splits, that group's leaf values)."""
        if not self.is_vector:
            return self
        return replace(self, leaf_value=np.ascontiguousarray(self.leaf_value[:, group]), group=group)

    def depth(self) -> int:
        depth = np.zeros(self.n_nodes, dtype=np.int64)
        for node in self.reachable():
            if self.left[node] >= 0:
                depth[self.left[node]] = depth[self.right[node]] = depth[node] + 1
        return int(depth.max())

    def weighted_leaf_values(self) -> np.ndarray:
        """Leaf values times the DART weight, in float32 as xgboost multiplies them."""
        return (self.leaf_value * np.float32(self.weight)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Linear:
    """A ``gblinear`` booster: ``margin[g] = (bias[g] + base) + x[0] * w[0, g] + x[1] * w[1, g] + ...``.

    In float32, feature by feature in column order, a missing value adding nothing
    (``GBLinear::Pred`` in ``src/gbm/gblinear.cc``).
    """

    weights: np.ndarray  # float32 [features, groups]
    bias: np.ndarray  # float32 [groups]


@dataclass(frozen=True)
class Provenance:
    """Facts about the source model the manifest records (not needed to predict)."""

    xgboost_version: str = "unknown"
    base_score: tuple[float, ...] = ()
    n_trees_total: int = 0
    n_rounds_total: int = 0
    rounds_used: tuple[int, int] = (0, 0)
    num_parallel_tree: int = 1


@dataclass(frozen=True, eq=False)
class Forest:
    """Everything inference needs: trees (or a linear model), how margins start, and how they end."""

    trees: tuple[Tree, ...]
    feature_names: tuple[str, ...]
    n_groups: int  # margins per row: 1, the number of classes, or the number of targets
    base_margin: np.ndarray  # float32, one per group
    objective: Objective
    missing: float = math.nan  # the value xgboost treats as missing besides NaN
    booster: str = "gbtree"
    targets: tuple[str, ...] | None = None  # names of the outputs when there are several
    #: per categorical feature trained on pandas categories (xgboost >= 3.1 stores them): its categories, code order
    category_values: dict[str, tuple[str | float, ...]] = field(default_factory=dict)
    linear: Linear | None = None  # the gblinear model (then ``trees`` is empty)
    provenance: Provenance = field(default_factory=Provenance)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_outputs(self) -> int:
        """Width of one prediction: one value per group (class probabilities, targets), one class index for argmax."""
        return 1 if self.objective.link == "argmax" else self.n_groups

    def max_depth(self) -> int:
        return max((t.depth() for t in self.trees), default=0)

    def n_leaves(self) -> int:
        return sum(int(t.is_leaf[t.reachable()].sum()) for t in self.trees)

    def _splits(self, categorical: bool) -> list[list[tuple[Tree, np.ndarray]]]:
        """Per feature: (tree, reachable inner node ids) of its numerical or its categorical splits."""
        per: list[list[tuple[Tree, np.ndarray]]] = [[] for _ in range(self.n_features)]
        for t in self.trees:
            nodes = t.reachable()
            nodes = nodes[~t.is_leaf[nodes] & (t.is_categorical[nodes] == categorical)]
            for f in np.unique(t.feature[nodes]):
                per[f].append((t, nodes[t.feature[nodes] == f]))
        return per

    def thresholds(self) -> list[np.ndarray]:
        """Sorted unique float32 thresholds of each feature's numerical splits (empty if none)."""
        empty = np.empty(0, np.float32)
        splits = self._splits(categorical=False)
        return [np.unique(np.concatenate([t.threshold[n] for t, n in p])) if p else empty for p in splits]

    def category_sets(self) -> list[list[np.ndarray]]:
        """Each feature's categorical splits: the category set of each (in tree order, duplicates kept)."""
        return [[t.categories[i] for t, n in p for i in n] for p in self._splits(categorical=True)]

    def categorical_features(self) -> list[int]:
        return [f for f, sets in enumerate(self.category_sets()) if sets]

    def split_ranges(self) -> dict[str, dict[str, float | int]]:
        """Per feature: lowest and highest threshold (or category code), and how many distinct ones."""
        out: dict[str, dict[str, float | int]] = {}
        for name, th, sets in zip(self.feature_names, self.thresholds(), self.category_sets(), strict=True):
            values = np.unique(np.concatenate([th.astype(np.float64), *[s.astype(np.float64) for s in sets]]))
            if len(values):
                out[name] = {"min": float(values[0]), "max": float(values[-1]), "n_thresholds": len(values)}
        return out

    def validate(self) -> Forest:
        """Check the invariants the emitters rely on; raise naming the first violation."""
        if len(self.base_margin) != self.n_groups:
            raise SourceError(f"{len(self.base_margin)} base margins for {self.n_groups} output groups")
        if not np.all(np.isfinite(self.base_margin)):
            raise SourceError(f"base margin {self.base_margin.tolist()} is not finite")
        if self.targets is not None and len(self.targets) != self.n_outputs:
            raise SourceError(f"{len(self.targets)} target names for {self.n_outputs} outputs")
        if self.linear is not None:
            w, b = self.linear.weights, self.linear.bias
            if w.shape != (self.n_features, self.n_groups) or b.shape != (self.n_groups,):
                raise SourceError(
                    f"linear weights of shape {w.shape} and bias {b.shape} for {self.n_features} features "
                    f"and {self.n_groups} groups"
                )
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise SourceError("the linear model has a non-finite weight or bias")
            return self
        if not self.trees:
            raise UnsupportedModelError("the model has no trees (nothing to convert)")
        for i, t in enumerate(self.trees):
            _validate_tree(t, i, self.n_features, self.n_groups)
        return self


def _validate_tree(t: Tree, i: int, n_features: int, n_groups: int) -> None:
    arrays = (t.left, t.right, t.feature, t.threshold, t.default_left, t.leaf_value)
    if len({len(a) for a in arrays}) != 1 or t.n_nodes == 0:
        raise SourceError(f"tree {i}: node arrays have different lengths")
    if t.categories and len(t.categories) != t.n_nodes:
        raise SourceError(f"tree {i}: {len(t.categories)} category sets for {t.n_nodes} nodes")
    nodes = t.reachable()
    inner = nodes[~t.is_leaf[nodes]]
    if inner.size and (t.feature[inner].min() < 0 or t.feature[inner].max() >= n_features):
        raise SourceError(f"tree {i} splits on feature {int(t.feature[inner].max())}, model has {n_features}")
    if not np.all(np.isfinite(t.leaf_value[nodes[t.is_leaf[nodes]]])):
        raise SourceError(f"tree {i} has a non-finite leaf value")
    if np.any(np.isnan(t.threshold[inner])):
        raise SourceError(f"tree {i} has a NaN split threshold")
    for node in inner[t.is_categorical[inner]]:
        cats = t.categories[node]
        if cats.min() < 0 or np.any(np.diff(cats) <= 0):
            raise SourceError(f"tree {i} node {node}: categories {cats[:8].tolist()} are not distinct codes >= 0")
    if t.is_vector:
        if t.leaf_value.shape[1] != n_groups:
            raise SourceError(f"tree {i} has leaves of {t.leaf_value.shape[1]} values, model has {n_groups} outputs")
    elif not 0 <= t.group < n_groups:
        raise SourceError(f"tree {i} adds to output group {t.group}, model has {n_groups}")
