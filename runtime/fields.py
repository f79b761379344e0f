"""Typed reading of JSON objects: every wrong-typed or absurd value becomes an M7Error naming its field.

Manifests and policies arrive as JSON written by another program (or edited by hand, or
crafted). Reading them with ``d["x"]``, ``int(...)`` and ``float(...)`` lets a wrong type
escape as a raw ``KeyError``/``TypeError``/``OverflowError`` far from the cause. A
:class:`Fields` reader names the dotted field (``output.n_outputs``) and what it must be,
bounds every number, and refuses keys it does not know, so a typo is caught at load time
instead of silently ignored.

Floats that JSON cannot hold (NaN, ±inf) are written as the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"`` (:func:`enc_float`) so manifests stay standard JSON.
"""

from __future__ import annotations

import math
import reprlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from .errors import M7Error

T = TypeVar("T")

_REQUIRED: Any = object()
_SPECIAL = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_short = reprlib.Repr()
_short.maxlevel, _short.maxstring, _short.maxother, _short.maxlist, _short.maxdict = 2, 40, 40, 4, 4
#: the largest count or size any field may hold: far above any real model, far below what exhausts memory
MAX_COUNT = 2**40


def short_repr(value: Any) -> str:
    """A repr bounded in length *and* in work: reprlib stops descending, unlike ``f"{v!r:.60}"``."""
    return _short.repr(value)


