"""Differential tests: the same kazoo operations against Apache ZooKeeper (the reference) and
zkchaos, which must answer identically.

Each op's outcome is compared: the return value or kazoo exception class, every Stat field
except ctime/mtime (only checked for plausibility) with ephemeralOwner mapped to the owning
session's name, the reply header's zxid, and the watch events every session received, in order.
A mismatch names the seed, the op index, the op and both outcomes. zxids are compared exactly:
zkchaos consumes them as ZooKeeper does (sessions, failed writes, container reaping).

The reference is right by definition, except for the two deliberate deviations (an unknown
opcode or a top-level check gets UNIMPLEMENTED and the connection stays open), which these tests
do not send. Both servers get fresh data directories for every test.

Knobs for investigating: ZKCHAOS_DIFF_SEEDS="1,2,3", ZKCHAOS_DIFF_OPS=300, and
ZKCHAOS_DIFF_KEEP_GOING=1 to list every mismatch instead of stopping at the first one.
"""

from __future__ import annotations

import os
import random
from typing import Iterator

import pytest

from tests.conftest import ServerFactory
from tests.integration.differential_ops import Op, Runner, ScriptGen, drive, final_state_ops, op

pytestmark = [pytest.mark.integration, pytest.mark.reference, pytest.mark.timeout(180)]

SEEDS = [int(s) for s in os.environ.get("ZKCHAOS_DIFF_SEEDS", "1,2,3,4").split(",")]
N_OPS = int(os.environ.get("ZKCHAOS_DIFF_OPS", "300"))

# forceSync=no only makes both servers faster; the container manager is pushed out of the test's
# lifetime so that reaping (which runs on a timer) cannot make the two servers diverge in time.
QUIET = {"forceSync": "no", "znode__container__checkIntervalMs": "600000"}


def start_pair(server_factory: ServerFactory, **settings: str) -> tuple[Runner, Runner]:
    """Fresh servers, started side by side (the JVM's start-up dominates a short test)."""
    ref_server = server_factory("zookeeper", start=False, **settings)
    sut_server = server_factory("zkchaos", start=False, **settings)
    ref_server.start(wait=False)
    sut_server.start(wait=False)
    ref_server.wait_ready()
    sut_server.wait_ready()
    return Runner("zookeeper", ref_server.address), Runner("zkchaos", sut_server.address)


@pytest.fixture
def pair(server_factory: ServerFactory) -> Iterator[tuple[Runner, Runner]]:
    ref, sut = start_pair(server_factory, **QUIET)
    yield ref, sut
    ref.close_all()
    sut.close_all()


def run_script(pair: tuple[Runner, Runner], ops: list[Op], context: str) -> None:
    """The ops, then a read of every node in the top-level subtrees they touched (each
    deterministic test stays out of /zookeeper unless that is its subject)."""
    ref, sut = pair
    drive(ref, sut, ops, context)
    tops = sorted({"/" + o.path.split("/")[1] for o in ops if o.path.startswith("/") and o.path.split("/")[1]})
    drive(ref, sut, final_state_ops(ref, tops), context + " final state")


# ---------------------------------------------------------------------------------------------
# The seeded random stream


@pytest.mark.parametrize("seed", SEEDS)
def test_random_ops(pair: tuple[Runner, Runner], seed: int) -> None:
    ref, sut = pair
    gen = ScriptGen(random.Random(seed))
    drive(ref, sut, gen.ops(N_OPS), f"seed={seed}", observe=gen.observe)
    drive(ref, sut, final_state_ops(ref), f"seed={seed} final state")


# ---------------------------------------------------------------------------------------------
# Deterministic cases from the protocol notes


