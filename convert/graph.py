"""ONNX pieces both flavors share: the input, the missing-value rewrite, the link, the model.

Opsets: standard ONNX 17 and ai.onnx.ml 3, IR version 8. onnxruntime supports these since
1.13; we test from the oldest runtime we claim (see README) to the newest. The link is a
separate standard node rather than a tree-operator ``post_transform``, which sidesteps
onnxruntime's post-transform bugs (#26596, #27533, #28557) and is the same for both
flavors.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from m7_runtime import __version__

OPSET = 17
ML_OPSET = 3
IR_VERSION = 8
INPUT = "features"
OUTPUT = "prediction"


def const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name=name)


def missing_to_nan(source: str, missing: float, out: str) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """xgboost treats a sentinel ``missing`` like NaN; rewrite it to NaN so both are one case."""
    if math.isnan(missing):
        return [helper.make_node("Identity", [source], [out])], []
    inits = [const("missing_value", np.float32(missing)), const("nan_value", np.float32(np.nan))]
    nodes = [
        helper.make_node("Equal", [source, "missing_value"], ["is_missing"]),
        helper.make_node("Where", ["is_missing", "nan_value", source], [out]),
    ]
    return nodes, inits


def link(name: str, margin: str, out: str, n_outputs: int = 1) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Margins [N, groups] -> prediction: [N] for one value per row, [N, k] for probabilities or k targets.

    ``n_outputs``: the width of the prediction; elementwise links (identity, sigmoid, exp,
    hinge) keep [N, k] when there are several targets.
    """
    flat = [const("flat_shape", np.array([-1], dtype=np.int64))]
    if name == "softmax":
        return [helper.make_node("Softmax", [margin], [out], axis=1)], []
    if name == "argmax":
        return [
            helper.make_node("ArgMax", [margin], ["class_index"], axis=1, keepdims=0),
            helper.make_node("Cast", ["class_index"], [out], to=TensorProto.FLOAT),
        ], []
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    linked = margin
    if name in ("sigmoid", "exp"):
        nodes.append(helper.make_node("Sigmoid" if name == "sigmoid" else "Exp", [margin], ["linked"]))
        linked = "linked"
    elif name == "hinge":
        inits.append(const("zero", np.float32(0)))
        nodes.append(helper.make_node("Greater", [margin, "zero"], ["positive"]))
        nodes.append(helper.make_node("Cast", ["positive"], ["linked"], to=TensorProto.FLOAT))
        linked = "linked"
    elif name != "identity":
        raise ValueError(f"no ONNX implementation of link {name!r}")
    if n_outputs > 1:
        return [*nodes, helper.make_node("Identity", [linked], [out])], inits
    return [*nodes, helper.make_node("Reshape", [linked, "flat_shape"], [out])], flat + inits


def model(
    nodes: list[onnx.NodeProto],
    initializers: list[onnx.TensorProto],
    *,
    n_features: int,
    n_outputs: int,
    graph_name: str,
    ml: bool,
) -> onnx.ModelProto:
    """Assemble and check a model with the project's fixed input/output contract."""
    out_shape = ["N"] if n_outputs == 1 else ["N", n_outputs]
    graph = helper.make_graph(
        nodes,
        graph_name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["N", n_features])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, out_shape)],
        initializer=initializers,
    )
    opsets = [helper.make_opsetid("", OPSET)] + ([helper.make_opsetid("ai.onnx.ml", ML_OPSET)] if ml else [])
    m = helper.make_model(graph, opset_imports=opsets, producer_name="market7-onnx", producer_version=__version__)
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def opsets_of(m: onnx.ModelProto) -> dict[str, int]:
    return {(o.domain or "ai.onnx"): int(o.version) for o in m.opset_import}
