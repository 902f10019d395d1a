"""Reads answered from the replica (FinalRequestProcessor semantics): ACL checks, watch
registration, getACL masking, exists with NONODE, setWatches replay, whoAmI, getEphemerals."""

from __future__ import annotations

import struct

import pytest

from zkserver.acl import SUPER, Id, digest_id
from zkserver.connection import Conn
from zkserver.protocol.constants import Err, EventType, OpCode
from zkserver.protocol.jute import Reader, Writer
from zkserver.protocol.records import ACL, STAT
from zkserver.reads import ReadContext, serve_read
from zkserver.tree.datatree import DataTree
from zkserver.watches import WatchManager

from .helpers import TxnMaker, path_body, path_watch_body

SID = 0x42
ALICE = Id("digest", digest_id("alice:pw"))


def build():
    tree = DataTree()
    mk = TxnMaker(session_id=SID)
    for hd, txn in (
        mk.create("/a", b"A"),
        mk.create("/a/b"),
        mk.create("/a/b/c"),
        mk.create("/secret", b"s", acl=(ACL(31, "digest", ALICE.id),)),
        mk.create("/adminless", b"", acl=(ACL(1, "digest", ALICE.id), ACL(1, "world", "anyone"))),
        mk.create("/e1", owner=SID),
        mk.create("/a/e2", owner=SID),
        mk.create("/other", owner=0x99),
    ):
        tree.apply(hd, txn, [])
    return tree


class Env:
    def __init__(self) -> None:
        self.tree = build()
        self.watches = WatchManager()
        self.conn = Conn("10.0.0.5", 1234)
        self.conn.session_id = SID

    def read(self, op, body, xid=7):
        frame = struct.pack(">ii", xid, op) + body
        ctx = ReadContext(self.tree, self.watches, self.conn)
        out = serve_read(ctx, xid, op, frame, self.tree.last_zxid, 0xFFFFF)
        frames, pos = [], 0
        while pos < len(out):
            (n,) = struct.unpack_from(">i", out, pos)
            payload = out[pos + 4 : pos + 4 + n]
            xid_, zxid, err = struct.unpack_from(">iqi", payload)
            frames.append((xid_, zxid, err, payload[16:]))
            pos += 4 + n
        return frames


@pytest.fixture
def env():
    return Env()


def one(frames):
    assert len(frames) == 1
    return frames[0]


def test_get_data(env):
    xid, zxid, err, body = one(env.read(OpCode.GET_DATA, path_watch_body("/a")))
    assert (xid, zxid, err) == (7, env.tree.last_zxid, 0)
    r = Reader(body)
    assert r.buffer() == b"A"
    stat = STAT.unpack_from(body, r.pos)
    assert stat == env.tree.get("/a").stat()
    assert len(body) == 4 + 1 + 68


def test_get_data_missing_and_noauth(env):
    assert one(env.read(OpCode.GET_DATA, path_watch_body("/nope", True)))[2] == Err.NONODE
    assert one(env.read(OpCode.GET_DATA, path_watch_body("/secret", True)))[2] == Err.NOAUTH
    assert env.watches.count() == 0  # neither registered a watch
    env.conn.add_ids([ALICE])
    assert one(env.read(OpCode.GET_DATA, path_watch_body("/secret")))[2] == 0


def test_exists_missing_registers_watch(env):
    assert one(env.read(OpCode.EXISTS, path_watch_body("/later", True)))[2] == Err.NONODE
    assert env.watches.data.has("/later", env.conn)


def test_exists_with_nul_is_bad_arguments(env):
    assert one(env.read(OpCode.EXISTS, path_watch_body("/a\0", True)))[2] == Err.BADARGUMENTS


def test_exists_has_no_read_check(env):
    # ZooKeeper's exists checks no ACL (its code says the requirement is still to be decided).
    assert one(env.read(OpCode.EXISTS, path_watch_body("/secret")))[2] == Err.OK


def test_get_children_and_children2(env):
    _, _, err, body = one(env.read(OpCode.GET_CHILDREN, path_watch_body("/a", True)))
    assert err == 0
    assert sorted(Reader(body).vector(Reader.ustring)) == ["b", "e2"]
    assert env.watches.child.has("/a", env.conn)
    _, _, err, body = one(env.read(OpCode.GET_CHILDREN2, path_watch_body("/a")))
    r = Reader(body)
    assert sorted(r.vector(Reader.ustring)) == ["b", "e2"]
    assert STAT.unpack_from(body, r.pos) == env.tree.get("/a").stat()


def test_get_acl_masks_digest_without_admin(env):
    _, _, err, body = one(env.read(OpCode.GET_ACL, path_body("/adminless")))
    assert err == 0
    r = Reader(body)
    acls = r.vector(lambda rr: (rr.int(), rr.ustring(), rr.ustring()))
    assert acls == [(1, "digest", "alice:x"), (1, "world", "anyone")]