def test_sequential_suffix_after_deletes(pair: tuple[Runner, Runner]) -> None:
    """The suffix is the parent's internal cversion, which counts child creates only."""
    ops = [
        op("create", "/s"),
        op("create", "/s/n-", sequence=True),
        op("create", "/s/n-", sequence=True),
        op("create", "/s/n-", sequence=True),
        op("delete", "/s/n-0000000001"),
        op("delete", "/s/n-0000000002"),
        op("create", "/s/n-", sequence=True),
        op("create", "/s/plain"),
        op("delete", "/s/plain"),
        op("create", "/s/plain"),  # a re-create counts again
        op("create", "/s/", sequence=True),  # trailing slash: the name is just the number
        op("create", "/s/e-", ephemeral=True, sequence=True, session="s2"),
        op("create", "/s/plain", sequence=True),  # "/s/plainNNNNNNNNNN" next to the existing "/s/plain"
        op("create", "/s/n-0000000000"),  # NODEEXISTS does not bump the counter
        op("create", "/s/n-", sequence=True),
        op("restart", session="s2"),  # its ephemeral goes: a delete, not a create
        op("create", "/s/n-", sequence=True),
        op("children", "/s", include_data=True),
        op("txn", ops=[("create", "/s/m-", {"sequence": True}), ("create", "/s/m-", {"sequence": True})]),
        op("txn", ops=[("create", "/s/m-", {"sequence": True}), ("check", "/s", {"version": 5})]),
        op("create", "/s/m-", sequence=True),  # the rolled-back multi did not advance it
    ]
    run_script(pair, ops, "sequential suffix")


def test_cversion_and_pzxid(pair: tuple[Runner, Runner]) -> None:
    """Visible cversion steps on every child create and delete; data changes leave it alone."""
    ops = [
        op("create", "/c"),
        op("exists", "/c"),
        op("create", "/c/a"),
        op("create", "/c/b", include_data=True),
        op("children", "/c", include_data=True),
        op("delete", "/c/a"),
        op("exists", "/c"),
        op("set", "/c/b", value=b"new"),
        op("exists", "/c"),
        op("create", "/c/b"),  # NODEEXISTS: a failed write consumes a zxid but changes nothing
        op("exists", "/c"),
        op("delete", "/c/zz"),
        op("exists", "/c"),
        op("create", "/c/e", ephemeral=True, session="s2"),
        op("restart", session="s2"),
        op("exists", "/c"),
        op("txn", ops=[("create", "/c/t", {}), ("delete", "/c/t", {})]),
        op("exists", "/c"),
        op("set_acls", "/c", acl="no_admin"),  # aversion, not cversion
        op("exists", "/c"),
        op("children", "/", include_data=True),
    ]
    run_script(pair, ops, "cversion")


def test_multi_failure_results(pair: tuple[Runner, Runner]) -> None:
    """A failed multi: RolledBack before the failing op, its error, RuntimeInconsistency after;
    nothing applied, one zxid consumed."""
    ops = [
        op("create", "/m"),
        op("create", "/m/x", value=b"1"),
        op(
            "txn",
            ops=[("create", "/m/a", {}), ("create", "/m/x", {}), ("set_data", "/m/x", {"value": b"2"}), ("delete", "/m/x", {})],
        ),
        op("exists", "/m/a"),
        op("txn", ops=[("check", "/m/x", {"version": 3}), ("create", "/m/b", {})]),
        op("txn", ops=[("create", "/m/c", {}), ("delete", "/m", {})]),  # NOTEMPTY
        op("txn", ops=[("delete", "/m/x", {}), ("check", "/m/x", {"version": -1})]),  # NONODE after delete
        op("txn", ops=[("create", "/m/p", {}), ("create", "/m/p/q", {}), ("set_data", "/m/p/q", {"version": 0})]),
        op("get", "/m/p/q"),
        op("txn", ops=[("create", "/m/e", {"ephemeral": True}), ("create", "/m/e/child", {})]),  # NOCHILDRENFOREPHEMERALS
        op("txn", ops=[("create", "/m/bad", {"acl": "empty"})]),  # INVALIDACL
        op("txn", ops=[("create", "/m/nope/deep", {})]),
        op("txn", ops=[("set_data", "/m/x", {"version": 0}), ("set_data", "/m/x", {"version": 0})]),  # versions chain
        op("txn", ops=[("set_data", "/m/x", {"version": 1}), ("set_data", "/m/x", {"version": 2}), ("check", "/m/x", {"version": 2})]),
        op("txn", ops=[("delete", "/m/x", {"version": 3}), ("create", "/m/x", {}), ("check", "/m/x", {"version": 0})]),
        op("txn", ops=[("delete", "/zookeeper", {})]),
        op("txn", ops=[("create", "/m/y", {}), ("delete", "/m/y", {}), ("delete", "/m/y", {})]),
        op("exists", "/m", watch=True, session="s1"),
        op("txn", ops=[("set_data", "/m", {}), ("create", "/m/x", {})]),  # fails: no event may fire
        op("txn", ops=[("set_data", "/m", {})]),
        op("create", "/m/after", include_data=True),  # czxid shows the zxids failed multis consumed
    ]
    run_script(pair, ops, "multi")


