"""Transactions: the deterministic state changes that prep produces, the log stores, replicas
apply. Every field is an explicit result (new version, new parent cversion, paths to delete), so
applying a txn twice, or on top of a fuzzy snapshot, ends in the same state as applying it once.
"""

from __future__ import annotations

import struct
from typing import NamedTuple, Union

from .protocol.constants import OpCode
from .protocol.jute import Reader, Writer
from .protocol.records import ACL, OPEN_ACL_BYTES, OPEN_ACL_UNSAFE, read_acls, write_acls


class TxnHeader(NamedTuple):
    session_id: int
    cxid: int
    zxid: int
    time_ms: int
    type: int  # an OpCode; says how the result is answered (create vs create2, ...)


class CreateTxn(NamedTuple):
    path: str
    data: bytes | None
    acl: tuple[ACL, ...]
    owner: int  # 0, the session id of an ephemeral, or a container / TTL marker
    parent_cversion: int  # the parent's internal cversion after this create


class DeleteTxn(NamedTuple):
    path: str


class SetDataTxn(NamedTuple):
    path: str
    data: bytes | None
    version: int  # the version after this write


class SetACLTxn(NamedTuple):
    path: str
    acl: tuple[ACL, ...]
    version: int  # the aversion after this write


class CheckTxn(NamedTuple):
    path: str
    version: int


class ErrorTxn(NamedTuple):
    err: int


class CreateSessionTxn(NamedTuple):
    timeout: int


class CloseSessionTxn(NamedTuple):
    paths: tuple[str, ...]  # the session's ephemerals as prep saw them


class MultiTxn(NamedTuple):
    ops: tuple[tuple[int, "Txn"], ...]  # (opcode, txn) per sub-op


Txn = Union[
    CreateTxn, DeleteTxn, SetDataTxn, SetACLTxn, CheckTxn, ErrorTxn, CreateSessionTxn, CloseSessionTxn, MultiTxn
]

_TAGS: dict[type, int] = {
    CreateTxn: 1,
    DeleteTxn: 2,
    SetDataTxn: 3,
    SetACLTxn: 4,
    CheckTxn: 5,
    ErrorTxn: 6,
    CreateSessionTxn: 7,
    CloseSessionTxn: 8,
    MultiTxn: 9,
}


def _write_body(w: Writer, txn: Txn) -> None:
    w.int(_TAGS[type(txn)])
    match txn:
        case CreateTxn(path, data, acl, owner, pcv):
            w.ustring(path).buffer(data)
            write_acls(w, acl)
            w.long(owner).int(pcv)
        case DeleteTxn(path):
            w.ustring(path)
        case SetDataTxn(path, data, version):
            w.ustring(path).buffer(data).int(version)
        case SetACLTxn(path, acl, version):
            w.ustring(path)
            write_acls(w, acl)
            w.int(version)
        case CheckTxn(path, version):
            w.ustring(path).int(version)
        case ErrorTxn(err):
            w.int(err)
        case CreateSessionTxn(timeout):
            w.int(timeout)
        case CloseSessionTxn(paths):
            w.strings(list(paths))
        case MultiTxn(ops):
            w.int(len(ops))
            for opcode, sub in ops:
                w.int(opcode)
                _write_body(w, sub)


def _read_body(r: Reader) -> Txn:
    tag = r.int()
    if tag == 1:
        return CreateTxn(r.ustring() or "", r.buffer(), tuple(read_acls(r) or ()), r.long(), r.int())
    if tag == 2:
        return DeleteTxn(r.ustring() or "")
    if tag == 3:
        return SetDataTxn(r.ustring() or "", r.buffer(), r.int())
    if tag == 4:
        return SetACLTxn(r.ustring() or "", tuple(read_acls(r) or ()), r.int())
    if tag == 5:
        return CheckTxn(r.ustring() or "", r.int())
    if tag == 6:
        return ErrorTxn(r.int())
    if tag == 7:
        return CreateSessionTxn(r.int())
    if tag == 8:
        return CloseSessionTxn(tuple(s or "" for s in (r.vector(Reader.ustring) or [])))
    if tag == 9:
        n = r.int()
        return MultiTxn(tuple((r.int(), _read_body(r)) for _ in range(n)))
    raise ValueError(f"unknown txn tag {tag}")


_HEAD_TAG = struct.Struct(">qiqqii")  # TxnHeader fields, then the txn's tag
_OWNER_PCV = struct.Struct(">qi")
_INT = struct.Struct(">i")
_NULL = _INT.pack(-1)


def _buf(b: bytes | None) -> bytes:
    return _NULL if b is None else _INT.pack(len(b)) + b


def encode_txn(hdr: TxnHeader, txn: Txn) -> bytes:
    kind = type(txn)
    # The two txns every workload is made of get a fused encoder; the rest use the Writer.
    if kind is SetDataTxn:
        return b"".join(
            (_HEAD_TAG.pack(*hdr, 3), _buf(txn.path.encode("utf-8")), _buf(txn.data), _INT.pack(txn.version))
        )
    if kind is CreateTxn and txn.acl is OPEN_ACL_UNSAFE:
        return b"".join(
            (
                _HEAD_TAG.pack(*hdr, 1),
                _buf(txn.path.encode("utf-8")),
                _buf(txn.data),
                OPEN_ACL_BYTES,
                _OWNER_PCV.pack(txn.owner, txn.parent_cversion),
            )
        )
    w = Writer()
    w.long(hdr.session_id).int(hdr.cxid).long(hdr.zxid).long(hdr.time_ms).int(hdr.type)
    _write_body(w, txn)
    return w.bytes()


def decode_txn(buf: bytes) -> tuple[TxnHeader, Txn]:
    r = Reader(buf, 0, max_buffer=1 << 31)
    hdr = TxnHeader(r.long(), r.int(), r.long(), r.long(), r.int())
    return hdr, _read_body(r)


def is_session_txn(hdr: TxnHeader) -> bool:
    return hdr.type in (OpCode.CREATE_SESSION, OpCode.CLOSE_SESSION)
