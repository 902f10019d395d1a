"""Prep: validation order per opcode (PrepRequestProcessor), zxids for failed writes, pipelined
requests against outstanding changes, multi rollback, session closing, TTL/container flags."""

from __future__ import annotations

import pytest

from zkserver.acl import Id, SUPER, digest_id
from zkserver.prep import Preparer, Request, close_session_request, create_session_request
from zkserver.protocol.constants import Err, OpCode
from zkserver.protocol.records import ACL
from zkserver.sessions import SessionTracker
from zkserver.tree.datatree import DataTree
from zkserver.tree.node import CONTAINER_OWNER, MAX_TTL, ttl_owner
from zkserver.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
)

from .helpers import (
    OPEN,
    check_body,
    create_body,
    delete_body,
    multi_body,
    set_acl_body,
    set_data_body,
)

SID = 0x5000
OTHER = 0x6000
ALICE = Id("digest", digest_id("alice:pw"))
BOB = Id("digest", digest_id("bob:pw"))
IP = Id("ip", "127.0.0.1")
ALICE_ONLY = [ACL(31, "digest", ALICE.id)]


class Env:
    def __init__(self, extended_types: bool = False) -> None:
        self.tree = DataTree()
        self.tracker = SessionTracker(2000, 0, 0, 1_700_000_000_000)
        self.tracker.add(SID, 10000, 0)
        self.tracker.add(OTHER, 10000, 0)
        self.p = Preparer(self.tree, self.tracker, extended_types=extended_types)
        self.cxid = 0

    def prep(self, op, body=b"", sid=SID, ids=(IP,)):
        self.cxid += 1
        return self.p.prep(Request(sid, self.cxid, op, body, tuple(ids)), 0, 1_700_000_000_000 + self.cxid)

    def commit(self, hdr, txn):
        self.tree.apply(hdr, txn, [])
        self.p.applied(hdr.zxid)

    def do(self, op, body=b"", sid=SID, ids=(IP,)):
        """prep + commit; returns the txn."""
        hdr, txn = self.prep(op, body, sid, ids)
        self.commit(hdr, txn)
        return txn

    def err(self, op, body=b"", sid=SID, ids=(IP,)):
        """prep only; returns the error code (0 if it produced a real txn)."""
        _, txn = self.prep(op, body, sid, ids)
        return txn.err if isinstance(txn, ErrorTxn) else 0

    def create(self, path, data=b"", acl=OPEN, flags=0, sid=SID, ids=(IP,)):
        txn = self.do(OpCode.CREATE, create_body(path, data, acl, flags), sid, ids)
        assert isinstance(txn, CreateTxn), txn
        return txn


@pytest.fixture
def env():
    return Env()


# --- create -------------------------------------------------------------------------------------


def test_create_builds_txn(env):
    hdr, txn = env.prep(OpCode.CREATE, create_body("/a", b"d"))
    assert hdr.zxid == 1 and hdr.session_id == SID and hdr.type == OpCode.CREATE
    assert txn == CreateTxn("/a", b"d", tuple(OPEN), 0, 1)


@pytest.mark.parametrize("flags", [-1, 7, 8, 100])
def test_create_bad_flags_first(env, flags):
    # invalid flags win over an invalid path, an empty ACL and a missing parent
    assert env.err(OpCode.CREATE, create_body("nope/x", b"", [], flags)) == Err.BADARGUMENTS
    assert env.err(OpCode.CREATE, create_body("/missing/x", b"", [], flags)) == Err.BADARGUMENTS


def test_create_path_without_slash_before_acl(env):
    assert env.err(OpCode.CREATE, create_body("abc", b"", [])) == Err.BADARGUMENTS


def test_create_path_with_nul_before_acl(env):
    assert env.err(OpCode.CREATE, create_body("/a\0b", b"", [])) == Err.BADARGUMENTS


