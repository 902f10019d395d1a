"""Shared helpers for the unit tests: comparing whole trees and building txns."""

from __future__ import annotations

import random

from zkserver.protocol.constants import OpCode
from zkserver.protocol.jute import Writer
from zkserver.protocol.records import ACL, OPEN_ACL_UNSAFE
from zkserver.tree.datatree import DataTree
from zkserver.tree.node import Node
from zkserver.txn import (
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
)


def tree_state(tree: DataTree) -> dict:
    """Everything a client or a replica could observe: each node's data, ACL, full Stat and
    children, plus the ephemeral/container/TTL indexes and the session table."""
    return {
        "nodes": {
            path: (node.data, tuple(node.acl), node.stat(), node.cversion, node.owner, frozenset(node.children))
            for path, node in tree.nodes.items()
        },
        "ephemerals": {sid: frozenset(paths) for sid, paths in tree.ephemerals.items() if paths},
        "containers": frozenset(tree.containers),
        "ttls": frozenset(tree.ttls),
        "sessions": dict(tree.sessions),
    }


def diff_states(a: dict, b: dict) -> list[str]:
    """Readable differences between two tree_state() results."""
    out = []
    for key in ("ephemerals", "containers", "ttls", "sessions"):
        if a[key] != b[key]:
            out.append(f"{key}: {a[key]!r} != {b[key]!r}")
    for path in sorted(set(a["nodes"]) | set(b["nodes"])):
        x, y = a["nodes"].get(path), b["nodes"].get(path)
        if x != y:
            out.append(f"{path}: {x!r} != {y!r}")
    return out


class TxnMaker:
    """Builds a consistent txn sequence the way prep would (versions, parent cversions)."""

    def __init__(self, tree: DataTree | None = None, session_id: int = 0x100, time_ms: int = 1_000_000) -> None:
        self.zxid = tree.last_zxid if tree is not None else 0
        self.session_id = session_id
        self.time_ms = time_ms
        # shadow state: path -> [version, cversion, aversion]
        self.shadow: dict[str, list[int]] = {}
        if tree is not None:
            for p, n in tree.nodes.items():
                self.shadow[p] = [n.version, n.cversion, n.aversion]
        else:
            for p, n in DataTree().nodes.items():
                self.shadow[p] = [n.version, n.cversion, n.aversion]

    def hdr(self, op: int, session_id: int | None = None) -> TxnHeader:
        self.zxid += 1
        self.time_ms += 10
        return TxnHeader(self.session_id if session_id is None else session_id, self.zxid, self.zxid, self.time_ms, op)

    @staticmethod
    def parent(path: str) -> str:
        return path[: path.rfind("/")] or "/"

    def create(self, path, data=b"", acl=OPEN_ACL_UNSAFE, owner=0, op=OpCode.CREATE, session_id=None):
        parent = self.shadow[self.parent(path)]
        parent[1] += 1
        self.shadow[path] = [0, 0, 0]
        return self.hdr(op, session_id), CreateTxn(path, data, tuple(acl), owner, parent[1])

    def delete(self, path, op=OpCode.DELETE):
        del self.shadow[path]
        return self.hdr(op), DeleteTxn(path)

    def set_data(self, path, data):
        self.shadow[path][0] += 1
        return self.hdr(OpCode.SET_DATA), SetDataTxn(path, data, self.shadow[path][0])

    def set_acl(self, path, acl: tuple[ACL, ...]):
        self.shadow[path][2] += 1
        return self.hdr(OpCode.SET_ACL), SetACLTxn(path, tuple(acl), self.shadow[path][2])


# --- request bodies (the records after a RequestHeader) -----------------------------------

OPEN = [ACL(31, "world", "anyone")]


def _acls(w: Writer, acl) -> Writer:
    w.int(len(acl))
    for a in acl:
        w.int(a.perms).ustring(a.scheme).ustring(a.id)
    return w


def create_body(path: str, data: bytes | None = b"", acl=OPEN, flags: int = 0, ttl: int | None = None) -> bytes:
    w = Writer().ustring(path).buffer(data)
    _acls(w, acl).int(flags)
    if ttl is not None:
        w.long(ttl)
    return w.bytes()


def delete_body(path: str, version: int = -1) -> bytes:
    return Writer().ustring(path).int(version).bytes()


