"""Categorical splits for both flavors: set membership as extra 0/1 input columns.

xgboost sends a row right at a categorical split when its value is a valid category code
(``0 <= x < 2**24``, truncated toward zero) in the node's set, left otherwise, and a
missing value the default way (``src/common/categorical.h``, ``Decision``). Both flavors
express that the same way, with standard operators only: for each distinct category set
of a feature, one column that is 1.0 when the row's code is in the set, 0.0 when it is
not (or is no valid code), and NaN when the value is missing. Each categorical split then
becomes an ordinary numerical split ``member < 0.5`` (true, i.e. left, when not in the
set) on its column, keeping its default direction. The tree ensemble (any ai.onnx.ml
opset, so onnxruntime 1.17 too: no ``BRANCH_MEMBER``) and the tensor layouts see nothing
but numerical splits.

Per feature, one ``Gather`` looks the membership of all its sets up at once in a table
``[codes + 2, sets]``: rows 0..K-1 are the codes the sets mention, row K any code that is
no member of any set (negative, too large, ±inf), row K+1 is NaN (missing). The row index
is computed in float32 and cast only once it is a valid index, so no NaN or inf is ever
cast to an integer.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import onnx
from onnx import TensorProto, helper

from .errors import UnsupportedModelError
from .graph import const
from .ir import CATEGORY_LIMIT, Forest, Tree

#: the largest membership table of one model, in cells (float32): 64 MiB
MAX_TABLE_CELLS = 2**24


@dataclass(frozen=True)
class Membership:
    """A categorical forest rewritten over membership columns, and the nodes that compute them."""

    forest: Forest  # numerical splits only, over the input's columns followed by the membership columns
    nodes: list[onnx.NodeProto]
    initializers: list[onnx.TensorProto]
    output: str  # [N, features + membership columns]


def _distinct_sets(forest: Forest) -> dict[int, dict[tuple[int, ...], int]]:
    """Per categorical feature: each distinct category set -> its column index among that feature's sets."""
    out: dict[int, dict[tuple[int, ...], int]] = {}
    for f, sets in enumerate(forest.category_sets()):
        for s in sets:
            out.setdefault(f, {}).setdefault(tuple(int(c) for c in s), len(out.get(f, {})))
    return out


def _rewrite(t: Tree, column: dict[tuple[int, tuple[int, ...]], int]) -> Tree:
    if not t.categories:
        return t
    cat = t.is_categorical
    feature, threshold = t.feature.copy(), t.threshold.copy()
    for node in np.flatnonzero(cat):
        feature[node] = column[(int(t.feature[node]), tuple(int(c) for c in t.categories[node]))]
        threshold[node] = np.float32(0.5)
    return replace(t, feature=feature, threshold=threshold, categories=())


def membership(forest: Forest, x: str) -> Membership:
    """Membership columns for ``x`` ([N, features], missing already NaN) and the rewritten forest.

    A forest without categorical splits comes back unchanged, with no nodes.
    """
    sets = _distinct_sets(forest)
    if not sets:
        return Membership(forest, [], [], x)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    blocks = [x]
    column: dict[tuple[int, tuple[int, ...]], int] = {}
    names = list(forest.feature_names)
    cells = 0
    for f, distinct in sets.items():
        codes = [c for s in distinct for c in s if c < CATEGORY_LIMIT]
        k = max(codes, default=-1) + 1
        cells += (k + 2) * len(distinct)
        if cells > MAX_TABLE_CELLS:
            raise UnsupportedModelError(
                f"feature {forest.feature_names[f]!r} has category codes up to {k - 1} in {len(distinct)} "
                f"distinct split sets: a membership table of {(k + 2) * len(distinct):,} cells is too large to export"
            )
        table = np.zeros((k + 2, len(distinct)), np.float32)
        table[k + 1] = np.nan
        for s, j in distinct.items():
            table[[c for c in s if c < CATEGORY_LIMIT], j] = 1.0
            column[(f, s)] = len(names)
            names.append(f"{forest.feature_names[f]} in set {j}")
        p = f"cat{f}_"
        inits += [
            const(p + "feature", np.int64(f)),
            const(p + "zero", np.float32(0)),
            const(p + "k", np.float32(k)),
            const(p + "nan_row", np.float32(k + 1)),
            const(p + "table", table),
        ]
        nodes += [
            helper.make_node("Gather", [x, p + "feature"], [p + "x"], axis=1),  # [N]
            helper.make_node("IsNaN", [p + "x"], [p + "nan"]),
            helper.make_node("Less", [p + "x", p + "zero"], [p + "negative"]),
            helper.make_node("Not", [p + "negative"], [p + "nonnegative"]),
            helper.make_node("Less", [p + "x", p + "k"], [p + "below_k"]),
            helper.make_node("And", [p + "nonnegative", p + "below_k"], [p + "valid"]),
            helper.make_node("Where", [p + "valid", p + "x", p + "k"], [p + "row_valid"]),
            helper.make_node("Where", [p + "nan", p + "nan_row", p + "row_valid"], [p + "row_f"]),
            helper.make_node("Cast", [p + "row_f"], [p + "row"], to=TensorProto.INT64),  # truncates: 2.7 -> 2
            helper.make_node("Gather", [p + "table", p + "row"], [p + "member"], axis=0),  # [N, sets]
        ]
        blocks.append(p + "member")
    nodes.append(helper.make_node("Concat", blocks, ["x_categories"], axis=1))
    rewritten = replace(
        forest, trees=tuple(_rewrite(t, column) for t in forest.trees), feature_names=tuple(names)
    ).validate()
    return Membership(rewritten, nodes, inits, "x_categories")
