"""How many bytes a tensor-flavor graph computes per input row: the runtime's bound on memory per run.

Shape inference with the row dimension named ``N``; every intermediate must be a fixed
size times N. Used by the converter for the manifest's ``bytes_per_row`` and by the
tuner, which only offers run sizes that fit the runtime's per-run budget.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, shape_inference

from .errors import ConvertError


def bytes_per_row(model: onnx.ModelProto) -> int:
    """Bytes of all tensors the graph computes, per input row: the runtime's chunking bound.

    Shape inference with the row dimension named: every node output must come out as
    fixed dimensions times the row dimension once (row-independent outputs, such as shape
    tensors, count 0). A reshaping node whose output size inference cannot name (a
    ``Reshape`` to [-1] inside a composed Pipeline graph) holds as many bytes as its input.
    Summing every output over-counts what onnxruntime holds at once (its planner reuses
    buffers), so runs sized from it stay under their budget. Raises :class:`ConvertError`
    if some output's size is not known.
    """
    m = onnx.ModelProto()
    m.CopyFrom(model)
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = _ROWS
    inferred = shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    known = {vi.name: vi.type.tensor_type for vi in [*inferred.graph.value_info, *inferred.graph.output]}
    per_row: dict[str, int] = {i.name: _row_bytes(i.type.tensor_type) or 0 for i in inferred.graph.input}
    for node in inferred.graph.node:
        for out in node.output:
            t = known.get(out)
            size = _row_bytes(t) if t is not None else None
            if size is None and node.op_type in _SAME_SIZE and node.input[0] in per_row:
                size = per_row[node.input[0]]
            if size is None:
                dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim] if t else None
                raise ConvertError(
                    f"cannot bound the tensor flavor's memory: {node.op_type} output {out!r} has shape {dims}"
                )
            per_row[out] = size
    inputs = {i.name for i in inferred.graph.input}
    return sum(v for k, v in per_row.items() if k not in inputs)


_ROWS = "N"
_SAME_SIZE = frozenset({"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


def _row_bytes(t: onnx.TypeProto.Tensor) -> int | None:
    """Bytes per row of a tensor type: 0 if its size does not depend on the rows, None if unknown."""
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in t.shape.dim]
    if not t.elem_type or not t.HasField("shape") or any(d != _ROWS and not isinstance(d, int) for d in dims):
        return None
    if dims.count(_ROWS) > 1:
        raise ConvertError(f"a tensor of shape {dims} grows with the square of the rows")
    if _ROWS not in dims:
        return 0
    size = int(np.prod([d for d in dims if d != _ROWS], dtype=np.int64))
    return size * helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
