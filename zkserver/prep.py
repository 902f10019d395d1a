"""Prep: turn a write request into a txn, or an error txn, with its zxid.

Checks run in ZooKeeper's order (PrepRequestProcessor) against the tree plus outstanding changes,
so a pipelined request sees the effect of the ones before it. A failed write still consumes a
zxid and is logged as an ErrorTxn, exactly as ZooKeeper does, which keeps zxids comparable.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

from . import acl as aclmod
from .acl import Id
from .paths import validate as validate_path
from .pending import ChangeRecord, PendingChanges
from .protocol.constants import Err, OpCode, Perm, ZkError
from .protocol.jute import INT
from .protocol.records import (
    CheckVersionRequest,
    CreateRequest,
    DeleteRequest,
    MultiRequest,
    PathRequest,
    SetACLRequest,
    SetDataRequest,
    decode_request,
)
from .sessions import SessionTracker
from .tree.datatree import SYSTEM_PATHS, DataTree
from .tree.node import CONTAINER_OWNER, MAX_TTL, is_ephemeral_owner, ttl_owner
from .txn import (
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

CREATE_OPS = (OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL)


class Request(NamedTuple):
    """A write on its way to prep. `body` is the raw record after the RequestHeader, so
    followers can forward it untouched; `ids` are the connection's authenticated ids."""

    session_id: int
    cxid: int
    opcode: int
    body: bytes
    ids: tuple[Id, ...] = ()
    # (server id, sequence number) of the client request it came from; only that server
    # answers the commit (cxids repeat when a client reconnects, so they cannot tell).
    origin: tuple[int, int] | None = None


def create_session_request(session_id: int, timeout: int) -> Request:
    return Request(session_id, 0, OpCode.CREATE_SESSION, INT.pack(timeout))


def close_session_request(session_id: int, cxid: int = 0) -> Request:
    return Request(session_id, cxid, OpCode.CLOSE_SESSION, b"")


def delete_container_request(path: str) -> Request:
    raw = path.encode("utf-8")
    return Request(0, 0, OpCode.DELETE_CONTAINER, INT.pack(len(raw)) + raw)


def _parent_of(path: str) -> str:
    """The parent ZooKeeper derives (no validation beyond needing a '/')."""
    i = path.rfind("/")
    if i == -1 or "\0" in path:
        raise ZkError(Err.BADARGUMENTS, path)
    return path[:i] or "/"


def _next_version(current: int, expected: int) -> int:
    if expected != -1 and expected != current:
        raise ZkError(Err.BADVERSION)
    return current + 1


