"""Every fault the process, partition and packet families inject takes effect and heals, on a real
ensemble of each DB (zkchaos, Apache ZooKeeper) in a local namespace cluster with its own prefix
and subnet, so it never meets a developer's cluster."""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest
from kazoo.client import KazooClient, KazooState

from harness.db import Node, ServerDB, make_db
from harness.servers import four_letter
from nemesis.base import Fault, NemesisContext
from nemesis.iptables import dropped
from nemesis.packet import PacketFamily
from nemesis.partition import PartitionFamily, drops_between, grudge_for
from nemesis.process import KillFamily, PauseFamily
from tests.conftest import require_apache_zookeeper
from tests.netns import namespace_nodes, running

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkn", "10.66.79.0/24"
REJOIN_BOUND_S = {"zkchaos": 10.0, "zookeeper": 60.0}  # ZooKeeper backs its election off up to 60 s


@pytest.fixture(scope="module", params=["zkchaos", "zookeeper"])
def ensemble(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[Node], ServerDB]]:
    if request.param == "zookeeper":
        require_apache_zookeeper()
    db = make_db(request.param, tick_time=200)
    with namespace_nodes(tmp_path_factory.mktemp("nemesis-cluster"), PREFIX, SUBNET) as nodes, running(nodes, db):
        yield nodes, db


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


def _all_serve(db: ServerDB, nodes: list[Node]) -> bool:
    return _wait(lambda: all(db.mode(n) is not None for n in nodes) and db.leader(nodes) is not None, 60)


def _partition(shape: str, nodes: list[Node], victims: list[Node]) -> Fault:
    names = [n.name for n in nodes]
    grudge = grudge_for(shape, names, [v.name for v in victims], random.Random(1))
    return Fault("start-partition", tuple(v.name for v in victims),
                 {"shape": shape, "grudge": {k: sorted(v) for k, v in grudge.items() if v}})


def test_isolating_the_leader_takes_effect_and_heals(ensemble):
    nodes, db = ensemble
    family, ctx = PartitionFamily(), _ctx(ensemble)
    leader = db.leader(nodes)
    others = [n for n in nodes if n is not leader]
    family.inject(ctx, _partition("isolate", nodes, [leader]))
    try:
        assert drops_between(leader, others[0]) and drops_between(others[0], leader)
        assert not _reachable(others[0], leader) and _reachable(others[0], others[1])
        # The majority elects a new leader; the isolated one stops serving.
        assert _wait(lambda: db.leader(others) is not None and db.mode(leader) is None)
    finally:
        healed = family.heal(ctx)
    assert healed["removed_rules"] == 4 and not family.active()
    assert not drops_between(leader, others[0]) and _reachable(others[0], leader)
    assert _all_serve(db, nodes)


def test_a_muted_leader_is_heard_by_nobody_and_replaced(ensemble):
    nodes, db = ensemble
    family, ctx = PartitionFamily(), _ctx(ensemble)
    leader = db.leader(nodes)
    others = [n for n in nodes if n is not leader]
    family.inject(ctx, _partition("mute", nodes, [leader]))
    try:
        assert all(drops_between(o, leader) for o in others)
        assert not any(drops_between(leader, o) for o in others)  # one way only
        assert _wait(lambda: db.leader(others) is not None, 60)
    finally:
        family.heal(ctx)
    assert _all_serve(db, nodes)


def test_cutting_off_one_servers_clients_expires_their_sessions(ensemble):
    nodes, db = ensemble
    family, ctx = PartitionFamily(), _ctx(ensemble)
    victim, witness = nodes[0], nodes[1]
    zk = KazooClient(hosts=f"{victim.address}:2181", timeout=2.0)
    watcher = KazooClient(hosts=f"{witness.address}:2181", timeout=10)
    states: list[str] = []
    zk.add_listener(states.append)
    zk.start(timeout=20)
    watcher.start(timeout=20)
    try:
        path = zk.create("/clients-cut", b"", ephemeral=True, sequence=True)
        family.inject(ctx, Fault("start-partition", (victim.name,), {"shape": "clients", "spec": "one"}))
        try:
            # The servers are fine and still talk; only this machine's clients are cut off from
            # the victim, so its session expires and its ephemeral goes, seen through the witness.
            assert _wait(lambda: watcher.exists(path) is None, 30)
            assert db.leader(nodes[1:]) is not None and _reachable(witness, victim)
        finally:
            family.heal(ctx)
        assert _wait(lambda: KazooState.LOST in states, 30)
    finally:
        for c in (zk, watcher):
            c.stop()
            c.close()


