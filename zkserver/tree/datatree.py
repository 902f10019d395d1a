"""The replicated state: znodes, the session table, and the deterministic `apply` of a txn.

`apply` never validates (prep already did); it sets explicit values from the txn, so replaying
a txn twice or on top of a fuzzy snapshot converges. It returns what the reply needs and the
watch triggers the change fires; it knows nothing about connections or watchers.
"""

from __future__ import annotations

from typing import NamedTuple

from ..protocol.constants import Err, EventType, OpCode
from ..protocol.records import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from ..txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    Txn,
    TxnHeader,
)
from .javaset import JavaHashSet
from .node import CONTAINER_OWNER, Node, is_ephemeral_owner, is_ttl_owner

SYSTEM_PATHS = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")


def split_path(path: str) -> tuple[str, str]:
    """'/a/b' -> ('/a', 'b'); '/a' -> ('/', 'a')."""
    i = path.rfind("/")
    return (path[:i] or "/"), path[i + 1 :]


class Result(NamedTuple):
    """What one applied op answers: an error code, the created path, the node's stat after."""

    err: int
    path: str | None = None
    stat: tuple | None = None
    subresults: tuple["OpResult", ...] | None = None


class OpResult(NamedTuple):
    opcode: int
    result: Result


class Trigger(NamedTuple):
    event: EventType
    path: str
    acl: tuple[ACL, ...]


