"""A scikit-learn ``ColumnTransformer`` before the booster, as standard ONNX operators.

Supported blocks: ``StandardScaler`` on numeric columns, ``OneHotEncoder`` on number-coded
columns (integer codes, NaN allowed as a category), ``"passthrough"`` and ``"drop"``
(also as the remainder). The graph is standard opset 17 only, so both flavors (and the
tensor flavor on CUDA) take the pipeline's raw input. What scikit-learn computes, step
by step, on the float32 rows the runtime feeds:

* ``StandardScaler``: ``(x - float32(mean)) / float32(scale)`` in float32, as its
  ``transform`` does on a float32 array (``X -= mean_.astype(X.dtype)``, then ``/=``);
* ``OneHotEncoder``: 1.0 where the value equals a category (compared in float64, as numpy
  compares a float32 row with the fitted categories; NaN matches a NaN category),
  0.0 elsewhere, so an unseen value is all zeros (``handle_unknown="ignore"``; with
  ``"error"`` scikit-learn raises instead, see the README); ``drop`` removes its column;
* when the ColumnTransformer was fitted to a sparse output (``sparse_output_``), xgboost
  receives a sparse matrix, where a value that is not stored is *missing*: every 0.0 of
  the output becomes NaN, as xgboost reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import graph
from .errors import UnsupportedModelError

OUTPUT = "preprocessed"


@dataclass(frozen=True)
class Block:
    """One part of the ColumnTransformer's output: which input columns, how they are transformed."""

    kind: str  # "scale" | "onehot" | "passthrough"
    inputs: tuple[int, ...]  # input column indices
    transformer: Any

    def width(self) -> int:
        if self.kind == "onehot":
            return sum(len(self.categories(i)) for i in range(len(self.inputs)))
        return len(self.inputs)

    def categories(self, i: int) -> np.ndarray:
        """The categories of the block's i-th column that get an output column (after ``drop``)."""
        cats = np.asarray(self.transformer.categories_[i], dtype=np.float64)
        drop = getattr(self.transformer, "drop_idx_", None)
        if drop is not None and drop[i] is not None:
            cats = np.delete(cats, int(drop[i]))
        return cats


def is_column_transformer(step: Any) -> bool:
    return type(step).__name__ == "ColumnTransformer"


def _indices(spec: Any, names: list[str] | None, n_in: int, what: str) -> tuple[int, ...]:
    """A fitted ColumnTransformer's column spec (ints, names, slice, bool mask) -> input indices."""
    if isinstance(spec, slice):
        return tuple(range(n_in)[spec])
    items = [spec] if isinstance(spec, (int, str, np.integer)) else list(spec)
    if items and all(isinstance(v, (bool, np.bool_)) for v in items):
        return tuple(i for i, keep in enumerate(items) if keep)
    out = []
    for v in items:
        if isinstance(v, str):
            if names is None or v not in names:
                raise UnsupportedModelError(f"{what}: column {v!r} is not among the input's columns {names}")
            out.append(names.index(v))
        else:
            out.append(int(v))
    return tuple(out)


def _kind(name: str, transformer: Any) -> str:
    cls = type(transformer).__name__
    if transformer == "passthrough" or (cls == "FunctionTransformer" and transformer.func is None):
        return "passthrough"
    if cls == "StandardScaler":
        return "scale"
    if cls == "OneHotEncoder":
        cats = transformer.categories_
        if any(np.asarray(c).dtype.kind not in "fiub" for c in cats):
            raise UnsupportedModelError(
                f"ColumnTransformer block {name!r}: OneHotEncoder on text categories; the artifact's input is numbers, "
                "so encode the categories as integer codes before the pipeline"
            )
        if getattr(transformer, "infrequent_categories_", None) and any(
            c is not None for c in transformer.infrequent_categories_
        ):
            raise UnsupportedModelError(f"ColumnTransformer block {name!r}: infrequent categories are not supported")
        return "onehot"
    raise UnsupportedModelError(
        f"ColumnTransformer block {name!r} is a {cls}; supported: StandardScaler, OneHotEncoder, passthrough, drop"
    )


