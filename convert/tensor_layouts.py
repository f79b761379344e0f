"""Complete-tree layouts for the tensor emitter: fewer gathers per level than the compact traversal.

Every tree is padded to a complete binary tree of the forest's depth D and stored as one
table per level, so a row's position at the next level is arithmetic (``2k + (x < t)``)
rather than a third lookup. Two strategies use it (``emit_tensor.STRATEGY_FUNCTIONS``):

* ``complete``: the root level of every tree is evaluated densely (one ``Gather`` of whole
  input rows and one ``Less``, no per-element lookup), every deeper level with three
  ``GatherElements`` (column, value, threshold). Standard operators that onnxruntime's
  CUDA provider implements, so it can be the CUDA graph.
* ``code``: the top three levels (seven nodes per tree) are evaluated densely and packed
  into one 7-bit code per tree and row by a ``MatMulInteger`` with the weights 2**h; the
  next levels' tables are indexed by that code directly (the code → position map is folded
  into them), so the top three levels cost no per-element lookup at all. ``MatMulInteger``
  on uint8 has no CUDA kernel: CPU graphs only.

Both read ``CompactTree`` trees (``tensor_trees``) and produce the same [S, N] leaf values as
the compact strategies, so they are bit-identical to them and to the tree flavor.
Padding below a shallow leaf compares against a NaN threshold: ``x < NaN`` is false for
every x, including ±inf (IEEE 754, CPU and CUDA alike), so a padded node always goes
right and the leaf's value is stored where that path ends. Forests whose padding would be
too large decline (:func:`declines`) and the choice falls back to ``traversal``.

This module is a leaf: it receives the graph builder, the column blocks and the trees as
arguments (typed through ``TYPE_CHECKING`` only), so ``emit_tensor`` can list its
strategies without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from onnx import TensorProto

if TYPE_CHECKING:
    from .ir import Forest

#: node budget: deeper forests, or more padded nodes than this, keep the compact traversal
#: (the tables hold trees x 2**depth leaves; at depth 10 that is already 1,024 per tree)
COMPLETE_MAX_DEPTH = 10
COMPLETE_MAX_NODES = 2**21
#: ``code``: levels packed into one code per tree and row (2**3 - 1 = 7 bits, uint8 weights)
CODE_TOP_LEVELS = 3
#: ``code``: deeper levels are indexed by the code (2x more entries per level) while their
#: tables stay this wide; then the position is looked up once and tables go back to 2**level.
#: 256 was fastest on 500x6 and 1000x8 forests (benchmarks/NOTES.md, "Complete-tree layouts")
CODE_FOLD_MAX = 256


@dataclass(frozen=True)
class CompleteTables:
    """Trees padded to complete binary trees of depth ``depth``, one table per level.

    At level l the node at position k has its left child at 2k + 1 and its right child at
    2k, so the next position is ``2k + (x < t)``. A leaf at level l, position k sits at
    position k * 2**(depth - l) of ``leaves`` (padding below it always goes right).
    """

    depth: int
    columns: tuple[np.ndarray, ...]  # level l: int64 [S, 2**l], rows of the column blocks
    thresholds: tuple[np.ndarray, ...]  # level l: float32 [S, 2**l], NaN below a leaf
    leaves: np.ndarray  # float32 [S, 2**depth]


def padded_nodes(trees: int, depth: int) -> int:
    """Table entries of the complete layout: inner nodes and leaves of ``trees`` complete trees."""
    return trees * (2 ** (depth + 1) - 1)


def declines(forest: Forest, n_slots: int) -> str | None:
    """Why the complete layouts cannot take this forest (None: they can): the node budget.

    Categorical splits and vector leaves need nothing of their own here: ``emit_tensor``
    turns the former into numeric splits on membership columns and the latter into one
    tree per output group before any strategy sees them.
    """
    depth = max(1, forest.max_depth())
    if depth > COMPLETE_MAX_DEPTH:
        return f"depth {depth} is beyond the complete layout's budget (depth <= {COMPLETE_MAX_DEPTH})"
    if padded_nodes(n_slots, depth) > COMPLETE_MAX_NODES:
        return (
            f"{n_slots} trees of depth {depth} pad to {padded_nodes(n_slots, depth):,} nodes, "
            f"beyond the complete layout's budget of {COMPLETE_MAX_NODES:,}"
        )
    return None


def complete_tables(trees: list[Any]) -> CompleteTables:
    """The per-level tables of ``trees`` (``CompactTree``: left/right/column/threshold/value).

    At least one level: a forest of single leaves gets a root that always goes right.
    """
    depth = max(1, max(t.depth() for t in trees))
    s = len(trees)
    cols = [np.zeros((s, 2**lv), np.int64) for lv in range(depth)]
    thrs = [np.full((s, 2**lv), np.nan, np.float32) for lv in range(depth)]
    leaves = np.zeros((s, 2**depth), np.float32)
    for i, t in enumerate(trees):
        stack = [(0, 0, 0)]  # node, level, position
        while stack:
            node, level, k = stack.pop()
            if t.left[node] < 0:
                leaves[i, k * 2 ** (depth - level)] = t.value[node]
                continue
            cols[level][i, k] = t.column[node]
            thrs[level][i, k] = t.threshold[node]
            stack.append((int(t.left[node]), level + 1, 2 * k + 1))
            stack.append((int(t.right[node]), level + 1, 2 * k))
    return CompleteTables(depth, tuple(cols), tuple(thrs), leaves)


def _goes_left_int(g: Any, goes_left: str) -> str:
    return g.op("Cast", [goes_left], "left_i32", to=TensorProto.INT32)


def _step(g: Any, columns: Any, at: str, col_table: np.ndarray, thr_table: np.ndarray) -> str:
    """One sparse level: the next index ``2 * at + (x < t)``, reading each row's node through ``at``."""
    col = g.op("GatherElements", [g.const("level_columns", col_table.astype(np.int32)), at], "col", axis=1)
    x = g.op("GatherElements", [columns.name, col], "x", axis=0)
    th = g.op("GatherElements", [g.const("level_thresholds", thr_table), at], "th", axis=1)
    left = _goes_left_int(g, g.op("Less", [x, th], "left"))
    return g.op("Add", [g.op("Add", [at, at], "twice"), left], "next")


