"""DataTree.apply: every txn type, Stat semantics, watch triggers, and convergence of replays."""

from __future__ import annotations

import random

import pytest

from zkserver.protocol.constants import Err, EventType, OpCode
from zkserver.protocol.records import ACL, OPEN_ACL_UNSAFE, READ_ACL_UNSAFE
from zkserver.storage.snapshot import build_tree
from zkserver.tree.datatree import DataTree, Trigger
from zkserver.tree.node import CONTAINER_OWNER, Node, ttl_owner
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
    TxnHeader,
)

from .helpers import clone, diff_states, random_history, tree_state

SID = 0x1234

# Stat field positions
CZXID, MZXID, CTIME, MTIME, VERSION, CVERSION, AVERSION, OWNER, DLEN, NCHILD, PZXID = range(11)


def apply(tree, hdr, txn):
    triggers: list[Trigger] = []
    result = tree.apply(hdr, txn, triggers)
    return result, [(t.event, t.path) for t in triggers]


def hdr(zxid, op=OpCode.CREATE, sid=SID, time_ms=None):
    return TxnHeader(sid, zxid, zxid, 1000 + zxid if time_ms is None else time_ms, op)


# --- the initial tree -----------------------------------------------------------------------


def test_initial_tree():
    t = DataTree()
    assert set(t.nodes) == {"/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"}
    assert t.get("/").children == {"zookeeper"}
    assert t.get("/zookeeper").children == {"quota", "config"}
    assert t.get("/zookeeper/config").acl == READ_ACL_UNSAFE
    assert t.get("/zookeeper/config").data == b""
    assert t.get("/").acl == OPEN_ACL_UNSAFE
    assert t.get("/zookeeper").acl == OPEN_ACL_UNSAFE
    assert t.last_zxid == 0
    assert t.node_count() == 5  # ZooKeeper's map also holds "" for the root


def test_root_visible_cversion_starts_at_minus_one():
    stat = DataTree().get("/").stat()
    assert stat[CVERSION] == -1
    assert stat[NCHILD] == 1
    assert DataTree().get("/zookeeper").stat()[CVERSION] == -2


# --- create -----------------------------------------------------------------------------------


def test_create_sets_stat_and_parent():
    t = DataTree()
    r, trig = apply(t, hdr(5, time_ms=777), CreateTxn("/a", b"hello", OPEN_ACL_UNSAFE, 0, 1))
    assert r.err == Err.OK
    assert r.path == "/a"
    stat = t.get("/a").stat()
    assert stat == (5, 5, 777, 777, 0, 0, 0, 0, 5, 0, 5)
    assert r.stat == stat
    root = t.get("/").stat()
    assert root[PZXID] == 5
    assert root[CVERSION] == 0  # -1 -> 0: one child create
    assert root[NCHILD] == 2
    assert root[MZXID] == 0  # a child create does not touch the parent's data stat
    assert root[VERSION] == 0
    assert trig == [(EventType.NODE_CREATED, "/a"), (EventType.NODE_CHILDREN_CHANGED, "/")]
    assert t.last_zxid == 5


def test_create_null_data_has_zero_length_and_stays_null():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/n", None, OPEN_ACL_UNSAFE, 0, 1))
    assert t.get("/n").data is None
    assert t.get("/n").stat()[DLEN] == 0
    apply(t, hdr(2), CreateTxn("/e", b"", OPEN_ACL_UNSAFE, 0, 2))
    assert t.get("/e").data == b""


def test_create_ephemeral():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/e", b"", OPEN_ACL_UNSAFE, SID, 1))
    assert t.get("/e").stat()[OWNER] == SID
    assert {k: set(v) for k, v in t.ephemerals.items()} == {SID: {"/e"}}


def test_create_container_and_ttl_show_owner_zero():
    t = DataTree()
    apply(t, hdr(1, OpCode.CREATE_CONTAINER), CreateTxn("/c", b"", OPEN_ACL_UNSAFE, CONTAINER_OWNER, 1))
    apply(t, hdr(2, OpCode.CREATE_TTL), CreateTxn("/t", b"", OPEN_ACL_UNSAFE, ttl_owner(5000), 2))
    assert t.get("/c").stat()[OWNER] == 0
    assert t.get("/t").stat()[OWNER] == 0
    assert t.containers == {"/c"}
    assert t.ttls == {"/t"}
    assert t.ephemerals == {}


def test_create_under_missing_parent_is_nonode():
    t = DataTree()
    r, trig = apply(t, hdr(1), CreateTxn("/x/y", b"", OPEN_ACL_UNSAFE, 0, 1))
    assert r.err == Err.NONODE
    assert trig == []
    assert "/x/y" not in t.nodes