def test_create_invalid_acl_before_missing_parent(env):
    assert env.err(OpCode.CREATE, create_body("/missing/x", b"", [])) == Err.INVALIDACL
    assert env.err(OpCode.CREATE, create_body("/missing/x", b"", [ACL(31, "auth", "")])) == Err.INVALIDACL


def test_create_missing_parent(env):
    assert env.err(OpCode.CREATE, create_body("/missing/x")) == Err.NONODE


def test_create_noauth_before_path_validation(env):
    env.create("/locked", acl=[ACL(31 & ~4, "world", "anyone")])  # no CREATE for anyone
    assert env.err(OpCode.CREATE, create_body("/locked/.")) == Err.NOAUTH
    assert env.err(OpCode.CREATE, create_body("/locked/ok")) == Err.NOAUTH


def test_create_path_validated_after_parent_checks(env):
    env.create("/a")
    assert env.err(OpCode.CREATE, create_body("/a/.")) == Err.BADARGUMENTS
    assert env.err(OpCode.CREATE, create_body("/a/")) == Err.BADARGUMENTS
    assert env.err(OpCode.CREATE, create_body("//")) == Err.BADARGUMENTS
    assert env.err(OpCode.CREATE, create_body("/a/b\x1e")) == Err.BADARGUMENTS


def test_create_existing(env):
    env.create("/a")
    assert env.err(OpCode.CREATE, create_body("/a")) == Err.NODEEXISTS
    assert env.err(OpCode.CREATE, create_body("/zookeeper")) == Err.NODEEXISTS


def test_create_under_ephemeral(env):
    env.create("/e", flags=1)
    assert env.err(OpCode.CREATE, create_body("/e/child")) == Err.NOCHILDRENFOREPHEMERALS


def test_create_ephemeral_owner_is_session(env):
    assert env.create("/e", flags=1).owner == SID
    assert env.create("/es", flags=3).owner == SID
    assert env.create("/p", flags=0).owner == 0


def test_sequential_suffix_uses_internal_parent_cversion(env):
    env.create("/folder")
    assert env.create("/folder/a", flags=2).path == "/folder/a0000000000"
    assert env.create("/folder/a", flags=2).path == "/folder/a0000000001"
    assert env.create("/folder/", flags=2).path == "/folder/0000000002"
    env.do(OpCode.DELETE, delete_body("/folder/a0000000000"))
    # a delete does not move the internal cversion
    assert env.create("/folder/b", flags=3).path == "/folder/b0000000003"


def test_create_auth_acl_expands_to_digest_ids(env):
    txn = env.create("/mine", acl=[ACL(31, "auth", "")], ids=(IP, ALICE))
    assert txn.acl == (ACL(31, "digest", ALICE.id),)


def test_create_acl_dedup(env):
    txn = env.create("/d", acl=[ACL(31, "world", "anyone"), ACL(31, "world", "anyone")])
    assert txn.acl == (ACL(31, "world", "anyone"),)


def test_create_with_digest_parent_acl(env):
    env.create("/alice", acl=ALICE_ONLY, ids=(IP, ALICE))
    assert env.err(OpCode.CREATE, create_body("/alice/x"), ids=(IP, BOB)) == Err.NOAUTH
    assert env.err(OpCode.CREATE, create_body("/alice/x"), ids=(IP, ALICE)) == 0
    assert env.err(OpCode.CREATE, create_body("/alice/y"), ids=(IP, SUPER)) == 0


# --- TTL and containers -------------------------------------------------------------------------


def test_ttl_needs_extended_types(env):
    assert env.err(OpCode.CREATE_TTL, create_body("/t", flags=5, ttl=1000)) == Err.UNIMPLEMENTED
    assert env.err(OpCode.CREATE_TTL, create_body("/t", flags=6, ttl=1000)) == Err.UNIMPLEMENTED
    # checked before the ttl value and the ACL
    assert env.err(OpCode.CREATE_TTL, create_body("/t", acl=[], flags=5, ttl=0)) == Err.UNIMPLEMENTED


