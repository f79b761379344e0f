"""scikit-learn Pipelines that end in an XGBoost model: the steps before it become ONNX too.

skl2onnx converts the preprocessing steps; the tree graph is appended after them, so the
artifact takes the pipeline's raw input. Verification then runs twice: the trees on
edge rows in the booster's own feature space (where the thresholds live), and the whole
graph against ``pipeline.predict`` on rows in the input space.

A prefix that is one ``ColumnTransformer`` (scaled numeric columns, one-hot encoded code
columns) is converted by :mod:`.columns` into standard operators instead, and probed in
the input space where its decisions are: each numeric column on both sides of every
threshold its scaled value meets, each one-hot column at its categories, one unseen value
and missing.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import compose, helper

from . import columns, graph
from .errors import UnsupportedModelError
from .load import Source
from .verify import Probes, random_rows

_DIVIDING_SCALERS = {"StandardScaler", "RobustScaler", "MaxAbsScaler"}  # skl2onnx offers "div" for these


def _column_transformer(preprocessor: Any) -> Any:
    """The prefix's ColumnTransformer when it is the only step (converted by :mod:`.columns`), else None."""
    steps = [s for _, s in preprocessor.steps]
    return steps[0] if len(steps) == 1 and columns.is_column_transformer(steps[0]) else None


def prepend_preprocessor(preprocessor: Any, trees: onnx.ModelProto, *, n_features: int) -> onnx.ModelProto:
    ct = _column_transformer(preprocessor)
    pre = columns.emit(ct) if ct is not None else _skl2onnx(preprocessor, n_features)
    pre_out = pre.graph.output[0].name
    trees = compose.add_prefix(trees, "trees_")
    merged = compose.merge_models(pre, trees, io_map=[(pre_out, "trees_" + graph.INPUT)])
    g = merged.graph
    g.node.append(helper.make_node("Identity", ["trees_" + graph.OUTPUT], [graph.OUTPUT]))
    out = g.output[0]
    out.name = graph.OUTPUT
    onnx.checker.check_model(merged, full_check=True)
    return merged


def _skl2onnx(preprocessor: Any, n_features: int) -> onnx.ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    # Scalers divide by the scale, as scikit-learn does, instead of multiplying by its
    # float32 reciprocal: bit-identical scaled values, so no row flips at a threshold.
    scalers = {type(s) for _, s in preprocessor.steps if type(s).__name__ in _DIVIDING_SCALERS}
    try:
        pre = convert_sklearn(
            preprocessor,
            initial_types=[(graph.INPUT, FloatTensorType([None, n_features]))],
            target_opset={"": graph.OPSET, "ai.onnx.ml": graph.ML_OPSET},
            options={cls: {"div": "div"} for cls in scalers} or None,
        )
    except Exception as exc:  # skl2onnx raises many types for unsupported steps
        steps = [type(s).__name__ for _, s in preprocessor.steps]
        raise UnsupportedModelError(f"cannot convert the pipeline steps {steps} to ONNX with skl2onnx: {exc}") from exc
    pre.ir_version = graph.IR_VERSION
    for op in pre.opset_import:  # the preprocessing ops are unchanged up to these versions
        op.version = graph.ML_OPSET if op.domain == "ai.onnx.ml" else graph.OPSET
    return pre


def input_space_probes(source: Source, n: int, seed: int) -> Probes:
    """Rows for the pipeline's input: the booster's rows mapped back when the steps invert."""
    from .booster_json import from_booster_json

    forest = from_booster_json(source.document, missing=source.missing, iteration_range=source.iteration_range)
    pre = source.preprocessor
    ct = _column_transformer(pre)
    if ct is not None:
        return Probes(columns.input_probes(ct, forest.thresholds(), n, seed))
    rows = random_rows(forest, n, seed=seed)
    try:
        rows = np.asarray(pre.inverse_transform(rows), dtype=np.float32)
    except (AttributeError, ValueError, TypeError):
        rows = np.random.default_rng(seed).normal(0, 3, (n, int(pre.n_features_in_))).astype(np.float32)
    nan = rows[: n // 2].copy()
    nan[np.random.default_rng(seed + 1).random(nan.shape) < 0.3] = np.nan
    return Probes({"random": rows, "nan": nan})