def complete(g: Any, columns: Any, trees: list[Any]) -> str:
    """Leaf value of every tree slot, [S, N]: dense root level, then one sparse step per level."""
    t = complete_tables(trees)
    root_x = g.op("Gather", [columns.name, g.const("root_columns", t.columns[0][:, 0])], "root_x", axis=0)
    left = g.op("Less", [root_x, g.const("root_thresholds", t.thresholds[0])], "root_left")
    k = _goes_left_int(g, left)  # position at level 1
    for level in range(1, t.depth):
        k = _step(g, columns, k, t.columns[level], t.thresholds[level])
    return g.op("GatherElements", [g.const("leaf_values", t.leaves), k], "tree_values", axis=1)


def code_positions(top: int) -> np.ndarray:
    """Position at level ``top`` for every code (bit h: goes left at heap node h of the top levels)."""
    n_bits = 2**top - 1
    out = np.zeros(2**n_bits, np.int64)
    for c in range(2**n_bits):
        k = 0
        for level in range(top):
            k = 2 * k + ((c >> (2**level - 1 + k)) & 1)
        out[c] = k
    return out


def code(g: Any, columns: Any, trees: list[Any]) -> str:
    """Leaf value of every tree slot, [S, N]: the top levels as one code per tree and row, then sparse steps."""
    t = complete_tables(trees)
    s = len(trees)
    top = min(CODE_TOP_LEVELS, t.depth)
    n_bits = 2**top - 1
    heap_columns = np.concatenate(t.columns[:top], axis=1)  # [S, I], heap order
    heap_thresholds = np.concatenate(t.thresholds[:top], axis=1)  # [S, I]
    # each distinct (column, threshold) is compared once for all trees, then its 0/1 row is copied per node
    pairs = np.stack([heap_columns.astype(np.int64), heap_thresholds.view(np.int32).astype(np.int64)], axis=-1)
    unique, pair_of = np.unique(pairs.reshape(-1, 2), axis=0, return_inverse=True)
    pair_columns = unique[:, 0]
    pair_thresholds = unique[:, 1].astype(np.int32).view(np.float32).reshape(-1, 1)
    x = g.op("Gather", [columns.name, g.const("pair_columns", pair_columns)], "pair_x", axis=0)  # [P, N]
    left = g.op("Less", [x, g.const("pair_thresholds", pair_thresholds)], "pair_left")
    left = g.op("Cast", [left], "pair_bits", to=TensorProto.UINT8)
    bits = g.op(
        "Gather", [left, g.const("node_pairs", pair_of.reshape(s, n_bits).astype(np.int64))], "top_bits", axis=0
    )
    weights = (2 ** np.arange(n_bits)).astype(np.uint8).reshape(1, n_bits)
    packed = g.op("MatMulInteger", [g.const("top_weights", weights), bits], "code_s1n")  # int32 [S, 1, N]
    idx = g.op("Squeeze", [packed, g.const("axis1", np.array([1], np.int64))], "code")
    position = code_positions(top)  # entry i of a code-indexed table belongs to position[i]
    k: str | None = None  # the plain position, once tables stop being code-indexed
    for level in range(top, t.depth):
        if k is None and len(position) > CODE_FOLD_MAX:
            lookup = np.ascontiguousarray(np.broadcast_to(position.astype(np.int32), (s, len(position))))
            k = g.op("GatherElements", [g.const("code_to_position", lookup), idx], "position", axis=1)
        if k is None:
            idx = _step(g, columns, idx, t.columns[level][:, position], t.thresholds[level][:, position])
            position = (2 * np.repeat(position, 2) + np.tile(np.array([0, 1]), len(position))).astype(np.int64)
        else:
            k = _step(g, columns, k, t.columns[level], t.thresholds[level])
    leaves = t.leaves if k is not None else t.leaves[:, position]
    return g.op("GatherElements", [g.const("leaf_values", leaves), k or idx], "tree_values", axis=1)