def plan(ct: Any) -> list[Block]:
    """The fitted ColumnTransformer's output blocks, in output order."""
    n_in = int(ct.n_features_in_)
    names = [str(n) for n in ct.feature_names_in_] if hasattr(ct, "feature_names_in_") else None
    blocks = []
    for name, transformer, spec in ct.transformers_:
        if transformer == "drop":
            continue
        inputs = _indices(spec, names, n_in, f"ColumnTransformer block {name!r}")
        if inputs:
            blocks.append(Block(_kind(name, transformer), inputs, transformer))
    return blocks


def emit(ct: Any) -> onnx.ModelProto:
    """The ColumnTransformer as a standalone graph: ``features`` [N, inputs] -> ``preprocessed`` [N, outputs]."""
    blocks = plan(ct)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    parts = []
    for b, block in enumerate(blocks):
        p = f"ct{b}_"
        inits.append(graph.const(p + "columns", np.array(block.inputs, np.int64)))
        nodes.append(helper.make_node("Gather", [graph.INPUT, p + "columns"], [p + "x"], axis=1))
        if block.kind == "passthrough":
            parts.append(p + "x")
        elif block.kind == "scale":
            out = p + "x"
            s = block.transformer
            if s.with_mean:
                inits.append(graph.const(p + "mean", np.asarray(s.mean_, np.float32)))
                nodes.append(helper.make_node("Sub", [out, p + "mean"], [p + "centred"]))
                out = p + "centred"
            if s.with_std:
                inits.append(graph.const(p + "scale", np.asarray(s.scale_, np.float32)))
                nodes.append(helper.make_node("Div", [out, p + "scale"], [p + "scaled"]))
                out = p + "scaled"
            parts.append(out)
        else:
            parts.extend(_one_hot(block, p, nodes, inits))
    nodes.append(helper.make_node("Concat", parts, ["ct_out"], axis=1))
    out = "ct_out"
    if getattr(ct, "sparse_output_", False):  # xgboost reads an unstored (zero) entry as missing
        inits += [graph.const("ct_zero", np.float32(0)), graph.const("ct_nan", np.float32(np.nan))]
        nodes += [
            helper.make_node("Equal", [out, "ct_zero"], ["ct_is_zero"]),
            helper.make_node("Where", ["ct_is_zero", "ct_nan", out], ["ct_sparse"]),
        ]
        out = "ct_sparse"
    nodes.append(helper.make_node("Identity", [out], [OUTPUT]))
    width = sum(b.width() for b in blocks)
    g = helper.make_graph(
        nodes,
        "column_transformer",
        [helper.make_tensor_value_info(graph.INPUT, TensorProto.FLOAT, ["N", int(ct.n_features_in_)])],
        [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", width])],
        initializer=inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", graph.OPSET)])
    m.ir_version = graph.IR_VERSION
    return m


def _one_hot(block: Block, p: str, nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto]) -> list[str]:
    """One [N, categories] 0/1 block per input column: Equal to each category, IsNaN for a NaN category."""
    parts = []
    for i in range(len(block.inputs)):
        cats = block.categories(i)
        if not len(cats):
            continue
        q = f"{p}c{i}_"
        inits += [graph.const(q + "index", np.array([i], np.int64)), graph.const(q + "cats", cats)]
        nodes += [
            helper.make_node("Gather", [p + "x", q + "index"], [q + "x32"], axis=1),  # [N, 1]
            helper.make_node("Cast", [q + "x32"], [q + "x"], to=TensorProto.DOUBLE),  # compared in float64, as numpy
            helper.make_node("Equal", [q + "x", q + "cats"], [q + "equal"]),  # [N, categories]
        ]
        hit = q + "equal"
        if np.isnan(cats).any():
            inits.append(graph.const(q + "nan_cat", np.isnan(cats)))
            nodes += [
                helper.make_node("IsNaN", [q + "x"], [q + "is_nan"]),
                helper.make_node("And", [q + "is_nan", q + "nan_cat"], [q + "nan_hit"]),
                helper.make_node("Or", [hit, q + "nan_hit"], [q + "hit"]),
            ]
            hit = q + "hit"
        nodes.append(helper.make_node("Cast", [hit], [q + "onehot"], to=TensorProto.FLOAT))
        parts.append(q + "onehot")
    return parts


def _scaled(block: Block, j: int, x: np.ndarray) -> np.ndarray:
    """The block's j-th output for float32 inputs ``x``, computed as scikit-learn computes it."""
    x = np.asarray(x, np.float32)
    if block.kind == "scale":
        s = block.transformer
        if s.with_mean:
            x = x - np.float32(s.mean_[j])
        if s.with_std:
            x = x / np.float32(s.scale_[j])
    return x.astype(np.float32)


def _boundaries(block: Block, j: int, thresholds: np.ndarray) -> np.ndarray:
    """Inputs on both sides of each threshold in the booster's space: the last x below it and the first at or above.

    The scaler is monotone, so starting from the inverse image and stepping one float32 ulp
    at a time finds the two neighbouring inputs whose scaled values straddle the threshold.
    """
    out = []
    up, down = np.float32(np.inf), np.float32(-np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        for t in thresholds:
            if block.kind == "scale":
                s = block.transformer
                x = np.float32(t * (s.scale_[j] if s.with_std else 1.0) + (s.mean_[j] if s.with_mean else 0.0))
            else:
                x = np.float32(t)
            for _ in range(64):  # a few ulps at most; bounded against a non-monotone surprise
                if not np.isfinite(x) or _scaled(block, j, np.array([x]))[0] < t:
                    break
                x = np.nextafter(x, down)
            for _ in range(64):
                if not np.isfinite(x) or _scaled(block, j, np.array([x]))[0] >= t:
                    break
                x = np.nextafter(x, up)
            out += [np.nextafter(x, down), x, np.nextafter(x, up)]
    return np.asarray(out, np.float32)


def _onehot_values(block: Block, i: int) -> np.ndarray:
    """What a one-hot input column can be: its categories, one unseen value, and missing, where accepted.

    With ``handle_unknown="error"`` scikit-learn raises on an unseen value (and on NaN
    unless NaN is a category), so those are not probed.
    """
    cats = np.asarray(block.transformer.categories_[i], np.float64)
    known = cats[~np.isnan(cats)]
    values = list(known)
    lenient = block.transformer.handle_unknown != "error"
    if lenient:
        values.append(float(known.max()) + 1 if len(known) else 0.0)
    if lenient or np.isnan(cats).any():
        values.append(np.nan)
    return np.asarray(values, np.float32)


def input_probes(ct: Any, thresholds: list[np.ndarray], n: int, seed: int) -> dict[str, np.ndarray]:
    """Probe rows in the pipeline's input space: random, edge (thresholds and one-hot values), and NaN.

    ``thresholds``: the booster's thresholds per feature (its input = this transformer's output).
    """
    rng = np.random.default_rng(seed)
    n_in = int(ct.n_features_in_)
    random = rng.normal(0, 3, (n, n_in)).astype(np.float32)
    edge: dict[int, np.ndarray] = {}
    nan_ok = np.ones(n_in, bool)
    blocks = plan(ct)
    encoded = {c for block in blocks if block.kind == "onehot" for c in block.inputs}  # their values rule
    pos = 0
    for block in blocks:
        for j, c in enumerate(block.inputs):
            if block.kind == "onehot":
                values = _onehot_values(block, j)
                random[:, c] = rng.choice(values, n)
                edge[c] = values
                nan_ok[c] = bool(np.isnan(values).any())
                pos += len(block.categories(j))
                continue
            th = thresholds[pos]
            if c not in encoded:
                edge[c] = _boundaries(block, j, th) if len(th) else np.zeros(1, np.float32)
                if len(th):
                    lo, hi = float(edge[c].min()), float(edge[c].max())
                    pad = 0.25 * (hi - lo) + 1e-3 * max(1.0, abs(lo), abs(hi))
                    random[:, c] = rng.uniform(lo - pad, hi + pad, n)
            pos += 1
    columns = [rng.permutation(edge[c]) if c in edge else np.zeros(1, np.float32) for c in range(n_in)]
    width = max(len(v) for v in columns)
    edge_rows = np.stack([np.resize(v, width) for v in columns], axis=1).astype(np.float32)
    nan = np.concatenate([random[: n // 2], edge_rows[:500]])
    nan[(rng.random(nan.shape) < 0.3) & nan_ok] = np.nan
    return {"random": random, "edge": edge_rows, "nan": nan}
