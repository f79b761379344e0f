"""A model's caller policy, as data: what to do with missing inputs, derived columns, output bounds.

The policy is declared per model in ``models/spec.toml``, copied into the manifest by the
converter and applied here; the runtime core knows no Market7 name. Two appliers share
one set of rules: :meth:`InputPolicy.row` for the single-row hot path and
:meth:`InputPolicy.columns` for batches (a test checks they agree row by row).
"""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from .errors import M7Error
from .fields import Fields

OnMissing = Literal["reject", "zero"]
Match = Literal["suffix", "exact"]


def _is_absent(value: Any) -> bool:
    """None and float NaN in a one-hot input mean "no status", like an absent key."""
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class OneHot:
    """0/1 columns derived from one string input.

    ``match="suffix"`` reproduces Market7's spend callers literally: column ``c`` is 1.0 when
    ``c.endswith(value)``. So ``""`` sets every column, ``"ish"`` sets both ``..._bullish`` and
    ``..._bearish``, and matching is case-sensitive. ``match="exact"``: ``c == f"{input}_{value}"``.
    An absent input (missing key, None or NaN) takes ``default``.
    """

    input: str
    columns: tuple[str, ...]
    default: str = "nan"
    match: Match = "exact"

    def encode(self, value: Any) -> tuple[float, ...]:
        if _is_absent(value):
            value = self.default
        if not isinstance(value, str):
            raise M7Error(
                f"{self.input!r} must be a string (one of the categories of {list(self.columns)}), got {value!r}"
            )
        if self.match == "suffix":
            return tuple(1.0 if c.endswith(value) else 0.0 for c in self.columns)
        return tuple(1.0 if c == f"{self.input}_{value}" else 0.0 for c in self.columns)

    def encode_column(self, values: np.ndarray) -> np.ndarray:
        """:meth:`encode` for a column: each distinct value is encoded once, then gathered.

        A category column has few distinct values, so the per-row work is one dict lookup
        done by ``map`` in C rather than a Python-level loop.
        """
        cells = values.tolist()
        try:
            distinct = list(dict.fromkeys(cells))
        except TypeError:  # an unhashable cell (a list, a dict): encode() names it
            distinct = [next(v for v in cells if not isinstance(v, (str, float, type(None))))]
        table = np.array([self.encode(v) for v in distinct], dtype=np.float32).reshape(-1, len(self.columns))
        position = {v: i for i, v in enumerate(distinct)}
        return table[np.fromiter(map(position.__getitem__, cells), dtype=np.intp, count=len(cells))]

    @classmethod
    def from_json(cls, f: Fields) -> OneHot:
        one_hot = cls(
            input=f.str("input", max_len=1024),
            columns=f.strs("columns", max_len=1 << 12),
            default=f.str("default", "nan", max_len=1024),
            match=f.choice("match", ("suffix", "exact"), "exact"),
        )
        f.done()
        if not one_hot.columns:
            raise f.error("columns", "must list at least one column")
        return one_hot

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "columns": list(self.columns), "default": self.default, "match": self.match}


_NUMERIC = (float, int, bool, np.floating, np.integer, np.bool_, decimal.Decimal)


def to_float(name: str, value: Any) -> float:
    """One input value as xgboost reads a Python row: numbers and bools as is, None as NaN.

    What xgboost's row conversion (numpy) reads as a number is read here too: Python and
    numpy numbers, bools, ``Decimal``, ``Fraction``, a 0-d numeric array. Strings (numeric
    or not), containers, dates and other objects are refused: xgboost errors on most of them,
    and silently parsing ``"1.5"`` (or a date's tick count) would hide a caller's bug. An int
    too large for a float is refused as xgboost refuses it, with an :class:`M7Error`.
    """
    if value is None:
        return math.nan
    if isinstance(value, _NUMERIC) or (isinstance(value, numbers.Real) and not isinstance(value, str)):
        try:
            return float(value)
        except (OverflowError, ValueError, TypeError) as exc:  # 10**400, Decimal("sNaN")
            raise M7Error(f"feature {name!r}: {value!r:.60} cannot be read as a float ({exc})") from None
    if isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "fiub":
        return float(value)
    raise M7Error(f"feature {name!r} must be a number (or None for missing), got {type(value).__name__} {value!r:.60}")