# ---- the CPU graphs' sum: one CumSum over the trees (emit_tensor, summation="cumsum") ----------------------
def fold_base_margin(compact: list[Any], forest: Forest) -> list[Any]:
    """Slot g (group g's first tree) with leaves ``fl(base[g] + leaf)``: the chain's first addition, done here."""
    base = forest.base_margin.astype(np.float32)
    folded = list(compact)
    for g in range(forest.n_groups):
        c = compact[g]
        value = np.where(c.left < 0, base[g] + c.value, np.float32(0)).astype(np.float32)
        folded[g] = replace(c, value=value)
    return folded


def sum_cumsum(g: Any, tree_values: str, rows: str, forest: Forest, per_group: int) -> str:
    """Margins by one CumSum over the tree axis (base margin already in the first trees' leaves).

    [N, groups]; with one group [N] (every link reads that as well, and two nodes fewer run).
    """
    last = g.const("last_tree", np.array(per_group - 1, np.int64))
    axis = g.const("tree_axis", np.array(0, np.int64))
    if forest.n_groups == 1 and forest.n_outputs == 1 and forest.objective.link not in ("softmax", "argmax"):
        return g.op("Gather", [g.op("CumSum", [tree_values, axis], "running_sum"), last], "margin", axis=0)
    kgn = g.op("Concat", [g.const("kg", np.array([per_group, forest.n_groups], np.int64)), rows], "kgn_shape", axis=0)
    values = g.op("Reshape", [tree_values, kgn], "kgn")
    gn = g.op("Gather", [g.op("CumSum", [values, axis], "running_sum"), last], "margin_gn", axis=0)
    return g.op("Transpose", [gn], "margin", perm=[1, 0])
