"""Batch inputs -> the float32 matrix a graph takes: arrays, DataFrames, mappings and Arrow tables.

Every way a caller hands over rows ends here, so a wrong shape, a missing column or a value
that is no number is one :class:`M7Error` naming it, whatever the container, and never a raw
exception from inside numpy or the container (an object whose ``__array__`` or
``__float__`` raises included).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .errors import M7Error
from .fields import short_repr
from .policy import to_float


class ArrowColumns(Mapping[str, Any]):
    """A ``pyarrow.Table``/``RecordBatch`` as a mapping of column name -> numpy array.

    ``"rsi" in table`` is False for a pyarrow Table (it is not a mapping), so every column
    would look missing; this view answers from ``column_names``.
    """

    def __init__(self, table: Any) -> None:
        self._table = table
        self._names = list(table.column_names)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        return self._table.column(name).to_numpy(zero_copy_only=False)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


def column_view(table: Any) -> Any:
    """``table`` as something with ``name in t`` and ``t[name]``: Arrow tables wrapped, the rest as given."""
    if hasattr(table, "column_names") and hasattr(table, "column") and not isinstance(table, Mapping):
        return ArrowColumns(table)
    return table


def is_table(X: Any) -> bool:
    """Named columns (a mapping, a DataFrame, an Arrow table) rather than a positional array."""
    return isinstance(X, Mapping) or (hasattr(X, "columns") and hasattr(X, "__getitem__")) or hasattr(X, "column_names")


def n_rows(table: Any) -> int:
    if hasattr(table, "num_rows"):  # pyarrow.Table / RecordBatch
        return int(table.num_rows)
    if hasattr(table, "columns") and hasattr(table, "__len__"):  # pandas DataFrame
        return len(table)
    if isinstance(table, Mapping):
        lengths = {len(np.asarray(v)) for v in table.values() if np.ndim(v) == 1}
        if len(lengths) > 1:
            raise M7Error(f"columns have different lengths {sorted(lengths)}")
        return lengths.pop() if lengths else 0
    raise M7Error(f"expected a table of named columns (mapping, DataFrame, pyarrow Table), got {type(table).__name__}")


def matrix(X: Any, features: Sequence[str], name: str) -> np.ndarray:
    """A C-contiguous float32 ``(n, len(features))`` matrix from ``X``."""
    try:
        if is_table(X):
            return _from_columns(column_view(X), features, name)
        return _from_array(X, features, name)
    except M7Error:
        raise
    except Exception as exc:  # a container or value that breaks while being read
        raise M7Error(f"{name}: cannot read the input ({type(exc).__name__}: {short_repr(str(exc))})") from exc


def _from_array(X: Any, features: Sequence[str], name: str) -> np.ndarray:
    n = len(features)
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise M7Error(f"{name}: cannot read the input as a 2-D array: {exc}") from exc
    if arr.ndim != 2:
        hint = " (for one row use predict_one(dict) or X.reshape(1, -1))" if arr.ndim == 1 else ""
        raise M7Error(f"{name}: expected a 2-D array of shape (n, {n}), got shape {arr.shape}{hint}")
    if arr.shape[1] != n:
        raise M7Error(f"{name}: expected {n} columns in the order of model.feature_names, got {arr.shape[1]}")
    return as_float32(arr, features, name)


def as_float32(arr: np.ndarray, features: Sequence[str], name: str) -> np.ndarray:
    if arr.dtype == np.float32:
        return np.ascontiguousarray(arr)
    if arr.dtype.kind in "fiub":
        return np.ascontiguousarray(arr, dtype=np.float32)
    if arr.dtype.kind == "O":
        n = len(features)
        flat = [to_float(features[i % n], v) for i, v in enumerate(arr.ravel())]
        return np.asarray(flat, dtype=np.float32).reshape(arr.shape)
    raise M7Error(f"{name}: input dtype {arr.dtype} is not numeric; give float32/float64/int/bool values")


def _from_columns(table: Any, features: Sequence[str], name: str) -> np.ndarray:
    missing = [f for f in features if f not in table]
    if missing:
        raise M7Error(f"{name}: input lacks column(s) {missing}")
    cols = [np.asarray(table[f]) for f in features]
    shapes = {c.shape for c in cols}
    if len(shapes) != 1 or len(next(iter(shapes))) != 1:
        raise M7Error(f"{name}: columns must be 1-D and of one length, got shapes {sorted(shapes)}")
    stacked = np.stack(cols, axis=1)
    return as_float32(stacked if cols[0].dtype.kind != "O" else stacked.astype(object), features, name)