def test_exists_watch_on_missing_node(pair: tuple[Runner, Runner]) -> None:
    """exists() on a missing node leaves a watch that a later create fires; getData() on a
    missing node leaves none."""
    ops = [
        op("exists", "/w", watch=True, session="s1"),
        op("get", "/w", watch=True, session="s2"),  # NONODE: no watch
        op("children", "/w", watch=True, session="s2"),  # NONODE: no watch
        op("create", "/w", value=b"1"),
        op("exists", "/w", watch=True, session="s1"),
        op("get", "/w", watch=True, session="s1"),  # same session, data table: one event
        op("children", "/", watch=True, session="s2"),
        op("set", "/w", value=b"2"),
        op("set", "/w", value=b"3"),  # the watch was one-shot
        op("get", "/w", watch=True, session="s1"),
        op("children", "/w", watch=True, session="s1"),
        op("children", "/w", watch=True, session="s2"),
        op("exists", "/w", watch=True, session="s2"),
        op("delete", "/w"),  # one NodeDeleted per session, then the parent's NodeChildrenChanged
        op("exists", "/w/x", watch=True, session="s1"),
        op("create", "/w", makepath=True),
        op("create", "/w/x", ephemeral=True, session="s2"),
        op("exists", "/w/x", watch=True, session="s1"),
        op("children", "/w", watch=True, session="s1"),
        op("restart", session="s2"),  # the session's ephemeral vanishes: events for s1
        op("exists", "/w/x", watch=True),
        op("create", "/w/x", acl="no_read", session="s1"),  # s0 watches, but has no READ
        op("set", "/w/x", value=b"z"),
        op("exists", "/w/y", watch=True),
        op("txn", ops=[("create", "/w/y", {}), ("set_data", "/w/y", {}), ("delete", "/w/y", {})]),
    ]
    run_script(pair, ops, "exists watch")


def test_delete_error_order(pair: tuple[Runner, Runner]) -> None:
    """delete checks: DELETE on the parent, NONODE, BADVERSION, NOTEMPTY, in that order."""
    ops = [
        op("create", "/o"),
        op("create", "/o/child"),
        op("delete", "/o", version=5),  # BADVERSION wins over NOTEMPTY
        op("delete", "/o", version=0),  # NOTEMPTY
        op("delete", "/o", version=-1),
        op("delete", "/o/none", version=5),  # NONODE wins over BADVERSION
        op("create", "/locked", acl="no_delete"),
        op("create", "/locked/kid"),
        op("delete", "/locked/kid", version=9),  # NOAUTH (parent) before BADVERSION
        op("delete", "/locked/missing"),  # NOAUTH before NONODE
        op("delete", "/o/child/grandchild"),
        op("delete", "/nope/x"),  # missing parent
        op("set", "/o/child", version=3),
        op("set", "/o/none", version=3),
    ]
    run_script(pair, ops, "delete order")