@dataclass(frozen=True)
class InputPolicy:
    on_missing: OnMissing = "reject"
    clamp_min: float | None = None
    clamp_max: float | None = None
    one_hot: tuple[OneHot, ...] = ()
    upstream: Mapping[str, str] = field(default_factory=dict)  # feature -> model that produces it

    @classmethod
    def from_json(cls, d: Any, *, where: str = "input policy", prefix: str = "input_policy.") -> InputPolicy:
        """Read a policy object (a manifest's ``input_policy``, a spec entry); errors name the field."""
        f = Fields({} if d is None else d, where, prefix)
        policy = cls(
            on_missing=f.choice("on_missing", ("reject", "zero"), "reject"),
            clamp_min=f.float("clamp_min", None),
            clamp_max=f.float("clamp_max", None),
            one_hot=f.list("one_hot", lambda o: OneHot.from_json(Fields(o, where, f"{prefix}one_hot.")), "objects", ()),
            upstream=f.str_mapping("upstream", {}),
        )
        f.done()
        if policy.clamp_min is not None and policy.clamp_max is not None and policy.clamp_min > policy.clamp_max:
            raise f.error("clamp_max", f"is below clamp_min ({policy.clamp_max} < {policy.clamp_min})")
        return policy

    def to_json(self) -> dict[str, Any]:
        return {
            "on_missing": self.on_missing,
            "clamp_min": self.clamp_min,
            "clamp_max": self.clamp_max,
            "one_hot": [o.to_json() for o in self.one_hot],
            "upstream": dict(self.upstream),
        }

    def derived(self) -> set[str]:
        """Model columns computed from another input rather than read directly."""
        return {c for o in self.one_hot for c in o.columns}

    def required(self, features: Sequence[str]) -> list[str]:
        """Inputs a caller must give under "reject" (one-hot inputs default when absent)."""
        derived = self.derived()
        return [f for f in features if f not in derived]

    def clamp(self, y: Any) -> Any:
        if self.clamp_min is None and self.clamp_max is None:
            return y
        return np.clip(y, self.clamp_min, self.clamp_max)

    def row(self, features: Sequence[str], given: Mapping[str, Any]) -> list[float]:
        """One row in model order from a mapping (the slow, complete path of predict_one)."""
        derived: dict[str, float] = {}
        for o in self.one_hot:
            derived.update(zip(o.columns, o.encode(given.get(o.input)), strict=True))
        if self.on_missing == "reject":
            missing = [f for f in features if f not in derived and f not in given]
            if missing:
                raise M7Error(f"missing feature(s) {missing}; this model's policy rejects rows without them")
        return [derived[f] if f in derived else to_float(f, given.get(f, 0.0)) for f in features]

    def columns(self, features: Sequence[str], table: Mapping[str, Any], n_rows: int) -> np.ndarray:
        """A float32 matrix in model order from named columns, under the same rules as :meth:`row`."""
        out = np.empty((n_rows, len(features)), dtype=np.float32)
        index = {f: i for i, f in enumerate(features)}
        derived = self.derived()
        for o in self.one_hot:
            raw = table[o.input] if o.input in table else [None] * n_rows
            values = np.asarray(raw, dtype=object)
            if values.shape != (n_rows,):
                raise M7Error(f"column {o.input!r} has shape {values.shape}, expected ({n_rows},)")
            cells = o.encode_column(values)
            for j, c in enumerate(o.columns):
                if c in index:
                    out[:, index[c]] = cells[:, j]
        missing = [f for f in features if f not in derived and f not in table]
        if missing and self.on_missing == "reject":
            raise M7Error(f"missing column(s) {missing}; this model's policy rejects rows without them")
        for f in features:
            if f in derived:
                continue
            if f not in table:
                out[:, index[f]] = 0.0
                continue
            col = np.asarray(table[f])
            if col.shape != (n_rows,):
                raise M7Error(f"column {f!r} has shape {col.shape}, expected ({n_rows},)")
            if col.dtype.kind in "fiub":
                out[:, index[f]] = col
            else:
                out[:, index[f]] = [to_float(f, v) for v in col]
        return out
