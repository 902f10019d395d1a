"""decode_request for every opcode the server decodes, from hand-built bytes (struct, not the
jute Writer, so the codec is checked against an independent encoding)."""

from __future__ import annotations

import struct

import pytest

from zkserver.protocol.constants import Err, OpCode, ZkError
from zkserver.protocol.records import (
    ACL,
    AuthPacket,
    CheckVersionRequest,
    ConnectRequest,
    CreateRequest,
    DeleteRequest,
    EmptyRequest,
    MultiRequest,
    PathRequest,
    PathWatchRequest,
    SetACLRequest,
    SetDataRequest,
    SetWatchesRequest,
    WatchTypeRequest,
    decode_connect,
    decode_request,
)


# --- an independent encoder ---------------------------------------------------------------


def i32(v: int) -> bytes:
    return struct.pack(">i", v)


def i64(v: int) -> bytes:
    return struct.pack(">q", v)


def boolean(v: bool) -> bytes:
    return b"\x01" if v else b"\x00"


def buf(b: bytes | None) -> bytes:
    return i32(-1) if b is None else i32(len(b)) + b


def s(v: str | None) -> bytes:
    return buf(None if v is None else v.encode("utf-8"))


def acls(items) -> bytes:
    return i32(len(items)) + b"".join(i32(p) + s(scheme) + s(ident) for p, scheme, ident in items)


def strs(items) -> bytes:
    return i32(len(items)) + b"".join(s(x) for x in items)


def mh(op: int, done: bool = False, err: int = -1) -> bytes:
    return i32(op) + boolean(done) + i32(err)


MULTI_END = mh(-1, True, -1)
OPEN = [(31, "world", "anyone")]


# --- connect --------------------------------------------------------------------------------


def test_connect_new_client_with_read_only_flag():
    body = i32(0) + i64(0x1234) + i32(30000) + i64(0x0102030405060708) + buf(b"p" * 16) + boolean(True)
    assert len(body) == 45
    assert decode_connect(body) == ConnectRequest(0, 0x1234, 30000, 0x0102030405060708, b"p" * 16, True)


def test_connect_old_client_without_read_only_flag():
    body = i32(0) + i64(0) + i32(10000) + i64(0) + buf(bytes(16))
    assert len(body) == 44
    req = decode_connect(body)
    assert req.read_only is None
    assert req.passwd == bytes(16)
    assert req.timeout == 10000


# --- one test per opcode ------------------------------------------------------------------


@pytest.mark.parametrize("op", [OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER])
def test_create_family(op):
    body = s("/a") + buf(b"data") + acls([(31, "world", "anyone"), (1, "digest", "u:h")]) + i32(4)
    assert decode_request(op, body) == CreateRequest(
        "/a", b"data", (ACL(31, "world", "anyone"), ACL(1, "digest", "u:h")), 4, -1
    )


def test_create_null_data_is_kept_null():
    req = decode_request(OpCode.CREATE, s("/a") + buf(None) + acls(OPEN) + i32(0))
    assert req.data is None


def test_create_empty_data_stays_empty():
    req = decode_request(OpCode.CREATE, s("/a") + buf(b"") + acls(OPEN) + i32(0))
    assert req.data == b""


def test_create_acl_with_null_id_as_kazoo_sends_it():
    # kazoo writes -1 for an empty string: Id("auth", "") arrives with a null id.
    req = decode_request(OpCode.CREATE, s("/a") + buf(b"") + i32(1) + i32(31) + s("auth") + s(None) + i32(0))
    assert req.acl == (ACL(31, "auth", ""),)


def test_create_ttl():
    body = s("/t") + buf(b"x") + acls(OPEN) + i32(5) + i64(60000)
    assert decode_request(OpCode.CREATE_TTL, body) == CreateRequest("/t", b"x", (ACL(31, "world", "anyone"),), 5, 60000)


def test_delete():
    assert decode_request(OpCode.DELETE, s("/a") + i32(-1)) == DeleteRequest("/a", -1)


@pytest.mark.parametrize("op", [OpCode.EXISTS, OpCode.GET_DATA, OpCode.GET_CHILDREN, OpCode.GET_CHILDREN2])
def test_path_and_watch(op):
    assert decode_request(op, s("/w") + boolean(True)) == PathWatchRequest("/w", True)
    assert decode_request(op, s("/w") + boolean(False)) == PathWatchRequest("/w", False)


def test_set_data():
    assert decode_request(OpCode.SET_DATA, s("/a") + buf(b"v") + i32(3)) == SetDataRequest("/a", b"v", 3)


@pytest.mark.parametrize("op", [OpCode.GET_ACL, OpCode.SYNC, OpCode.GET_EPHEMERALS, OpCode.GET_ALL_CHILDREN_NUMBER])
def test_path_only(op):
    assert decode_request(op, s("/p")) == PathRequest("/p")


def test_set_acl():
    body = s("/a") + acls([(1, "ip", "10.0.0.0/8")]) + i32(7)
    assert decode_request(OpCode.SET_ACL, body) == SetACLRequest("/a", (ACL(1, "ip", "10.0.0.0/8"),), 7)


@pytest.mark.parametrize("op", [OpCode.PING, OpCode.CLOSE_SESSION, OpCode.WHO_AM_I])
def test_empty_bodies(op):
    assert decode_request(op, b"") == EmptyRequest()


def test_check():
    assert decode_request(OpCode.CHECK, s("/c") + i32(2)) == CheckVersionRequest("/c", 2)


@pytest.mark.parametrize("op", [OpCode.CHECK_WATCHES, OpCode.REMOVE_WATCHES, OpCode.ADD_WATCH])
def test_path_and_type(op):
    assert decode_request(op, s("/w") + i32(3)) == WatchTypeRequest("/w", 3)


