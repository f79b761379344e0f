"""Stage 3b, emit the tensor flavor: the forest as standard ONNX operators only.

onnxruntime's CUDA execution provider has no ai.onnx.ml kernels, so the tree flavor "on
CUDA" runs on the CPU. This flavor expresses the same IR with ``Gather``, ``Less``,
``MatMul``, ``Where``... (every one of them has a CUDA kernel for the types used here; a
test checks each node against onnxruntime's kernel list). Two strategies in the spirit of
Hummingbird (Nakandala et al., OSDI 2020), chosen per model by :func:`choose_strategy`:

* ``gemm``: every split of every tree is evaluated at once (one ``Gather`` + ``Less``),
  then two batched matrix products find each tree's leaf: work per row grows with
  trees × inner nodes × leaves (about 4**depth), so it suits shallow trees;
* ``traversal``: rows walk down their trees one level per step with ``GatherElements``
  over [trees, nodes] tables: work per row grows with trees × depth, whatever the shape
  of the trees;
* ``complete`` and ``code`` (module ``tensor_layouts``): the trees padded to complete
  trees, per-level tables, the next node computed rather than looked up, the top levels
  evaluated densely; within a node budget (deep forests keep ``traversal``). ``code``
  uses ``MatMulInteger`` on uint8, which has no CUDA kernel: CPU graphs only.

Exactness, in the order things happen:

* Missing values are decided before any arithmetic (NaN × 0 is NaN in a matrix product).
  The input (missing sentinel already rewritten to NaN) is expanded once into column
  blocks: NaN → -inf (for splits whose default direction is left: ``-inf < t`` is true),
  NaN → +inf (default right: ``+inf < t`` is false), and, only if some default-left split
  has threshold -inf, a 0/1 "present" block compared with 0.5. Each split reads the block
  its default direction needs, so one float32 ``Less`` decides it exactly as xgboost's
  ``x < threshold`` with its default direction does.
* The matrix products only see small integers (0, ±1, leaf positions), exact in float32
  and in the TF32 mode cuBLAS may use on recent GPUs; leaf values are picked with
  ``GatherElements``, never multiplied.
* Leaf values are added in float32 in xgboost's order: starting from the base margin,
  tree after tree, per output group, as a chain of ``Add`` nodes. A ``ReduceSum`` or a
  float64 sum would reorder the roundings; on the Market7 spend models (base margin 89.6,
  120 trees) that already costs 2e-6 (float64) to 8e-6 (float32 pairwise) of relative
  error against the 1e-5 tolerance, and grows with the number of trees. The chain makes
  the margins bit-identical to xgboost's and to the tree flavor's.
* ``summation="cumsum"`` (CPU graphs) replaces the chain by one ``CumSum`` over the tree
  axis, with the base margin folded into each group's first tree: its leaves hold
  ``fl(base + leaf)``, which is exactly the chain's first addition. onnxruntime's CPU
  kernel computes ``out[i] = out[i-1] + in[i]`` in a plain loop (cumsum.cc), the chain's
  order; its CUDA kernel re-adds every prefix from zero for every output (work ~ trees²),
  so the graph that may run on CUDA keeps the chain.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper

from . import graph, tensor_layouts
from .categories import membership
from .emit_linear import STRATEGY as LINEAR
from .emit_linear import emit_linear
from .errors import ConvertError
from .ir import Forest
from .tensor_memory import bytes_per_row  # noqa: F401  (re-exported: benchmarks and tests import it from here)
from .tensor_trees import CompactTree, compact_tree, slots

#: strategy name -> one line for the manifest and the docs
STRATEGIES: dict[str, str] = {
    "gemm": "all splits at once, leaves found by two batched MatMuls (Hummingbird GEMM)",
    "traversal": "one GatherElements step per tree level over node tables (Hummingbird tree traversal)",
    "complete": "complete trees, per-level tables, next node 2k + (x < t), dense root level",
    "code": "complete trees, top three levels packed into one code by MatMulInteger (CPU only)",
}
#: strategies whose every operator has a CUDA kernel (tests/data/ort_cuda_kernels.json)
CUDA_STRATEGIES = ("gemm", "traversal", "complete")
#: strategies that pad trees to complete trees (subject to tensor_layouts.declines)
COMPLETE_STRATEGIES = ("complete", "code")
#: how leaf values are summed: "chain" (ordered Add nodes, any provider), "cumsum" (CPU only)
SUMMATIONS = ("chain", "cumsum")

STRATEGY_KEY = "m7.tensor_strategy"  # ONNX metadata: which strategy built the graph
SUMMATION_KEY = "m7.tensor_summation"  # ONNX metadata: how the leaf values are summed

#: :func:`choose_strategy` threshold, from benchmarks/NOTES.md ("Tensor flavor")
GEMM_MAX_DEPTH = 2


def choose_strategy(forest: Forest) -> str:
    """The strategy of the graph that may run on CUDA (a rule: there is no GPU here to measure on).

    ``gemm`` for trees of depth <= GEMM_MAX_DEPTH (its cost per row grows like 4**depth:
    on the CPU 1.3-2x ahead at depth 2, 5-50x behind from depth 6); else ``complete``
    within the node budget (one ``GatherElements`` per level fewer than traversal, and
    ahead of it on the CPU at every shape measured, benchmarks/NOTES.md; GEMM's numbers come
    from benchmarks/archive/tensor_cpu.py); else
    ``traversal``. benchmarks/gpu_batch.py --strategies times every strategy on a GPU,
    so the rule can be revisited with data. The CPU graph is chosen by measurement
    (``m7_convert.tune``).
    """
    if forest.max_depth() <= GEMM_MAX_DEPTH:
        return "gemm"
    return "complete" if declines(forest, "complete") is None else "traversal"


def declines(forest: Forest, strategy: str) -> str | None:
    """Why ``strategy`` cannot express this forest (None: it can); the choice then falls back."""
    if strategy not in COMPLETE_STRATEGIES:
        return None
    return tensor_layouts.declines(forest, len(slots(forest)[0]))


class _Graph:
    """Collects nodes and initializers with unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{stem}_{self._n}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(graph.const(name, np.asarray(value)))
        return name

    def op(self, op_type: str, inputs: Sequence[str], stem: str, **attrs: object) -> str:
        out = self.name(stem)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out