def test_teardown_sweeps_rules_left_behind(ensemble):
    nodes, _ = ensemble
    stray = f"INPUT -s {nodes[1].address} -j DROP -m comment --comment zkchaos-partition"
    nodes[0].remote.run(f"iptables -w -A {stray}", timeout=20)
    assert drops_between(nodes[0], nodes[1])
    PartitionFamily().teardown(_ctx(ensemble))
    assert not drops_between(nodes[0], nodes[1])


def test_killing_the_leader_takes_effect_and_heals(ensemble):
    nodes, db = ensemble
    family, ctx = KillFamily(), _ctx(ensemble)
    leader = db.leader(nodes)
    family.inject(ctx, Fault("kill", (leader.name,), {"spec": "leader"}))
    assert not db.is_running(leader)
    with pytest.raises(OSError):
        four_letter(leader.address, 2181, "ruok", timeout=1.0)
    family.heal(ctx)
    assert db.is_running(leader) and _all_serve(db, nodes)


def test_killing_every_node_loses_no_acknowledged_write(ensemble):
    nodes, db = ensemble
    family, ctx = KillFamily(), _ctx(ensemble)
    zk = KazooClient(hosts=",".join(f"{n.address}:2181" for n in nodes), timeout=10)
    zk.start(timeout=30)
    try:
        zk.ensure_path("/durable")
        written = [zk.create("/durable/w-", str(i).encode(), sequence=True) for i in range(50)]
        family.inject(ctx, Fault("kill", tuple(n.name for n in nodes), {"spec": "all"}))
        assert not any(db.is_running(n) for n in nodes)
        family.heal(ctx)
        assert _all_serve(db, nodes)
        assert sorted(zk.retry(zk.get_children, "/durable")) == sorted(p.rsplit("/", 1)[1] for p in written)
    finally:
        zk.stop()
        zk.close()


def test_a_rolling_restart_keeps_the_ensemble_serving(ensemble):
    nodes, db = ensemble
    family, ctx = KillFamily(), _ctx(ensemble)
    pids = {n.name: n.remote.run(f"cat {n.dir}/server.pid", sudo=False).stdout.strip() for n in nodes}
    family.inject(ctx, Fault("rolling-restart", tuple(n.name for n in nodes)))
    assert family.active()  # until healed, the restart's window stays open
    family.heal(ctx)
    assert _all_serve(db, nodes)
    after = {n.name: n.remote.run(f"cat {n.dir}/server.pid", sudo=False).stdout.strip() for n in nodes}
    assert all(after[name] != pids[name] for name in pids), "every server was restarted"


def test_pausing_every_node_takes_effect_and_heals(ensemble):
    nodes, db = ensemble
    family, ctx = PauseFamily(), _ctx(ensemble, seed=5)
    family.inject(ctx, Fault("pause", tuple(n.name for n in nodes), {"spec": "all"}))
    try:
        for victim in nodes:
            state = victim.remote.run(f"ps -o stat= -p $(cat {victim.dir}/server.pid)", timeout=20).stdout.strip()
            assert state.startswith("T"), f"process state {state!r} is not stopped"
        assert all(db.mode(n) is None for n in nodes)  # a stopped process answers nothing
    finally:
        family.heal(ctx)
    assert _all_serve(db, nodes)


def test_writes_survive_a_round_of_every_fault(ensemble):
    nodes, db = ensemble
    zk = KazooClient(hosts=",".join(f"{n.address}:2181" for n in nodes), timeout=10)
    zk.start(timeout=30)
    try:
        zk.ensure_path("/nemesis")
        for family in (PartitionFamily(), KillFamily(), PauseFamily()):
            ctx = _ctx(ensemble, seed=11)
            family.inject(ctx, family.choose(ctx))
            family.heal(ctx)
            assert _all_serve(db, nodes)
            zk.retry(zk.create, f"/nemesis/{family.name}", b"ok")
        assert sorted(zk.get_children("/nemesis")) == ["kill", "partition", "pause"]
        zk.retry(zk.delete, "/nemesis", recursive=True)
    finally:
        zk.stop()
        zk.close()


