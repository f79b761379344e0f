"""Stage 3a, emit the tree flavor: one ai.onnx.ml ``TreeEnsembleRegressor`` + standard link.

``TreeEnsembleRegressor`` (ai.onnx.ml 3) rather than ``TreeEnsemble`` (ai.onnx.ml 5): every
onnxruntime we support implements it, and with ``post_transform="NONE"`` and the link as
its own node it has none of the known post-transform bugs. Thresholds stay float32, so
``x < threshold`` compares exactly as xgboost does; ``nodes_missing_value_tracks_true``
carries xgboost's default direction. Only nodes reachable from each root are emitted.
Categorical splits read membership columns (:mod:`.categories`); a vector leaf holds one
target entry per output group.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from . import graph
from .categories import membership
from .emit_linear import emit_linear
from .ir import Forest, Tree


def _intercept_trees(forest: Forest) -> list[Tree]:
    """The base margin as leading one-leaf trees, one per output group.

    onnxruntime adds ``base_values`` after summing the trees; xgboost starts from the base
    margin and adds trees in order. In float32 the two orders differ by many ulps when the
    base margin is large and the result small (a spend model: 50 + trees = 0.8). As the
    first "tree" the base margin is summed exactly where xgboost sums it.
    """
    return [Tree.leaf(m, group=g) for g, m in enumerate(forest.base_margin)]


def tree_arrays(forest: Forest) -> dict[str, np.ndarray]:
    """The forest (intercept trees first) as flat per-node and per-leaf arrays (nodes renumbered per tree).

    A vector-leaf tree's leaf gets one target entry per output group.
    """
    cols: dict[str, list[np.ndarray]] = {
        k: [] for k in ("tree", "node", "feature", "leaf", "value", "true", "false", "missing")
    }
    leaves: dict[str, list[np.ndarray]] = {k: [] for k in ("tree", "node", "group", "weight")}
    for tid, tree in enumerate([*_intercept_trees(forest), *forest.trees]):
        t = tree.compact()
        leaf = t.is_leaf
        n = t.n_nodes
        cols["tree"].append(np.full(n, tid, dtype=np.int64))
        cols["node"].append(np.arange(n, dtype=np.int64))
        cols["feature"].append(t.feature.astype(np.int64))
        cols["leaf"].append(leaf)
        cols["value"].append(t.threshold)
        cols["true"].append(np.maximum(t.left, 0).astype(np.int64))
        cols["false"].append(np.maximum(t.right, 0).astype(np.int64))
        cols["missing"].append(t.default_left.astype(np.int64))
        leaf_ids = np.flatnonzero(leaf)
        values = t.weighted_leaf_values()[leaf_ids]
        groups = np.full(len(leaf_ids), t.group, dtype=np.int64)
        if t.is_vector:  # leaf by leaf, every group's value
            k = values.shape[1]
            leaf_ids, groups, values = np.repeat(leaf_ids, k), np.tile(np.arange(k), len(leaf_ids)), values.ravel()
        leaves["tree"].append(np.full(len(leaf_ids), tid, dtype=np.int64))
        leaves["node"].append(leaf_ids.astype(np.int64))
        leaves["group"].append(groups)
        leaves["weight"].append(values)
    out = {k: np.concatenate(v) for k, v in cols.items()}
    out.update({f"leaf_{k}": np.concatenate(v) for k, v in leaves.items()})
    return out


def emit_tree(forest: Forest) -> onnx.ModelProto:
    if forest.linear is not None:  # no trees: the linear graph serves both flavors
        return emit_linear(forest, ml=True)
    pre_nodes, pre_inits = graph.missing_to_nan(graph.INPUT, forest.missing, "x")
    cats = membership(forest, "x")
    numeric = cats.forest
    a = tree_arrays(numeric)
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        [cats.output],
        ["margin"],
        domain="ai.onnx.ml",
        n_targets=forest.n_groups,
        aggregate_function="SUM",
        post_transform="NONE",
        base_values=[0.0] * forest.n_groups,
        nodes_treeids=a["tree"].tolist(),
        nodes_nodeids=a["node"].tolist(),
        nodes_featureids=a["feature"].tolist(),
        nodes_modes=["LEAF" if leaf else "BRANCH_LT" for leaf in a["leaf"]],
        nodes_values=a["value"].tolist(),
        nodes_truenodeids=a["true"].tolist(),
        nodes_falsenodeids=a["false"].tolist(),
        nodes_missing_value_tracks_true=a["missing"].tolist(),
        target_treeids=a["leaf_tree"].tolist(),
        target_nodeids=a["leaf_node"].tolist(),
        target_ids=a["leaf_group"].tolist(),
        target_weights=a["leaf_weight"].tolist(),
    )
    link_nodes, link_inits = graph.link(forest.objective.link, "margin", graph.OUTPUT, forest.n_outputs)
    return graph.model(
        [*pre_nodes, *cats.nodes, ensemble, *link_nodes],
        pre_inits + cats.initializers + link_inits,
        n_features=forest.n_features,
        n_outputs=forest.n_outputs,
        graph_name="xgboost_tree_ensemble",
        ml=True,
    )