def test_ttl_create_with_extended_types():
    env = Env(extended_types=True)
    txn = env.do(OpCode.CREATE_TTL, create_body("/t", flags=5, ttl=60000))
    assert txn.owner == ttl_owner(60000)
    txn = env.do(OpCode.CREATE_TTL, create_body("/ts", flags=6, ttl=MAX_TTL))
    assert txn.path == "/ts0000000001" and txn.owner == ttl_owner(MAX_TTL)


@pytest.mark.parametrize("ttl", [0, -5, MAX_TTL + 1, 2**62])
def test_ttl_out_of_range_is_bad_arguments(ttl):
    env = Env(extended_types=True)
    assert env.err(OpCode.CREATE_TTL, create_body("/t", acl=[], flags=5, ttl=ttl)) == Err.BADARGUMENTS


def test_ttl_given_for_non_ttl_mode_is_bad_arguments():
    env = Env(extended_types=True)
    assert env.err(OpCode.CREATE_TTL, create_body("/t", flags=0, ttl=1000)) == Err.BADARGUMENTS


def test_container(env):
    txn = env.do(OpCode.CREATE_CONTAINER, create_body("/c", flags=4))
    assert txn.owner == CONTAINER_OWNER
    assert env.tree.containers == {"/c"}
    assert env.create("/c/child").path == "/c/child"  # a container may have children


# --- delete -------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "noslash", "/a\0"])
def test_delete_bad_arguments_before_anything(env, path):
    assert env.err(OpCode.DELETE, delete_body(path, 12345)) == Err.BADARGUMENTS


def test_delete_order(env):
    assert env.err(OpCode.DELETE, delete_body("/missing/x")) == Err.NONODE  # parent
    env.create("/nodel", acl=[ACL(31 & ~8, "world", "anyone")])  # no DELETE on it
    assert env.err(OpCode.DELETE, delete_body("/nodel/missing", 99)) == Err.NOAUTH  # before NONODE
    env.create("/p")
    assert env.err(OpCode.DELETE, delete_body("/p/missing", 99)) == Err.NONODE
    env.create("/p/full")
    env.create("/p/full/child")
    assert env.err(OpCode.DELETE, delete_body("/p/full", 3)) == Err.BADVERSION  # before NOTEMPTY
    assert env.err(OpCode.DELETE, delete_body("/p/full", -1)) == Err.NOTEMPTY
    assert env.err(OpCode.DELETE, delete_body("/p/full", 0)) == Err.NOTEMPTY
    assert isinstance(env.do(OpCode.DELETE, delete_body("/p/full/child", 0)), DeleteTxn)


def test_delete_checks_parent_acl_not_node_acl(env):
    env.create("/p")
    env.create("/p/locked", acl=[ACL(1, "world", "anyone")])  # read-only node, deletable parent
    assert env.err(OpCode.DELETE, delete_body("/p/locked")) == 0


# --- setData / setACL -------------------------------------------------------------------------


def test_set_data_order(env):
    assert env.err(OpCode.SET_DATA, set_data_body("/a/", b"")) == Err.BADARGUMENTS
    assert env.err(OpCode.SET_DATA, set_data_body("/missing", b"", 5)) == Err.NONODE
    env.create("/ro", acl=[ACL(1, "world", "anyone")])
    assert env.err(OpCode.SET_DATA, set_data_body("/ro", b"", 5)) == Err.NOAUTH  # before BADVERSION
    env.create("/a")
    assert env.err(OpCode.SET_DATA, set_data_body("/a", b"", 1)) == Err.BADVERSION


def test_set_data_versions(env):
    env.create("/a")
    assert env.do(OpCode.SET_DATA, set_data_body("/a", b"x", 0)) == SetDataTxn("/a", b"x", 1)
    assert env.do(OpCode.SET_DATA, set_data_body("/a", b"y", -1)) == SetDataTxn("/a", b"y", 2)
    assert env.err(OpCode.SET_DATA, set_data_body("/a", b"z", 1)) == Err.BADVERSION