class DataTree:
    def __init__(self) -> None:
        root = Node(b"", OPEN_ACL_UNSAFE, 0, 0)
        self.nodes: dict[str, Node] = {"/": root}
        # Per session, its ephemeral paths in java.util.HashSet order (see javaset.py).
        self.ephemerals: dict[int, JavaHashSet] = {}
        self.containers: set[str] = set()
        self.ttls: set[str] = set()
        self.sessions: dict[int, int] = {}  # session id -> timeout ms
        self.last_zxid = 0
        for path in SYSTEM_PATHS[1:]:
            acl = READ_ACL_UNSAFE if path == "/zookeeper/config" else OPEN_ACL_UNSAFE
            self._attach(path, Node(b"", acl, 0, 0))
        # ZooKeeper sets the config node's ACL at start-up with version -1 and stores that.
        self.nodes["/zookeeper/config"].aversion = -1

    # --- reads -----------------------------------------------------------------------------

    def get(self, path: str) -> Node | None:
        return self.nodes.get(path)

    def node_count(self) -> int:
        """As ZooKeeper counts (its node map holds the root twice, as "" and "/")."""
        return len(self.nodes) + 1

    def descendant_count(self, path: str) -> int:
        if path == "/":
            return len(self.nodes) - 1
        prefix = path + "/"
        return sum(1 for p in self.nodes if p.startswith(prefix))

    def approximate_data_size(self) -> int:
        return sum(len(p) + (len(n.data) if n.data else 0) for p, n in self.nodes.items())

    # --- the state machine -----------------------------------------------------------------

    def apply(self, hdr: TxnHeader, txn: Txn, triggers: list[Trigger]) -> Result:
        """Apply one txn at hdr.zxid; append the watch triggers it fires."""
        result = self._apply(hdr, txn, triggers)
        if hdr.zxid > self.last_zxid:
            self.last_zxid = hdr.zxid
        return result

    def _apply(self, hdr: TxnHeader, txn: Txn, triggers: list[Trigger]) -> Result:
        match txn:
            case SetDataTxn():
                return self._set_data(txn, hdr, triggers)
            case CreateTxn():
                return self._create(txn, hdr, triggers)
            case DeleteTxn(path):
                self._delete(path, hdr.zxid, triggers)
                return Result(Err.OK)
            case SetACLTxn(path, acl, version):
                node = self.nodes.get(path)
                if node is None:
                    return Result(Err.NONODE)
                node.acl, node.aversion, node.enc = acl, version, None
                return Result(Err.OK, stat=node.stat())
            case CheckTxn():
                return Result(Err.OK)
            case ErrorTxn(err):
                return Result(err)
            case MultiTxn(ops):
                return self._multi(ops, hdr, triggers)
            case CreateSessionTxn(timeout):
                self.sessions[hdr.session_id] = timeout
                return Result(Err.OK)
            case CloseSessionTxn(paths):
                self._close_session(hdr.session_id, paths, hdr.zxid, triggers)
                return Result(Err.OK)
        raise TypeError(f"not a txn: {txn!r}")

    def _create(self, txn: CreateTxn, hdr: TxnHeader, triggers: list[Trigger]) -> Result:
        parent_path, _ = split_path(txn.path)
        parent = self.nodes.get(parent_path)
        if parent is None:
            return Result(Err.NONODE)
        zxid = hdr.zxid
        parent.cversion = txn.parent_cversion
        parent.enc = None
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        if txn.path in self.nodes:  # a replay over a fuzzy snapshot
            return Result(Err.NODEEXISTS)
        node = Node(txn.data, txn.acl, zxid, hdr.time_ms, txn.owner)
        self._attach(txn.path, node)
        triggers.append(Trigger(EventType.NODE_CREATED, txn.path, node.acl))
        triggers.append(Trigger(EventType.NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        return Result(Err.OK, txn.path, node.stat())

    def _attach(self, path: str, node: Node) -> None:
        parent_path, name = split_path(path)
        parent = self.nodes[parent_path]
        parent.children.add(name)
        parent.enc = None
        self.nodes[path] = node
        owner = node.owner
        if owner == 0:
            return
        if owner == CONTAINER_OWNER:
            self.containers.add(path)
        elif is_ttl_owner(owner):
            self.ttls.add(path)
        else:
            paths = self.ephemerals.get(owner)
            if paths is None:
                paths = self.ephemerals[owner] = JavaHashSet()
            paths.add(path)

    def _delete(self, path: str, zxid: int, triggers: list[Trigger]) -> bool:
        node = self.nodes.pop(path, None)
        if node is None:
            # Replaying over a fuzzy snapshot: the child may be gone already, but the parent
            # must still show this delete (pzxid), as ZooKeeper's deleteNode does.
            parent = self.nodes.get(split_path(path)[0])
            if parent is not None:
                parent.children.discard(split_path(path)[1])
                parent.enc = None
                if zxid > parent.pzxid:
                    parent.pzxid = zxid
            return False
        for name in list(node.children):
            # Only in a replay over a fuzzy snapshot, which may hold children created after
            # this delete; later txns of the same replay create them again.
            self._delete(f"{path}/{name}", zxid, [])
        parent_path, name = split_path(path)
        parent = self.nodes.get(parent_path)
        if parent is not None:
            parent.children.discard(name)
            parent.enc = None
            if zxid > parent.pzxid:
                parent.pzxid = zxid
        owner = node.owner
        if owner == CONTAINER_OWNER:
            self.containers.discard(path)
        elif is_ttl_owner(owner):
            self.ttls.discard(path)
        elif is_ephemeral_owner(owner):
            paths = self.ephemerals.get(owner)
            if paths is not None:
                paths.discard(path)  # an emptied set stays until the session ends, as in ZooKeeper
        triggers.append(Trigger(EventType.NODE_DELETED, path, node.acl))
        if parent is not None:
            triggers.append(Trigger(EventType.NODE_CHILDREN_CHANGED, parent_path, parent.acl))
        return True

    def _set_data(self, txn: SetDataTxn, hdr: TxnHeader, triggers: list[Trigger]) -> Result:
        node = self.nodes.get(txn.path)
        if node is None:
            return Result(Err.NONODE)
        node.data = txn.data
        node.enc = None
        node.version = txn.version
        node.mzxid = hdr.zxid
        node.mtime = hdr.time_ms
        triggers.append(Trigger(EventType.NODE_DATA_CHANGED, txn.path, node.acl))
        return Result(Err.OK, stat=node.stat())

    def _multi(self, ops: tuple, hdr: TxnHeader, triggers: list[Trigger]) -> Result:
        results = []
        for opcode, sub in ops:
            r = self._apply(hdr, sub, triggers)
            results.append(OpResult(OpCode.ERROR if isinstance(sub, ErrorTxn) else opcode, r))
        return Result(Err.OK, subresults=tuple(results))

    def _close_session(self, session_id: int, paths: tuple[str, ...], zxid: int, triggers: list[Trigger]) -> None:
        # In the order prep listed them (ZooKeeper's HashSet order: clients see it in the order
        # of watch events), then any this replica holds that the list missed.
        leftover = [p for p in self.ephemerals.get(session_id, ()) if p not in set(paths)]
        for path in list(paths) + leftover:
            node = self.nodes.get(path)
            if node is not None and node.owner == session_id:
                self._delete(path, zxid, triggers)
        self.ephemerals.pop(session_id, None)
        self.sessions.pop(session_id, None)
