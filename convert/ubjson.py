"""A small UBJSON decoder for xgboost's ``.ubj`` models and pickled booster snapshots.

xgboost writes UBJSON for ``save_model("x.ubj")`` and, since 1.6, for the booster bytes
inside a pickle. Decoding it ourselves means a pickle written by any xgboost version is
read without asking the installed xgboost to unserialize it (which 3.x refuses for some
older snapshots). Typed arrays (``[$d#...``) become numpy arrays, read in one call.

The decoder trusts no count: a container's declared count is refused when the bytes left
cannot hold that many values (every value takes at least one byte, and xgboost never
writes a container typed as null, true or false, whose values take none: ``[$Z#L n]``
would otherwise build ``n`` objects from 12 bytes). Untyped values, decoded one at a time
in Python, are counted against a budget proportional to the document's size.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from .bounds import Limits
from .errors import SourceError

# marker -> (struct format, size) for scalars; big-endian per the UBJSON spec
_SCALARS: dict[bytes, tuple[str, int]] = {
    b"i": (">b", 1),
    b"U": (">B", 1),
    b"I": (">h", 2),
    b"l": (">i", 4),
    b"L": (">q", 8),
    b"d": (">f", 4),
    b"D": (">d", 8),
}
_NUMPY = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}


#: markers of values that take no bytes after the marker: no typed container may use them
_EMPTY = {b"Z", b"T", b"F", b"N"}


class _Cursor:
    def __init__(self, data: bytes | bytearray | memoryview, max_values: int) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.values_left = max_values

    def count(self, n: int, per_value: int) -> int:
        """A declared container count, refused when the bytes left cannot hold it."""
        left = len(self.data) - self.pos
        if n < 0 or n * per_value > left:
            raise SourceError(
                f"UBJSON: a container at byte {self.pos} declares {n} values of at least {per_value} byte(s), "
                f"but only {left} bytes are left: the file is truncated, corrupted or hostile"
            )
        return n

    def take(self, n: int) -> memoryview:
        if n < 0:  # a negative length would move the reader backwards: an endless loop on hostile bytes
            raise SourceError(f"UBJSON: negative length {n} at byte {self.pos}: the file is corrupted")
        end = self.pos + n
        if end > len(self.data):
            raise SourceError(f"UBJSON ends early at byte {self.pos} (wanted {n} more bytes): the file is truncated")
        out = self.data[self.pos : end]
        self.pos = end
        return out

    def marker(self) -> bytes:
        m = bytes(self.take(1))
        while m == b"N":  # no-op marker
            m = bytes(self.take(1))
        return m

    def integer(self, marker: bytes) -> int:
        if marker not in _SCALARS or marker in (b"d", b"D"):
            raise SourceError(f"UBJSON: expected an integer length marker, saw {marker!r} at byte {self.pos - 1}")
        fmt, size = _SCALARS[marker]
        return int(struct.unpack(fmt, self.take(size))[0])

    def string(self) -> str:
        n = self.integer(self.marker())
        return bytes(self.take(n)).decode("utf-8")

    def value(self, marker: bytes) -> Any:
        self.values_left -= 1
        if self.values_left < 0:
            raise SourceError(
                "UBJSON: the document holds more untyped values than its size allows a model to have "
                "(xgboost writes per-node data as typed arrays): corrupted or hostile"
            )
        if marker in _SCALARS:
            fmt, size = _SCALARS[marker]
            return struct.unpack(fmt, self.take(size))[0]
        if marker == b"S" or marker == b"H":
            return self.string()
        if marker == b"C":
            return bytes(self.take(1)).decode("ascii")
        if marker == b"T":
            return True
        if marker == b"F":
            return False
        if marker == b"Z":
            return None
        if marker == b"[":
            return self.array()
        if marker == b"{":
            return self.object()
        raise SourceError(f"UBJSON: unknown marker {marker!r} at byte {self.pos - 1}")

    def container_header(self) -> tuple[bytes | None, int | None]:
        typ = count = None
        m = self.marker()
        if m == b"$":
            typ = self.marker()
            if typ in _EMPTY:
                raise SourceError(f"UBJSON: a container at byte {self.pos} is typed {typ!r}: its values take no bytes")
            m = self.marker()
            if m != b"#":
                raise SourceError("UBJSON: a typed container must give its count")
        if m == b"#":
            count = self.integer(self.marker())
        else:
            self.pos -= 1  # not a header: give the marker back
        return typ, count

    def array(self) -> Any:
        typ, count = self.container_header()
        if count is not None:
            if typ in _NUMPY:
                dtype = np.dtype(_NUMPY[typ])
                raw = self.take(self.count(count, dtype.itemsize) * dtype.itemsize)
                return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
            return [self.value(typ if typ is not None else self.marker()) for _ in range(self.count(count, 1))]
        out = []
        while True:
            m = self.marker()
            if m == b"]":
                return out
            out.append(self.value(m))

    def object(self) -> dict[str, Any]:
        typ, count = self.container_header()
        out: dict[str, Any] = {}
        if count is not None:
            for _ in range(self.count(count, 2)):  # a key takes at least a length marker and a length
                key = self.string()
                out[key] = self.value(typ if typ is not None else self.marker())
            return out
        while True:
            m = self.marker()
            if m == b"}":
                return out
            self.pos -= 1
            key = self.string()
            out[key] = self.value(self.marker())


def loads(data: bytes | bytearray | memoryview, *, max_values: int | None = None) -> Any:
    """Decode one UBJSON value (xgboost's subset of the format).

    ``max_values``: how many untyped values may be decoded (default: the ``Limits``
    default for a document of this size).
    """
    if max_values is None:
        max_values = Limits().max_values(len(data))
    reader = _Cursor(data, max_values)
    return reader.value(reader.marker())