@dataclass(frozen=True)
class _Columns:
    """The column-block tensor [rows, N] the splits read, and the index of its constant -inf row."""

    name: str
    always_left: int  # a row of -inf: ``-inf < 0`` is true whatever the input


def _column_blocks(
    g: _Graph, x: str, *, n_features: int, present_block: bool, raw_high: bool = False, always_left_row: bool = True
) -> _Columns:
    """[C, N] float32: the transposed input with NaN as -inf, as +inf, (1/0 present flags,) and one -inf row.

    ``raw_high``: the second block is the input itself: ``NaN < t`` is false for every t, as
    ``+inf < t`` is, so it decides default-right splits alike with one ``Where`` less.
    ``always_left_row=False`` leaves out the -inf row (``always_left`` is then -1): the
    complete layouts pad with NaN thresholds instead.
    """
    xt = g.op("Transpose", [x], "x_t", perm=[1, 0])
    nan = g.op("IsNaN", [xt], "is_nan")
    neg_inf = g.const("neg_inf", np.float32(-np.inf))
    low = g.op("Where", [nan, neg_inf, xt], "nan_low")
    high = xt if raw_high else g.op("Where", [nan, g.const("pos_inf", np.float32(np.inf)), xt], "nan_high")
    blocks = [low, high]
    if present_block:
        blocks.append(g.op("Cast", [g.op("Not", [nan], "present")], "present_f", to=TensorProto.FLOAT))
    if not always_left_row:
        return _Columns(g.op("Concat", blocks, "columns", axis=0), -1)
    first = g.op("Slice", [nan, g.const("s0", np.array([0], np.int64)), g.const("s1", np.array([1], np.int64))], "row0")
    blocks.append(g.op("Where", [first, neg_inf, neg_inf], "always_left"))
    return _Columns(g.op("Concat", blocks, "columns", axis=0), (3 if present_block else 2) * n_features)


