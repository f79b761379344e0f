"""The forest as the tensor strategies read it: compact trees, in summation slots.

Every strategy of :mod:`m7_convert.emit_tensor` (and the complete layouts of
:mod:`m7_convert.tensor_layouts`) walks the same per-tree arrays: reachable nodes renumbered
from 0 (parents first), each split reading the column block its default direction needs,
and the trees ordered as xgboost sums them (slot ``k * groups + g``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ir import Forest, Tree


@dataclass(frozen=True)
class CompactTree:
    """One tree's reachable nodes renumbered from 0 (parents first), as the strategies read them."""

    left: np.ndarray  # int64, -1 at a leaf
    right: np.ndarray  # int64, -1 at a leaf
    column: np.ndarray  # int64 row of the column blocks the split reads (0 at a leaf)
    threshold: np.ndarray  # float32, go left when column value < threshold (0 at a leaf)
    value: np.ndarray  # float32 leaf value (DART weight applied), 0 at inner nodes

    @property
    def inner(self) -> np.ndarray:
        return np.flatnonzero(self.left >= 0)

    @property
    def leaves(self) -> np.ndarray:
        return np.flatnonzero(self.left < 0)

    def depth(self) -> int:
        depth = np.zeros(len(self.left), dtype=np.int64)
        for node in self.inner:  # parents come before children
            depth[self.left[node]] = depth[self.right[node]] = depth[node] + 1
        return int(depth.max())


def _zero_tree() -> Tree:
    return Tree.leaf(0.0)


def compact_tree(t: Tree, n_features: int) -> CompactTree:
    c = t.compact()
    leaf = c.is_leaf
    feature = c.feature.astype(np.int64)
    threshold = c.threshold
    default_left = c.default_left
    # column blocks: [0, F) NaN -> -inf, [F, 2F) NaN -> +inf, [2F, 3F) 1.0 present / 0.0 missing
    column = np.where(default_left, feature, n_features + feature)
    present_test = default_left & (threshold == np.float32(-np.inf))
    column = np.where(present_test, 2 * n_features + feature, column)
    threshold = np.where(present_test, np.float32(0.5), threshold)
    return CompactTree(
        left=c.left.astype(np.int64),
        right=c.right.astype(np.int64),
        column=np.where(leaf, 0, column).astype(np.int64),
        threshold=np.where(leaf, np.float32(0), threshold).astype(np.float32),
        value=c.weighted_leaf_values(),
    )


def slots(forest: Forest) -> tuple[list[Tree], int]:
    """Trees in summation order: slot ``k * groups + g`` is the k-th tree of output group g.

    A vector-leaf tree counts as one tree in every group (its splits, that group's leaf
    values). Groups with fewer trees are padded with one-leaf trees of value 0 (adding
    +0.0 changes no float32 sum). Returns the trees and K, the number of trees per group.
    """
    per_group: list[list[Tree]] = [[] for _ in range(forest.n_groups)]
    for t in forest.trees:
        for g in range(forest.n_groups) if t.is_vector else (t.group,):
            per_group[g].append(t.for_group(g))
    k = max(len(p) for p in per_group)
    return [p[i] if i < len(p) else _zero_tree() for i in range(k) for p in per_group], k
