"""Client request records and the shared records inside them (ACL, Stat), decoded from jute.

Each request type is an immutable NamedTuple; `decode_request(opcode, body)` turns the bytes
after a RequestHeader into one. Responses are encoded where they are built (zkserver/reply.py)
because their hot paths want hand-fused struct calls.
"""

from __future__ import annotations

import struct
from typing import Callable, NamedTuple

from .constants import Err, OpCode, ZkError
from .jute import DEFAULT_MAX_BUFFER, JuteError, Reader, Writer

STAT = struct.Struct(">qqqqiiiqiiq")  # 68 bytes
STAT_SIZE = STAT.size
EMPTY_STAT = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


class ACL(NamedTuple):
    perms: int
    scheme: str
    id: str


OPEN_ACL_UNSAFE = (ACL(31, "world", "anyone"),)
READ_ACL_UNSAFE = (ACL(1, "world", "anyone"),)


def read_acl(r: Reader) -> ACL:
    perms = r.int()
    return ACL(perms, r.ustring() or "", r.ustring() or "")


# Nearly every client sends world:anyone with all permissions: recognise its exact bytes and
# hand back the shared constant, which the ACL checks and the txn encoder short-circuit on.
OPEN_ACL_BYTES = b"\x00\x00\x00\x01\x00\x00\x00\x1f\x00\x00\x00\x05world\x00\x00\x00\x06anyone"


def read_acls(r: Reader) -> tuple[ACL, ...] | None:
    pos = r.pos
    if r.buf[pos : pos + len(OPEN_ACL_BYTES)] == OPEN_ACL_BYTES:
        r.pos = pos + len(OPEN_ACL_BYTES)
        return OPEN_ACL_UNSAFE
    acls = r.vector(read_acl)
    return None if acls is None else tuple(acls)


def write_acls(w: Writer, acls: tuple[ACL, ...] | list[ACL]) -> Writer:
    if acls is OPEN_ACL_UNSAFE:
        return w.raw(OPEN_ACL_BYTES)
    w.int(len(acls))
    for a in acls:
        w.int(a.perms).ustring(a.scheme).ustring(a.id)
    return w


class ConnectRequest(NamedTuple):
    protocol_version: int
    last_zxid_seen: int
    timeout: int
    session_id: int
    passwd: bytes
    read_only: bool | None  # None: an old client that did not send the flag


def decode_connect(body: bytes) -> ConnectRequest:
    r = Reader(body)
    req = ConnectRequest(r.int(), r.long(), r.int(), r.long(), r.buffer() or b"", None)
    if r.remaining() >= 1:
        req = req._replace(read_only=r.bool())
    return req


class CreateRequest(NamedTuple):
    path: str
    data: bytes | None
    acl: tuple[ACL, ...] | None
    flags: int
    ttl: int = -1


class DeleteRequest(NamedTuple):
    path: str
    version: int


class PathWatchRequest(NamedTuple):
    """exists, getData, getChildren, getChildren2."""

    path: str
    watch: bool


class SetDataRequest(NamedTuple):
    path: str
    data: bytes | None
    version: int


class PathRequest(NamedTuple):
    """getACL, sync, getEphemerals, getAllChildrenNumber, deleteContainer."""

    path: str


class SetACLRequest(NamedTuple):
    path: str
    acl: tuple[ACL, ...] | None
    version: int


class CheckVersionRequest(NamedTuple):
    path: str
    version: int


class WatchTypeRequest(NamedTuple):
    """checkWatches, removeWatches (type is a WatcherType) and addWatch (type is an AddWatchMode)."""

    path: str
    type: int


class AuthPacket(NamedTuple):
    type: int
    scheme: str
    auth: bytes


class SetWatchesRequest(NamedTuple):
    relative_zxid: int
    data: list[str]
    exist: list[str]
    child: list[str]
    persistent: list[str]
    recursive: list[str]


class MultiRequest(NamedTuple):
    ops: list[tuple[int, NamedTuple]]  # (opcode, request)


class EmptyRequest(NamedTuple):
    """ping, closeSession, whoAmI: no body."""


def _path(r: Reader) -> str:
    s = r.ustring()
    if s is None:
        raise ZkError(Err.MARSHALLINGERROR, "null path")  # ZooKeeper fails on it while decoding
    return s


def _settable_path(r: Reader) -> str:
    s = r.ustring()
    if s is None:
        raise ZkError(Err.BADARGUMENTS, "null path")  # setData/setACL validate it: BADARGUMENTS
    return s


def _create(r: Reader) -> CreateRequest:
    return CreateRequest(_path(r), r.buffer(), read_acls(r), r.int())


def _create_ttl(r: Reader) -> CreateRequest:
    return CreateRequest(_path(r), r.buffer(), read_acls(r), r.int(), r.long())


def _path_watch(r: Reader) -> PathWatchRequest:
    return PathWatchRequest(_path(r), r.bool())


def _path_only(r: Reader) -> PathRequest:
    return PathRequest(_path(r))


def _delete_container(r: Reader) -> PathRequest:
    raw = r.buffer()
    if raw is None:
        raise ZkError(Err.BADARGUMENTS, "null path")
    return PathRequest(raw.decode("utf-8", "replace"))


def _strings(r: Reader) -> list[str]:
    return [s for s in (r.vector(Reader.ustring) or []) if s is not None]