#: GEMM's matrix products only see small integers (0, ±1, leaf positions), exact even where
#: cuBLAS multiplies float32 in TF32 (10-bit mantissa: integers up to 2**11)
GEMM_MAX_LEAVES = 2**11


def _gemm(g: _Graph, columns: _Columns, trees: list[CompactTree]) -> str:
    """Leaf value of every tree slot, [S, N], by Hummingbird's GEMM strategy.

    Per tree: D = [x_col < t] over its inner nodes (I), all at once with one ``Gather``
    into [S, I, N]; P = B @ D with B[l, i] = +1 if leaf l lies left of node i, -1 if right;
    the reached leaf is the one whose count equals E[l], its number of left turns (Equal).
    Its position comes from a second product with the leaf positions 0..L-1 and its value
    from a ``GatherElements``: no leaf value goes through a matrix product, so TF32 or
    any reordering cannot touch it. Trees are padded to the largest I and L (padding rows
    of B are zero; padded leaves have E = -1, which no count reaches).
    """
    s = len(trees)
    n_inner = max(1, max(len(t.inner) for t in trees))
    n_leaves = max(len(t.leaves) for t in trees)
    if n_leaves > GEMM_MAX_LEAVES:
        raise ConvertError(f"the gemm strategy handles trees of up to {GEMM_MAX_LEAVES} leaves, not {n_leaves}")
    column = np.zeros((s, n_inner), np.int64)
    threshold = np.zeros((s, n_inner), np.float32)
    paths = np.zeros((s, n_leaves, n_inner), np.float32)
    lefts = np.full((s, n_leaves, 1), -1.0, np.float32)
    values = np.zeros((s, n_leaves), np.float32)
    for k, t in enumerate(trees):
        inner_pos = {int(node): j for j, node in enumerate(t.inner)}
        column[k, : len(inner_pos)] = t.column[t.inner]
        threshold[k, : len(inner_pos)] = t.threshold[t.inner]
        stack: list[tuple[int, tuple[tuple[int, bool], ...]]] = [(0, ())]
        leaf_pos = 0
        while stack:
            node, path = stack.pop()
            if t.left[node] < 0:
                for parent, went_left in path:
                    paths[k, leaf_pos, inner_pos[parent]] = 1.0 if went_left else -1.0
                lefts[k, leaf_pos, 0] = sum(went_left for _, went_left in path)
                values[k, leaf_pos] = t.value[node]
                leaf_pos += 1
                continue
            stack.append((int(t.right[node]), (*path, (node, False))))
            stack.append((int(t.left[node]), (*path, (node, True))))
    positions = np.broadcast_to(np.arange(n_leaves, dtype=np.float32), (s, 1, n_leaves))
    picked = g.op("Gather", [columns.name, g.const("split_columns", column)], "split_x", axis=0)  # [S, I, N]
    goes_left = g.op("Less", [picked, g.const("split_thresholds", threshold[:, :, None])], "goes_left")
    decisions = g.op("Cast", [goes_left], "decisions", to=TensorProto.FLOAT)
    counts = g.op("MatMul", [g.const("paths", paths), decisions], "path_counts")  # [S, L, N]
    reached = g.op("Equal", [counts, g.const("left_turns", lefts)], "reached")
    reached = g.op("Cast", [reached], "reached_f", to=TensorProto.FLOAT)
    leaf = g.op("MatMul", [g.const("leaf_positions", np.ascontiguousarray(positions)), reached], "leaf_f")
    leaf = g.op("Squeeze", [leaf, g.const("axis1", np.array([1], np.int64))], "leaf_sn")  # [S, N]
    leaf = g.op("Cast", [leaf], "leaf", to=TensorProto.INT32)
    return g.op("GatherElements", [g.const("leaf_values", values), leaf], "tree_values", axis=1)