def set_data_body(path: str, data: bytes | None, version: int = -1) -> bytes:
    return Writer().ustring(path).buffer(data).int(version).bytes()


def set_acl_body(path: str, acl, version: int = -1) -> bytes:
    return _acls(Writer().ustring(path), acl).int(version).bytes()


def check_body(path: str, version: int) -> bytes:
    return Writer().ustring(path).int(version).bytes()


def path_watch_body(path: str, watch: bool = False) -> bytes:
    return Writer().ustring(path).bool(watch).bytes()


def path_body(path: str) -> bytes:
    return Writer().ustring(path).bytes()


def multi_body(ops: list[tuple[int, bytes]]) -> bytes:
    """ops: (opcode, record bytes) per sub-op."""
    w = Writer()
    for op, rec in ops:
        w.int(op).bool(False).int(-1).raw(rec)
    return w.int(-1).bool(True).int(-1).bytes()


# --- generated histories -------------------------------------------------------------------


def random_history(seed: int, n: int = 300) -> tuple[list, DataTree]:
    """A valid txn sequence (as prep would produce it) and the tree it leads to."""
    rng = random.Random(seed)
    truth = DataTree()
    mk = TxnMaker()
    seq = []
    sessions: list[int] = []
    names = ["a", "b", "c", "d"]

    def emit(h, txn):
        truth.apply(h, txn, [])
        seq.append((h, txn))

    for _ in range(n):
        nodes = [p for p in truth.nodes if not p.startswith("/zookeeper")]
        roll = rng.random()
        if roll < 0.05 or not sessions:
            sid = 0x1000 + len(seq)
            sessions.append(sid)
            h = mk.hdr(OpCode.CREATE_SESSION, sid)
            emit(h, CreateSessionTxn(4000 + rng.randrange(3) * 1000))
        elif roll < 0.08 and len(sessions) > 1:
            sid = sessions.pop(rng.randrange(len(sessions)))
            paths = tuple(sorted(truth.ephemerals.get(sid, ())))
            for p in paths:
                mk.shadow.pop(p, None)
            emit(mk.hdr(OpCode.CLOSE_SESSION, sid), CloseSessionTxn(paths))
        elif roll < 0.45:
            parents = [p for p in nodes if truth.nodes[p].owner == 0 and p.count("/") < 4]
            parent = rng.choice(parents)
            path = (parent.rstrip("/")) + "/" + rng.choice(names)
            if path in truth.nodes:
                continue
            kind = rng.random()
            owner = 0
            if kind < 0.25:
                owner = rng.choice(sessions)
            data = rng.choice([None, b"", b"x", b"yy" * rng.randrange(5)])
            emit(*mk.create(path, data, owner=owner, session_id=owner or None))
        elif roll < 0.65:
            leaves = [p for p in nodes if p != "/" and not truth.nodes[p].children]
            if leaves:
                emit(*mk.delete(rng.choice(leaves)))
        elif roll < 0.85:
            p = rng.choice(nodes)
            emit(*mk.set_data(p, rng.choice([None, b"", b"v%d" % len(seq)])))
        elif roll < 0.92:
            p = rng.choice(nodes)
            emit(*mk.set_acl(p, (ACL(rng.choice([1, 31]), "world", "anyone"),)))
        else:
            # a multi: create a child and set its parent's data, under one zxid
            parents = [p for p in nodes if truth.nodes[p].owner == 0 and p.count("/") < 4]
            parent = rng.choice(parents)
            path = parent.rstrip("/") + "/m" + rng.choice(names)
            if path in truth.nodes:
                continue
            h1, c = mk.create(path, b"m")
            _, s = mk.set_data(parent, b"parent")
            mk.zxid -= 1  # both share the first zxid
            h = TxnHeader(h1.session_id, h1.cxid, h1.zxid, h1.time_ms, OpCode.MULTI)
            emit(h, MultiTxn(((OpCode.CREATE, c), (OpCode.SET_DATA, s))))
    return seq, truth


def clone(node: Node) -> Node:
    n = Node(node.data, node.acl, node.czxid, node.ctime, node.owner)
    n.mzxid, n.mtime, n.pzxid = node.mzxid, node.mtime, node.pzxid
    n.version, n.cversion, n.aversion = node.version, node.cversion, node.aversion
    return n
