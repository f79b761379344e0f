"""How one field of a booster document is checked: its type, length and range, by dotted path.

The vocabulary :mod:`document` states xgboost's schema in. Arrays arrive as JSON lists or
as UBJSON typed arrays (numpy), and are checked without a Python loop per element, since a
model has hundreds of thousands of nodes. Messages describe values with
:func:`bounds.brief`, whose cost does not depend on the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .bounds import brief
from .errors import SourceError

INT32_MAX = (1 << 31) - 1
#: parameters xgboost parses as numbers when it loads a document (learner, booster, tree, and the
#: objectives the converter supports); others are left to the objective table to accept or refuse
_PARAM_TYPES: dict[str, Any] = {
    **dict.fromkeys(("num_feature", "num_class", "num_target", "boost_from_average", "num_trees",
                     "num_parallel_tree", "size_leaf_vector", "num_nodes", "num_deleted", "num_roots"), int),
    **dict.fromkeys(("scale_pos_weight", "huber_slope", "max_delta_step", "tweedie_variance_power"), float),
    "quantile_alpha": "floats",
}  # fmt: skip


def key_name(key: Any) -> str:
    """A key for a dotted path: as it is when it is a short name, else described."""
    return key if isinstance(key, str) and len(key) <= 64 and key.isidentifier() else brief(key)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class FieldChecker:
    """Checks of single fields; each failure is a SourceError naming the field's dotted path."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, path: str, problem: str) -> SourceError:
        return SourceError(f"{self.what}: {path} {problem}")

    # ---- scalars -----------------------------------------------------------------------

    def obj(self, value: Any, path: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"is {brief(value)}, not an object")
        return value

    def params(self, value: Any, path: str) -> Mapping[str, Any]:
        """A group of xgboost parameters: every value a string, in the format of its type if known.

        xgboost parses them when it loads the document and refuses a JSON number, or a
        string that does not parse as the parameter's type.
        """
        group = self.obj(value, path)
        for key, item in group.items():
            where = f"{path}.{key_name(key)}"
            if not isinstance(item, str):
                raise self.fail(where, f"is {brief(item)}, not a string (xgboost writes its parameters as strings)")
            self.text(item, where, max_len=1 << 16)
            kind = _PARAM_TYPES.get(key)
            if kind is int:
                self.count(item, where, lo=-INT32_MAX, text=True)
            elif kind is float and not _is_float(item):
                raise self.fail(where, f"is {brief(item)}, not a number")
            elif kind == "floats" and not all(_is_float(v) for v in item.strip().strip("[]").split(",")):
                raise self.fail(where, f"is {brief(item)}, not a number or a list of numbers")
        return group

    def field(self, parent: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in parent:
            raise self.fail(f"{path}.{key}", "is missing")
        return parent[key]

    def text(self, value: Any, path: str, *, max_len: int = 1024) -> str:
        if not isinstance(value, str) or len(value) > max_len:
            raise self.fail(path, f"is {brief(value)}, not a string of at most {max_len} characters")
        return value

    def count(self, value: Any, path: str, *, lo: int = 0, hi: int = INT32_MAX, text: bool = False) -> int:
        """``text``: xgboost's parameters are strings ("5"); its loader refuses a JSON number."""
        if isinstance(value, str) and len(value) <= 32 and value.strip().lstrip("+-").isdigit():
            n = int(value.strip())
        elif type(value) is int and not text:
            n = value
        else:
            kind = "an integer string" if text else "an integer"
            raise self.fail(path, f"is {brief(value)}, not {kind}")
        if not lo <= n <= hi:
            raise self.fail(path, f"is {n}, outside {lo}..{hi}")
        return n

    # ---- arrays ------------------------------------------------------------------------

    def array(self, value: Any, path: str, kind: str, *, length: int | None = None) -> np.ndarray:
        """A 1-D array of ``kind`` ("int", "float", "bool"): a JSON list or a UBJSON typed array.

        The element types are checked without a Python loop per element (``map(type)``
        runs in C), and ints and floats are not mixed: xgboost's loader refuses a float
        where it reads an integer, and an integer where it reads a float.
        """
        if isinstance(value, np.ndarray):
            ok = {"int": "iu", "float": "f", "bool": "iub"}[kind]
            if value.ndim != 1 or value.dtype.kind not in ok:
                raise self.fail(path, f"is {brief(value)}, not a list of {kind}s")
            arr = value
        elif isinstance(value, list):
            allowed = {"int": {int}, "float": {float}, "bool": {int, bool}}[kind]
            kinds = set(map(type, value))
            if not kinds <= allowed:
                bad = next(v for v in value if type(v) not in allowed)
                raise self.fail(path, f"holds {brief(bad)}, not only {kind}s")
            try:
                arr = np.asarray(value, dtype=np.float64 if kind == "float" else np.int64)
            except OverflowError:
                raise self.fail(path, "holds an integer beyond 64 bits") from None
        else:
            raise self.fail(path, f"is {brief(value)}, not a list")
        if length is not None and len(arr) != length:
            raise self.fail(path, f"has {len(arr)} entries, expected {length}")
        return arr

    def within(self, arr: np.ndarray, path: str, lo: int, hi: int) -> None:
        if arr.size and (arr.min() < lo or arr.max() > hi):
            i = int(np.flatnonzero((arr < lo) | (arr > hi))[0])
            raise self.fail(f"{path}[{i}]", f"is {int(arr[i])}, outside {lo}..{hi}")


__all__ = ["INT32_MAX", "FieldChecker", "key_name"]
