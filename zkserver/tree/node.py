"""One znode and its stat, with ZooKeeper's special owner values for containers and TTL nodes."""

from __future__ import annotations

import struct

from ..protocol.records import ACL, STAT

_LEN = struct.Struct(">i")
_NULL = _LEN.pack(-1)

CONTAINER_OWNER = -(1 << 63)  # Long.MIN_VALUE
TTL_MASK = -(1 << 56)  # 0xff00000000000000 as a signed long
MAX_TTL = 0xFFFFFFFFFF


def ttl_owner(ttl_ms: int) -> int:
    return TTL_MASK | ttl_ms


def is_ttl_owner(owner: int) -> bool:
    return owner != CONTAINER_OWNER and owner < 0 and (owner & TTL_MASK) == TTL_MASK


def ttl_of(owner: int) -> int:
    return owner & MAX_TTL


def is_ephemeral_owner(owner: int) -> bool:
    """A session id rather than 0, a container or a TTL marker. Session ids of servers with
    id >= 128 are negative longs; server ids stay below 255 so they never look like a TTL."""
    return owner != 0 and owner != CONTAINER_OWNER and (owner & TTL_MASK) != TTL_MASK


class Node:
    """A znode. `cversion` is the internal count of child creates; clients see
    2*cversion - numChildren (one step per child create and per child delete)."""

    __slots__ = (
        "data",
        "acl",
        "children",
        "czxid",
        "mzxid",
        "ctime",
        "mtime",
        "version",
        "cversion",
        "aversion",
        "owner",
        "pzxid",
        "enc",
    )

    def __init__(
        self, data: bytes | None, acl: tuple[ACL, ...], zxid: int, time_ms: int, owner: int = 0
    ) -> None:
        self.data = data
        self.acl = acl
        self.children: set[str] = set()
        self.czxid = self.mzxid = self.pzxid = zxid
        self.ctime = self.mtime = time_ms
        self.version = self.cversion = self.aversion = 0
        self.owner = owner
        self.enc: bytes | None = None  # cached `buffer(data) + Stat`; None after any change

    def encoded(self) -> bytes:
        """getData's reply body, kept until the node changes (the tree clears it)."""
        enc = self.enc
        if enc is None:
            d = self.data
            head = _NULL if d is None else _LEN.pack(len(d)) + d
            enc = self.enc = head + STAT.pack(*self.stat())
        return enc

    def stat(self) -> tuple:
        """The Stat record's fields, in wire order."""
        n = len(self.children)
        owner = self.owner if is_ephemeral_owner(self.owner) else 0
        return (
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            2 * self.cversion - n,
            self.aversion,
            owner,
            0 if self.data is None else len(self.data),
            n,
            self.pzxid,
        )