def _traversal(g: _Graph, columns: _Columns, trees: list[CompactTree]) -> str:
    """Leaf value of every tree slot, [S, N], by walking all trees one level per step.

    The node state is each row's current node in each tree, [S, N], as an index into that
    tree's row of [S, M] node tables (trees padded to the largest, M nodes), read with
    ``GatherElements`` along axis 1 (on onnxruntime's CPU about five times faster than a
    ``Gather`` from a flat table, and it needs no reshapes). Siblings are adjacent (the
    right child is the left child + 1, as :func:`_compact` numbers them), so one step is
    ``node = left_plus_1[node] - (x < threshold)``, with no ``Where`` on integers (slow on
    CPU). A leaf's entry is itself + 1, and its split reads the constant -inf row against
    threshold 0, which is always true: rows that reach a leaf early stay there while
    deeper trees finish.
    """
    for t in trees:
        if np.any(t.right[t.inner] != t.left[t.inner] + 1):
            raise AssertionError("siblings are not adjacent in the compact tree layout")
    s, m = len(trees), max(len(t.left) for t in trees)
    index_type = np.int32 if m < 2**31 else np.int64
    left_plus_1 = np.zeros((s, m), index_type)
    column = np.full((s, m), columns.always_left, index_type)
    threshold = np.zeros((s, m), np.float32)
    value = np.zeros((s, m), np.float32)
    for k, t in enumerate(trees):
        n = len(t.left)
        left_plus_1[k, :n] = np.where(t.left < 0, np.arange(n), t.left) + 1
        column[k, :n] = np.where(t.left < 0, columns.always_left, t.column)
        threshold[k, :n] = t.threshold
        value[k, :n] = t.value
    index = _ONNX_INT[index_type]

    root_x = g.op("Gather", [columns.name, g.const("root_columns", column[:, 0].astype(np.int64))], "root_x", axis=0)
    goes_left = g.op("Less", [root_x, g.const("root_thresholds", threshold[:, :1])], "root_left")
    step = g.op("Cast", [goes_left], "step", to=index)
    node = g.op("Sub", [g.const("root_next", left_plus_1[:, :1]), step], "node")
    depth = max(t.depth() for t in trees)
    if depth > 1:
        col_table = g.const("node_columns", column)
        thr_table = g.const("node_thresholds", threshold)
        next_table = g.const("node_left_plus_1", left_plus_1)
        for _ in range(depth - 1):
            col = g.op("GatherElements", [col_table, node], "col", axis=1)
            x = g.op("GatherElements", [columns.name, col], "x", axis=0)
            th = g.op("GatherElements", [thr_table, node], "th", axis=1)
            step = g.op("Cast", [g.op("Less", [x, th], "left")], "step", to=index)
            node = g.op("Sub", [g.op("GatherElements", [next_table, node], "next", axis=1), step], "node")
    return g.op("GatherElements", [g.const("node_values", value), node], "tree_values", axis=1)


_ONNX_INT = {np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}


STRATEGY_FUNCTIONS = {
    "gemm": _gemm,
    "traversal": _traversal,
    "complete": tensor_layouts.complete,
    "code": tensor_layouts.code,
}


def _sum_in_tree_order(g: _Graph, tree_values: str, rows: str, forest: Forest, per_group: int) -> str:
    """Margins [N, groups]: base margin, then each group's trees added one by one in float32.

    ``tree_values`` is [S, N] in slot order; ``rows`` is the 1-D shape tensor [N] (shapes
    are built from it rather than with -1, so shape inference keeps the row dimension
    named and the converter can bound the memory per row exactly).
    """
    groups = forest.n_groups
    kgn = g.op("Concat", [g.const("kg", np.array([per_group, groups], np.int64)), rows], "kgn_shape", axis=0)
    values = g.op("Reshape", [tree_values, kgn], "kgn")
    parts = [g.name("tree_round") for _ in range(per_group)]
    if per_group == 1:
        parts = [values]
    else:
        g.nodes.append(helper.make_node("Split", [values], parts, axis=0))
    acc = g.const("base_margin", forest.base_margin.astype(np.float32).reshape(1, groups, 1))
    for part in parts:
        acc = g.op("Add", [acc, part], "margin_sum")
    gn = g.op("Squeeze", [acc, g.const("axis0", np.array([0], np.int64))], "margin_gn")
    return g.op("Transpose", [gn], "margin", perm=[1, 0])


