"""ServerCore driven with raw frames, fake connections and a fake commit step (no I/O)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from zkserver.acl import digest_id
from zkserver.config import ServerConfig
from zkserver.connection import Conn
from zkserver.core import ServerCore
from zkserver.protocol.constants import Err, EventType, OpCode
from zkserver.protocol.jute import Reader, Writer
from zkserver.protocol.records import ACL, STAT
from zkserver.sessions import first_session_id, session_password
from zkserver.tree.datatree import DataTree

from .helpers import (
    create_body,
    delete_body,
    multi_body,
    path_body,
    path_watch_body,
    set_data_body,
)

WALL = 1_700_000_000_000
TICK = 2000


def make_core(**settings) -> ServerCore:
    settings.setdefault("tick_time", TICK)
    config = ServerConfig(data_dir=Path("/nonexistent"), data_log_dir=Path("/nonexistent"), **settings)
    return ServerCore(config, DataTree(), now_ms=0, wall_ms=WALL)


def commit(core: ServerCore) -> int:
    """The fake log: every txn prep produced is durable at once."""
    batch = core.take_log()
    for hdr, txn in batch:
        core.committed(hdr, txn)
    core.flush()
    return len(batch)


class Reply:
    def __init__(self, payload: bytes) -> None:
        self.xid, self.zxid, self.err = struct.unpack_from(">iqi", payload)
        self.body = payload[16:]

    def __repr__(self) -> str:
        return f"Reply(xid={self.xid}, zxid={self.zxid:#x}, err={self.err}, body={self.body!r})"


class ConnectResponse:
    def __init__(self, payload: bytes) -> None:
        r = Reader(payload)
        self.size = len(payload)
        self.protocol_version, self.timeout, self.session_id = r.int(), r.int(), r.long()
        self.passwd = r.buffer()
        self.read_only = r.bool() if r.remaining() else None
        assert r.remaining() == 0


class Client:
    """One connection: raw bytes in, everything `send` received split back into frames."""

    _ports = iter(range(40000, 50000))

    def __init__(self, core: ServerCore, host: str = "127.0.0.1") -> None:
        self.core = core
        self.sent: list[bytes] = []
        self.close_calls = 0
        self.conn = Conn(host, next(self._ports), send=self.sent.append, close=self._on_close)
        assert core.connection_made(self.conn)
        self.pos = 0
        self.now = 0
        self.xid = 0
        self.session_id = None

    def _on_close(self) -> None:
        self.close_calls += 1

    @property
    def closed(self) -> bool:
        return self.close_calls > 0

    # --- sending ---

    def raw(self, payload: bytes, now: int | None = None) -> None:
        if now is not None:
            self.now = now
        self.core.receive(self.conn, payload, self.now, WALL + self.now)
        self.core.flush()

    def connect(self, timeout=10000, session_id=0, passwd=bytes(16), last_zxid=0, read_only: bool | None = False, now=None):
        w = Writer().int(0).long(last_zxid).int(timeout).long(session_id).buffer(passwd)
        if read_only is not None:
            w.bool(read_only)
        self.raw(w.bytes(), now)

    def handshake(self, timeout=10000, now=None) -> ConnectResponse:
        self.connect(timeout, now=now)
        commit(self.core)
        (resp,) = self.frames()
        resp = ConnectResponse(resp)
        self.session_id = resp.session_id
        return resp

    def send(self, op: int, body: bytes = b"", xid: int | None = None, now=None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.raw(struct.pack(">ii", xid, op) + body, now)
        return xid

    # --- receiving ---

    def frames(self) -> list[bytes]:
        data = b"".join(self.sent)
        out = []
        while self.pos < len(data):
            (n,) = struct.unpack_from(">i", data, self.pos)
            payload = data[self.pos + 4 : self.pos + 4 + n]
            assert len(payload) == n, "a frame was cut short"
            out.append(payload)
            self.pos += 4 + n
        return out

    def replies(self) -> list[Reply]:
        return [Reply(f) for f in self.frames()]


def notification(reply: Reply) -> tuple[int, int, str]:
    r = Reader(reply.body)
    return r.int(), r.int(), r.ustring()


def stat_of(body: bytes, offset: int = 0) -> tuple:
    return STAT.unpack_from(body, offset)


def data_of(reply: Reply) -> bytes | None:
    return Reader(reply.body).buffer()


@pytest.fixture
def core():
    return make_core()


def session(core, timeout=40000, now=None) -> Client:
    c = Client(core)
    c.handshake(timeout, now=now)
    return c


def write(c: Client, op: int, body: bytes) -> Reply:
    """Send a write, commit it, return its reply (the only frame expected)."""
    c.send(op, body)
    commit(c.core)
    (reply,) = c.replies()
    return reply


# --- handshake ------------------------------------------------------------------------------


def test_handshake_creates_session_only_after_commit(core):
    c = Client(core)
    c.connect(timeout=10000)
    assert c.frames() == []
    assert core.tree.sessions == {}
    batch = core.take_log()
    assert len(batch) == 1
    hdr, txn = batch[0]
    assert hdr.type == OpCode.CREATE_SESSION
    sid = first_session_id(WALL, 0)
    assert hdr.session_id == sid
    assert core.tree.sessions == {}
    core.committed(hdr, txn)
    core.flush()
    (frame,) = c.frames()
    resp = ConnectResponse(frame)
    assert (resp.protocol_version, resp.timeout, resp.session_id) == (0, 10000, sid)
    assert resp.passwd == session_password(sid)
    assert resp.read_only is False
    assert resp.size == 37  # 41 bytes with the length: what the C client reads
    assert core.tree.sessions == {sid: 10000}
    assert core.tree.last_zxid == 1  # createSession is a transaction


def test_old_client_gets_no_read_only_byte(core):
    c = Client(core)
    c.connect(read_only=None)
    commit(core)
    (frame,) = c.frames()
    resp = ConnectResponse(frame)
    assert resp.read_only is None
    assert resp.size == 36


@pytest.mark.parametrize("asked, negotiated", [(1, 4000), (3999, 4000), (15000, 15000), (40000, 40000), (10**6, 40000)])
def test_timeout_negotiation(core, asked, negotiated):
    c = Client(core)
    assert c.handshake(asked).timeout == negotiated
    assert core.tree.sessions[c.session_id] == negotiated


def test_sessions_get_consecutive_ids(core):
    a, b = session(core), session(core)
    assert b.session_id == a.session_id + 1


def test_requests_pipelined_behind_handshake_wait_for_it(core):
    c = Client(core)
    c.connect()
    c.send(OpCode.EXISTS, path_watch_body("/"))
    assert c.frames() == []
    commit(core)
    frames = c.frames()
    assert len(frames) == 2
    ConnectResponse(frames[0])
    assert Reply(frames[1]).xid == 1 and Reply(frames[1]).err == 0


def test_garbage_connect_request_closes(core):
    c = Client(core)
    c.raw(b"\x00\x01")
    assert c.closed
    assert c.frames() == []


# --- reconnect --------------------------------------------------------------------------------


def test_reconnect_with_right_password(core):
    a = session(core, timeout=10000)
    b = Client(core)
    b.connect(timeout=20000, session_id=a.session_id, passwd=session_password(a.session_id))
    (frame,) = b.frames()  # no txn needed
    resp = ConnectResponse(frame)
    assert (resp.timeout, resp.session_id, resp.passwd) == (20000, a.session_id, session_password(a.session_id))
    assert a.closed  # the old connection of that session is dropped
    b.session_id = a.session_id
    assert b.send(OpCode.EXISTS, path_watch_body("/")) == 1
    assert b.replies()[0].err == 0


def test_reconnect_with_wrong_password(core):
    a = session(core)
    b = Client(core)
    bad = bytes(x ^ 1 for x in session_password(a.session_id))
    b.connect(session_id=a.session_id, passwd=bad)
    (frame,) = b.frames()
    resp = ConnectResponse(frame)
    assert (resp.protocol_version, resp.timeout, resp.session_id, resp.passwd) == (0, 0, 0, bytes(16))
    assert resp.read_only is False
    assert b.closed
    assert core.take_log() == []


def test_reconnect_to_unknown_session(core):
    b = Client(core)
    sid = 0x1234567
    b.connect(session_id=sid, passwd=session_password(sid))
    (frame,) = b.frames()
    assert ConnectResponse(frame).timeout == 0
    assert b.closed


def test_client_ahead_of_server_is_closed_without_reply(core):
    a = session(core)
    write(a, OpCode.CREATE, create_body("/a"))
    zxid = core.tree.last_zxid
    ok = Client(core)
    ok.connect(last_zxid=zxid)
    commit(core)
    assert len(ok.frames()) == 1
    ahead = Client(core)
    ahead.connect(last_zxid=core.tree.last_zxid + 1)
    assert ahead.closed
    assert ahead.frames() == []
    assert core.take_log() == []  # and no session was created


# --- replies ----------------------------------------------------------------------------------


def test_write_reply_carries_the_txn_zxid(core):
    a = session(core)
    r = write(a, OpCode.CREATE, create_body("/a", b"v"))
    assert r.err == 0 and r.zxid == core.tree.last_zxid
    assert Reader(r.body).ustring() == "/a"
    r = write(a, OpCode.CREATE2, create_body("/b"))
    rd = Reader(r.body)
    assert rd.ustring() == "/b"
    stat = stat_of(r.body, rd.pos)
    assert stat[0] == r.zxid  # czxid


def test_error_reply_has_no_body(core):
    a = session(core)
    r = write(a, OpCode.DELETE, delete_body("/missing"))
    assert (r.err, r.body) == (Err.NONODE, b"")
    a.send(OpCode.GET_DATA, path_watch_body("/missing"))
    (r,) = a.replies()
    assert (r.err, r.body) == (Err.NONODE, b"")


def test_failed_write_still_consumes_a_zxid(core):
    a = session(core)
    before = core.tree.last_zxid
    r = write(a, OpCode.DELETE, delete_body("/missing"))
    assert r.zxid == before + 1 == core.tree.last_zxid


def test_null_and_empty_data_round_trip(core):
    a = session(core)
    write(a, OpCode.CREATE, create_body("/null", None))
    write(a, OpCode.CREATE, create_body("/empty", b""))
    a.send(OpCode.GET_DATA, path_watch_body("/null"))
    a.send(OpCode.GET_DATA, path_watch_body("/empty"))
    r1, r2 = a.replies()
    assert data_of(r1) is None
    assert data_of(r2) == b""


def test_ping_reply(core):
    a = session(core)
    a.send(OpCode.PING, xid=-2)
    (frame,) = a.frames()
    assert len(frame) == 16  # ReplyHeader only
    r = Reply(frame)
    assert (r.xid, r.zxid, r.err) == (-2, core.tree.last_zxid, 0)


def test_ping_answered_in_order_behind_pending_write(core):
    a = session(core)
    a.send(OpCode.CREATE, create_body("/a"))
    a.send(OpCode.PING, xid=-2)
    assert a.frames() == []  # pings go through the pipeline like any request
    commit(core)
    assert [r.xid for r in a.replies()] == [1, -2]


def test_sync_of_missing_path_succeeds(core):
    a = session(core)
    a.send(OpCode.SYNC, path_body("/not_there"))
    (r,) = a.replies()
    assert r.err == 0 and Reader(r.body).ustring() == "/not_there"


# --- per-session order --------------------------------------------------------------------------


def test_read_waits_for_own_pending_write_other_session_reads_old_state(core):
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/x", b"old"))
    wx = a.send(OpCode.SET_DATA, set_data_body("/x", b"new"))
    rx = a.send(OpCode.GET_DATA, path_watch_body("/x"))
    assert a.frames() == []
    b.send(OpCode.GET_DATA, path_watch_body("/x"))
    (rb,) = b.replies()
    assert data_of(rb) == b"old"  # served at once from the current tree
    commit(core)
    r1, r2 = a.replies()
    assert (r1.xid, r2.xid) == (wx, rx)
    assert data_of(r2) == b"new"
    assert r2.zxid == r1.zxid


def test_replies_come_in_request_order_across_many_writes_and_reads(core):
    a = session(core)
    xids = []
    for i in range(5):
        xids.append(a.send(OpCode.CREATE, create_body(f"/n{i}")))
        xids.append(a.send(OpCode.EXISTS, path_watch_body(f"/n{i}")))
    commit(core)
    replies = a.replies()
    assert [r.xid for r in replies] == xids
    assert all(r.err == 0 for r in replies)


def test_auth_reply_keeps_its_place(core):
    a = session(core)
    a.send(OpCode.CREATE, create_body("/a"))
    a.send(OpCode.AUTH, Writer().int(0).ustring("digest").buffer(b"alice:pw").bytes(), xid=-4)
    assert a.frames() == []
    commit(core)
    r1, r2 = a.replies()
    assert r1.xid == 1
    assert (r2.xid, r2.zxid, r2.err, r2.body) == (-4, 0, 0, b"")


def test_auth_takes_effect_for_later_requests(core):
    a = session(core)
    a.send(OpCode.AUTH, Writer().int(0).ustring("digest").buffer(b"alice:pw").bytes(), xid=-4)
    assert a.replies()[0].err == 0
    r = write(a, OpCode.CREATE, create_body("/mine", acl=[ACL(31, "auth", "")]))
    assert r.err == 0
    assert core.tree.get("/mine").acl == (ACL(31, "digest", digest_id("alice:pw")),)
    b = session(core)
    b.send(OpCode.GET_DATA, path_watch_body("/mine"))
    assert b.replies()[0].err == Err.NOAUTH


def test_auth_failure_replies_then_closes(core):
    a = session(core)
    a.send(OpCode.AUTH, Writer().int(0).ustring("kerberos").buffer(b"x").bytes(), xid=-4)
    (r,) = a.replies()
    assert (r.xid, r.zxid, r.err) == (-4, 0, Err.AUTHFAILED)
    assert a.closed


def test_create_with_auth_acl_and_no_auth_is_invalid_acl(core):
    a = session(core)
    r = write(a, OpCode.CREATE, create_body("/x", acl=[ACL(31, "auth", "")]))
    assert r.err == Err.INVALIDACL


# --- bad input ----------------------------------------------------------------------------------


def test_unknown_opcode_answers_unimplemented(core):
    a = session(core)
    xid = a.send(999, b"")
    (r,) = a.replies()
    assert (r.xid, r.err) == (xid, Err.UNIMPLEMENTED)


def test_unknown_opcode_keeps_the_connection_usable(core):
    # Deliberately kinder than ZooKeeper (which closes): the issue asks for a usable connection.
    a = session(core)
    a.send(999, b"")
    assert a.replies()[0].err == Err.UNIMPLEMENTED
    assert not a.closed
    a.send(OpCode.EXISTS, Writer().ustring("/").bool(False).bytes())
    assert a.replies()[0].err == Err.OK


def test_top_level_check_is_unimplemented(core):
    a = session(core)
    a.send(OpCode.CHECK, Writer().ustring("/").int(-1).bytes())
    (r,) = a.replies()
    assert r.err == Err.UNIMPLEMENTED


def test_malformed_read_is_marshalling_error(core):
    a = session(core)
    a.send(OpCode.GET_DATA, b"\x00\x00\x00\x09/x")
    (r,) = a.replies()
    assert r.err == Err.MARSHALLINGERROR


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x00\x00\x01", b"\x00\x00\x00\x01\x00\x00\x00"])
def test_frame_shorter_than_a_request_header_closes(core, payload):
    a = session(core)
    a.raw(payload)
    assert a.closed
    assert a.frames() == []


# --- watches --------------------------------------------------------------------------------------


def test_notification_precedes_the_write_reply(core):
    a = session(core)
    write(a, OpCode.CREATE, create_body("/w", b"1"))
    a.send(OpCode.GET_DATA, path_watch_body("/w", watch=True))
    a.replies()
    xid = a.send(OpCode.SET_DATA, set_data_body("/w", b"2"))
    commit(core)
    n, r = a.replies()
    assert n.xid == -1 and n.err == 0
    assert notification(n) == (EventType.NODE_DATA_CHANGED, 3, "/w")
    assert n.zxid in (-1, r.zxid)  # 3.8 sends -1, 3.9 the txn's zxid
    assert r.xid == xid


def test_watch_fires_once_and_goes_to_other_sessions(core):
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/w"))
    b.send(OpCode.GET_DATA, path_watch_body("/w", watch=True))
    b.replies()
    write(a, OpCode.SET_DATA, set_data_body("/w", b"x"))
    (n,) = b.replies()
    assert notification(n) == (EventType.NODE_DATA_CHANGED, 3, "/w")
    write(a, OpCode.SET_DATA, set_data_body("/w", b"y"))
    assert b.replies() == []


def test_exists_watch_on_missing_node_fires_on_create(core):
    a, b = session(core), session(core)
    b.send(OpCode.EXISTS, path_watch_body("/later", watch=True))
    (r,) = b.replies()
    assert r.err == Err.NONODE
    write(a, OpCode.CREATE, create_body("/later"))
    (n,) = b.replies()
    assert notification(n) == (EventType.NODE_CREATED, 3, "/later")


def test_get_data_on_missing_node_sets_no_watch(core):
    a, b = session(core), session(core)
    b.send(OpCode.GET_DATA, path_watch_body("/later", watch=True))
    b.replies()
    write(a, OpCode.CREATE, create_body("/later"))
    assert b.replies() == []


def test_child_watch_and_delete(core):
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/p"))
    write(a, OpCode.CREATE, create_body("/p/c"))
    b.send(OpCode.GET_CHILDREN, path_watch_body("/p", watch=True))
    b.send(OpCode.GET_DATA, path_watch_body("/p/c", watch=True))
    b.send(OpCode.GET_CHILDREN, path_watch_body("/p/c", watch=True))
    b.replies()
    write(a, OpCode.DELETE, delete_body("/p/c"))
    events = [notification(n) for n in b.replies()]
    assert sorted(events) == sorted(
        [(EventType.NODE_DELETED, 3, "/p/c"), (EventType.NODE_CHILDREN_CHANGED, 3, "/p")]
    )


def test_notification_needs_read_permission(core):
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/w"))
    b.send(OpCode.GET_DATA, path_watch_body("/w", watch=True))
    b.replies()
    # WRITE|ADMIN for everyone, but no READ: the change happens, the watcher may not see it
    r = write(a, OpCode.SET_ACL, Writer().ustring("/w").int(1).int(18).ustring("world").ustring("anyone").int(-1).bytes())
    assert r.err == 0
    assert write(a, OpCode.SET_DATA, set_data_body("/w", b"secret")).err == 0
    assert b.replies() == []
    assert not core.watches.data.has("/w", b.conn)  # consumed all the same


def test_add_watch_persistent_recursive(core):
    a, b = session(core), session(core)
    b.send(OpCode.ADD_WATCH, Writer().ustring("/r").int(1).bytes())
    (r,) = b.replies()
    assert (r.err, r.body) == (0, b"\x00\x00\x00\x00")  # ErrorResponse{err=0}
    write(a, OpCode.CREATE, create_body("/r"))
    write(a, OpCode.CREATE, create_body("/r/a"))
    write(a, OpCode.SET_DATA, set_data_body("/r/a", b"x"))
    events = [notification(n)[::2] for n in b.replies()]
    assert events == [
        (EventType.NODE_CREATED, "/r"),
        (EventType.NODE_CREATED, "/r/a"),
        (EventType.NODE_DATA_CHANGED, "/r/a"),
    ]


# --- multi ------------------------------------------------------------------------------------------


def parse_multi(body: bytes) -> list[tuple[int, int, bytes]]:
    """(type, err, raw rest) per result, stopping at the end marker; bodies are parsed by callers."""
    r = Reader(body)
    out = []
    while True:
        typ, done, err = r.int(), r.bool(), r.int()
        if done:
            assert (typ, err) == (-1, -1)
            assert r.remaining() == 0
            return out
        if typ == OpCode.CREATE:
            out.append((typ, err, r.ustring()))
        elif typ == OpCode.CREATE2:
            path = r.ustring()
            stat = STAT.unpack_from(r.buf, r.pos)
            r.pos += STAT.size
            out.append((typ, err, (path, stat)))
        elif typ == OpCode.SET_DATA:
            stat = STAT.unpack_from(r.buf, r.pos)
            r.pos += STAT.size
            out.append((typ, err, stat))
        elif typ in (OpCode.DELETE, OpCode.CHECK):
            out.append((typ, err, None))
        elif typ == OpCode.ERROR:
            out.append((typ, err, r.int()))
        else:
            raise AssertionError(f"result type {typ} is not a valid MultiResponse type")


def test_multi_success(core):
    a = session(core)
    body = multi_body(
        [
            (OpCode.CREATE, create_body("/m")),
            (OpCode.CREATE2, create_body("/m/c")),
            (OpCode.SET_DATA, set_data_body("/m", b"v")),
            (OpCode.CHECK, Writer().ustring("/m").int(1).bytes()),
            (OpCode.DELETE, delete_body("/m/c")),
        ]
    )
    r = write(a, OpCode.MULTI, body)
    assert r.err == 0
    results = parse_multi(r.body)
    assert [(t, e) for t, e, _ in results] == [(1, 0), (15, 0), (5, 0), (13, 0), (2, 0)]
    assert results[0][2] == "/m"
    assert results[1][2][0] == "/m/c"
    assert results[2][2][4] == 1  # version after setData


def test_failed_multi_header_err_is_zero(core):
    a = session(core)
    body = multi_body(
        [
            (OpCode.CREATE, create_body("/ok")),
            (OpCode.DELETE, delete_body("/missing")),
            (OpCode.CREATE, create_body("/later")),
        ]
    )
    r = write(a, OpCode.MULTI, body)
    assert r.err == 0
    assert parse_multi(r.body) == [(-1, 0, 0), (-1, Err.NONODE, Err.NONODE), (-1, -2, -2)]
    assert "/ok" not in core.tree.nodes


def test_multi_create_container_result_is_create2_type(core):
    # FinalRequestProcessor builds CreateResult(path, stat) for create2, createTTL and
    # createContainer; its type is create2 (15). The Java client's MultiResponse only knows
    # types 1, 15, 2, 5, 13, 8, 4 and -1, so any other type breaks its deserialisation.
    a = session(core)
    r = write(a, OpCode.MULTI, multi_body([(OpCode.CREATE_CONTAINER, create_body("/mc", flags=4))]))
    results = parse_multi(r.body)
    assert results[0][0] == OpCode.CREATE2
    assert results[0][2][0] == "/mc"
    assert "/mc" in core.tree.containers


def test_multi_read(core):
    a = session(core)
    write(a, OpCode.CREATE, create_body("/d", b"val"))
    body = multi_body([(OpCode.GET_DATA, path_watch_body("/d")), (OpCode.GET_CHILDREN, path_watch_body("/missing"))])
    a.send(OpCode.MULTI_READ, body)
    (r,) = a.replies()
    assert r.err == 0
    rd = Reader(r.body)
    assert (rd.int(), rd.bool(), rd.int()) == (OpCode.GET_DATA, False, 0)
    assert rd.buffer() == b"val"
    rd.pos += STAT.size
    assert (rd.int(), rd.bool(), rd.int()) == (-1, False, Err.NONODE)
    assert rd.int() == Err.NONODE
    assert (rd.int(), rd.bool(), rd.int()) == (-1, True, -1)


@pytest.mark.parametrize(
    "sub",
    [
        (OpCode.CREATE, create_body("/d/x")),  # parent exists, node does not
        (OpCode.CREATE, create_body("/d")),  # the node exists
        (OpCode.DELETE, delete_body("/d")),
        (OpCode.SET_DATA, set_data_body("/d", b"x")),
        (OpCode.CHECK, Writer().ustring("/d").int(0).bytes()),
    ],
)
def test_multi_read_with_a_write_op_is_rejected(core, sub):
    # multiRead only allows getChildren/getData; FinalRequestProcessor throws IOException
    # ("Invalid type of readOp") for anything else, answered as MARSHALLINGERROR.
    a = session(core)
    write(a, OpCode.CREATE, create_body("/d"))
    a.send(OpCode.MULTI_READ, multi_body([sub]))
    (r,) = a.replies()
    assert r.err == Err.MARSHALLINGERROR
    assert "/d/x" not in core.tree.nodes


def test_bad_multi_read_queued_behind_a_write_does_not_break_the_batch(core):
    # "Bad input to the server gets a ZooKeeper error code or a closed connection, never a crash."
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/d"))
    a.send(OpCode.SET_DATA, set_data_body("/d", b"1"))
    a.send(OpCode.MULTI_READ, multi_body([(OpCode.SET_DATA, set_data_body("/d", b"x"))]))  # waits for the write
    b.send(OpCode.CREATE, create_body("/b"))  # same log batch, after a's write
    commit(core)  # must not raise
    assert "/b" in core.tree.nodes
    assert [r.err for r in b.replies()] == [0]
    assert core.tree.get("/d").data == b"1"


# --- closing and expiry -------------------------------------------------------------------------


def test_close_session_replies_then_closes(core):
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/eph", flags=1))
    b.send(OpCode.EXISTS, path_watch_body("/eph", watch=True))
    b.replies()
    xid = a.send(OpCode.CLOSE_SESSION)
    assert not a.closed
    commit(core)
    (r,) = a.replies()
    assert (r.xid, r.err, r.body) == (xid, 0, b"")
    assert r.zxid == core.tree.last_zxid
    assert a.closed
    assert "/eph" not in core.tree.nodes
    assert a.session_id not in core.tree.sessions
    (n,) = b.replies()
    assert notification(n) == (EventType.NODE_DELETED, 3, "/eph")


def test_nothing_is_sent_after_the_close_session_reply(core):
    a = session(core)
    xid = a.send(OpCode.CLOSE_SESSION)
    a.send(OpCode.EXISTS, path_watch_body("/"))  # pipelined behind the close
    commit(core)
    assert [r.xid for r in a.replies()] == [xid]
    assert a.closed


def test_write_after_pending_close_is_session_expired(core):
    a = session(core)
    a.send(OpCode.CLOSE_SESSION)
    a.send(OpCode.CREATE, create_body("/late", flags=1))
    commit(core)
    assert "/late" not in core.tree.nodes


def test_session_expiry_via_tick(core):
    a = session(core, timeout=4000, now=0)  # deadline (0 + 4000) / 2000 * 2000 + 2000 = 6000
    b = session(core, timeout=40000, now=0)
    write(a, OpCode.CREATE, create_body("/eph", flags=1))
    b.send(OpCode.EXISTS, path_watch_body("/eph", watch=True))
    b.send(OpCode.GET_CHILDREN, path_watch_body("/", watch=True))
    b.replies()
    core.tick(5999, WALL + 5999)
    assert core.take_log() == []
    core.tick(6000, WALL + 6000)
    assert commit(core) == 1
    assert "/eph" not in core.tree.nodes
    assert a.session_id not in core.tree.sessions
    assert a.closed
    assert a.frames() == []  # expiry closes without a reply
    events = sorted(notification(n)[::2] for n in b.replies())
    assert events == [(EventType.NODE_DELETED, "/eph"), (EventType.NODE_CHILDREN_CHANGED, "/")]
    # the expired session cannot come back
    c = Client(core)
    c.connect(session_id=a.session_id, passwd=session_password(a.session_id), now=6001)
    assert ConnectResponse(c.frames()[0]).timeout == 0


def test_any_packet_keeps_the_session_alive(core):
    a = session(core, timeout=4000, now=0)
    a.send(OpCode.PING, xid=-2, now=3000)  # deadline -> (3000+4000)/2000*2000+2000 = 8000
    core.tick(6000, WALL + 6000)
    assert core.take_log() == []
    a.send(OpCode.EXISTS, path_watch_body("/"), now=7000)  # -> (7000+4000)/2000*2000+2000 = 12000
    core.tick(8000, WALL + 8000)
    core.tick(11999, WALL + 11999)
    assert core.take_log() == []
    core.tick(12000, WALL + 12000)
    assert commit(core) == 1
    assert a.closed


def test_container_removed_after_last_child_goes():
    core = make_core(container_check_interval_ms=1000)
    a = session(core)
    r = write(a, OpCode.CREATE_CONTAINER, create_body("/c", flags=4))
    assert r.err == 0
    write(a, OpCode.CREATE_CONTAINER, create_body("/never_used", flags=4))
    write(a, OpCode.CREATE, create_body("/c/child"))
    write(a, OpCode.DELETE, delete_body("/c/child"))
    core.tick(999, WALL + 999)
    assert core.take_log() == []
    core.tick(1000, WALL + 1000)
    assert commit(core) == 1
    assert "/c" not in core.tree.nodes
    assert "/never_used" in core.tree.nodes  # cversion 0: never had a child
    assert core.tree.containers == {"/never_used"}


def test_container_with_child_is_kept():
    core = make_core(container_check_interval_ms=1000)
    a = session(core)
    write(a, OpCode.CREATE_CONTAINER, create_body("/c", flags=4))
    write(a, OpCode.CREATE, create_body("/c/child"))
    core.tick(1000, WALL + 1000)
    assert core.take_log() == []


def test_expired_ttl_node_removed():
    core = make_core(container_check_interval_ms=1000, extended_types=True)
    a = session(core)
    r = write(a, OpCode.CREATE_TTL, create_body("/t", flags=5, ttl=500))
    assert r.err == 0
    core.tick(1000, WALL + 100)  # mtime is WALL + 0: not yet 500 ms old
    assert core.take_log() == []
    core.tick(2000, WALL + 2000)
    assert commit(core) == 1
    assert "/t" not in core.tree.nodes


def test_connection_lost_drops_its_watches(core):
    a, b = session(core), session(core)
    write(a, OpCode.CREATE, create_body("/w"))
    b.send(OpCode.GET_DATA, path_watch_body("/w", watch=True))
    b.replies()
    core.connection_lost(b.conn)
    assert core.watches.count() == 0
    write(a, OpCode.SET_DATA, set_data_body("/w", b"x"))
    assert b.frames() == []


def test_read_on_a_closing_session_is_session_expired(core):
    # PrepRequestProcessor runs checkSession for reads too: once expiry has marked the session
    # closing, its requests fail with SESSIONEXPIRED until the close commits.
    a = session(core, timeout=4000, now=0)
    core.tick(6000, WALL + 6000)  # expired: closeSession submitted, not yet committed
    a.send(OpCode.EXISTS, path_watch_body("/"), now=6000)
    replies = a.replies()
    assert [r.err for r in replies] in ([], [Err.SESSIONEXPIRED])
    commit(core)
    assert a.closed


def test_max_client_cnxns_per_host():
    core = make_core(max_client_cnxns=2)
    Client(core, "10.0.0.1")
    Client(core, "10.0.0.1")
    third = Conn("10.0.0.1", 1)
    assert core.connection_made(third) is False
    assert core.connection_made(Conn("10.0.0.2", 1)) is True


def test_failed_container_delete_is_tried_again():
    """A sweep's deleteContainer can fail (a child was prepped meanwhile): its error txn names
    no path, yet the container must be swept again once it is empty."""
    from tests.unit.helpers import delete_body

    core = make_core(container_check_interval_ms=1000)
    a = session(core)
    write(a, OpCode.CREATE_CONTAINER, create_body("/c", flags=4))
    write(a, OpCode.CREATE, create_body("/c/x"))
    write(a, OpCode.DELETE, delete_body("/c/x"))
    a.send(OpCode.CREATE, create_body("/c/y"))  # prepped, not applied: the sweep's delete fails
    core.tick(1000, WALL + 1000)
    commit(core)
    a.replies()
    assert "/c" in core.tree.nodes
    write(a, OpCode.DELETE, delete_body("/c/y"))
    for t in range(2000, 5001, 1000):
        core.tick(t, WALL + t)
        commit(core)
    assert "/c" not in core.tree.nodes
