"""Outstanding changes: what prep has promised but the tree has not applied yet.

Prep validates a request against the tree *plus* every txn already prepared and still in the
pipeline (logging, or waiting for a quorum). A ChangeRecord is the view of one path after those
txns; it is dropped once the tree has applied its zxid.
"""

from __future__ import annotations

from collections import deque

from .protocol.constants import Err, ZkError
from .protocol.records import ACL
from .tree.datatree import DataTree
from .tree.javaset import JavaHashSet
from .tree.node import Node


class ChangeRecord:
    __slots__ = ("zxid", "path", "exists", "version", "cversion", "aversion", "owner", "child_count", "acl")

    def __init__(
        self,
        zxid: int,
        path: str,
        exists: bool,
        version: int = 0,
        cversion: int = 0,
        aversion: int = 0,
        owner: int = 0,
        child_count: int = 0,
        acl: tuple[ACL, ...] = (),
    ) -> None:
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.owner = owner
        self.child_count = child_count
        self.acl = acl

    @classmethod
    def of_node(cls, path: str, node: Node) -> ChangeRecord:
        return cls(
            -1, path, True, node.version, node.cversion, node.aversion, node.owner, len(node.children), node.acl
        )

    def copy(self, zxid: int) -> ChangeRecord:
        return ChangeRecord(
            zxid,
            self.path,
            self.exists,
            self.version,
            self.cversion,
            self.aversion,
            self.owner,
            self.child_count,
            self.acl,
        )


class PendingChanges:
    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.by_path: dict[str, ChangeRecord] = {}
        self.in_order: deque[ChangeRecord] = deque()
        self._saved: dict[str, ChangeRecord | None] | None = None
        self._saved_count = 0

    def record(self, path: str) -> ChangeRecord:
        """The current view of `path`; NONODE if it does not exist (or is pending deletion)."""
        rec = self.by_path.get(path)
        if rec is None:
            node = self.tree.nodes.get(path)
            if node is None:
                raise ZkError(Err.NONODE, path)
            return ChangeRecord.of_node(path, node)
        if not rec.exists:
            raise ZkError(Err.NONODE, path)
        return rec

    def exists(self, path: str) -> bool:
        rec = self.by_path.get(path)
        if rec is None:
            return path in self.tree.nodes
        return rec.exists

    def add(self, rec: ChangeRecord) -> None:
        saved = self._saved
        if saved is not None and rec.path not in saved:
            saved[rec.path] = self.by_path.get(rec.path)
        self.in_order.append(rec)
        self.by_path[rec.path] = rec

    def begin_multi(self) -> None:
        """Remember the view so a failing multi can undo the records its earlier ops added."""
        self._saved = {}
        self._saved_count = len(self.in_order)

    def end_multi(self, rollback: bool) -> None:
        saved, self._saved = self._saved, None
        if not rollback or saved is None:
            return
        while len(self.in_order) > self._saved_count:
            self.in_order.pop()
        for path, old in saved.items():
            if old is None:
                self.by_path.pop(path, None)
            else:
                self.by_path[path] = old

    def ephemerals_of(self, session_id: int) -> list[str]:
        """The session's ephemerals including pending creates and deletes, in the order
        ZooKeeper's prep lists them (a clone of its HashSet, adjusted change by change)."""
        current = self.tree.ephemerals.get(session_id)
        paths = current.clone() if current is not None else JavaHashSet()
        for rec in self.in_order:
            if not rec.exists:
                paths.discard(rec.path)
            elif rec.owner == session_id:
                paths.add(rec.path)
        return list(paths)

    def applied(self, zxid: int) -> None:
        """The tree has applied every txn up to `zxid`: forget their records."""
        q = self.in_order
        while q and q[0].zxid <= zxid:
            rec = q.popleft()
            if self.by_path.get(rec.path) is rec:
                del self.by_path[rec.path]

    def clear(self) -> None:
        self.by_path.clear()
        self.in_order.clear()
