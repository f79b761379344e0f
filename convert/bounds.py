"""What reading one model file may cost: the bounds, as data, and reprs that cost O(1).

A model file is untrusted input, and a few kilobytes can describe gigabytes: a compressed
stream of zeros, a pickle that references one list from two places at every level (a
"billion laughs" graph whose naive walk or repr is 2**depth long), a count field with no
bytes behind it. Every reader in the converter (decompression, the unpickler, the UBJSON
decoder, the booster-document validator) takes its bounds from one :class:`Limits`, so
the README's Security section can list them with their defaults in one place.

The bounds are proportional to the size of the file on disk, with a floor so that small
real models are never near them. Two of them, the decompression cap, are also read from
the environment (``M7_MAX_EXPANSION``, ``M7_MAX_PAYLOAD``) so a user of ``m7onnx convert``
can lift them for an unusually compressible model without code.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from .errors import ConvertError

MiB = 1 << 20
GiB = 1 << 30

ENV_RATIO = "M7_MAX_EXPANSION"
ENV_PAYLOAD = "M7_MAX_PAYLOAD"
#: environment variable -> Limits field it overrides
ENVIRONMENT = {ENV_RATIO: "expand_ratio", ENV_PAYLOAD: "max_payload"}


@dataclass(frozen=True)
class Limits:
    """Bounds on what one model file may make the converter allocate or compute.

    Decompression: a compressed pickle may expand to ``expand_ratio`` times its size, at
    least ``expand_floor`` bytes and never more than ``max_payload`` bytes. The Market7 and
    fixture pickles compress about 4x with zlib (their float arrays do not compress well);
    200x is a stream of nearly constant bytes.

    Unpickling: at most ``ops_floor + ops_per_byte * file size`` pickle operations (each
    makes at most one object), and the object graph, counted as a tree (a shared reference
    counts every time it is reached), may not exceed that number either; calls of allowed
    constructors and array reads may materialize at most ``bytes_floor + bytes_per_payload
    * payload`` bytes (the payload: the pickle's size, or a compressed file's cap);
    containers nest at most ``max_depth`` deep (Python's own recursion limit, which
    consumers of the object hit), and an object array may hold object arrays at most
    ``array_nesting`` deep (numpy frees nested arrays by C recursion).

    UBJSON documents: at most ``values_floor + size / bytes_per_value`` untyped values
    (xgboost writes per-node data as typed arrays, so a real model has a few dozen
    untyped values per tree).
    """

    expand_ratio: int = 200
    expand_floor: int = 8 * MiB
    max_payload: int = 1 * GiB
    ops_floor: int = 500_000
    ops_per_byte: int = 4
    bytes_floor: int = 64 * MiB
    bytes_per_payload: int = 2
    array_nesting: int = 32
    max_depth: int = 1000
    values_floor: int = 1_000_000
    bytes_per_value: int = 8

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value < 1:
                raise ConvertError(f"limit {f.name} must be a positive integer, got {brief(value)}")

    def payload_cap(self, file_size: int) -> int:
        """Bytes a compressed file of ``file_size`` bytes may decompress to."""
        return min(self.max_payload, max(self.expand_floor, self.expand_ratio * file_size))

    def max_ops(self, file_size: int) -> int:
        return self.ops_floor + self.ops_per_byte * file_size

    def max_bytes(self, payload_size: int) -> int:
        return self.bytes_floor + self.bytes_per_payload * payload_size

    def max_values(self, document_size: int) -> int:
        return self.values_floor + document_size // self.bytes_per_value

    @classmethod
    def from_env(cls, base: Limits | None = None) -> Limits:
        """``base`` (default: the defaults) with the fields set in the environment."""
        base = base or cls()
        changes: dict[str, int] = {}
        for var, name in ENVIRONMENT.items():
            raw = os.environ.get(var)
            if raw is None or not raw.strip():
                continue
            try:
                changes[name] = int(raw.strip())
            except ValueError:
                raise ConvertError(f"${var} must be a positive integer, got {raw!r}") from None
            if changes[name] < 1:
                raise ConvertError(f"${var} must be a positive integer, got {raw!r}")
        return replace(base, **changes) if changes else base


def brief(obj: Any, width: int = 60) -> str:
    """A short description of ``obj`` whose cost does not depend on ``obj``.

    ``repr`` of a hostile object can be exponential (a graph with shared references),
    recurse past the interpreter's limit (deep nesting) or be gigabytes long, and
    ``f"{obj!r:.80}"`` truncates only after the whole repr was built.
    """
    if obj is None or isinstance(obj, (bool, float, complex)):
        return repr(obj)
    if isinstance(obj, int):
        return repr(obj) if obj.bit_length() <= 64 else f"<int of {obj.bit_length()} bits>"
    if isinstance(obj, (str, bytes, bytearray)):
        unit = "characters" if isinstance(obj, str) else "bytes"
        return repr(obj[:width]) + (f"... ({len(obj)} {unit})" if len(obj) > width else "")
    if isinstance(obj, np.ndarray):
        return f"<array of {obj.dtype.str} with shape {obj.shape}>"
    if isinstance(obj, (np.integer, np.floating, np.bool_)):
        return f"{type(obj).__name__}({brief(obj.item())})"
    if isinstance(obj, np.generic):
        return f"<numpy {type(obj).__name__}>"
    if isinstance(obj, np.dtype):
        return f"dtype({obj.str!r})"
    if isinstance(obj, (list, tuple, dict, set, frozenset)):
        return f"<{type(obj).__name__} of {len(obj)} items>"
    if isinstance(obj, type):
        return f"<class {obj.__module__}.{obj.__qualname__}>"
    return f"<{type(obj).__module__}.{type(obj).__qualname__} object>"


def one_line(text: str, width: int = 400) -> str:
    """A library's error message as one bounded line (some carry newlines or backtraces)."""
    line = " ".join(text[: width * 2].split())
    return line if len(line) <= width else line[: width - 3] + "..."


__all__ = ["ENVIRONMENT", "ENV_PAYLOAD", "ENV_RATIO", "GiB", "Limits", "MiB", "brief", "one_line"]