def _traffic(nodes: list[Node], seconds: float = 2.0) -> None:
    """Client requests to every node for a while (retried through the faults)."""
    for node in nodes:
        zk = KazooClient(hosts=f"{node.address}:2181", timeout=10)
        try:
            zk.start(timeout=20)
            deadline = time.monotonic() + seconds / len(nodes)
            while time.monotonic() < deadline:
                try:
                    zk.exists("/")
                except Exception:  # noqa: BLE001 - losses make some requests time out
                    pass
        finally:
            zk.stop()
            zk.close()


def test_packet_loss_and_rate_limits_drop_packets_and_heal(ensemble):
    nodes, db = ensemble
    family, ctx = PacketFamily(), _ctx(ensemble)
    family.setup(ctx)
    assert family.netem == {}  # this kernel has no netem: delay and reorder are not offered
    victim = nodes[0]
    for fault in (Fault("drop-packets", (victim.name,), {"spec": "one", "probability": 0.3}),
                  Fault("limit-rate", (victim.name,), {"spec": "one", "per_second": 5})):
        family.inject(ctx, fault)
        try:
            _traffic([victim])
            assert dropped(victim, "zkchaos-packet") > 0, f"{fault.f} dropped nothing"
        finally:
            family.heal(ctx)
        assert "zkchaos-packet" not in victim.remote.run("iptables -w -S INPUT").stdout
    assert _all_serve(db, nodes)


def test_flaky_links_come_and_go_until_healed(ensemble):
    nodes, db = ensemble
    family, ctx = PacketFamily(), _ctx(ensemble)
    a, b = nodes[0], nodes[1]
    family.inject(ctx, Fault("flaky-links", (a.name, b.name),
                             {"pairs": [[a.name, b.name]], "bursts": {"on_ms": [200, 300], "off_ms": [200, 300]}}))
    seen = set()
    try:
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            seen.add("zkchaos-packet" in a.remote.run("iptables -w -S INPUT").stdout)
            time.sleep(0.05)
    finally:
        family.heal(ctx)
    assert seen == {True, False}, "the link never flapped"
    assert not family.active()
    assert all("zkchaos-packet" not in n.remote.run("iptables -w -S INPUT").stdout for n in (a, b))
    assert _all_serve(db, nodes)


# What each server is cut off for: zkchaos every node for 40 s; ZooKeeper, whose election backs
# off up to 60 s by design (so a long cut of every node says nothing), one follower for 20 s.
CUT_OFF = {"zkchaos": ("all", 40), "zookeeper": ("one", 20)}


def test_servers_cut_off_and_restarted_serve_again_soon_after_the_heal(ensemble):
    """Inside a partition a restarted server dials its peers into firewalls that drop packets,
    and election links established before it keep unacknowledged notifications that the kernel
    retransmits at doubling intervals (25 s, then 51 s after the first). After the heal the
    ensemble must serve promptly, not at the next retransmission. Measured on zkchaos before its
    election dials gave up after 5 s and its links on unacknowledged data: a restarted node
    rejoined minutes later, and every node cut off for 40 s served 13 s after the heal (94 s
    after a two-minute partition in a smoke run); now about 1 s."""
    nodes, db = ensemble
    family, ctx = PartitionFamily(), _ctx(ensemble)
    leader = db.leader(nodes)
    restarted = next(n for n in nodes if n is not leader)
    who, seconds = CUT_OFF[db.name]
    family.inject(ctx, _partition("isolate", nodes, list(nodes) if who == "all" else [restarted]))
    try:
        db.kill(restarted)
        db.start(restarted)
        time.sleep(seconds)  # long enough for dials and retransmissions to back off
    finally:
        family.heal(ctx)
    healed = time.monotonic()
    assert _all_serve(db, nodes)
    took = time.monotonic() - healed
    print(f"\n{db.name}: serving {took:.1f}s after the heal")
    assert took < REJOIN_BOUND_S[db.name], f"{db.name} served again only {took:.1f}s after the heal"