def emit_tensor(forest: Forest, *, strategy: str | None = None, summation: str = "chain") -> onnx.ModelProto:
    """The tensor-flavor graph of ``forest``.

    ``strategy`` overrides :func:`choose_strategy`; ``summation="cumsum"`` builds a CPU
    graph (one ``CumSum`` instead of the ordered ``Add`` chain, see the module docstring).
    Raises :class:`ConvertError` for an unknown strategy, or one that declines the forest.

    A ``gblinear`` model has no trees: its graph (:mod:`.emit_linear`, standard operators
    only) is the tensor flavor whatever the strategy. Categorical splits read membership
    columns (:mod:`.categories`) appended to the input before the column blocks.
    """
    if forest.linear is not None:
        m = emit_linear(forest)
        m.metadata_props.append(onnx.StringStringEntryProto(key=STRATEGY_KEY, value=LINEAR))
        return m
    chosen = strategy or choose_strategy(forest)
    if chosen not in STRATEGY_FUNCTIONS:
        known = "; ".join(f"{k}: {v}" for k, v in STRATEGIES.items())
        raise ConvertError(f"unknown tensor strategy {chosen!r}; known: {known}")
    if summation not in SUMMATIONS:
        raise ConvertError(f"unknown summation {summation!r}; known: {', '.join(SUMMATIONS)}")
    if (why := declines(forest, chosen)) is not None:
        raise ConvertError(f"the {chosen} strategy cannot take this model: {why}")
    cats = membership(forest, "x")  # categorical splits -> numerical splits on membership columns
    numeric = cats.forest
    trees, per_group = slots(numeric)
    compact = [compact_tree(t, numeric.n_features) for t in trees]
    if summation == "cumsum":
        compact = tensor_layouts.fold_base_margin(compact, forest)
    present_block = any(bool(np.any(c.column >= 2 * numeric.n_features)) for c in compact)
    g = _Graph()
    pre_nodes, pre_inits = graph.missing_to_nan(graph.INPUT, forest.missing, "x")
    g.nodes.extend([*pre_nodes, *cats.nodes])
    g.inits.extend(pre_inits + cats.initializers)
    lean = chosen in COMPLETE_STRATEGIES  # they need no -inf row, and read NaN as the raw input's NaN
    columns = _column_blocks(
        g,
        cats.output,
        n_features=numeric.n_features,
        present_block=present_block,
        raw_high=lean,
        always_left_row=not lean,
    )
    rows = g.op("Shape", ["x"], "rows", start=0, end=1)
    tree_values = STRATEGY_FUNCTIONS[chosen](g, columns, compact)
    sums = tensor_layouts.sum_cumsum if summation == "cumsum" else _sum_in_tree_order
    margin = sums(g, tree_values, rows, forest, per_group)
    link_nodes, link_inits = graph.link(forest.objective.link, margin, graph.OUTPUT, forest.n_outputs)
    m = graph.model(
        [*g.nodes, *link_nodes],
        g.inits + link_inits,
        n_features=forest.n_features,
        n_outputs=forest.n_outputs,
        graph_name=f"xgboost_tensor_{chosen}",
        ml=False,
    )
    m.metadata_props.append(onnx.StringStringEntryProto(key=STRATEGY_KEY, value=chosen))
    m.metadata_props.append(onnx.StringStringEntryProto(key=SUMMATION_KEY, value=summation))
    return m