def test_set_acl_order(env):
    assert env.err(OpCode.SET_ACL, set_acl_body("/a/", OPEN)) == Err.BADARGUMENTS
    assert env.err(OpCode.SET_ACL, set_acl_body("/missing", [])) == Err.INVALIDACL  # before NONODE
    assert env.err(OpCode.SET_ACL, set_acl_body("/missing", OPEN)) == Err.NONODE
    env.create("/noadmin", acl=[ACL(15, "world", "anyone")])
    assert env.err(OpCode.SET_ACL, set_acl_body("/noadmin", OPEN, 9)) == Err.NOAUTH  # before BADVERSION


def test_set_acl_version_is_checked_against_aversion(env):
    env.create("/a")
    env.do(OpCode.SET_DATA, set_data_body("/a", b"1"))
    env.do(OpCode.SET_DATA, set_data_body("/a", b"2"))  # version 2, aversion 0
    assert env.err(OpCode.SET_ACL, set_acl_body("/a", OPEN, 2)) == Err.BADVERSION
    txn = env.do(OpCode.SET_ACL, set_acl_body("/a", [ACL(1, "world", "anyone")], 0))
    assert txn == SetACLTxn("/a", (ACL(1, "world", "anyone"),), 1)


# --- zxids ------------------------------------------------------------------------------------


def test_failed_writes_consume_a_zxid(env):
    h1, t1 = env.prep(OpCode.DELETE, delete_body("/missing"))
    h2, t2 = env.prep(OpCode.CREATE, create_body("/a"))
    h3, t3 = env.prep(OpCode.SET_DATA, set_data_body("/a", b"", 7))
    assert (h1.zxid, h2.zxid, h3.zxid) == (1, 2, 3)
    assert t1 == ErrorTxn(Err.NONODE)
    assert isinstance(t2, CreateTxn)
    assert t3 == ErrorTxn(Err.BADVERSION)
    assert h1.type == OpCode.DELETE  # the header keeps the request's opcode


def test_zxids_continue_from_tree():
    env = Env()
    env.tree.last_zxid = 0x500000007
    p = Preparer(env.tree, env.tracker)
    hdr, _ = p.prep(Request(SID, 1, OpCode.CREATE, create_body("/a")), 0, 0)
    assert hdr.zxid == 0x500000008


def test_unknown_session_is_session_expired(env):
    assert env.err(OpCode.CREATE, create_body("/a"), sid=0x999) == Err.SESSIONEXPIRED
    assert env.err(OpCode.SET_DATA, set_data_body("/", b""), sid=0x999) == Err.SESSIONEXPIRED


def test_top_level_check_is_unimplemented(env):
    assert env.err(OpCode.CHECK, check_body("/", -1)) == Err.UNIMPLEMENTED


def test_malformed_body_is_marshalling_error(env):
    assert env.err(OpCode.CREATE, b"\x00\x00") == Err.MARSHALLINGERROR


# --- pipelining against outstanding changes ---------------------------------------------------


def test_pipelined_create_same_path(env):
    _, t1 = env.prep(OpCode.CREATE, create_body("/a"))
    _, t2 = env.prep(OpCode.CREATE, create_body("/a"))
    assert isinstance(t1, CreateTxn)
    assert t2 == ErrorTxn(Err.NODEEXISTS)


def test_pipelined_child_of_pending_parent(env):
    _, t1 = env.prep(OpCode.CREATE, create_body("/p"))
    _, t2 = env.prep(OpCode.CREATE, create_body("/p/c"))
    assert isinstance(t2, CreateTxn) and t2.parent_cversion == 1


def test_pipelined_child_of_pending_ephemeral(env):
    env.prep(OpCode.CREATE, create_body("/e", flags=1))
    assert env.err(OpCode.CREATE, create_body("/e/c")) == Err.NOCHILDRENFOREPHEMERALS


