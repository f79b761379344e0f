"""Emit a ``gblinear`` booster: weights + bias per output group, then the link, in standard ONNX.

There is no tree to walk, so both flavors are this one graph of standard opset 17
operators (it runs on onnxruntime's CUDA provider and on 1.17; the tree-flavor file also
imports ai.onnx.ml 3, unused, like every tree-flavor file). It reproduces ``GBLinear::Pred``
(``src/gbm/gblinear.cc``) operation for operation, so the margins are bit-identical to
xgboost's: each group starts at ``bias[g] + base_score`` (in float32; xgboost uses the
first intercept for every group), then adds ``x[f] * w[f, g]`` (a float32 product) feature
by feature in column order, a missing value adding nothing. A ``MatMul`` would sum in
another order (and on a GPU possibly in TF32), so the terms are added with a chain of
``Add`` nodes instead, as the tree flavors add their leaves.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from . import graph
from .ir import Forest

#: the tensor flavor's ``strategy`` for a linear model (ONNX metadata and manifest)
STRATEGY = "linear"


def emit_linear(forest: Forest, *, ml: bool = False) -> onnx.ModelProto:
    """The linear model's graph; ``ml``: also import ai.onnx.ml (unused), as every tree-flavor file does."""
    linear = forest.linear
    if linear is None:
        raise ValueError("emit_linear needs a gblinear forest")
    n_features, n_groups = linear.weights.shape
    start = (linear.bias + forest.base_margin).astype(np.float32)  # float32 add, as xgboost
    pre_nodes, pre_inits = graph.missing_to_nan(graph.INPUT, forest.missing, "x")
    inits = [
        *pre_inits,
        graph.const("x_3d_shape", np.array([0, n_features, 1], np.int64)),
        graph.const("weights", linear.weights.reshape(1, n_features, n_groups)),
        graph.const("zero_term", np.float32(0)),
        graph.const("start", start.reshape(1, 1, n_groups)),
        graph.const("axis1", np.array([1], np.int64)),
    ]
    terms = [f"term_{f}" for f in range(n_features)]
    nodes = [
        *pre_nodes,
        helper.make_node("Reshape", ["x", "x_3d_shape"], ["x_3d"]),  # [N, F, 1]
        helper.make_node("Mul", ["x_3d", "weights"], ["products"]),  # [N, F, G], float32 products
        helper.make_node("IsNaN", ["x_3d"], ["x_missing"]),
        helper.make_node("Where", ["x_missing", "zero_term", "products"], ["present_products"]),
    ]
    if n_features == 1:
        nodes.append(helper.make_node("Identity", ["present_products"], terms))
    else:
        nodes.append(helper.make_node("Split", ["present_products"], terms, axis=1))
    acc = "start"
    for f, term in enumerate(terms):  # [N, 1, G] each, added in feature order
        nodes.append(helper.make_node("Add", [acc, term], [f"margin_{f}"]))
        acc = f"margin_{f}"
    nodes.append(helper.make_node("Squeeze", [acc, "axis1"], ["margin"]))  # [N, G]
    link_nodes, link_inits = graph.link(forest.objective.link, "margin", graph.OUTPUT, forest.n_outputs)
    return graph.model(
        nodes + link_nodes,
        inits + link_inits,
        n_features=forest.n_features,
        n_outputs=forest.n_outputs,
        graph_name="xgboost_gblinear",
        ml=ml,
    )
