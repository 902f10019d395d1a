"""Requests a server answers from its own replica, without a txn: reads, watch management,
sync, whoAmI. Each handler returns the whole reply frame; errors come back as ZkError."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Callable

from . import acl as aclmod
from .protocol import replies
from .protocol.constants import AddWatchMode, Err, EventType, OpCode, Perm, WatcherType, ZkError
from .protocol.jute import INT, Writer
from .protocol.records import (
    ACL,
    STAT,
    MultiRequest,
    PathRequest,
    PathWatchRequest,
    SetWatchesRequest,
    WatchTypeRequest,
    decode_request,
)
from .tree.datatree import DataTree
from .watches import Mode, WatchManager

if TYPE_CHECKING:
    from .connection import Conn

log = logging.getLogger(__name__)


class ReadContext:
    """What a read needs: the replica, the watch tables, and the asking connection."""

    __slots__ = ("tree", "watches", "conn", "ids")

    def __init__(self, tree: DataTree, watches: WatchManager, conn: "Conn", ids=None) -> None:
        self.tree = tree
        self.watches = watches
        self.conn = conn
        self.ids = conn.ids if ids is None else ids


def _readable(ctx: ReadContext, path: str, perm: int = Perm.READ):
    node = ctx.tree.nodes.get(path)
    if node is None:
        raise ZkError(Err.NONODE, path)
    aclmod.check(node.acl, perm, ctx.ids)
    return node


def get_data(ctx: ReadContext, xid: int, zxid: int, r: PathWatchRequest) -> bytes:
    node = _readable(ctx, r.path)
    if r.watch:
        ctx.watches.data.add(r.path, ctx.conn)
    body = node.encoded()
    return replies.FRAME_HEADER.pack(replies.HEADER_SIZE + len(body), xid, zxid, 0) + body


def exists(ctx: ReadContext, xid: int, zxid: int, r: PathWatchRequest) -> bytes:
    if "\0" in r.path:
        raise ZkError(Err.BADARGUMENTS, r.path)
    node = ctx.tree.nodes.get(r.path)
    # No READ check: ZooKeeper has none on exists (the event a watch later fires does need READ).
    if r.watch:  # registered even when the node is missing: it waits for a create
        ctx.watches.data.add(r.path, ctx.conn)
    if node is None:
        raise ZkError(Err.NONODE, r.path)
    return replies.stat_only(xid, zxid, node.stat())


def get_children(ctx: ReadContext, xid: int, zxid: int, r: PathWatchRequest, with_stat: bool = False) -> bytes:
    node = _readable(ctx, r.path)
    if r.watch:
        ctx.watches.child.add(r.path, ctx.conn)
    body = replies.strings_body(node.children)
    if with_stat:
        body += STAT.pack(*node.stat())
    return replies.frame(xid, zxid, body)


def get_acl(ctx: ReadContext, xid: int, zxid: int, r: PathRequest) -> bytes:
    node = _readable(ctx, r.path, Perm.READ | Perm.ADMIN)
    acls: tuple[ACL, ...] | list[ACL] = node.acl
    if not aclmod.allows(node.acl, Perm.ADMIN, ctx.ids):
        # Without ADMIN a reader sees who has access, but not the password hashes.
        acls = [
            ACL(a.perms, a.scheme, a.id.split(":", 1)[0] + ":x") if a.scheme == "digest" else a for a in acls
        ]
    return replies.frame(xid, zxid, replies.acl_body(acls, node.stat()))


def sync(ctx: ReadContext, xid: int, zxid: int, r: PathRequest) -> bytes:
    if r.path is None:
        return replies.frame(xid, zxid, b"\xff\xff\xff\xff")  # a null path is echoed as null
    return replies.frame(xid, zxid, replies.path_body(r.path))


def get_ephemerals(ctx: ReadContext, xid: int, zxid: int, r: PathRequest) -> bytes:
    prefix = "" if r.path == "/" else r.path
    mine = ctx.tree.ephemerals.get(ctx.conn.session_id, ())
    return replies.frame(xid, zxid, replies.strings_body([p for p in mine if p.startswith(prefix)]))


def get_all_children_number(ctx: ReadContext, xid: int, zxid: int, r: PathRequest) -> bytes:
    _readable(ctx, r.path)
    return replies.frame(xid, zxid, INT.pack(ctx.tree.descendant_count(r.path)))


def _has_watch(ctx: ReadContext, path: str, kind: int) -> bool:
    data, child, conn = ctx.watches.data, ctx.watches.child, ctx.conn
    if kind == WatcherType.CHILDREN:
        return child.has(path, conn)
    if kind == WatcherType.DATA:
        return data.has(path, conn)
    if kind == WatcherType.ANY:
        return data.has(path, conn) or child.has(path, conn)
    if kind == WatcherType.PERSISTENT:
        return Mode.PERSISTENT in (data.mode(path, conn), child.mode(path, conn))
    if kind == WatcherType.PERSISTENT_RECURSIVE:
        return Mode.PERSISTENT_RECURSIVE in (data.mode(path, conn), child.mode(path, conn))
    raise ZkError(Err.MARSHALLINGERROR, f"unknown watcher type {kind}")


def check_watches(ctx: ReadContext, xid: int, zxid: int, r: WatchTypeRequest) -> bytes:
    if not _has_watch(ctx, r.path, r.type):
        raise ZkError(Err.NOWATCHER, r.path)
    return replies.header_only(xid, zxid)


def remove_watches(ctx: ReadContext, xid: int, zxid: int, r: WatchTypeRequest) -> bytes:
    if not _has_watch(ctx, r.path, r.type):
        raise ZkError(Err.NOWATCHER, r.path)
    data, child, conn = ctx.watches.data, ctx.watches.child, ctx.conn
    if r.type in (WatcherType.CHILDREN, WatcherType.ANY):
        child.remove(r.path, conn)
    if r.type in (WatcherType.DATA, WatcherType.ANY):
        data.remove(r.path, conn)
    if r.type in (WatcherType.PERSISTENT, WatcherType.PERSISTENT_RECURSIVE):
        wanted = Mode.PERSISTENT if r.type == WatcherType.PERSISTENT else Mode.PERSISTENT_RECURSIVE
        for table in (data, child):
            if table.mode(r.path, conn) == wanted:
                table.remove(r.path, conn)
    return replies.header_only(xid, zxid)


def add_watch(ctx: ReadContext, xid: int, zxid: int, r: WatchTypeRequest) -> bytes:
    if r.type not in (AddWatchMode.PERSISTENT, AddWatchMode.PERSISTENT_RECURSIVE):
        raise ZkError(Err.MARSHALLINGERROR, f"unknown addWatch mode {r.type}")
    ctx.watches.add_persistent(r.path, ctx.conn, r.type == AddWatchMode.PERSISTENT_RECURSIVE)
    return replies.frame(xid, zxid, INT.pack(0))


def set_watches(ctx: ReadContext, xid: int, zxid: int, r: SetWatchesRequest) -> bytes:
    """Re-arm watches after a reconnect; fire at once those whose change the client missed.
    The events go out before this request's reply."""
    nodes, conn, data, child = ctx.tree.nodes, ctx.conn, ctx.watches.data, ctx.watches.child
    rel = r.relative_zxid
    events: list[tuple[int, str]] = []
    for path in r.data:
        node = nodes.get(path)
        if node is None:
            events.append((EventType.NODE_DELETED, path))
        elif node.mzxid > rel:
            events.append((EventType.NODE_DATA_CHANGED, path))
        else:
            data.add(path, conn)
    for path in r.exist:
        if path in nodes:
            events.append((EventType.NODE_CREATED, path))
        else:
            data.add(path, conn)
    for path in r.child:
        node = nodes.get(path)
        if node is None:
            events.append((EventType.NODE_DELETED, path))
        elif node.pzxid > rel:
            events.append((EventType.NODE_CHILDREN_CHANGED, path))
        else:
            child.add(path, conn)
    for path in r.persistent:
        ctx.watches.add_persistent(path, conn, recursive=False)
    for path in r.recursive:
        ctx.watches.add_persistent(path, conn, recursive=True)
    out = [replies.notification(ev, path) for ev, path in events]
    out.append(replies.header_only(xid, zxid))
    return b"".join(out)