def test_nonode_vs_noauth_order(pair: tuple[Runner, Runner]) -> None:
    """Which check answers first when several fail."""
    ops = [
        op("create", "/a", acl="no_create"),
        op("create", "/a/x"),  # NOAUTH
        op("create", "/a/x/y"),  # NONODE (parent missing) before any ACL check
        op("create", "/a/x", acl="empty"),  # INVALIDACL before NONODE/NOAUTH
        op("create", "/b", acl="alice"),
        op("get", "/b"),  # NOAUTH for s0
        op("get", "/b", session="s1"),
        op("get", "/b/none"),  # NONODE
        op("exists", "/b"),  # exists needs READ only on an existing node
        op("exists", "/b/none"),
        op("children", "/b"),
        op("get_acls", "/b"),  # needs READ|ADMIN
        op("get_acls", "/b", session="s1"),
        op("set", "/b", value=b"x", version=7),  # NOAUTH before BADVERSION
        op("set", "/b", value=b"x", version=7, session="s1"),
        op("set_acls", "/b", acl="open", version=3),  # NOAUTH before BADVERSION
        op("set_acls", "/b", acl="bad_scheme"),  # INVALIDACL first
        op("set_acls", "/b/none", acl="bad_scheme"),  # INVALIDACL before NONODE
        op("set_acls", "/b/none", acl="open"),
        op("create", "/b/kid", session="s1"),
        op("create", "/b/kid"),  # NOAUTH before NODEEXISTS
        op("create", "/c", acl="creator"),  # INVALIDACL: s0 has no digest auth
        op("create", "/c", acl="creator", session="s1", include_data=True),
        op("get_acls", "/c", session="s1"),
        op("create", "/d", acl="read_only"),
        op("create", "/d/x"),
        op("delete", "/d"),
        op("set", "/d", value=b"v"),
        op("create", "/i", acl="ip_local"),
        op("get", "/i"),
        op("create", "/j", acl="ip_other"),
        op("get", "/j"),
        op("create", "/k", acl="zero_perms"),
        op("get_acls", "/k"),
        op("create", "/l", acl="dup", include_data=True),
        op("get_acls", "/l"),
        op("whoami", session="s1"),
        op("whoami"),
        # The super user (TEST_SETTINGS' superDigest) passes every ACL check.
        op("add_auth", scheme="digest", credential="super:test", session="s2"),
        op("whoami", session="s2"),
        op("get", "/b", session="s2"),
        op("get_acls", "/b", session="s2"),
        op("create", "/b/su", session="s2"),
        op("delete", "/b/kid", session="s2"),
        op("set_acls", "/b", acl="creator", session="s2"),
        op("get_acls", "/b", session="s2"),
        op("set", "/j", value=b"v", session="s2"),
        op("add_auth", scheme="digest", credential="bob:pw"),
        op("create", "/t", acl="creator", include_data=True),
        op("get_acls", "/t"),
        op("get_acls", "/t", session="s1"),  # READ without ADMIN would mask the hash; no READ: NOAUTH
        op("create", "/v", acl="alice_world_read", session="s1"),
        op("get_acls", "/v"),  # READ only: digest ids come back as user:x
    ]
    run_script(pair, ops, "nonode vs noauth")


def test_root_and_system_nodes(pair: tuple[Runner, Runner]) -> None:
    """create '/', delete of the root and of the /zookeeper nodes."""
    ops = [
        op("exists", "/"),  # the root's cversion starts at -1: its child "zookeeper" was never created
        op("children", "/zookeeper", include_data=True),
        op("get", "/zookeeper/config"),
        op("get", "/zookeeper/quota"),
        op("get_acls", "/zookeeper/config"),
        op("get_acls", "/zookeeper"),
        op("create", "/"),
        op("create", "/", include_data=True),
        op("delete", "/"),
        op("delete", "/zookeeper"),
        op("delete", "/zookeeper/quota"),
        op("delete", "/zookeeper/config"),
        op("set", "/zookeeper/config", value=b"x"),  # READ-only ACL
        op("set", "/zookeeper/quota", value=b"q"),
        op("create", "/zookeeper/mine"),
        op("delete", "/zookeeper/mine"),
        op("txn", ops=[("delete", "/zookeeper/quota", {})]),
        op("set_acls", "/", acl="open", version=0),
        op("exists", "/"),
        op("all_children_number", "/"),
        op("all_children_number", "/zookeeper"),
        op("ephemerals", "/"),
        op("create", "/", sequence=True),  # kazoo keeps '/' with sequence: the server numbers it
        op("children", "/", include_data=True),
    ]
    run_script(pair, ops, "root")


