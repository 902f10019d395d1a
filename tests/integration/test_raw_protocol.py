"""Opcodes kazoo never sends and input kazoo would never produce, on the wire."""

from __future__ import annotations

import os
import struct
import uuid

import pytest

from tests.rawclient import RawClient, path_body
from zkserver.protocol.constants import Err, EventType, OpCode, WatcherType
from zkserver.protocol.jute import Writer

pytestmark = pytest.mark.integration


@pytest.fixture
def raw(zkserver):
    client = RawClient(zkserver.host, zkserver.client_port)
    assert client.handshake() > 0
    yield client
    client.close()


@pytest.fixture
def top(raw) -> str:
    path = f"/raw-{uuid.uuid4().hex[:10]}"
    assert raw.create(path).err == 0
    return path


def _alive(zkserver) -> bool:
    """Another client can still do a round trip."""
    probe = RawClient(zkserver.host, zkserver.client_port)
    try:
        probe.handshake()
        return probe.call(OpCode.EXISTS, path_body("/", False)).err == 0
    finally:
        probe.close()


# ZooKeeper looks the parent up (everything before the last '/') before it validates the
# whole path, so a malformed parent is NONODE and only a malformed last segment BADARGUMENTS.
@pytest.mark.parametrize(
    "bad, err",
    [
        ("/a/", Err.BADARGUMENTS),
        ("/.", Err.BADARGUMENTS),
        ("/a/..", Err.BADARGUMENTS),
        ("/a//b", Err.NONODE),
        ("/a/./b", Err.NONODE),
        ("rel", Err.BADARGUMENTS),
        ("rel/x", Err.NONODE),
    ],
)
def test_structurally_invalid_paths(raw, top, bad, err):
    path = top + bad if bad.startswith("/") else bad
    assert raw.create(top + "/a").err in (0, Err.NODEEXISTS)
    assert raw.create(path).err == err


def test_unknown_opcode_answers_unimplemented_and_connection_stays(raw):
    reply = raw.call(999)
    assert reply.err == Err.UNIMPLEMENTED
    assert raw.call(OpCode.EXISTS, path_body("/", False)).err == 0


def test_top_level_check_is_unimplemented(raw, top):
    reply = raw.call(OpCode.CHECK, Writer().ustring(top).int(0).bytes())
    assert reply.err == Err.UNIMPLEMENTED
    assert raw.call(OpCode.EXISTS, path_body(top, False)).err == 0


def test_truncated_record_is_marshalling_error(raw, top):
    reply = raw.call(OpCode.GET_DATA, Writer().int(100).bytes())  # path length 100, no bytes
    assert reply.err == Err.MARSHALLINGERROR
    reply = raw.call(OpCode.CREATE, Writer().ustring(top + "/t").bytes())  # stops after the path
    assert reply.err == Err.MARSHALLINGERROR
    assert raw.call(OpCode.EXISTS, path_body(top, False)).err == 0


def test_oversize_frame_closes_only_that_connection(zkserver, raw):
    raw.sock.sendall(struct.pack(">i", 2 * 1024 * 1024) + b"x" * 1000)
    assert raw.closed_by_server()
    assert _alive(zkserver)


def test_negative_length_closes(zkserver, raw):
    raw.sock.sendall(struct.pack(">i", -5))
    assert raw.closed_by_server()
    assert _alive(zkserver)


def test_short_frame_closes(zkserver, raw):
    raw.send_frame(b"\x00\x01")
    assert raw.closed_by_server()
    assert _alive(zkserver)


def test_garbage_before_handshake(zkserver):
    for junk in (os.urandom(64), b"GET / HTTP/1.1\r\n\r\n", struct.pack(">i", 3) + b"abc"):
        c = RawClient(zkserver.host, zkserver.client_port)
        c.sock.sendall(junk)
        c.closed_by_server(1.0)
        c.close()
    assert _alive(zkserver)


def test_oversize_create_via_kazoo_loses_connection_not_server(zkserver, zk, base):
    from kazoo.exceptions import ConnectionLoss

    with pytest.raises(ConnectionLoss):
        zk.create(f"{base}/huge", b"x" * (2 * 1024 * 1024))
    assert zk.exists(base) is not None  # kazoo reconnected; the session survived
    assert _alive(zkserver)


def test_who_am_i(raw):
    raw.send(OpCode.AUTH, Writer().int(0).ustring("digest").buffer(b"bob:secret").bytes(), xid=-4)
    reply = raw.recv()
    assert (reply.xid, reply.err) == (-4, 0)
    reply = raw.call(OpCode.WHO_AM_I)
    ids = [(reply.body.ustring(), reply.body.ustring()) for _ in range(reply.body.int())]
    assert ("ip", "127.0.0.1") in ids and ("digest", "bob") in ids


def test_get_ephemerals_and_all_children_number(raw, top):
    raw.create(top + "/p")
    raw.create(top + "/p/e1", flags=1)
    raw.create(top + "/p/e2", flags=1)
    raw.create(top + "/p/q")
    reply = raw.call(OpCode.GET_EPHEMERALS, path_body(top + "/p"))
    assert sorted(reply.body.ustring() for _ in range(reply.body.int())) == [top + "/p/e1", top + "/p/e2"]
    reply = raw.call(OpCode.GET_ALL_CHILDREN_NUMBER, path_body(top))
    assert reply.body.int() == 4
    assert raw.call(OpCode.GET_ALL_CHILDREN_NUMBER, path_body(top + "/none")).err == Err.NONODE