def who_am_i(ctx: ReadContext, xid: int, zxid: int, r: object) -> bytes:
    w = Writer().int(len(ctx.ids))
    for ident in ctx.ids:
        w.ustring(ident.scheme).ustring(aclmod.user_name(ident))
    return replies.frame(xid, zxid, w.bytes())


def multi_read(ctx: ReadContext, xid: int, zxid: int, r: MultiRequest) -> bytes:
    """Not atomic: each op answers on its own, failures as ErrorResult."""
    w = Writer()
    for op, sub in r.ops:
        try:
            if op == OpCode.GET_DATA:
                node = _readable(ctx, sub.path)
                if sub.watch:
                    ctx.watches.data.add(sub.path, ctx.conn)
                w.raw(replies.MULTI_HEADER.pack(op, False, 0)).buffer(node.data).raw(STAT.pack(*node.stat()))
            else:
                node = _readable(ctx, sub.path)
                if sub.watch:
                    ctx.watches.child.add(sub.path, ctx.conn)
                w.raw(replies.MULTI_HEADER.pack(op, False, 0)).strings(list(node.children))
        except ZkError as e:
            w.raw(replies.MULTI_HEADER.pack(OpCode.ERROR, False, e.code)).int(e.code)
    w.raw(replies.MULTI_END)
    return replies.frame(xid, zxid, w.bytes())


Handler = Callable[[ReadContext, int, int, object], bytes]

READS: dict[int, Handler] = {
    OpCode.GET_DATA: get_data,
    OpCode.EXISTS: exists,
    OpCode.GET_CHILDREN: get_children,
    OpCode.GET_CHILDREN2: lambda ctx, xid, zxid, r: get_children(ctx, xid, zxid, r, with_stat=True),
    OpCode.GET_ACL: get_acl,
    OpCode.SYNC: sync,
    OpCode.GET_EPHEMERALS: get_ephemerals,
    OpCode.GET_ALL_CHILDREN_NUMBER: get_all_children_number,
    OpCode.CHECK_WATCHES: check_watches,
    OpCode.REMOVE_WATCHES: remove_watches,
    OpCode.ADD_WATCH: add_watch,
    OpCode.SET_WATCHES: set_watches,
    OpCode.SET_WATCHES2: set_watches,
    OpCode.WHO_AM_I: who_am_i,
    OpCode.MULTI_READ: multi_read,
}


def serve_read(ctx: ReadContext, xid: int, opcode: int, payload: bytes, zxid: int, max_buffer: int) -> bytes:
    """The reply frame for a read; errors become a header carrying the code."""
    try:
        record = decode_request(opcode, payload, 8, max_buffer)
        return READS[opcode](ctx, xid, zxid, record)
    except ZkError as e:
        return replies.header_only(xid, zxid, e.code)
    except Exception:  # a bug must cost one request, never the server or other sessions
        log.exception("read %d failed", opcode)
        return replies.header_only(xid, zxid, Err.MARSHALLINGERROR)