def test_invalid_paths(pair: tuple[Runner, Runner]) -> None:
    """Paths as sent on the wire (kazoo would normalise them): which ops validate, and where
    in their order of checks."""
    from tests.integration.differential_ops import INVALID_PATHS, RAW_KINDS

    ops = [op("create", "/d"), op("create", "/d/a")]
    for path in INVALID_PATHS:
        for kind in RAW_KINDS:
            ops.append(op("raw", path, request=kind))
    for kind in RAW_KINDS:
        ops.append(op("raw", "", request=kind))  # kazoo encodes "" as a null string
    ops.append(op("create", "/d/a/", sequence=True))  # a trailing '/' plus a suffix is valid
    ops.append(op("raw", "/d/a/", request="create_seq"))
    ops.append(op("raw", "/d//", request="create_seq"))
    ops.append(op("children", "/d", include_data=True))
    # Frames up to jute.maxbuffer (0xfffff) are read; one byte more and the server drops the
    # connection (kazoo: ConnectionLoss, then it reconnects to the same session). The dropped
    # connection's watches go with it.
    overhead = 4 + 4 + (4 + len("/d/big")) + 4 + 4 + 4 + (4 + 5) + (4 + 6) + 4  # Create frame sans data
    ops += [
        op("get", "/d/a", watch=True),
        op("create", "/d/big", value=b"x" * (0xFFFFF - overhead)),
        op("delete", "/d/big"),
        op("create", "/d/big", value=b"x" * (0xFFFFF - overhead + 1)),
        op("exists", "/d/big"),
        op("set", "/d/a", value=b"after reconnect"),
    ]
    run_script(pair, ops, "invalid paths")


def test_ephemeral_session_close(pair: tuple[Runner, Runner]) -> None:
    """A second session's ephemerals vanish when it closes, firing the others' watches."""
    ops = [
        op("create", "/e"),
        op("create", "/e/1", ephemeral=True, session="s2"),
        op("create", "/e/2", ephemeral=True, session="s2", include_data=True),
        op("create", "/e/q-", ephemeral=True, sequence=True, session="s2"),
        op("create", "/e/mine", ephemeral=True),
        op("ephemerals", "/", session="s2"),
        op("ephemerals", "/e/", session="s2"),
        op("exists", "/e/1", watch=True, session="s1"),
        op("get", "/e/2", watch=True, session="s1"),
        op("children", "/e", watch=True, session="s1"),
        op("children", "/e", watch=True),
        op("restart", session="s2"),
        op("children", "/e", include_data=True),
        op("ephemerals", "/"),
        op("create", "/e/1", ephemeral=True, session="s2"),
        op("exists", "/e/1", session="s1"),
    ]
    run_script(pair, ops, "ephemeral close")