def test_visible_cversion_counts_creates_and_deletes():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/p", b"", OPEN_ACL_UNSAFE, 0, 1))
    seen = []
    apply(t, hdr(2), CreateTxn("/p/a", b"", OPEN_ACL_UNSAFE, 0, 1))
    seen.append(t.get("/p").stat()[CVERSION])
    apply(t, hdr(3), CreateTxn("/p/b", b"", OPEN_ACL_UNSAFE, 0, 2))
    seen.append(t.get("/p").stat()[CVERSION])
    apply(t, hdr(4, OpCode.DELETE), DeleteTxn("/p/a"))
    seen.append(t.get("/p").stat()[CVERSION])
    apply(t, hdr(5, OpCode.DELETE), DeleteTxn("/p/b"))
    seen.append(t.get("/p").stat()[CVERSION])
    apply(t, hdr(6), CreateTxn("/p/c", b"", OPEN_ACL_UNSAFE, 0, 3))
    seen.append(t.get("/p").stat()[CVERSION])
    assert seen == [1, 2, 3, 4, 5]
    assert t.get("/p").cversion == 3  # internal: creates only
    assert t.get("/p").stat()[PZXID] == 6


# --- delete -----------------------------------------------------------------------------------


def test_delete_updates_parent_and_fires():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/a", b"", OPEN_ACL_UNSAFE, 0, 1))
    r, trig = apply(t, hdr(2, OpCode.DELETE), DeleteTxn("/a"))
    assert r.err == Err.OK
    assert "/a" not in t.nodes
    root = t.get("/").stat()
    assert root[PZXID] == 2
    assert root[CVERSION] == 1  # -1, +1 create, +1 delete
    assert root[NCHILD] == 1
    assert trig == [(EventType.NODE_DELETED, "/a"), (EventType.NODE_CHILDREN_CHANGED, "/")]


def test_delete_ephemeral_updates_index():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/e1", b"", OPEN_ACL_UNSAFE, SID, 1))
    apply(t, hdr(2), CreateTxn("/e2", b"", OPEN_ACL_UNSAFE, SID, 2))
    apply(t, hdr(3, OpCode.DELETE), DeleteTxn("/e1"))
    assert {k: set(v) for k, v in t.ephemerals.items()} == {SID: {"/e2"}}
    apply(t, hdr(4, OpCode.DELETE), DeleteTxn("/e2"))
    assert set(t.ephemerals.get(SID, ())) == set()  # ZooKeeper keeps the emptied set


def test_delete_container_and_ttl_update_indexes():
    t = DataTree()
    apply(t, hdr(1, OpCode.CREATE_CONTAINER), CreateTxn("/c", b"", OPEN_ACL_UNSAFE, CONTAINER_OWNER, 1))
    apply(t, hdr(2, OpCode.CREATE_TTL), CreateTxn("/t", b"", OPEN_ACL_UNSAFE, ttl_owner(10), 2))
    apply(t, hdr(3, OpCode.DELETE_CONTAINER), DeleteTxn("/c"))
    apply(t, hdr(4, OpCode.DELETE_CONTAINER), DeleteTxn("/t"))
    assert t.containers == set()
    assert t.ttls == set()


# --- setData / setACL / check / error -----------------------------------------------------------


def test_set_data():
    t = DataTree()
    apply(t, hdr(1, time_ms=100), CreateTxn("/a", b"x", OPEN_ACL_UNSAFE, 0, 1))
    r, trig = apply(t, hdr(2, OpCode.SET_DATA, time_ms=200), SetDataTxn("/a", b"yyy", 1))
    assert r.err == Err.OK
    stat = t.get("/a").stat()
    assert stat[MZXID] == 2 and stat[MTIME] == 200
    assert stat[CZXID] == 1 and stat[CTIME] == 100
    assert stat[VERSION] == 1 and stat[DLEN] == 3
    assert stat[PZXID] == 1  # data changes do not move pzxid
    assert r.stat == stat
    assert trig == [(EventType.NODE_DATA_CHANGED, "/a")]
    apply(t, hdr(3, OpCode.SET_DATA), SetDataTxn("/a", None, 2))
    assert t.get("/a").data is None and t.get("/a").stat()[DLEN] == 0


def test_set_data_missing_node():
    r, trig = apply(DataTree(), hdr(1, OpCode.SET_DATA), SetDataTxn("/nope", b"", 1))
    assert r.err == Err.NONODE and trig == []


