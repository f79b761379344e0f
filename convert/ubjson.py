"""A small UBJSON decoder for xgboost's ``.ubj`` models and pickled booster snapshots.

xgboost writes UBJSON for ``save_model("x.ubj")`` and, since 1.6, for the booster bytes
inside a pickle. Decoding it ourselves means a pickle written by any xgboost version is
read without asking the installed xgboost to unserialize it (which 3.x refuses for some
older snapshots). Typed arrays (``[$d#...``) become numpy arrays, read in one call.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

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


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

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
                raw = self.take(count * dtype.itemsize)
                return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
            return [self.value(typ if typ is not None else self.marker()) for _ in range(count)]
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
            for _ in range(count):
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


def loads(data: bytes) -> Any:
    """Decode one UBJSON value (xgboost's subset of the format)."""
    reader = _Reader(data)
    return reader.value(reader.marker())