def test_pipelined_sequential_numbering(env):
    env.create("/q")
    paths = []
    for _ in range(3):
        _, txn = env.prep(OpCode.CREATE, create_body("/q/n-", flags=2))
        paths.append(txn.path)
    assert paths == ["/q/n-0000000000", "/q/n-0000000001", "/q/n-0000000002"]


def test_pipelined_versions(env):
    env.create("/a")
    _, t1 = env.prep(OpCode.SET_DATA, set_data_body("/a", b"1", 0))
    _, t2 = env.prep(OpCode.SET_DATA, set_data_body("/a", b"2", 0))
    _, t3 = env.prep(OpCode.SET_DATA, set_data_body("/a", b"3", 1))
    assert t1 == SetDataTxn("/a", b"1", 1)
    assert t2 == ErrorTxn(Err.BADVERSION)
    assert t3 == SetDataTxn("/a", b"3", 2)


def test_pipelined_delete_then_create(env):
    env.create("/a")
    env.create("/p")
    env.create("/p/c")
    _, t1 = env.prep(OpCode.DELETE, delete_body("/a"))
    assert env.err(OpCode.SET_DATA, set_data_body("/a", b"")) == Err.NONODE
    assert env.err(OpCode.CREATE, create_body("/a")) == 0
    env.prep(OpCode.DELETE, delete_body("/p/c"))
    assert env.err(OpCode.DELETE, delete_body("/p")) == 0  # no longer has children


def test_pipelined_acl_change_applies_to_next_request(env):
    env.create("/a")
    env.prep(OpCode.SET_ACL, set_acl_body("/a", [ACL(1, "world", "anyone")]))
    assert env.err(OpCode.SET_DATA, set_data_body("/a", b"x")) == Err.NOAUTH


def test_pending_records_dropped_once_applied(env):
    h, t = env.prep(OpCode.CREATE, create_body("/a"))
    assert env.p.pending.by_path
    env.commit(h, t)
    assert not env.p.pending.by_path
    assert not env.p.pending.in_order


# --- multi ----------------------------------------------------------------------------------------


def test_multi_success_shares_one_zxid(env):
    body = multi_body(
        [
            (OpCode.CREATE, create_body("/m")),
            (OpCode.CREATE, create_body("/m/c")),
            (OpCode.SET_DATA, set_data_body("/m", b"v", 0)),
            (OpCode.CHECK, check_body("/m", 1)),
            (OpCode.DELETE, delete_body("/m/c", 0)),
        ]
    )
    hdr, txn = env.prep(OpCode.MULTI, body)
    assert hdr.zxid == 1
    assert isinstance(txn, MultiTxn)
    assert [op for op, _ in txn.ops] == [OpCode.CREATE, OpCode.CREATE, OpCode.SET_DATA, OpCode.CHECK, OpCode.DELETE]
    assert txn.ops[3][1] == CheckTxn("/m", 2)
    env.commit(hdr, txn)
    assert "/m" in env.tree.nodes and "/m/c" not in env.tree.nodes
    assert env.tree.get("/m").version == 1


def test_multi_rollback_results(env):
    env.create("/exists")
    body = multi_body(
        [
            (OpCode.CREATE, create_body("/new")),
            (OpCode.SET_DATA, set_data_body("/exists", b"x", 0)),
            (OpCode.DELETE, delete_body("/missing")),
            (OpCode.CREATE, create_body("/other")),
            (OpCode.CHECK, check_body("/exists", 0)),
        ]
    )
    hdr, txn = env.prep(OpCode.MULTI, body)
    assert txn == MultiTxn(
        (
            (OpCode.ERROR, ErrorTxn(0)),
            (OpCode.ERROR, ErrorTxn(0)),
            (OpCode.ERROR, ErrorTxn(Err.NONODE)),
            (OpCode.ERROR, ErrorTxn(Err.RUNTIMEINCONSISTENCY)),
            (OpCode.ERROR, ErrorTxn(Err.RUNTIMEINCONSISTENCY)),
        )
    )