def test_set_acl():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/a", b"", OPEN_ACL_UNSAFE, 0, 1))
    new_acl = (ACL(1, "world", "anyone"),)
    r, trig = apply(t, hdr(2, OpCode.SET_ACL), SetACLTxn("/a", new_acl, 1))
    assert r.err == Err.OK
    node = t.get("/a")
    assert node.acl == new_acl
    stat = node.stat()
    assert stat[AVERSION] == 1 and stat[VERSION] == 0 and stat[MZXID] == 1
    assert r.stat == stat
    assert trig == []  # setACL fires no watch


def test_check_and_error_change_nothing():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/a", b"", OPEN_ACL_UNSAFE, 0, 1))
    before = tree_state(t)
    r, trig = apply(t, hdr(2, OpCode.CHECK), CheckTxn("/a", 1))
    assert r.err == Err.OK and trig == []
    r, trig = apply(t, hdr(3, OpCode.SET_DATA), ErrorTxn(Err.BADVERSION))
    assert r.err == Err.BADVERSION and trig == []
    assert tree_state(t) == before
    assert t.last_zxid == 3  # failed writes still advance the zxid


def test_multi_applies_all_under_one_zxid():
    t = DataTree()
    txn = MultiTxn(
        (
            (OpCode.CREATE, CreateTxn("/m", b"", OPEN_ACL_UNSAFE, 0, 1)),
            (OpCode.CREATE2, CreateTxn("/m/c", b"d", OPEN_ACL_UNSAFE, 0, 1)),
            (OpCode.SET_DATA, SetDataTxn("/m", b"v", 1)),
            (OpCode.CHECK, CheckTxn("/m", 2)),
        )
    )
    r, trig = apply(t, hdr(9, OpCode.MULTI), txn)
    assert r.err == Err.OK
    assert [sub.opcode for sub in r.subresults] == [OpCode.CREATE, OpCode.CREATE2, OpCode.SET_DATA, OpCode.CHECK]
    assert all(sub.result.err == Err.OK for sub in r.subresults)
    assert r.subresults[1].result.path == "/m/c"
    assert t.get("/m").stat()[CZXID] == 9 and t.get("/m/c").stat()[CZXID] == 9
    assert t.get("/m").stat()[MZXID] == 9
    assert (EventType.NODE_CREATED, "/m/c") in trig


def test_failed_multi_changes_nothing():
    t = DataTree()
    before = tree_state(t)
    txn = MultiTxn(
        (
            (OpCode.ERROR, ErrorTxn(Err.OK)),
            (OpCode.ERROR, ErrorTxn(Err.NONODE)),
            (OpCode.ERROR, ErrorTxn(Err.RUNTIMEINCONSISTENCY)),
        )
    )
    r, trig = apply(t, hdr(1, OpCode.MULTI), txn)
    assert [sub.result.err for sub in r.subresults] == [0, Err.NONODE, Err.RUNTIMEINCONSISTENCY]
    assert all(sub.opcode == OpCode.ERROR for sub in r.subresults)
    assert trig == []
    assert tree_state(t) == before


# --- sessions -------------------------------------------------------------------------------


def test_create_session():
    t = DataTree()
    apply(t, hdr(1, OpCode.CREATE_SESSION, sid=77), CreateSessionTxn(30000))
    assert t.sessions == {77: 30000}


def test_close_session_deletes_its_ephemerals_only():
    t = DataTree()
    apply(t, hdr(1, OpCode.CREATE_SESSION, sid=1), CreateSessionTxn(5000))
    apply(t, hdr(2, OpCode.CREATE_SESSION, sid=2), CreateSessionTxn(5000))
    apply(t, hdr(3), CreateTxn("/p", b"", OPEN_ACL_UNSAFE, 0, 1))
    apply(t, hdr(4, sid=1), CreateTxn("/p/e1", b"", OPEN_ACL_UNSAFE, 1, 1))
    apply(t, hdr(5, sid=1), CreateTxn("/e1", b"", OPEN_ACL_UNSAFE, 1, 2))
    apply(t, hdr(6, sid=2), CreateTxn("/p/e2", b"", OPEN_ACL_UNSAFE, 2, 2))
    # The txn's path list may be incomplete; the tree's own index counts too.
    r, trig = apply(t, hdr(7, OpCode.CLOSE_SESSION, sid=1), CloseSessionTxn(("/e1",)))
    assert r.err == Err.OK
    assert "/p/e1" not in t.nodes and "/e1" not in t.nodes
    assert "/p/e2" in t.nodes and "/p" in t.nodes
    assert t.sessions == {2: 5000}
    assert 1 not in t.ephemerals
    assert t.get("/p").stat()[PZXID] == 7
    assert set(trig) == {
        (EventType.NODE_DELETED, "/p/e1"),
        (EventType.NODE_CHILDREN_CHANGED, "/p"),
        (EventType.NODE_DELETED, "/e1"),
        (EventType.NODE_CHILDREN_CHANGED, "/"),
    }


