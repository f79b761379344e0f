"""The pickle stream inside a model file: read as stored, or decompressed as it is read, under a cap.

joblib compresses with zlib (its default), gzip, bz2, xz or lzma (lz4 needs the lz4
package). One call such as ``bz2.decompress`` turns a 1.5 KB file into gigabytes before
anything can look at them, so here the stream is decompressed on demand, a chunk at a
time, as the unpickler reads it, and refused the moment it passes the cap
(:meth:`Limits.payload_cap`). The decompressed bytes are never held whole: the unpickler
keeps only the objects it builds.

Every read also checks the length it is asked for against what may remain, before
anything is allocated: a pickle declares the length of a bytes object or a frame up
front, and a buffered reader would allocate a declared 2**40 bytes before finding out
the stream is shorter.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import zlib
from typing import Any

from .bounds import ENV_PAYLOAD, ENV_RATIO, Limits, one_line
from .errors import SourceError

_CHUNK = 1 << 16

#: magic prefix -> compression joblib wrote it with
MAGIC = {
    b"\x78": "zlib",
    b"\x1f\x8b": "gzip",
    b"BZ": "bz2",
    b"\xfd7zXZ": "xz",
    b"]\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
}


def compression_of(data: bytes | memoryview) -> str | None:
    head = bytes(data[:6])
    return next((name for magic, name in MAGIC.items() if head.startswith(magic)), None)


class _Zlib(io.RawIOBase):
    """A zlib stream (joblib's default), which has no file class in the standard library.

    Input is fed a chunk at a time and output asked for a chunk at a time, so neither the
    decompressor's output nor its ``unconsumed_tail`` ever exceeds one chunk.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data = memoryview(data)
        self._pos = 0
        self._zlib = zlib.decompressobj()
        self._out = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        while not self._out:
            if self._zlib.eof:
                return 0
            src = self._zlib.unconsumed_tail
            if not src:
                if self._pos >= len(self._data):
                    raise EOFError("the zlib stream ends before its end marker")
                src = self._data[self._pos : self._pos + _CHUNK]
                self._pos += len(src)
            self._out = self._zlib.decompress(src, _CHUNK)
        n = min(len(b), len(self._out))
        b[:n] = self._out[:n]
        self._out = self._out[n:]
        return n


def _open(data: bytes, compression: str) -> io.RawIOBase | io.BufferedIOBase:
    raw = io.BytesIO(data)
    if compression == "zlib":
        return _Zlib(data)
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == "bz2":
        return bz2.BZ2File(raw)
    return lzma.LZMAFile(raw)  # xz and lzma-alone, told apart by the library


class _Capped(io.RawIOBase):
    """A decompressing stream that fails once it has produced more than ``cap`` bytes."""

    def __init__(self, inner: io.RawIOBase | io.BufferedIOBase, *, cap: int, compression: str, what: str) -> None:
        super().__init__()
        self._inner, self.cap, self.compression, self.what = inner, cap, compression, what
        self.produced = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        view = memoryview(b)[: min(len(b), self.cap - self.produced + 1)]
        try:
            n = self._inner.readinto(view)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
            raise SourceError(
                f"{self.what}: cannot decompress its {self.compression} stream ({type(exc).__name__}: "
                f"{one_line(str(exc))}): "
                "truncated or corrupted"
            ) from None
        self.produced += n or 0
        if self.produced > self.cap:
            raise SourceError(
                f"{self.what}: its {self.compression} stream decompresses to more than {self.cap} bytes, the "
                f"decompression cap for a file of this size (a bomb?). A real model this compressible can be read "
                f"with a higher cap: ${ENV_RATIO} (ratio to the file size) or ${ENV_PAYLOAD} (bytes)"
            )
        return n


class Payload:
    """The pickle stream of one file, with what it may still yield.

    ``read(n)`` refuses an ``n`` larger than what may remain before anything is
    allocated; ``limit`` is the file's length (stored as is) or the decompression cap.
    """

    def __init__(self, data: bytes, *, limits: Limits, what: str) -> None:
        self.what = what
        self.compression = compression_of(data)
        if self.compression == "lz4":
            raise SourceError(
                f"{what} is lz4-compressed, which needs the lz4 package that this installation lacks; "
                "re-save it with joblib.dump(..., compress=0) or 'zlib'"
            )
        if self.compression is None:
            # BytesIO shares the bytes (no copy), and its C read never allocates more than is
            # left, so it is the fast path for every opcode; ``pos`` is its position
            self._stream: Any = io.BytesIO(data)
            self.limit = len(data)
            self.read = self._stream.read  # type: ignore[method-assign]
            self.readline = self._stream.readline  # type: ignore[method-assign]
        else:
            self.limit = limits.payload_cap(len(data))
            capped = _Capped(_open(data, self.compression), cap=self.limit, compression=self.compression, what=what)
            self._stream = io.BufferedReader(capped, buffer_size=_CHUNK)
        self._pos = 0

    @property
    def pos(self) -> int:
        return self._stream.tell() if self.compression is None else self._pos

    @property
    def left(self) -> int:
        return self.limit - self.pos

    def check(self, n: int, what: str = "an item", *, extra: int = 0) -> None:
        """Refuse a declared length ``n`` the rest of the stream (plus ``extra`` bytes read ahead) cannot hold."""
        if n > self.left + extra:
            where = (
                "the file: it is truncated or corrupted"
                if self.compression is None
                else f"the {self.limit}-byte decompression cap of its {self.compression} stream "
                f"(${ENV_RATIO}, ${ENV_PAYLOAD})"
            )
            raise SourceError(
                f"{self.what}: the pickle declares {what} of {n} bytes at byte {self.pos}, "
                f"more than the {max(self.left + extra, 0)} bytes left in {where}"
            )

    def read(self, n: int = -1) -> bytes:
        """A checked read (the decompressing stream's reader would allocate ``n`` bytes up front)."""
        if n is None or n < 0:
            n = self.left
        if n > _CHUNK:  # a read within the buffer allocates nothing beyond it: only long ones are checked
            self.check(n)
        data = self._stream.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: Any) -> int:
        self.check(len(b))
        n = self._stream.readinto(b)
        self._pos += n if self.compression else 0
        return n

    def readline(self) -> bytes:
        line = self._stream.readline()  # bounded by the cap
        self._pos += len(line)
        return line

    def peek(self, n: int) -> bytes:
        """Up to the next ``n`` bytes, not consumed."""
        if self.compression is None:  # BytesIO: getbuffer() would copy the whole file
            here = self._stream.tell()
            out = self._stream.read(n)
            self._stream.seek(here)
            return out
        return self._stream.peek(n)[:n]


__all__ = ["MAGIC", "Payload", "compression_of"]