def test_persistent_watches(pair: tuple[Runner, Runner]) -> None:
    """addWatch (persistent and recursive), removeWatches, checkWatches, as Java clients send
    them, and how they mix with standard watches on the same path. Each case has its own path."""
    ops = [
        op("create", "/p"),
        op("add_watch", "/p", mode=0, session="s1"),
        op("add_watch", "/p", mode=1, session="s2"),
        op("create", "/p/a"),
        op("create", "/p/a/b"),
        op("set", "/p", value=b"1"),
        op("set", "/p/a/b", value=b"1"),
        op("delete", "/p/a/b"),
        op("check_watches", "/p", type=3, session="s1"),
        op("check_watches", "/p/a", type=3, session="s1"),
        op("remove_watches", "/p", type=3, session="s1"),
        op("remove_watches", "/p", type=3, session="s2"),
        op("set", "/p", value=b"2"),
        op("create", "/p/c"),
        # A recursive watch: which removeWatches/checkWatches types see it.
        op("create", "/r1"),
        op("add_watch", "/r1", mode=1, session="s1"),
        op("check_watches", "/r1", type=1, session="s1"),
        op("check_watches", "/r1", type=2, session="s1"),
        op("remove_watches", "/r1", type=1, session="s1"),
        op("create", "/r1/a"),
        op("delete", "/r1/a"),
        op("set", "/r1"),
        # Removing only the Data part of a recursive watch.
        op("create", "/r2"),
        op("create", "/r2/a"),
        op("add_watch", "/r2", mode=1, session="s1"),
        op("remove_watches", "/r2", type=2, session="s1"),
        op("create", "/r2/b"),
        op("set", "/r2/a"),
        op("delete", "/r2/a"),
        op("check_watches", "/r2", type=1, session="s1"),
        # A standard data watch on a path with a persistent watch.
        op("create", "/r3"),
        op("add_watch", "/r3", mode=0, session="s1"),
        op("get", "/r3", watch=True, session="s1"),
        op("set", "/r3"),
        op("set", "/r3"),
        op("create", "/r3/a"),
        op("create", "/r3/b"),
        # A standard child watch on a path with a persistent watch.
        op("create", "/r4"),
        op("add_watch", "/r4", mode=0, session="s1"),
        op("children", "/r4", watch=True, session="s1"),
        op("create", "/r4/a"),
        op("create", "/r4/b"),
        op("set", "/r4"),
        op("set", "/r4"),
        # An exists watch on a path with a recursive watch.
        op("create", "/r5"),
        op("add_watch", "/r5", mode=1, session="s1"),
        op("exists", "/r5", watch=True, session="s1"),
        op("create", "/r5/a"),
        op("set", "/r5"),
        op("create", "/r5/b"),
        op("set", "/r5"),
        # A persistent watch added over a standard one.
        op("create", "/r6"),
        op("get", "/r6", watch=True, session="s1"),
        op("add_watch", "/r6", mode=0, session="s1"),
        op("set", "/r6"),
        op("set", "/r6"),
    ]
    run_script(pair, ops, "persistent watches")


def test_containers_and_ttl(server_factory: ServerFactory) -> None:
    """Containers are reaped once their last child goes, TTL nodes once they expire; each
    reaping is a deleteContainer txn that consumes a zxid and fires watches."""
    ref, sut = start_pair(server_factory, forceSync="no")  # the suite's fast container sweep
    try:
        ops = [
            op("create_ext", "/k", opcode=19, flags=4),
            op("create_ext", "/k/inner", opcode=19, flags=4),
            op("create", "/k/inner/leaf"),
            op("children", "/k/inner", watch=True, session="s1"),
            op("exists", "/k/inner", watch=True, session="s2"),
            op("get", "/k", watch=True, session="s2"),
            # The leaf's delete makes /k/inner a candidate; once it goes, /k is one too.
            op("wait_gone", "/k/inner", delete_first="/k/inner/leaf", also=["/k"]),
            op("create_ext", "/ttl", opcode=21, flags=5, ttl=1),
            op("wait_gone", "/ttl"),
            op("create_ext", "/ttlseq-", opcode=21, flags=6, ttl=3_600_000),
            op("create_ext", "/empty", opcode=19, flags=4),  # never had a child: stays
            op("create", "/after", include_data=True),  # czxid counts the reaping txns
            op("children", "/", include_data=True),
        ]
        drive(ref, sut, ops, "containers")
    finally:
        ref.close_all()
        sut.close_all()