def test_get_acl_full_with_admin(env):
    env.conn.add_ids([ALICE])
    _, _, err, body = one(env.read(OpCode.GET_ACL, path_body("/secret")))
    acls = Reader(body).vector(lambda rr: (rr.int(), rr.ustring(), rr.ustring()))
    assert acls == [(31, "digest", ALICE.id)]


def test_get_acl_needs_read_or_admin(env):
    assert one(env.read(OpCode.GET_ACL, path_body("/secret")))[2] == Err.NOAUTH
    env.conn.add_ids([SUPER])
    assert one(env.read(OpCode.GET_ACL, path_body("/secret")))[2] == 0


def test_get_all_children_number(env):
    _, _, err, body = one(env.read(OpCode.GET_ALL_CHILDREN_NUMBER, path_body("/a")))
    assert struct.unpack(">i", body) == (3,)  # b, b/c, e2
    _, _, _, body = one(env.read(OpCode.GET_ALL_CHILDREN_NUMBER, path_body("/")))
    assert struct.unpack(">i", body) == (len(env.tree.nodes) - 1,)


@pytest.mark.parametrize("prefix, expected", [("/", ["/a/e2", "/e1"]), ("", ["/a/e2", "/e1"]), ("/a", ["/a/e2"]), ("/e", ["/e1"])])
def test_get_ephemerals(env, prefix, expected):
    _, _, err, body = one(env.read(OpCode.GET_EPHEMERALS, path_body(prefix)))
    assert err == 0
    assert sorted(Reader(body).vector(Reader.ustring)) == expected


def test_who_am_i(env):
    env.conn.add_ids([ALICE])
    _, _, err, body = one(env.read(OpCode.WHO_AM_I, b""))
    infos = Reader(body).vector(lambda r: (r.ustring(), r.ustring()))
    assert infos == [("ip", "10.0.0.5"), ("digest", "alice")]


def test_check_and_remove_watches(env):
    assert one(env.read(OpCode.CHECK_WATCHES, Writer().ustring("/a").int(3).bytes()))[2] == Err.NOWATCHER
    env.read(OpCode.GET_DATA, path_watch_body("/a", True))
    assert one(env.read(OpCode.CHECK_WATCHES, Writer().ustring("/a").int(2).bytes()))[2] == 0
    assert one(env.read(OpCode.CHECK_WATCHES, Writer().ustring("/a").int(1).bytes()))[2] == Err.NOWATCHER
    assert one(env.read(OpCode.REMOVE_WATCHES, Writer().ustring("/a").int(3).bytes()))[2] == 0
    assert env.watches.count() == 0


def test_set_watches_replays_missed_events(env):
    a = env.tree.get("/a")
    rel = a.mzxid  # the client saw /a as it is now
    body = (
        Writer()
        .long(rel)
        .strings(["/a", "/gone", "/a/b/c"])  # data watches
        .strings(["/e1", "/notyet"])  # exist watches
        .strings(["/a", "/gone2"])  # child watches
        .bytes()
    )
    frames = env.read(OpCode.SET_WATCHES, body, xid=-8)
    *events, reply = frames
    assert reply[:3] == (-8, env.tree.last_zxid, 0) and reply[3] == b""
    got = set()
    for xid, zxid, err, b in events:
        assert (xid, zxid, err) == (-1, -1, 0)
        r = Reader(b)
        got.add((r.int(), r.int(), r.ustring()))
    assert got == {
        (EventType.NODE_DELETED, 3, "/gone"),
        (EventType.NODE_DATA_CHANGED, 3, "/a/b/c"),  # created after rel
        (EventType.NODE_CREATED, 3, "/e1"),
        (EventType.NODE_CHILDREN_CHANGED, 3, "/a"),  # children changed after rel
        (EventType.NODE_DELETED, 3, "/gone2"),
    }
    assert env.watches.data.has("/a", env.conn)
    assert env.watches.data.has("/notyet", env.conn)


def test_multi_read_is_not_atomic(env):
    from .helpers import multi_body

    body = multi_body([(OpCode.GET_DATA, path_watch_body("/secret")), (OpCode.GET_DATA, path_watch_body("/a"))])
    _, _, err, b = one(env.read(OpCode.MULTI_READ, body))
    assert err == 0
    r = Reader(b)
    assert (r.int(), r.bool(), r.int(), r.int()) == (-1, False, Err.NOAUTH, Err.NOAUTH)
    assert (r.int(), r.bool(), r.int()) == (OpCode.GET_DATA, False, 0)
    assert r.buffer() == b"A"