def test_multi_rollback_restores_pending_records(env):
    env.create("/a")
    _, pending_write = env.prep(OpCode.SET_DATA, set_data_body("/a", b"1", 0))  # outstanding: version 1
    before = {p: (r.exists, r.version, r.cversion, r.child_count) for p, r in env.p.pending.by_path.items()}
    body = multi_body(
        [
            (OpCode.SET_DATA, set_data_body("/a", b"2", 1)),  # ok: version 2
            (OpCode.CREATE, create_body("/b")),
            (OpCode.CHECK, check_body("/a", 99)),  # fails
        ]
    )
    _, txn = env.prep(OpCode.MULTI, body)
    assert txn.ops[2] == (OpCode.ERROR, ErrorTxn(Err.BADVERSION))
    after = {p: (r.exists, r.version, r.cversion, r.child_count) for p, r in env.p.pending.by_path.items()}
    assert after == before
    # the rolled back ops left no trace
    assert env.err(OpCode.CREATE, create_body("/b")) == 0
    _, t = env.prep(OpCode.SET_DATA, set_data_body("/a", b"3", 1))
    assert t == SetDataTxn("/a", b"3", 2)


def test_multi_sub_ops_see_each_other(env):
    body = multi_body([(OpCode.CREATE, create_body("/x")), (OpCode.CREATE, create_body("/x"))])
    _, txn = env.prep(OpCode.MULTI, body)
    assert [t.err for _, t in txn.ops] == [0, Err.NODEEXISTS]


def test_multi_malformed_is_marshalling_error(env):
    body = multi_body([(OpCode.CREATE, create_body("/x")), (OpCode.GET_DATA, b"\x00\x00\x00\x02/x\x00")])
    hdr, txn = env.prep(OpCode.MULTI, body)
    assert txn == ErrorTxn(Err.MARSHALLINGERROR)


# --- sessions ---------------------------------------------------------------------------------


def test_create_session_txn_registers_session(env):
    hdr, txn = env.p.prep(create_session_request(0x777, 6000), 0, 0)
    assert txn == CreateSessionTxn(6000)
    assert hdr.type == OpCode.CREATE_SESSION
    assert env.tracker.is_alive(0x777)


def test_close_session_lists_committed_and_pending_ephemerals(env):
    env.create("/e1", flags=1)
    env.create("/p")
    env.create("/mine", sid=OTHER, flags=1)
    env.prep(OpCode.CREATE, create_body("/p/e2", flags=1))  # not applied yet
    hdr, txn = env.p.prep(close_session_request(SID, 42), 0, 0)
    # In the iteration order of ZooKeeper's HashSet clone (its watch events follow it).
    assert txn == CloseSessionTxn(("/p/e2", "/e1"))
    assert hdr.cxid == 42 and hdr.type == OpCode.CLOSE_SESSION


def test_close_session_marks_closing_before_commit(env):
    """ZOOKEEPER-1208: once closeSession is prepped, an ephemeral create queued behind it must
    fail, or the node would outlive its session."""
    env.p.prep(close_session_request(SID, 1), 0, 0)
    assert env.err(OpCode.CREATE, create_body("/late", flags=1)) == Err.SESSIONEXPIRED
    assert env.err(OpCode.CREATE, create_body("/late2")) == Err.SESSIONEXPIRED
    assert env.err(OpCode.SET_DATA, set_data_body("/", b"")) == Err.SESSIONEXPIRED
    assert env.err(OpCode.CREATE, create_body("/fine", flags=1), sid=OTHER) == 0


def test_pending_close_frees_the_ephemeral_paths(env):
    env.create("/lock", flags=1)
    env.p.prep(close_session_request(SID, 1), 0, 0)
    assert env.err(OpCode.CREATE, create_body("/lock", flags=1), sid=OTHER) == 0