class Preparer:
    def __init__(
        self,
        tree: DataTree,
        tracker: SessionTracker,
        extended_types: bool = False,
        max_buffer: int = 0xFFFFF,
    ) -> None:
        self.tree = tree
        self.tracker = tracker
        self.extended_types = extended_types
        self.max_buffer = max_buffer
        self.pending = PendingChanges(tree)
        self.zxid = tree.last_zxid

    def prep(self, req: Request, now_ms: int, wall_ms: int, error: int | None = None) -> tuple[TxnHeader, Txn]:
        """The txn for `req`, or an error txn (`error` forces one, e.g. SESSIONMOVED)."""
        self.zxid += 1
        zxid = self.zxid
        try:
            if error is not None:
                raise ZkError(Err(error))
            txn = self._txn(req, zxid, now_ms)
        except ZkError as e:
            txn = ErrorTxn(e.code)
        return TxnHeader(req.session_id, req.cxid, zxid, wall_ms, req.opcode), txn

    def applied(self, zxid: int) -> None:
        self.pending.applied(zxid)

    # --- dispatch --------------------------------------------------------------------------

    def _txn(self, req: Request, zxid: int, now_ms: int) -> Txn:
        op = req.opcode
        if op == OpCode.CREATE_SESSION:
            timeout = INT.unpack_from(req.body)[0]
            self.tracker.add(req.session_id, timeout, now_ms)
            return CreateSessionTxn(timeout)
        if op == OpCode.CLOSE_SESSION:
            return self._close_session(req.session_id, zxid)
        record = decode_request(op, req.body, 0, self.max_buffer)
        if op == OpCode.MULTI:
            return self._multi(record, req, zxid)
        if op == OpCode.CHECK:
            raise ZkError(Err.UNIMPLEMENTED, "check is only valid inside multi")
        return self._single(op, record, req, zxid)

    def _single(self, op: int, record: NamedTuple, req: Request, zxid: int) -> Txn:
        if op == OpCode.DELETE_CONTAINER:
            return self._delete_container(record, zxid)  # server-internal: no session
        self.tracker.check(req.session_id)
        if op == OpCode.SET_DATA:
            return self._set_data(record, req.ids, zxid)
        if op in CREATE_OPS:
            return self._create(op, record, req, zxid)
        if op == OpCode.DELETE:
            return self._delete(record, req.ids, zxid)
        if op == OpCode.SET_ACL:
            return self._set_acl(record, req.ids, zxid)
        if op == OpCode.CHECK:
            return self._check(record, req.ids)
        raise ZkError(Err.UNIMPLEMENTED, f"opcode {op} is not a write")

    # --- one handler per write -------------------------------------------------------------

    def _create(self, op: int, r: CreateRequest, req: Request, zxid: int) -> CreateTxn:
        flags, ttl = r.flags, r.ttl
        if not 0 <= flags <= 6:
            raise ZkError(Err.BADARGUMENTS, f"invalid create flags {flags}")
        ttl_mode = flags in (5, 6)
        if ttl_mode and not self.extended_types:
            raise ZkError(Err.UNIMPLEMENTED, "TTL nodes need extendedTypesEnabled")
        if ttl_mode:
            if not 0 < ttl <= MAX_TTL:
                raise ZkError(Err.BADARGUMENTS, f"invalid ttl {ttl}")
        elif ttl >= 0 or op == OpCode.CREATE_TTL:
            raise ZkError(Err.BADARGUMENTS, "ttl given for a mode without ttl")
        path = r.path
        parent_path = _parent_of(path)
        acl = aclmod.fixup(r.acl, req.ids)
        parent = self.pending.record(parent_path)
        aclmod.check(parent.acl, Perm.CREATE, req.ids)
        if flags in (2, 3, 6):
            path = f"{path}{parent.cversion:010d}"
        validate_path(path)
        if self.pending.exists(path):
            raise ZkError(Err.NODEEXISTS, path)
        if is_ephemeral_owner(parent.owner):
            raise ZkError(Err.NOCHILDRENFOREPHEMERALS, path)
        if op == OpCode.CREATE_CONTAINER:
            owner = CONTAINER_OWNER
        elif op == OpCode.CREATE_TTL:
            owner = ttl_owner(ttl)
        elif flags in (1, 3):
            owner = req.session_id
        else:
            owner = 0
        new_cversion = parent.cversion + 1
        parent = parent.copy(zxid)
        parent.child_count += 1
        parent.cversion = new_cversion
        self.pending.add(parent)
        self.pending.add(ChangeRecord(zxid, path, True, owner=owner, acl=acl))
        return CreateTxn(path, r.data, acl, owner, new_cversion)

    def _delete(self, r: DeleteRequest, ids: Sequence[Id], zxid: int) -> DeleteTxn:
        path = r.path
        if path in SYSTEM_PATHS:
            raise ZkError(Err.BADARGUMENTS, f"cannot delete {path}")
        parent = self.pending.record(_parent_of(path))
        aclmod.check(parent.acl, Perm.DELETE, ids)
        node = self.pending.record(path)
        _next_version(node.version, r.version)
        if node.child_count > 0:
            raise ZkError(Err.NOTEMPTY, path)
        self._record_delete(parent, path, zxid)
        return DeleteTxn(path)

    def _delete_container(self, r: PathRequest, zxid: int) -> DeleteTxn:
        path = r.path
        if path in SYSTEM_PATHS:
            raise ZkError(Err.BADARGUMENTS, path)
        parent_path = _parent_of(path)
        node = self.pending.record(path)
        if node.child_count > 0:
            raise ZkError(Err.NOTEMPTY, path)
        if is_ephemeral_owner(node.owner) or node.owner == 0:
            raise ZkError(Err.BADVERSION, f"{path} is neither a container nor a TTL node")
        self._record_delete(self.pending.record(parent_path), path, zxid)
        return DeleteTxn(path)

    def _record_delete(self, parent: ChangeRecord, path: str, zxid: int) -> None:
        parent = parent.copy(zxid)
        parent.child_count -= 1
        self.pending.add(parent)
        self.pending.add(ChangeRecord(zxid, path, False))

    def _set_data(self, r: SetDataRequest, ids: Sequence[Id], zxid: int) -> SetDataTxn:
        if r.path not in self.tree.nodes:
            validate_path(r.path)  # an existing node's path was validated when it was created
        node = self.pending.record(r.path)
        aclmod.check(node.acl, Perm.WRITE, ids)
        version = _next_version(node.version, r.version)
        node = node.copy(zxid)
        node.version = version
        self.pending.add(node)
        return SetDataTxn(r.path, r.data, version)

    def _set_acl(self, r: SetACLRequest, ids: Sequence[Id], zxid: int) -> SetACLTxn:
        validate_path(r.path)
        acl = aclmod.fixup(r.acl, ids)
        node = self.pending.record(r.path)
        aclmod.check(node.acl, Perm.ADMIN, ids)
        version = _next_version(node.aversion, r.version)
        node = node.copy(zxid)
        node.aversion, node.acl = version, acl
        self.pending.add(node)
        return SetACLTxn(r.path, acl, version)

    def _check(self, r: CheckVersionRequest, ids: Sequence[Id]) -> CheckTxn:
        validate_path(r.path)
        node = self.pending.record(r.path)
        aclmod.check(node.acl, Perm.READ, ids)
        return CheckTxn(r.path, _next_version(node.version, r.version))

    def _multi(self, r: MultiRequest, req: Request, zxid: int) -> MultiTxn:
        txns: list[tuple[int, Txn]] = []
        self.pending.begin_multi()
        for i, (op, sub) in enumerate(r.ops):
            try:
                txns.append((op, self._single(op, sub, req, zxid)))
            except ZkError as e:
                self.pending.end_multi(rollback=True)
                before = [(OpCode.ERROR, ErrorTxn(Err.OK))] * i
                after = [(OpCode.ERROR, ErrorTxn(Err.RUNTIMEINCONSISTENCY))] * (len(r.ops) - i - 1)
                return MultiTxn(tuple(before + [(OpCode.ERROR, ErrorTxn(e.code))] + after))
        self.pending.end_multi(rollback=False)
        return MultiTxn(tuple(txns))

    def _close_session(self, session_id: int, zxid: int) -> CloseSessionTxn:
        paths = self.pending.ephemerals_of(session_id)
        for path in paths:
            parent_path = _parent_of(path)
            if self.pending.exists(parent_path):
                self._record_delete(self.pending.record(parent_path), path, zxid)
            else:
                self.pending.add(ChangeRecord(zxid, path, False))
        self.tracker.set_closing(session_id)
        return CloseSessionTxn(tuple(paths))
