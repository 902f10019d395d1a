"""Every disk fault takes effect on a real ensemble of each DB (zkchaos, Apache ZooKeeper) in a
local namespace cluster: the server meets the damaged file at start-up and repairs it or refuses
to start, as that DB does; the heal gets the ensemble serving again (by SNAP where needed) with
every acknowledged write in place."""

from __future__ import annotations

import random
import uuid
from typing import Iterator

import pytest

from harness.db import Node, ServerDB, make_db
from nemesis import recovery
from nemesis.base import Fault, NemesisContext
from nemesis.disk import LOG_HEADER_MAX, DiskFamily, list_files
from tests.conftest import require_apache_zookeeper
from tests.netns import missing_writes, namespace_nodes, running, write_nodes

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkd", "10.66.67.0/24"
# Both DBs snapshot and roll their log every 10 to 20 txns, so every test finds a snapshot and
# a newest log holding a few records.
SETTINGS = {"snapCount": "20"}
FEW_RECORDS_BYTES = 200  # a few create records, of either server
SNAP_SYNC = {"zkchaos": "synced by SNAP", "zookeeper": "Getting a snapshot from leader"}
LOG_REFUSED = {"zkchaos": "refusing to start", "zookeeper": "CRC check failed"}  # flips land past the header
SNAPSHOT_SKIPPED = {"zkchaos": "skipping damaged snapshot", "zookeeper": "problem reading snap file"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    with namespace_nodes(tmp_path_factory.mktemp("disk-cluster"), PREFIX, SUBNET) as nodes:
        yield nodes


@pytest.fixture(scope="module", params=["zkchaos", "zookeeper"])
def ensemble(request, cluster: list[Node]) -> Iterator[tuple[list[Node], ServerDB]]:
    if request.param == "zookeeper":
        require_apache_zookeeper()
    db = make_db(request.param, tick_time=200)
    db.settings.update(SETTINGS)
    with running(cluster, db):
        yield cluster, db


def _write(nodes: list[Node], prefix: str, count: int = 60) -> dict[str, bytes]:
    """`count` acknowledged creates through the first node; path -> value."""
    return write_nodes(nodes[0], prefix, count)


def _missing_on(node: Node, written: dict[str, bytes]) -> list[str]:
    """The acknowledged writes a read through `node` (after a sync) does not see."""
    return sorted(missing_writes(node, written))


def _follower(nodes: list[Node], db: ServerDB) -> Node:
    leader = db.leader(nodes)
    return next(n for n in nodes if n is not leader)


def _server_log(node: Node) -> str:
    return node.remote.run(f"cat {node.dir}/server.log", timeout=30, sudo=False).stdout


def _newest_log_holds_records(db: ServerDB, node: Node) -> bool:
    """Whether the node's newest log file holds a few records (not only the header of a segment
    a snapshot or a restart began, nor a single record that damage would make a torn tail): a
    cut there is a torn tail, flips before its last record corruption."""
    files = list_files(node, db.data_layout(node).logs)
    return bool(files) and files[-1]["end"] > LOG_HEADER_MAX + FEW_RECORDS_BYTES


def _fault(ensemble, f: str, **params) -> tuple[DiskFamily, NemesisContext, Node, dict, dict]:
    """Write, then do `f` to a follower; (family, context, victim, what was written, what was
    done). Before a log fault, more is written until the follower's newest log file holds
    records: when a snapshot has just begun a new one, the damaged records are older than the
    snapshot, which restart then reads instead of them."""
    nodes, db = ensemble
    written = _write(nodes, f"{f}-{uuid.uuid4().hex[:6]}")
    victim = _follower(nodes, db)
    for _ in range(5):
        if not f.endswith("-log") or _newest_log_holds_records(db, victim):
            break
        written.update(_write(nodes, f"{f}-{uuid.uuid4().hex[:6]}", count=3))
    else:
        raise AssertionError(f"{victim.name}'s newest log never held records")
    family, ctx = DiskFamily(), NemesisContext(nodes, db, random.Random(7))
    done = family.inject(ctx, Fault(f, (victim.name,), {"spec": "one", **params}))
    return family, ctx, victim, written, done[victim.name]


def _healed(ensemble, family: DiskFamily, ctx: NemesisContext, victim: Node, written: dict) -> dict:
    nodes, db = ensemble
    report = family.heal(ctx)
    assert not family.active()
    db.wait_ready(nodes, timeout=60)
    assert _missing_on(victim, written) == []
    return report


def test_a_cut_log_tail_is_repaired_at_start_up(ensemble):
    nodes, db = ensemble
    family, ctx, victim, written, done = _fault(ensemble, "truncate-log", bytes=5)
    print(f"\n{db.name} truncate-log: {done}")
    # The cut ends inside the last record: both servers take it for a write torn by a crash.
    assert done["size_after"] == done["data_end"] - 5
    assert recovery.serving(done["restart"]), done
    if db.name == "zkchaos":
        assert "a write torn by a crash" in _server_log(victim)
    assert family.active() and _healed(ensemble, family, ctx, victim, written) == {}


def test_a_corrupted_log_is_refused_and_the_node_reseeded(ensemble):
    nodes, db = ensemble
    family, ctx, victim, written, done = _fault(ensemble, "corrupt-log", flips=4, seed=11)
    print(f"\n{db.name} corrupt-log: {done}")
    assert len(done["flipped"]) == 4 and all(f["before"] != f["after"] for f in done["flipped"])
    # A checksum catches the flips, with valid records after them: corruption, not a torn tail.
    assert done["restart"] == "exited"
    assert LOG_REFUSED[db.name] in _server_log(victim)
    report = _healed(ensemble, family, ctx, victim, written)
    print(f"{db.name} corrupt-log heal: {report}")
    assert report[victim.name].startswith(recovery.RESEEDED) and recovery.serving(report[victim.name])


def test_a_corrupted_snapshot_is_detected(ensemble):
    nodes, db = ensemble
    family, ctx, victim, written, done = _fault(ensemble, "corrupt-snapshot", flips=4, seed=5)
    print(f"\n{db.name} corrupt-snapshot: {done}")
    assert len(done["flipped"]) == 4
    # Both fall back to an older snapshot and replay the log from there.
    assert recovery.serving(done["restart"])
    assert SNAPSHOT_SKIPPED[db.name] in _server_log(victim)
    assert _healed(ensemble, family, ctx, victim, written) == {}


def test_a_deleted_snapshot_falls_back_to_the_one_before(ensemble):
    nodes, db = ensemble
    family, ctx, victim, written, done = _fault(ensemble, "delete-snapshot")
    print(f"\n{db.name} delete-snapshot: {done}")
    assert done["deleted_bytes"] > 0
    assert not victim.remote.run(f"test -e {done['file']}", timeout=20, check=False, sudo=False).ok
    assert recovery.serving(done["restart"])
    assert _healed(ensemble, family, ctx, victim, written) == {}


def test_a_wiped_node_rejoins_by_snap(ensemble):
    nodes, db = ensemble
    # Restarted, the leader holds only the txns since its newest snapshot in memory: a learner
    # with nothing cannot be caught up by a DIFF and gets a SNAP.
    for n in nodes:
        db.kill(n)
    for n in nodes:
        db.start(n)
    db.wait_ready(nodes, timeout=60)
    family, ctx, victim, written, done = _fault(ensemble, "wipe-data")
    print(f"\n{db.name} wipe-data: {done}")
    assert recovery.serving(done["restart"])
    assert SNAP_SYNC[db.name] in _server_log(victim)
    assert victim.remote.run(f"cat {done['wiped']}/myid", timeout=20, sudo=False).stdout.strip() == str(victim.id)
    _healed(ensemble, family, ctx, victim, written)


def test_teardown_revives_a_node_left_refusing(ensemble):
    """A fault never healed (a run interrupted) is undone by teardown all the same."""
    nodes, db = ensemble
    family, ctx, victim, written, done = _fault(ensemble, "corrupt-log", flips=4, seed=23)
    assert done["restart"] == "exited"
    family.teardown(ctx)
    assert not family.active()
    db.wait_ready(nodes, timeout=60)
    assert _missing_on(victim, written) == []
