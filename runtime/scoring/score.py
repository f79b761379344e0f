"""The per-chunk function both engines run: one pyarrow Table in, the scored Table out.

Semantics are the runtime's, not new ones: each model is scored with :meth:`Model.score`,
which applies its caller policy column-wise (reject or zero-fill, the one-hot from a string
column, the clamp), row for row the same as :meth:`Model.predict_one`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from m7_runtime.model import Model, load

from .deps import pyarrow
from .plan import ScoringPlan


def load_models(plan: ScoringPlan, *, provider: str = "auto", threads: int | None = None) -> dict[str, Model]:
    """The plan's models, by name (sessions are created on first use)."""
    return {m.name: load(m.manifest, provider=provider, threads=threads) for m in plan.models}


class ChunkColumns(dict):
    """Named 1-D columns plus their row count: a table :meth:`Model.score` reads.

    ``num_rows`` is how ``Model.score`` sizes a table (as for a pyarrow Table), so a model
    all of whose inputs are absent (zero-filled) still gets one row per input row.
    """

    def __init__(self, num_rows: int, columns: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__(columns or {})
        self.num_rows = num_rows


def numeric_column(col: Any) -> np.ndarray:
    """A feature column as float64 with NaN for null: what predict_one gets for None."""
    pa = pyarrow()
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), np.nan)
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    if col.type != pa.float64():
        col = col.cast(pa.float64())
    return col.to_numpy()


def string_column(col: Any) -> np.ndarray:
    """A one-hot input as an object array of str, with None for null (an absent status)."""
    pa = pyarrow()
    t = col.type
    if pa.types.is_null(t):
        return np.full(len(col), None, dtype=object)
    if pa.types.is_dictionary(t):
        col = col.cast(t.value_type)
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)


def predict_columns(plan: ScoringPlan, models: Mapping[str, Model], columns: ChunkColumns) -> dict[str, np.ndarray]:
    """Each model's output over one chunk, in run order, feeding upstream outputs forward."""
    produced: dict[str, np.ndarray] = {}
    for step in plan.models:
        table = columns
        if step.fed:
            table = ChunkColumns(columns.num_rows, columns)
            for feature, producer in step.fed:
                table[feature] = produced[producer]
        produced[step.name] = models[step.name].score(table)
    return produced


def score_table(plan: ScoringPlan, models: Mapping[str, Model], table: Any) -> Any:
    """Score one chunk (a pyarrow Table): the kept columns plus one column per model output.

    The only scoring code path: the local engine calls it per batch and the Dask engine
    per partition.
    """
    pa = pyarrow()
    n = table.num_rows
    cols = ChunkColumns(n)
    for name in plan.numeric:
        cols[name] = numeric_column(table.column(name))
    for name in plan.categorical:
        cols[name] = string_column(table.column(name))
    produced = predict_columns(plan, models, cols)
    arrays = [table.column(c) for c in plan.keep]
    for step in plan.models:
        y = produced[step.name]
        if len(step.outputs) == 1:
            arrays.append(pa.array(np.asarray(y, dtype=np.float32).reshape(n)))
        else:
            arrays.extend(pa.array(np.ascontiguousarray(y[:, i], dtype=np.float32)) for i in range(len(step.outputs)))
    names = list(plan.keep) + [c for s in plan.models for c in s.outputs]
    out = pa.Table.from_arrays(arrays, names=names)
    return out.select(list(plan.outputs))