def enc_float(value: float) -> float | str:
    """A float as JSON: finite values as numbers, NaN and ±inf as their names."""
    if math.isfinite(value):
        return float(value)
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class Fields:
    """Reads one JSON object; ``where`` names the document, ``prefix`` the object's dotted path."""

    def __init__(self, data: Any, where: str, prefix: str = "") -> None:
        if not isinstance(data, Mapping):
            what = f"field '{prefix.rstrip('.')}'" if prefix else "the document"
            raise M7Error(f"{where}: {what} is not a JSON object (got {type(data).__name__} {short_repr(data)})")
        self._data = data
        self._where = where
        self._prefix = prefix
        self._read: set[str] = set()

    @property
    def where(self) -> str:
        return self._where

    def name(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def error(self, key: str, why: str) -> M7Error:
        return M7Error(f"{self._where}: field '{self.name(key)}' {why}")

    def has(self, key: str) -> bool:
        return key in self._data

    def keys(self) -> list[str]:
        return [str(k) for k in self._data]

    def raw(self, key: str, default: Any = _REQUIRED) -> Any:
        self._read.add(key)
        if key in self._data:
            return self._data[key]
        if default is _REQUIRED:
            raise self.error(key, "is missing")
        return default

    def _typed(self, key: str, default: Any, check: Callable[[Any], T], what: str) -> Any:
        """``check(value)``; an absent key gives ``default`` as is, and an explicit null is allowed when it is None."""
        if key not in self._data:
            return self.raw(key, default)
        value = self.raw(key)
        if value is None and default is None:
            return None
        try:
            return check(value)
        except (TypeError, ValueError, OverflowError):
            raise self.error(key, f"must be {what}, got {type(value).__name__} {short_repr(value)}") from None

    def str(self, key: str, default: Any = _REQUIRED, *, max_len: int = 1 << 16) -> Any:
        def check(v: Any) -> str:
            if not isinstance(v, str) or len(v) > max_len:
                raise TypeError
            return v

        return self._typed(key, default, check, f"a string of at most {max_len} characters")

    def choice(self, key: str, options: Iterable[str], default: Any = _REQUIRED) -> Any:
        options = tuple(options)
        value = self.str(key, default)
        if value is not None and value not in options:
            raise self.error(key, f"must be one of {list(options)}, got {short_repr(value)}")
        return value

    def bool(self, key: str, default: Any = _REQUIRED) -> Any:
        def check(v: Any) -> bool:
            if not isinstance(v, bool):
                raise TypeError
            return v

        return self._typed(key, default, check, "true or false")

    def int(self, key: str, default: Any = _REQUIRED, *, lo: int = 0, hi: int = MAX_COUNT) -> Any:
        return self._typed(key, default, lambda v: as_int(v, lo, hi), f"an integer in [{lo}, {hi}]")

    def float(self, key: str, default: Any = _REQUIRED, *, finite: bool = True) -> Any:
        return self._typed(key, default, lambda v: as_float(v, finite), "a finite number" if finite else "a number")

    def list(
        self, key: str, item: Callable[[Any], T], what: str, default: Any = _REQUIRED, *, max_len: int = 1 << 20
    ) -> Any:
        def check(v: Any) -> tuple[T, ...]:
            if not isinstance(v, list) or len(v) > max_len:
                raise TypeError
            return tuple(item(x) for x in v)

        return self._typed(key, default, check, f"a list of at most {max_len} {what}")

    def strs(self, key: str, default: Any = _REQUIRED, *, max_len: int = 1 << 20) -> Any:
        return self.list(key, as_str, "strings", default, max_len=max_len)

    def floats(self, key: str, default: Any = _REQUIRED, *, finite: bool = True, max_len: int = 1 << 20) -> Any:
        return self.list(key, lambda v: as_float(v, finite), "numbers", default, max_len=max_len)

    def obj(self, key: str, default: Any = _REQUIRED) -> Any:
        if key not in self._data:
            return self.raw(key, default)
        value = self.raw(key)
        if value is None and default is None:
            return None
        return Fields(value, self._where, f"{self.name(key)}.")

    def mapping(
        self, key: str, read: Callable[[Fields], T], default: Any = _REQUIRED, *, max_len: int = 1 << 20
    ) -> Any:
        """An object of name -> sub-object, each read by ``read`` (their fields named ``key.NAME.field``)."""
        if key not in self._data:
            return self.raw(key, default)
        value = self.raw(key)
        if value is None and default is None:
            return None
        if not isinstance(value, Mapping) or len(value) > max_len:
            raise self.error(key, f"must be an object of at most {max_len} entries, got {type(value).__name__}")
        return {str(k): read(Fields(v, self._where, f"{self.name(key)}.{k}.")) for k, v in value.items()}

    def str_mapping(self, key: str, default: Any = _REQUIRED) -> Any:
        if key not in self._data:
            return self.raw(key, default)
        value = self.raw(key)
        if value is None and default is None:
            return None
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise self.error(key, f"must be an object of strings, got {short_repr(value)}")
        return dict(value)

    def done(self, *, ignore: Iterable[str] = ()) -> None:
        """Refuse keys nobody read: a typo or a field of a newer schema must not be silently dropped."""
        unknown = set(self._data) - self._read - set(ignore)
        if unknown:
            where = f"'{self._prefix.rstrip('.')}'" if self._prefix else "the top level"
            raise M7Error(f"{self._where}: unknown field(s) {sorted(unknown)[:10]} at {where}")


def as_str(v: Any) -> str:
    if not isinstance(v, str) or len(v) > 1 << 16:
        raise TypeError
    return v


def as_int(v: Any, lo: int = 0, hi: int = MAX_COUNT) -> int:
    """An integer in [lo, hi]: ints, and floats with an integral value (JSON writers differ), never bools."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    if isinstance(v, float) and not v.is_integer():  # also NaN and inf
        raise ValueError
    if not lo <= v <= hi:
        raise ValueError
    return int(v)


def as_float(v: Any, finite: bool = True) -> float:
    """A number, or one of the names :func:`enc_float` writes; ``finite`` refuses NaN and ±inf."""
    if isinstance(v, str) and v in _SPECIAL:
        v = _SPECIAL[v]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError
    value = float(v)  # OverflowError for an int beyond float range
    if finite and not math.isfinite(value):
        raise ValueError
    return value