def test_close_session_does_not_delete_a_path_now_owned_by_someone_else():
    t = DataTree()
    apply(t, hdr(1, sid=2), CreateTxn("/x", b"", OPEN_ACL_UNSAFE, 2, 1))
    apply(t, hdr(2, OpCode.CLOSE_SESSION, sid=1), CloseSessionTxn(("/x",)))
    assert "/x" in t.nodes


def test_last_zxid_never_goes_back():
    t = DataTree()
    apply(t, hdr(10), CreateTxn("/a", b"", OPEN_ACL_UNSAFE, 0, 1))
    apply(t, hdr(4, OpCode.SET_DATA), SetDataTxn("/a", b"", 1))
    assert t.last_zxid == 10


# --- replays converge -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_generated_history_is_consistent(seed):
    seq, truth = random_history(seed)
    t = DataTree()
    for h, txn in seq:
        r = t.apply(h, txn, [])
        assert r.err == Err.OK, (h, txn, r)
    assert tree_state(t) == tree_state(truth)


@pytest.mark.parametrize("seed", range(5))
def test_applying_a_history_twice_converges(seed):
    seq, truth = random_history(seed)
    t = DataTree()
    for _ in range(2):
        for h, txn in seq:
            t.apply(h, txn, [])
    assert diff_states(tree_state(t), tree_state(truth)) == []


@pytest.mark.parametrize("seed", range(5))
def test_replaying_a_suffix_twice_converges(seed):
    seq, truth = random_history(seed)
    cut = len(seq) // 2
    t = DataTree()
    for h, txn in seq:
        t.apply(h, txn, [])
    for h, txn in seq[cut:]:
        t.apply(h, txn, [])
    assert diff_states(tree_state(t), tree_state(truth)) == []


@pytest.mark.parametrize("seed", range(20))
def test_replay_over_fuzzy_state_converges(seed):
    """A fuzzy snapshot: the node list is fixed at zxid Z, but each node is copied at some later
    moment while txns keep applying (nodes deleted before their turn are skipped). Replaying
    every txn after Z must give exactly the true final tree."""
    seq, truth = random_history(seed)
    rng = random.Random(1000 + seed)
    z = rng.randrange(len(seq) // 4, 3 * len(seq) // 4)
    live = DataTree()
    for h, txn in seq[:z]:
        live.apply(h, txn, [])
    snap_zxid = live.last_zxid
    sessions = dict(live.sessions)
    paths = list(live.nodes)
    rng.shuffle(paths)
    captured: dict[str, Node] = {}
    rest = list(seq[z:])
    for path in paths:
        while rest and rng.random() < 0.3:
            h, txn = rest.pop(0)
            live.apply(h, txn, [])
        node = live.nodes.get(path)
        if node is not None:
            captured[path] = clone(node)
    fuzzy = build_tree(captured, sessions, snap_zxid)
    for h, txn in seq[z:]:
        fuzzy.apply(h, txn, [])
    assert diff_states(tree_state(fuzzy), tree_state(truth)) == []


def test_fuzzy_delete_of_already_missing_child_still_moves_parent_pzxid():
    """ZooKeeper's DataTree.deleteNode updates the parent's pzxid before it finds the child
    missing ("the child might already be deleted during taking fuzzy snapshot")."""
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/p", b"", OPEN_ACL_UNSAFE, 0, 1))
    apply(t, hdr(2), CreateTxn("/p/c", b"", OPEN_ACL_UNSAFE, 0, 1))
    # The snapshot copied /p at zxid 2; /p/c was deleted (zxid 3) before its turn came.
    fuzzy = build_tree({p: clone(n) for p, n in t.nodes.items() if p != "/p/c"}, {}, 2)
    apply(t, hdr(3, OpCode.DELETE), DeleteTxn("/p/c"))
    apply(fuzzy, hdr(3, OpCode.DELETE), DeleteTxn("/p/c"))
    assert fuzzy.get("/p").stat()[PZXID] == 3
    assert diff_states(tree_state(fuzzy), tree_state(t)) == []


def test_replayed_create_of_existing_node_keeps_node():
    t = DataTree()
    apply(t, hdr(1), CreateTxn("/a", b"first", OPEN_ACL_UNSAFE, 0, 1))
    apply(t, hdr(2, OpCode.SET_DATA), SetDataTxn("/a", b"second", 1))
    before = tree_state(t)
    r, trig = apply(t, hdr(1), CreateTxn("/a", b"first", OPEN_ACL_UNSAFE, 0, 1))
    assert r.err == Err.NODEEXISTS
    assert trig == []
    assert t.get("/a").data == b"second"
    assert tree_state(t)["nodes"]["/a"] == before["nodes"]["/a"]
