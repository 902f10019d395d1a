"""Replies to writes, built from what applying the txn returned."""

from __future__ import annotations

from .protocol import replies
from .protocol.constants import Err, OpCode
from .protocol.jute import Writer
from .protocol.records import STAT
from .tree.datatree import Result

_CREATE_WITH_STAT = (OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL)
_NO_BODY = (OpCode.DELETE, OpCode.DELETE_CONTAINER, OpCode.CHECK, OpCode.CLOSE_SESSION)


def _body(opcode: int, r: Result) -> bytes:
    if opcode == OpCode.CREATE:
        return replies.path_body(r.path or "")
    if opcode in _CREATE_WITH_STAT:
        return replies.path_body(r.path or "", r.stat)
    if opcode in (OpCode.SET_DATA, OpCode.SET_ACL):
        return STAT.pack(*r.stat)
    return b""


def _multi_body(results: tuple) -> bytes:
    """One MultiHeader (+ body) per op; a failed multi is all ErrorResults."""
    w = Writer()
    for opcode, r in results:
        if opcode == OpCode.ERROR:
            w.raw(replies.MULTI_HEADER.pack(OpCode.ERROR, False, r.err)).int(r.err)
        else:
            # Every create that returns a stat is a create2 result on the wire (Java's
            # MultiResponse knows no other type for it).
            wire_type = OpCode.CREATE2 if opcode in _CREATE_WITH_STAT else opcode
            w.raw(replies.MULTI_HEADER.pack(wire_type, False, 0)).raw(_body(opcode, r))
    w.raw(replies.MULTI_END)
    return w.bytes()


def write_reply(xid: int, zxid: int, opcode: int, r: Result) -> bytes:
    if opcode == OpCode.MULTI and r.subresults is not None:
        # The header's err stays 0 even when the multi failed: clients read per-op results.
        return replies.frame(xid, zxid, _multi_body(r.subresults))
    if r.err != Err.OK:
        return replies.header_only(xid, zxid, r.err)
    if opcode in _NO_BODY:
        return replies.header_only(xid, zxid)
    return replies.frame(xid, zxid, _body(opcode, r))