def test_delete_container_path_is_a_buffer():
    assert decode_request(OpCode.DELETE_CONTAINER, buf(b"/c")) == PathRequest("/c")


def test_auth():
    body = i32(0) + s("digest") + buf(b"user:pw")
    assert decode_request(OpCode.AUTH, body) == AuthPacket(0, "digest", b"user:pw")


def test_set_watches():
    body = i64(0x55) + strs(["/d"]) + strs(["/e1", "/e2"]) + strs([])
    assert decode_request(OpCode.SET_WATCHES, body) == SetWatchesRequest(0x55, ["/d"], ["/e1", "/e2"], [], [], [])


def test_set_watches2():
    body = i64(7) + strs(["/d"]) + strs(["/e"]) + strs(["/c"]) + strs(["/p"]) + strs(["/r"])
    assert decode_request(OpCode.SET_WATCHES2, body) == SetWatchesRequest(7, ["/d"], ["/e"], ["/c"], ["/p"], ["/r"])


def test_decode_honours_offset():
    # The core passes the whole frame and an offset past the RequestHeader.
    frame = i32(5) + i32(OpCode.DELETE) + s("/a") + i32(0)
    assert decode_request(OpCode.DELETE, frame, 8) == DeleteRequest("/a", 0)


# --- multi ----------------------------------------------------------------------------------


def test_multi_write_ops():
    body = (
        mh(OpCode.CREATE) + s("/m") + buf(b"d") + acls(OPEN) + i32(0)
        + mh(OpCode.CREATE2) + s("/m2") + buf(None) + acls(OPEN) + i32(2)
        + mh(OpCode.CREATE_CONTAINER) + s("/mc") + buf(b"") + acls(OPEN) + i32(4)
        + mh(OpCode.CREATE_TTL) + s("/mt") + buf(b"") + acls(OPEN) + i32(5) + i64(1000)
        + mh(OpCode.SET_DATA) + s("/m") + buf(b"e") + i32(0)
        + mh(OpCode.CHECK) + s("/m") + i32(1)
        + mh(OpCode.DELETE) + s("/m") + i32(-1)
        + MULTI_END
    )  # fmt: skip
    req = decode_request(OpCode.MULTI, body)
    assert isinstance(req, MultiRequest)
    assert [op for op, _ in req.ops] == [1, 15, 19, 21, 5, 13, 2]
    assert req.ops[0][1] == CreateRequest("/m", b"d", (ACL(31, "world", "anyone"),), 0)
    assert req.ops[1][1].data is None and req.ops[1][1].flags == 2
    assert req.ops[3][1].ttl == 1000
    assert req.ops[4][1] == SetDataRequest("/m", b"e", 0)
    assert req.ops[5][1] == CheckVersionRequest("/m", 1)
    assert req.ops[6][1] == DeleteRequest("/m", -1)


def test_multi_read_ops():
    body = mh(OpCode.GET_CHILDREN) + s("/a") + boolean(False) + mh(OpCode.GET_DATA) + s("/b") + boolean(True) + MULTI_END
    req = decode_request(OpCode.MULTI_READ, body)
    assert req.ops == [(8, PathWatchRequest("/a", False)), (4, PathWatchRequest("/b", True))]


def test_empty_multi():
    assert decode_request(OpCode.MULTI, MULTI_END) == MultiRequest([])


def _marshalling(op, body):
    with pytest.raises(ZkError) as e:
        decode_request(op, body)
    assert e.value.code == Err.MARSHALLINGERROR


def test_multi_mixing_read_and_write_is_marshalling_error():
    _marshalling(OpCode.MULTI, mh(OpCode.DELETE) + s("/a") + i32(-1) + mh(OpCode.GET_DATA) + s("/b") + boolean(False) + MULTI_END)
    _marshalling(OpCode.MULTI, mh(OpCode.GET_DATA) + s("/b") + boolean(False) + mh(OpCode.DELETE) + s("/a") + i32(-1) + MULTI_END)


@pytest.mark.parametrize("sub_op", [OpCode.EXISTS, OpCode.GET_ACL, OpCode.MULTI, OpCode.SET_ACL, 999, -11])
def test_multi_unknown_sub_op_is_marshalling_error(sub_op):
    _marshalling(OpCode.MULTI, mh(sub_op) + s("/a") + boolean(False) + MULTI_END)


def test_multi_without_end_marker_is_marshalling_error():
    _marshalling(OpCode.MULTI, mh(OpCode.DELETE) + s("/a") + i32(-1))


# --- malformed bodies ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "op, body",
    [
        (OpCode.CREATE, s("/a") + buf(b"x")),  # acl and flags missing
        (OpCode.DELETE, s("/a")),  # version missing
        (OpCode.GET_DATA, s("/a")),  # watch flag missing
        (OpCode.SET_DATA, s("/a") + i32(100) + b"short"),
        (OpCode.GET_ACL, i32(-7)),
        (OpCode.SET_WATCHES, i64(0) + strs(["/a"])),
        (OpCode.AUTH, i32(0)),
        (OpCode.GET_DATA, b""),
    ],
)
def test_truncated_or_garbled_bodies_are_marshalling_errors(op, body):
    _marshalling(op, body)


def test_oversize_data_rejected_with_small_max_buffer():
    with pytest.raises(ZkError) as e:
        decode_request(OpCode.SET_DATA, s("/a") + buf(b"x" * 100) + i32(0), 0, 64)
    assert e.value.code == Err.MARSHALLINGERROR


@pytest.mark.parametrize("op", [999, 10, 23, 99, -12])
def test_unknown_opcode_is_unimplemented(op):
    with pytest.raises(ZkError) as e:
        decode_request(op, b"")
    assert e.value.code == Err.UNIMPLEMENTED
