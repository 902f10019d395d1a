"""Clock faults take effect on the servers' clocks and heal, on a real 3-node ensemble of each DB
in a local namespace cluster. The servers' wall clock is measured through the ctime ZooKeeper
stamps on a new znode: the leader's wall time when it proposed the create. Nodes run in `mixed`
mode: n1 and n3 fake their monotonic clock too, n2 only its wall clock."""

from __future__ import annotations

import random
import time
from typing import Iterator

import pytest
from kazoo.client import KazooClient, KazooState

from harness.db import Node, ServerDB, make_db
from nemesis import clock_node
from nemesis.base import Fault, NemesisContext
from nemesis.clock import ClockFamily, fakes_monotonic
from tests.conftest import require_apache_zookeeper
from tests.netns import namespace_nodes, running

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkk", "10.66.68.0/24"
SESSION_S = 4.0  # the longest session timeout at tickTime 200 (20 ticks)
BUMP_MS = 12_000  # three session timeouts
LEADER_SESSIONS = 4  # a session touched in the instant after a bump survives it: several, so some expire


class Ensemble:
    def __init__(self, nodes: list[Node], db: ServerDB, family: ClockFamily, ctx: NemesisContext) -> None:
        self.nodes, self.db, self.family, self.ctx = nodes, db, family, ctx
        self.kinds = fakes_monotonic(nodes, "mixed")

    def node(self, name: str) -> Node:
        return self.ctx.node(name)

    def lead(self, monotonic: bool) -> Node:
        """Restart leaders until a node whose monotonic clock is faked (or not) leads."""
        for _ in range(6):
            leader = _wait(lambda: self.db.leader(self.nodes), 60)
            if self.kinds[leader.name] == monotonic:
                _wait(lambda: all(self.db.mode(n) for n in self.nodes), 60)
                return leader
            self.db.kill(leader)
            _wait(lambda: self.db.leader([n for n in self.nodes if n is not leader]), 60)
            self.db.start(leader)
        raise AssertionError(f"no node with monotonic={monotonic} became leader")

    def bump(self, node: Node, delta_ms: int) -> dict:
        fault = Fault("bump-clock", (node.name,), {"spec": "one", "monotonic": self.kinds[node.name],
                                                   "delta_ms": {node.name: delta_ms}})
        return self.family.inject(self.ctx, fault)


