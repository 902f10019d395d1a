"""Jute, ZooKeeper's binary record encoding: big-endian ints and longs, length-prefixed buffers
and strings where -1 means null, vectors as a count followed by elements."""

from __future__ import annotations

import struct
from typing import Callable, TypeVar

T = TypeVar("T")

INT = struct.Struct(">i")
LONG = struct.Struct(">q")
BOOL = struct.Struct(">?")
INT_INT = struct.Struct(">ii")

DEFAULT_MAX_BUFFER = 0xFFFFF  # jute.maxbuffer default: 1,048,575 bytes


class JuteError(ValueError):
    """The bytes are not a well-formed record (truncated, bad length, bad UTF-8)."""


class Reader:
    """Decodes jute primitives from a byte string, front to back."""

    __slots__ = ("buf", "pos", "max_buffer")

    def __init__(self, buf: bytes, pos: int = 0, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.buf = buf
        self.pos = pos
        self.max_buffer = max_buffer

    def remaining(self) -> int:
        return len(self.buf) - self.pos

    def _need(self, n: int) -> None:
        if self.pos + n > len(self.buf):
            raise JuteError(f"record truncated: need {n} bytes at offset {self.pos}, have {self.remaining()}")

    def int(self) -> int:
        self._need(4)
        (v,) = INT.unpack_from(self.buf, self.pos)
        self.pos += 4
        return v

    def long(self) -> int:
        self._need(8)
        (v,) = LONG.unpack_from(self.buf, self.pos)
        self.pos += 8
        return v

    def bool(self) -> bool:
        self._need(1)
        v = self.buf[self.pos]
        self.pos += 1
        return v != 0

    def buffer(self) -> bytes | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.max_buffer:
            raise JuteError(f"buffer length {n} out of range")
        self._need(n)
        v = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return v

    def ustring(self) -> str | None:
        raw = self.buffer()
        if raw is None:
            return None
        # Like Java's decoder: malformed bytes become U+FFFD (which no valid path contains).
        return raw.decode("utf-8", "replace")

    def vector(self, item: Callable[[Reader], T]) -> list[T] | None:
        n = self.int()
        if n == -1:
            return None
        if n < -1 or n > self.max_buffer:
            raise JuteError(f"vector length {n} out of range")
        return [item(self) for _ in range(n)]


class Writer:
    """Encodes jute primitives into a growing bytearray."""

    __slots__ = ("out",)

    def __init__(self) -> None:
        self.out = bytearray()

    def int(self, v: int) -> Writer:
        self.out += INT.pack(v)
        return self

    def long(self, v: int) -> Writer:
        self.out += LONG.pack(v)
        return self

    def bool(self, v: bool) -> Writer:
        self.out.append(1 if v else 0)
        return self

    def buffer(self, v: bytes | None) -> Writer:
        if v is None:
            self.out += INT.pack(-1)
        else:
            self.out += INT.pack(len(v))
            self.out += v
        return self

    def ustring(self, v: str | None) -> Writer:
        return self.buffer(None if v is None else java_utf8(v))

    def strings(self, items: list[str] | None) -> Writer:
        if items is None:
            return self.int(-1)
        self.int(len(items))
        for s in items:
            self.ustring(s)
        return self

    def raw(self, b: bytes) -> Writer:
        self.out += b
        return self

    def bytes(self) -> bytes:
        return bytes(self.out)


def java_utf8(s: str) -> bytes:
    """Strings as jute writes them: UTF-8 per UTF-16 code unit, so a character beyond the BMP
    becomes two 3-byte surrogates (CESU-8), exactly the bytes ZooKeeper sends."""
    if s.isascii():
        return s.encode("ascii")
    if max(s) <= "\uffff":
        return s.encode("utf-8", "surrogatepass")
    units = []
    for ch in s:
        cp = ord(ch)
        if cp > 0xFFFF:
            cp -= 0x10000
            units.append(chr(0xD800 + (cp >> 10)) + chr(0xDC00 + (cp & 0x3FF)))
        else:
            units.append(ch)
    return "".join(units).encode("utf-8", "surrogatepass")


def encode_ustring(s: str) -> bytes:
    b = java_utf8(s)
    return INT.pack(len(b)) + b


def encode_buffer(b: bytes | None) -> bytes:
    if b is None:
        return INT.pack(-1)
    return INT.pack(len(b)) + b
