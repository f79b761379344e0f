"""Graph variants of the tree flavor for the node-layout experiments (NOTES.md, "Batch on the CPU").

The same trees as the shipped artifact with a different layout (perfect trees, no
missing-value tracking, sharded ensembles), and a row order that groups rows by their
branch at the most common root splits. Built from the converter's IR and graph helpers,
so this module follows ``m7_convert``'s internals as they were when the experiments ran.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Any

import numpy as np


# ---- graph variants (same trees, different node layout) --------------------------------------------
def pad_to_perfect(tree: Any, depth: int) -> Any:
    """The same function as a perfect tree of ``depth``: a shallow leaf becomes a dummy split
    whose two children are copies of it, so every root-to-leaf walk has the same length."""
    from m7_convert.ir import Tree

    cols: dict[str, list[Any]] = {k: [] for k in ("left", "right", "feature", "threshold", "default_left", "value")}

    def new() -> int:
        for k, v in zip(cols, (-1, -1, 0, np.float32(0), True, np.float32(0)), strict=True):
            cols[k].append(v)
        return len(cols["left"]) - 1

    def build(src: int, level: int, dst: int) -> None:
        if tree.left[src] >= 0 or level < depth:
            split = tree.left[src] >= 0
            cols["feature"][dst] = int(tree.feature[src]) if split else 0
            cols["threshold"][dst] = tree.threshold[src] if split else np.float32(0)
            cols["default_left"][dst] = bool(tree.default_left[src]) if split else True
            left, right = new(), new()
            cols["left"][dst], cols["right"][dst] = left, right
            build(int(tree.left[src]) if split else src, level + 1, left)
            build(int(tree.right[src]) if split else src, level + 1, right)
        else:
            cols["value"][dst] = tree.leaf_value[src]

    build(0, 0, new())
    return Tree(
        np.array(cols["left"], np.int32),
        np.array(cols["right"], np.int32),
        np.array(cols["feature"], np.int32),
        np.array(cols["threshold"], np.float32),
        np.array(cols["default_left"], bool),
        np.array(cols["value"], np.float32),
        group=tree.group,
        weight=tree.weight,
    )


def variant_graph(forest: Any, *, perfect: bool = False, negate: bool = False, shards: int = 1) -> bytes:
    """The tree flavor with a different layout.

    ``negate``: no node tracks missing values. Input becomes [x, -x]; a default-left split
    ``x < t`` becomes ``-x < nextafter(-t, +inf)`` with its children swapped, which NaN
    fails, so NaN takes the false branch = the original left child; exact in float32.
    ``shards``: the trees split into that many TreeEnsembleRegressor nodes added together
    (a different float32 summation order: not exact, measured for speed only).
    """
    from onnx import helper

    from m7_convert import graph
    from m7_convert.emit_tree import tree_arrays

    if perfect:
        depth = forest.max_depth()
        forest = dataclasses.replace(forest, trees=tuple(pad_to_perfect(t, depth) for t in forest.trees))
    a = tree_arrays(forest)
    nodes, inits = graph.missing_to_nan(graph.INPUT, forest.missing, "x")
    feat, val = a["feature"].copy(), a["value"].copy()
    true, false, miss = a["true"].copy(), a["false"].copy(), a["missing"].copy()
    src = "x"
    if negate:
        nodes += [helper.make_node("Neg", ["x"], ["neg_x"]), helper.make_node("Concat", ["x", "neg_x"], ["xx"], axis=1)]
        src = "xx"
        m = (miss == 1) & ~a["leaf"]
        feat[m] += forest.n_features
        val[m] = np.nextafter(-val[m], np.float32(np.inf)).astype(np.float32)
        true[m], false[m] = false[m].copy(), true[m].copy()
        miss[:] = 0
    outs = []
    for s, chunk in enumerate(np.array_split(np.unique(a["tree"]), shards)):
        sel, lsel = np.isin(a["tree"], chunk), np.isin(a["leaf_tree"], chunk)
        out = f"margin{s}" if shards > 1 else "margin"
        nodes.append(
            helper.make_node(
                "TreeEnsembleRegressor",
                [src],
                [out],
                domain="ai.onnx.ml",
                n_targets=forest.n_groups,
                aggregate_function="SUM",
                post_transform="NONE",
                base_values=[0.0] * forest.n_groups,
                nodes_treeids=a["tree"][sel].tolist(),
                nodes_nodeids=a["node"][sel].tolist(),
                nodes_featureids=feat[sel].tolist(),
                nodes_modes=["LEAF" if leaf else "BRANCH_LT" for leaf in a["leaf"][sel]],
                nodes_values=val[sel].tolist(),
                nodes_truenodeids=true[sel].tolist(),
                nodes_falsenodeids=false[sel].tolist(),
                nodes_missing_value_tracks_true=miss[sel].tolist(),
                target_treeids=a["leaf_tree"][lsel].tolist(),
                target_nodeids=a["leaf_node"][lsel].tolist(),
                target_ids=a["leaf_group"][lsel].tolist(),
                target_weights=a["leaf_weight"][lsel].tolist(),
            )
        )
        outs.append(out)
    acc = outs[0]
    for i, o in enumerate(outs[1:]):
        nxt = "margin" if i == len(outs) - 2 else f"sum{i}"
        nodes.append(helper.make_node("Add", [acc, o], [nxt]))
        acc = nxt
    link_nodes, link_inits = graph.link(forest.objective.link, "margin", graph.OUTPUT)
    return graph.model(
        [*nodes, *link_nodes],
        inits + link_inits,
        n_features=forest.n_features,
        n_outputs=forest.n_outputs,
        graph_name="variant",
        ml=True,
    ).SerializeToString()


# ---- row order --------------------------------------------------------------------------------------
def root_signature_order(forest: Any, x: np.ndarray, bits: int = 16) -> np.ndarray:
    """A row order that groups rows taking the same branch at the most common root splits.

    Rows that agree on a split make the same branch decision one after another, which the
    CPU's branch predictor gets right; the prediction of each row is unchanged (only the
    order of rows moves).
    """
    roots = [(int(t.feature[0]), t.threshold[0], bool(t.default_left[0])) for t in forest.trees if t.left[0] >= 0]
    common_roots = [s for s, _ in collections.Counter(roots).most_common(bits)]
    key = np.zeros(len(x), dtype=np.uint32)
    for i, (f, t, dl) in enumerate(common_roots):
        col = x[:, f]
        go_left = (col < t) | (np.isnan(col) & dl)
        key |= go_left.astype(np.uint32) << np.uint32(bits - 1 - i)
    return np.argsort(key, kind="stable")