@pytest.fixture(scope="module", params=["zkchaos", "zookeeper"])
def ensemble(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    if request.param == "zookeeper":
        require_apache_zookeeper()
    db = make_db(request.param, tick_time=200)
    family = ClockFamily()
    with namespace_nodes(tmp_path_factory.mktemp("clock-cluster"), PREFIX, SUBNET) as nodes:
        ctx = NemesisContext(nodes, db, random.Random(5), {"clock_monotonic": "mixed", "clock_max_offset": 60.0})
        # The family's setup runs before the servers start: they start under libfaketime.
        with running(nodes, db, before_start=lambda: family.setup(ctx)):
            try:
                yield Ensemble(nodes, db, family, ctx)
            finally:
                family.teardown(ctx)
                assert not any(clock_node.loop_running(n) for n in nodes)


@pytest.fixture(autouse=True)
def healed(ensemble: Ensemble) -> Iterator[None]:
    """Each test starts and ends with every clock true and the ensemble serving."""
    yield
    if ensemble.family.active():
        ensemble.family.heal(ensemble.ctx)
    assert not any(clock_node.loop_running(n) for n in ensemble.nodes)
    assert _wait(lambda: ensemble.db.leader(ensemble.nodes) and all(ensemble.db.mode(n) for n in ensemble.nodes), 90)


def _wait(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    return None


def _client(node: Node, timeout: float = SESSION_S) -> KazooClient:
    zk = KazooClient(hosts=f"{node.address}:2181", timeout=timeout)
    zk.start(timeout=30)
    return zk


def _offset_s(zk: KazooClient) -> float:
    """The leader's wall clock minus ours, from the ctime of a new znode (seconds)."""
    before = time.time()
    path = zk.retry(zk.create, "/clock-probe-", b"", sequence=True, ephemeral=True)
    after = time.time()
    ctime = zk.retry(zk.exists, path).ctime / 1000
    zk.retry(zk.delete, path)
    return ctime - (before + after) / 2


def _sample(zk: KazooClient, seconds: float) -> list[tuple[float, float]]:
    """(seconds since the start, offset) about every 50 ms."""
    start, out = time.monotonic(), []
    while time.monotonic() - start < seconds:
        out.append((time.monotonic() - start, _offset_s(zk)))
        time.sleep(0.05)
    return out


def test_a_bump_moves_the_leaders_wall_clock_and_reset_heals_it(ensemble: Ensemble) -> None:
    leader = ensemble.lead(monotonic=False)  # only its wall clock moves: nothing else is disturbed
    zk = _client(leader, timeout=10)
    try:
        assert abs(_offset_s(zk)) < 0.5
        done = ensemble.bump(leader, 20_000)
        assert done == {"nodes": {leader.name: {"from_ms": 0, "to_ms": 20_000}}}
        assert abs(_offset_s(zk) - 20.0) < 0.5
        ensemble.bump(leader, -27_500)  # back past real time
        assert abs(_offset_s(zk) + 7.5) < 0.5
        healed = ensemble.family.heal(ensemble.ctx)
        assert healed == {"nodes": {leader.name: {"to_ms": 0}}} and not ensemble.family.active()
        assert abs(_offset_s(zk)) < 0.5
        ensemble.family.heal(ensemble.ctx)  # twice is fine
    finally:
        zk.stop()
        zk.close()


def test_a_strobe_flips_the_clock_then_stops_by_itself(ensemble: Ensemble) -> None:
    leader = ensemble.lead(monotonic=False)
    zk = _client(leader, timeout=10)
    try:
        fault = Fault("strobe-clock", (leader.name,), {"spec": "leader", "monotonic": False,
                                                       "delta_ms": {leader.name: 10_000}, "period_ms": 300,
                                                       "duration_ms": 3000})
        done = ensemble.family.inject(ensemble.ctx, fault)["nodes"][leader.name]
        assert done["high_ms"] == 10_000 and done["pid"] > 0 and clock_node.loop_running(leader)
        samples = _sample(zk, 2.8)
        high = [t for t, off in samples if abs(off - 10) < 0.5]
        low = [t for t, off in samples if abs(off) < 0.5]
        assert len(high) + len(low) == len(samples), samples
        assert high and low and _flips(samples) >= 4, samples  # about every 300 ms
        assert _wait(lambda: not clock_node.loop_running(leader), 5), "the strobe ended by itself"
        assert abs(_offset_s(zk)) < 0.5  # and left the clock where it found it
    finally:
        zk.stop()
        zk.close()


def test_a_skew_ramps_the_clock_then_stops_by_itself(ensemble: Ensemble) -> None:
    leader = ensemble.lead(monotonic=False)
    zk = _client(leader, timeout=10)
    try:
        fault = Fault("skew-clock", (leader.name,), {"spec": "leader", "monotonic": False, "rate": 1.0,
                                                     "duration_ms": 3000, "step_ms": 50})
        done = ensemble.family.inject(ensemble.ctx, fault)["nodes"][leader.name]
        assert (done["from_ms"], done["to_ms"]) == (0, 3000)
        samples = _sample(zk, 2.5)
        # The clock runs at twice the speed: the offset grows with real time.
        rising = [off - t for t, off in samples]
        assert max(abs(r) for r in rising) < 0.6, samples
        assert samples[-1][1] > 1.5, samples
        assert _wait(lambda: not clock_node.loop_running(leader), 5), "the skew ended by itself"
        assert abs(_offset_s(zk) - 3.0) < 0.5  # where the ramp ended, until reset
        ensemble.family.heal(ensemble.ctx)
        assert abs(_offset_s(zk)) < 0.5
    finally:
        zk.stop()
        zk.close()


def _flips(samples: list[tuple[float, float]]) -> int:
    levels = [round(off / 10) for _, off in samples]
    return sum(1 for a, b in zip(levels, levels[1:]) if a != b)



def _sessions(nodes: list[Node], leader: Node) -> dict[str, tuple[KazooClient, list]]:
    """One session through each follower and LEADER_SESSIONS through the leader, each holding an
    ephemeral; their state changes, timed. Named `n1`, `n3.0`, `n3.1`, ..."""
    out = {}
    for node in nodes:
        names = [f"{node.name}.{i}" for i in range(LEADER_SESSIONS)] if node is leader else [node.name]
        for name in names:
            zk, events = KazooClient(hosts=f"{node.address}:2181", timeout=SESSION_S), []
            zk.add_listener(lambda state, events=events: events.append((time.monotonic(), state)))
            zk.start(timeout=30)
            zk.create(f"/clock-session-{name}", b"", ephemeral=True)
            out[name] = (zk, events)
    return out


def _lost_after(sessions: dict[str, tuple[KazooClient, list]], start: float) -> dict[str, float | None]:
    """Seconds from `start` until each session was found expired, or None."""
    return {name: next((t - start for t, s in events if s == KazooState.LOST), None)
            for name, (_, events) in sessions.items()}


def _modes_for(db: ServerDB, node: Node, seconds: float) -> set[str | None]:
    """Every role `node` reports over `seconds` (None: not serving, as during an election)."""
    seen, deadline = set(), time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(db.mode(node))
        time.sleep(0.1)
    return seen


@pytest.mark.parametrize("monotonic", [True, False], ids=["monotonic", "wall-only"])
def test_a_forward_bump_on_the_leader_and_session_expiry(ensemble: Ensemble, monotonic: bool) -> None:
    """Measured (tickTime 200, 4 s sessions, +12 s on the leader): on Apache ZooKeeper a faked
    monotonic clock expires sessions within a second (its session tracker sees their deadlines
    passed) while the leader keeps leading. Which ones varies from run to run: in five runs of
    six the one session through the leader expired and none through the followers, in the
    sixth none at all; in a later run with four through the leader, both through the followers
    expired and none through the leader. Presumably touches (which re-arm a session at the
    jumped clock) race the tracker's next pass; hence six sessions, four through the leader,
    and the assertion that some expire early. On zkchaos's server the leader usually finds
    its followers silent for 12 s and gives up leading, and the new leader's tracker starts
    every session afresh; but in one CI run a follower's packet came first and it kept leading,
    with no session expired. So for zkchaos only this is asserted: no session expires (ZooKeeper
    allows an early expiry, zkchaos has never shown one) and the ensemble serves afterwards. A
    wall-clock-only bump touches neither server."""
    leader = ensemble.lead(monotonic)
    sessions = _sessions(ensemble.nodes, leader)
    try:
        start = time.monotonic()
        ensemble.bump(leader, BUMP_MS)
        modes = _modes_for(ensemble.db, leader, 3 * SESSION_S)
        lost = _lost_after(sessions, start)
    finally:
        for zk, _ in sessions.values():
            zk.stop()
            zk.close()
    expired = {name for name, t in lost.items() if t is not None}
    if not monotonic:
        assert not expired and modes == {"leader"}, (lost, modes)
    elif ensemble.db.name == "zookeeper":
        early = {name for name in expired if lost[name] < SESSION_S}  # before any timeout could run out
        assert early and modes == {"leader"}, (lost, modes)
    else:
        print(f"\nzkchaos after a monotonic bump of its leader: roles {modes}, sessions lost {lost}")
        assert not expired, lost
        assert _wait(lambda: ensemble.db.leader(ensemble.nodes), 60)


def test_teardown_leaves_no_loop_offset_or_shared_memory(ensemble: Ensemble) -> None:
    names = tuple(n.name for n in ensemble.nodes)
    fault = Fault("strobe-clock", names, {"spec": "all", "monotonic": True, "delta_ms": dict.fromkeys(names, 5000),
                                          "period_ms": 100, "duration_ms": 60_000})
    ensemble.family.inject(ensemble.ctx, fault)
    victim = ensemble.nodes[0]
    ensemble.db.kill(victim)  # a killed server must leave no shared memory of libfaketime's
    ensemble.db.start(victim)
    assert all(clock_node.loop_running(n) for n in ensemble.nodes)
    ensemble.family.teardown(ensemble.ctx)
    ensemble.family.teardown(ensemble.ctx)
    for node in ensemble.nodes:
        assert not clock_node.loop_running(node)
        assert node.remote.run(f"cat {clock_node.timestamp_file(node)}", sudo=False).stdout.strip() == "+0.000"
        shared = ensemble.db.env[node.name]["FAKETIME_SHARED"]  # what the servers share
        sem, shm = (name.lstrip("/") for name in shared.split())
        assert not node.remote.run(f"ls /dev/shm/sem.{sem} /dev/shm/{shm}", check=False, sudo=False).ok
    ensemble.family.setup(ensemble.ctx)  # ready again for servers restarted by later tests
