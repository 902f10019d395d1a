"""Fuzzy snapshots: the tree written a chunk at a time while writes go on.

A snapshot labelled Z holds the sessions at Z and every node as it was when its turn came, which
may be later than Z. Replaying the log from Z+1 repairs that, because applying a txn sets explicit
values (see txn.py). The file is written as `<name>.tmp`, fsynced and renamed, so a
`snapshot.<zxid>` file is always complete; its trailing CRC catches later damage.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Iterable, Iterator

from ..protocol.jute import Reader, Writer
from ..protocol.records import read_acls, write_acls
from ..tree.datatree import DataTree, split_path
from ..tree.node import Node

log = logging.getLogger(__name__)

MAGIC = b"ZKCS\x00\x00\x00\x01"
PREFIX = "snapshot."
_END = struct.Struct(">qI")  # end marker (-1), crc32 of everything before it
_NODE_MARK = 1
_END_MARK = -1


def snapshot_name(zxid: int) -> str:
    return f"{PREFIX}{zxid:016x}"


def snapshot_zxid(path: Path) -> int:
    return int(path.name[len(PREFIX) :], 16)


def snapshots(directory: Path) -> list[Path]:
    """Complete snapshot files, newest first."""
    if not directory.exists():
        return []
    found = [p for p in directory.iterdir() if p.name.startswith(PREFIX) and not p.name.endswith(".tmp")]
    return sorted(found, key=snapshot_zxid, reverse=True)


def encode_header(zxid: int, sessions: dict[int, int]) -> bytes:
    w = Writer().raw(MAGIC).long(zxid).int(len(sessions))
    for sid, timeout in sessions.items():
        w.long(sid).int(timeout)
    return w.bytes()


def encode_nodes(items: Iterable[tuple[str, Node]]) -> bytes:
    w = Writer()
    for path, n in items:
        w.int(_NODE_MARK).ustring(path).buffer(n.data)
        write_acls(w, n.acl)
        w.long(n.czxid).long(n.mzxid).long(n.ctime).long(n.mtime)
        w.int(n.version).int(n.cversion).int(n.aversion).long(n.owner).long(n.pzxid)
    return w.bytes()


class SnapshotWriter:
    """Streams a snapshot to `<dir>/snapshot.<zxid>.tmp`; `finish` seals and renames it."""

    def __init__(self, directory: Path, zxid: int, sessions: dict[int, int]) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.final = directory / snapshot_name(zxid)
        self.tmp = directory / (snapshot_name(zxid) + ".tmp")
        self.f = open(self.tmp, "wb")
        self.crc = 0
        self.generation = 0  # the storage's, when the snapshot began
        self.write(encode_header(zxid, sessions))

    def write(self, data: bytes) -> None:
        self.crc = zlib.crc32(data, self.crc)
        self.f.write(data)

    def finish(self, fsync: bool = True) -> Path:
        end = struct.pack(">i", _END_MARK)
        self.crc = zlib.crc32(end, self.crc)
        self.f.write(end + struct.pack(">I", self.crc))
        self.f.flush()
        if fsync:
            os.fsync(self.f.fileno())
        self.f.close()
        os.rename(self.tmp, self.final)
        if fsync:
            fd = os.open(self.final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return self.final

    def abort(self) -> None:
        self.f.close()
        self.tmp.unlink(missing_ok=True)


class BadSnapshot(ValueError):
    pass


def _read_nodes(r: Reader) -> Iterator[tuple[str, Node]]:
    while True:
        mark = r.int()
        if mark == _END_MARK:
            return
        if mark != _NODE_MARK:
            raise BadSnapshot(f"unexpected record mark {mark}")
        path = r.ustring() or ""
        data = r.buffer()
        acl = tuple(read_acls(r) or ())
        n = Node(data, acl, 0, 0)
        n.czxid, n.mzxid, n.ctime, n.mtime = r.long(), r.long(), r.long(), r.long()
        n.version, n.cversion, n.aversion = r.int(), r.int(), r.int()
        n.owner, n.pzxid = r.long(), r.long()
        yield path, n


def dumps(tree: DataTree) -> bytes:
    """The whole tree, consistent (taken in one go), in the snapshot file format."""
    body = encode_header(tree.last_zxid, tree.sessions) + encode_nodes(tree.nodes.items())
    body += struct.pack(">i", _END_MARK)
    return body + struct.pack(">I", zlib.crc32(body))


def load(path: Path) -> DataTree:
    """Read and verify one snapshot; BadSnapshot if it is damaged."""
    return loads(path.read_bytes(), str(path))


def loads(raw: bytes, path: str = "snapshot") -> DataTree:
    if len(raw) < len(MAGIC) + 4 or raw[: len(MAGIC)] != MAGIC:
        raise BadSnapshot(f"{path}: not a zkchaos snapshot")
    body, (crc,) = raw[:-4], struct.unpack(">I", raw[-4:])
    if zlib.crc32(body) != crc:
        raise BadSnapshot(f"{path}: checksum mismatch")
    try:
        r = Reader(body, len(MAGIC), max_buffer=1 << 31)
        zxid = r.long()
        sessions = {r.long(): r.int() for _ in range(r.int())}
        nodes = dict(_read_nodes(r))
    except ValueError as e:
        raise BadSnapshot(f"{path}: {e}") from None
    return build_tree(nodes, sessions, zxid)


def build_tree(nodes: dict[str, Node], sessions: dict[int, int], zxid: int) -> DataTree:
    """A tree from loaded nodes. A node whose parent is missing can only have been created
    after the snapshot began (see module doc), so it is dropped and the log recreates it."""
    tree = DataTree()
    if "/" not in nodes:
        raise BadSnapshot("snapshot has no root node")
    tree.nodes = {"/": nodes["/"]}
    nodes["/"].children = set()
    for path in sorted(nodes, key=lambda p: p.count("/")):
        if path == "/":
            continue
        parent_path, _ = split_path(path)
        if parent_path not in tree.nodes:
            continue
        node = nodes[path]
        node.children = set()
        tree._attach(path, node)
    tree.sessions = dict(sessions)
    tree.last_zxid = zxid
    return tree
