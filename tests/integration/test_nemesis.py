"""Every fault the nemeses inject takes effect and heals, on a real zkchaos ensemble in a local
namespace cluster (its own prefix and subnet, so it never meets a developer's cluster)."""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest
from kazoo.client import KazooClient

from harness.cluster import LocalCluster
from harness.db import Node, ZkChaosDB
from harness.localproc import four_letter
from harness.remote import connect_all
from harness.workspace import Workspace
from nemesis.base import NemesisContext
from nemesis.partition import PartitionNemesis, drops_between
from nemesis.process import KillNemesis, PauseNemesis
from tests.conftest import require_netns

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkn", "10.66.79.0/24"


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Node], ZkChaosDB]]:
    require_netns()
    cluster = LocalCluster(tmp_path_factory.mktemp("nemesis-cluster"), prefix=PREFIX, subnet=SUBNET)
    specs = cluster.up(3)
    remotes = connect_all(specs)
    nodes = [Node(s.name, s.host, remotes[s.name], local=True, id=i) for i, s in enumerate(specs, 1)]
    db = ZkChaosDB(tick_time=200)
    workspace = Workspace()
    try:
        for n in nodes:
            workspace.create(n)
            db.setup(n, nodes)
            db.start(n)
        db.wait_ready(nodes, timeout=60)
        yield nodes, db
    finally:
        for n in nodes:
            try:
                db.teardown(n)
                workspace.remove(n)
            finally:
                n.remote.close()
        cluster.down()


def _ctx(ensemble, seed: int = 3) -> NemesisContext:
    nodes, db = ensemble
    return NemesisContext(nodes, db, random.Random(seed))


def _reachable(src: Node, dst: Node) -> bool:
    """A TCP connect from inside src's namespace to dst's client port."""
    code = f"import socket; socket.create_connection(('{dst.address}', 2181), 1.5)"
    return src.remote.run(f"python3 -c \"{code}\"", timeout=20, check=False).exit_code == 0


def _wait(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_partition_takes_effect_and_heals(ensemble):
    nodes, db = ensemble
    nemesis = PartitionNemesis(variants=("isolate-leader",))
    ctx = _ctx(ensemble)
    leader = db.leader(nodes)
    desc = nemesis.start(ctx)
    try:
        assert desc["variant"] == "isolate-leader"
        others = [n for n in nodes if n is not leader]
        assert drops_between(leader, others[0]) and drops_between(others[0], leader)
        assert not _reachable(others[0], leader)
        assert _reachable(others[0], others[1])
        # The majority elects a new leader; the isolated one stops serving.
        assert _wait(lambda: db.leader(others) is not None and db.mode(leader) is None)
    finally:
        healed = nemesis.heal(ctx)
    assert sum(healed["removed_rules"].values()) == 4
    assert not drops_between(leader, others[0])
    assert _reachable(others[0], leader)
    assert _wait(lambda: all(db.mode(n) is not None for n in nodes))


def test_teardown_sweeps_rules_left_behind(ensemble):
    nodes, _ = ensemble
    stray = f"INPUT -s {nodes[1].address} -j DROP -m comment --comment zkchaos-partition"
    nodes[0].remote.run(f"iptables -w -A {stray}", timeout=20)
    assert drops_between(nodes[0], nodes[1])
    PartitionNemesis().teardown(_ctx(ensemble))
    assert not drops_between(nodes[0], nodes[1])


def test_kill_takes_effect_and_heals(ensemble):
    nodes, db = ensemble
    nemesis = KillNemesis(variants=("leader",))
    ctx = _ctx(ensemble)
    leader = db.leader(nodes)
    desc = nemesis.start(ctx)
    assert desc["nodes"] == [leader.name]
    assert not db.is_running(leader)
    try:
        four_letter(leader.address, 2181, "ruok", timeout=1.0)
        answered = True
    except OSError:
        answered = False
    assert not answered
    nemesis.heal(ctx)
    assert db.is_running(leader)
    assert _wait(lambda: all(db.mode(n) is not None for n in nodes))


def test_pause_takes_effect_and_heals(ensemble):
    nodes, db = ensemble
    nemesis = PauseNemesis(variants=("one",))
    ctx = _ctx(ensemble, seed=5)
    desc = nemesis.start(ctx)
    victim = next(n for n in nodes if n.name == desc["nodes"][0])
    try:
        state = victim.remote.run(f"ps -o stat= -p $(cat {victim.dir}/server.pid)", timeout=20).stdout.strip()
        assert state.startswith("T"), f"process state {state!r} is not stopped"
        assert db.mode(victim) is None  # a stopped process answers nothing
    finally:
        nemesis.heal(ctx)
    assert _wait(lambda: db.mode(victim) is not None)


def test_writes_survive_a_round_of_every_fault(ensemble):
    nodes, db = ensemble
    zk = KazooClient(hosts=",".join(f"{n.address}:2181" for n in nodes), timeout=10)
    zk.start(timeout=30)
    try:
        zk.ensure_path("/nemesis")
        for nemesis in (PartitionNemesis(), KillNemesis(), PauseNemesis()):
            ctx = _ctx(ensemble, seed=11)
            nemesis.start(ctx)
            nemesis.heal(ctx)
            assert _wait(lambda: all(db.mode(n) is not None for n in nodes))
            zk.retry(zk.create, f"/nemesis/{nemesis.name}", b"ok")
        assert sorted(zk.get_children("/nemesis")) == ["kill", "partition", "pause"]
    finally:
        zk.stop()
        zk.close()