def _set_watches(r: Reader) -> SetWatchesRequest:
    return SetWatchesRequest(r.long(), _strings(r), _strings(r), _strings(r), [], [])


def _set_watches2(r: Reader) -> SetWatchesRequest:
    return SetWatchesRequest(r.long(), _strings(r), _strings(r), _strings(r), _strings(r), _strings(r))


def _auth(r: Reader) -> AuthPacket:
    return AuthPacket(r.int(), r.ustring() or "", r.buffer() or b"")


MULTI_WRITE_OPS = {
    OpCode.CREATE: _create,
    OpCode.CREATE2: _create,
    OpCode.CREATE_CONTAINER: _create,
    OpCode.CREATE_TTL: _create_ttl,
    OpCode.DELETE: lambda r: DeleteRequest(_path(r), r.int()),
    OpCode.SET_DATA: lambda r: SetDataRequest(_settable_path(r), r.buffer(), r.int()),
    OpCode.CHECK: lambda r: CheckVersionRequest(_path(r), r.int()),
}
MULTI_READ_OPS = {OpCode.GET_CHILDREN: _path_watch, OpCode.GET_DATA: _path_watch}


def _multi(r: Reader, allowed: dict[int, Callable[[Reader], NamedTuple]], what: str) -> MultiRequest:
    """Sub-ops until a header with done=true: only writes in a multi, only reads in a multiRead."""
    ops: list[tuple[int, NamedTuple]] = []
    while True:
        op_type, done, _err = r.int(), r.bool(), r.int()
        if done:
            return MultiRequest(ops)
        decode = allowed.get(op_type)
        if decode is None:
            raise JuteError(f"op type {op_type} is not allowed in a {what}")
        ops.append((op_type, decode(r)))


def _empty(r: Reader) -> EmptyRequest:
    return EmptyRequest()


DECODERS: dict[int, Callable[[Reader], NamedTuple]] = {
    OpCode.CREATE: _create,
    OpCode.CREATE2: _create,
    OpCode.CREATE_CONTAINER: _create,
    OpCode.CREATE_TTL: _create_ttl,
    OpCode.DELETE: MULTI_WRITE_OPS[OpCode.DELETE],
    OpCode.EXISTS: _path_watch,
    OpCode.GET_DATA: _path_watch,
    OpCode.SET_DATA: MULTI_WRITE_OPS[OpCode.SET_DATA],
    OpCode.GET_ACL: _path_only,
    OpCode.SET_ACL: lambda r: SetACLRequest(_settable_path(r), read_acls(r), r.int()),
    OpCode.GET_CHILDREN: _path_watch,
    OpCode.SYNC: lambda r: PathRequest(r.ustring()),
    OpCode.PING: _empty,
    OpCode.GET_CHILDREN2: _path_watch,
    OpCode.CHECK: MULTI_WRITE_OPS[OpCode.CHECK],
    OpCode.MULTI: lambda r: _multi(r, MULTI_WRITE_OPS, "multi"),
    OpCode.MULTI_READ: lambda r: _multi(r, MULTI_READ_OPS, "multiRead"),
    OpCode.CHECK_WATCHES: lambda r: WatchTypeRequest(_path(r), r.int()),
    OpCode.REMOVE_WATCHES: lambda r: WatchTypeRequest(_path(r), r.int()),
    OpCode.DELETE_CONTAINER: _delete_container,
    OpCode.AUTH: _auth,
    OpCode.SET_WATCHES: _set_watches,
    OpCode.SET_WATCHES2: _set_watches2,
    OpCode.GET_EPHEMERALS: _path_only,
    OpCode.GET_ALL_CHILDREN_NUMBER: _path_only,
    OpCode.ADD_WATCH: lambda r: WatchTypeRequest(_path(r), r.int()),
    OpCode.WHO_AM_I: _empty,
    OpCode.CLOSE_SESSION: _empty,
}


_I = struct.Struct(">i")


def _fast_set_data(body: bytes, pos: int) -> SetDataRequest | None:
    """setData decoded with three struct calls instead of a Reader per field; None sends
    anything unusual (null or bad lengths, truncation) down the general path."""
    (n,) = _I.unpack_from(body, pos)
    end = pos + 4 + n
    if n < 0 or end + 8 > len(body):
        return None
    path = body[pos + 4 : end].decode("utf-8", "replace")
    (m,) = _I.unpack_from(body, end)
    if m < 0 or end + 8 + m > len(body):
        return None
    data = body[end + 4 : end + 4 + m]
    return SetDataRequest(path, data, _I.unpack_from(body, end + 4 + m)[0])


def decode_request(opcode: int, body: bytes, offset: int = 0, max_buffer: int = DEFAULT_MAX_BUFFER) -> NamedTuple:
    """Decode a request body. Raises ZkError(MARSHALLINGERROR) on malformed bytes,
    ZkError(UNIMPLEMENTED) on an opcode this server does not know."""
    if opcode == OpCode.SET_DATA and len(body) - offset <= max_buffer:
        try:
            fast = _fast_set_data(body, offset)
        except struct.error:
            fast = None
        if fast is not None:
            return fast
    decode = DECODERS.get(opcode)
    if decode is None:
        raise ZkError(Err.UNIMPLEMENTED, f"opcode {opcode}")
    try:
        return decode(Reader(body, offset, max_buffer))
    except JuteError as e:
        raise ZkError(Err.MARSHALLINGERROR, str(e)) from None