def _watch_type_body(path: str, kind: int) -> bytes:
    return Writer().ustring(path).int(kind).bytes()


def _event(raw: RawClient) -> tuple[int, str]:
    reply = raw.recv()
    assert reply.xid == -1, reply
    etype, _state, path = reply.body.int(), reply.body.int(), reply.body.ustring()
    return etype, path


def test_persistent_watch_survives_firing(zkserver, raw, top):
    assert raw.call(OpCode.ADD_WATCH, _watch_type_body(top, 0)).body.int() == 0
    writer = RawClient(zkserver.host, zkserver.client_port)
    writer.handshake()
    writer.call(OpCode.SET_DATA, Writer().ustring(top).buffer(b"1").int(-1).bytes())
    assert _event(raw) == (EventType.NODE_DATA_CHANGED, top)
    writer.create(top + "/c")
    assert _event(raw) == (EventType.NODE_CHILDREN_CHANGED, top)
    writer.call(OpCode.SET_DATA, Writer().ustring(top).buffer(b"2").int(-1).bytes())
    assert _event(raw) == (EventType.NODE_DATA_CHANGED, top)
    writer.close()
    assert raw.call(OpCode.CHECK_WATCHES, _watch_type_body(top, WatcherType.ANY)).err == 0
    assert raw.call(OpCode.REMOVE_WATCHES, _watch_type_body(top, WatcherType.ANY)).err == 0
    assert raw.call(OpCode.CHECK_WATCHES, _watch_type_body(top, WatcherType.ANY)).err == Err.NOWATCHER


def test_persistent_recursive_watch_sees_descendants_not_child_events(zkserver, raw, top):
    raw.call(OpCode.ADD_WATCH, _watch_type_body(top, 1))
    writer = RawClient(zkserver.host, zkserver.client_port)
    writer.handshake()
    writer.create(top + "/a")
    writer.create(top + "/a/b")
    writer.call(OpCode.SET_DATA, Writer().ustring(top + "/a/b").buffer(b"x").int(-1).bytes())
    writer.call(OpCode.DELETE, Writer().ustring(top + "/a/b").int(-1).bytes())
    writer.close()
    events = [_event(raw) for _ in range(4)]
    assert events == [
        (EventType.NODE_CREATED, top + "/a"),
        (EventType.NODE_CREATED, top + "/a/b"),
        (EventType.NODE_DATA_CHANGED, top + "/a/b"),
        (EventType.NODE_DELETED, top + "/a/b"),
    ]


def test_remove_watches_without_watch_is_nowatcher(raw, top):
    assert raw.call(OpCode.REMOVE_WATCHES, _watch_type_body(top, WatcherType.DATA)).err == Err.NOWATCHER
    raw.call(OpCode.GET_DATA, path_body(top, True))
    assert raw.call(OpCode.CHECK_WATCHES, _watch_type_body(top, WatcherType.CHILDREN)).err == Err.NOWATCHER
    assert raw.call(OpCode.REMOVE_WATCHES, _watch_type_body(top, WatcherType.DATA)).err == 0


def test_set_watches_fires_missed_changes(zkserver, raw, top):
    """After a reconnect, setWatches(relativeZxid) re-arms watches and fires missed ones."""
    raw.create(top + "/changed", b"0")
    raw.create(top + "/deleted")
    raw.create(top + "/same")
    seen = raw.call(OpCode.EXISTS, path_body(top, False)).zxid
    writer = RawClient(zkserver.host, zkserver.client_port)
    writer.handshake()
    writer.call(OpCode.SET_DATA, Writer().ustring(top + "/changed").buffer(b"1").int(-1).bytes())
    writer.call(OpCode.DELETE, Writer().ustring(top + "/deleted").int(-1).bytes())
    writer.create(top + "/born")
    body = (
        Writer()
        .long(seen)
        .strings([top + "/changed", top + "/deleted", top + "/same"])
        .strings([top + "/born", top + "/unborn"])
        .strings([top])
        .bytes()
    )
    xid = raw.send(OpCode.SET_WATCHES, body, xid=-8)
    got = []
    while True:
        reply = raw.recv()
        if reply.xid != -1:
            assert reply.xid == xid and reply.err == 0
            break
        got.append((reply.body.int(), reply.body.int(), reply.body.ustring())[::2])
    assert sorted(got) == sorted(
        [
            (EventType.NODE_DATA_CHANGED, top + "/changed"),
            (EventType.NODE_DELETED, top + "/deleted"),
            (EventType.NODE_CREATED, top + "/born"),
            (EventType.NODE_CHILDREN_CHANGED, top),
        ]
    )
    writer.call(OpCode.SET_DATA, Writer().ustring(top + "/same").buffer(b"1").int(-1).bytes())
    writer.create(top + "/unborn")
    writer.close()
    assert sorted(_event(raw) for _ in range(2)) == sorted(
        [(EventType.NODE_DATA_CHANGED, top + "/same"), (EventType.NODE_CREATED, top + "/unborn")]
    )


def test_pipelined_requests_answer_in_order(raw, top):
    xids = [raw.send(OpCode.CREATE, Writer().ustring(f"{top}/n{i}").buffer(b"").int(1).int(31).ustring("world").ustring("anyone").int(0).bytes()) for i in range(50)]
    xids += [raw.send(OpCode.GET_DATA, path_body(f"{top}/n{i}", False)) for i in range(50)]
    replies = [raw.recv_reply() for _ in xids]
    assert [r.xid for r in replies] == xids
    assert all(r.err == 0 for r in replies)
