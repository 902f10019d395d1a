"""Fault families and the schedule without a cluster: which nodes a fault hits, the shapes of
partitions, how faults of several families overlap, that a seed replays the same choices, and
that a heal that fails leaves the fault listed as in effect."""

from __future__ import annotations

import random
from typing import Any

import pytest

import nemesis
from harness.db import Node
from harness.history import HistoryRecorder
from nemesis import targets
from nemesis.base import Family, Fault, NemesisContext
from nemesis.partition import grudge_for
from nemesis.schedule import Schedule


class FakeDB:
    name = "fake"

    def __init__(self, leader: str | None = "n1") -> None:
        self.leader_name = leader

    def leader(self, nodes):
        return next((n for n in nodes if n.name == self.leader_name), None)

    def mode(self, node) -> str:
        return "leader" if node.name == self.leader_name else "follower"


def ctx(n: int, leader: str | None = "n1", seed: int = 1, specs: list[str] | None = None) -> NemesisContext:
    nodes = [Node(f"n{i}", f"10.0.0.{i}", remote=None, id=i) for i in range(1, n + 1)]
    return NemesisContext(nodes, FakeDB(leader), random.Random(seed), target_specs=specs)


def symmetric(grudge: dict[str, set[str]]) -> bool:
    return all(a in grudge.get(b, set()) for a, enemies in grudge.items() for b in enemies)


def hears(grudge: dict, names: list[str], node: str) -> set[str]:
    return {other for other in names if other not in grudge.get(node, set())}


NAMES5 = [f"n{i}" for i in range(1, 6)]


@pytest.mark.parametrize("n", [3, 5, 7])
def test_halves_split_into_two_sides_that_cannot_talk(n: int) -> None:
    names = [f"n{i}" for i in range(1, n + 1)]
    grudge = grudge_for("halves", names, [], random.Random(1))
    assert symmetric(grudge)
    assert len({frozenset(hears(grudge, names, x)) for x in names}) == 2


@pytest.mark.parametrize("n", [5, 7, 9])
def test_majorities_ring_gives_everyone_a_different_majority(n: int) -> None:
    names = [f"n{i}" for i in range(1, n + 1)]
    grudge = grudge_for("majorities-ring", names, [], random.Random(2))
    views = [frozenset(hears(grudge, names, x)) for x in names]
    assert all(n // 2 < len(v) < n for v in views) and len(set(views)) == n and symmetric(grudge)


def test_bridge_node_hears_everyone_and_halves_do_not_hear_each_other() -> None:
    grudge = grudge_for("bridge", NAMES5, [], random.Random(3))
    bridge = [x for x in NAMES5 if not grudge.get(x)]
    assert len(bridge) == 1 and symmetric(grudge)
    assert all(bridge[0] in hears(grudge, NAMES5, x) for x in NAMES5)


def test_isolate_cuts_the_victims_off_both_ways() -> None:
    grudge = grudge_for("isolate", NAMES5, ["n3", "n4"], random.Random())
    assert grudge["n3"] == grudge["n4"] == {"n1", "n2", "n5"} and grudge["n1"] == {"n3", "n4"}
    assert symmetric(grudge)
    alone = grudge_for("isolate", ["n1", "n2", "n3"], ["n1", "n2", "n3"], random.Random())
    assert all(alone[x] == {"n1", "n2", "n3"} - {x} for x in alone)


def test_one_way_partitions() -> None:
    mute = grudge_for("mute", NAMES5, ["n2"], random.Random())
    assert "n2" not in mute and all(mute[x] == {"n2"} for x in ("n1", "n3", "n4", "n5"))  # nobody hears n2
    deaf = grudge_for("deaf", NAMES5, ["n2"], random.Random())
    assert deaf == {"n2": {"n1", "n3", "n4", "n5"}}  # n2 hears nobody, everyone hears n2


@pytest.mark.parametrize("spec, size", [("one", {1}), ("minority", {1, 2}), ("majority", {3, 4}),
                                        ("all", {5}), ("leader", {1}), ("followers", {4}), ("primaries", {1, 2})])
def test_target_specs_name_the_right_nodes(spec: str, size: set[int]) -> None:
    c = ctx(5, leader="n4")
    for _ in range(30):
        picked = targets.pick(spec, c)
        assert len(picked) in size and len({p.name for p in picked}) == len(picked)
        if spec in ("leader", "primaries"):
            assert picked[0].name == "n4"
        if spec == "followers":
            assert "n4" not in {p.name for p in picked}


def test_targets_the_cluster_is_too_small_for_are_refused() -> None:
    assert targets.allowed(targets.SPECS, None, 1) == ["one", "all", "leader"]
    with pytest.raises(targets.TargetError, match="target majority needs at least 3 nodes, the cluster has 2"):
        targets.allowed(targets.SPECS, ["majority"], 2)
    with pytest.raises(nemesis.NemesisError, match="--nemesis-targets: target followers needs at least 2 nodes"):
        nemesis.make(["kill"], _KillPauseDB(), nodes=1, target_specs=["followers"])


class _KillPauseDB(FakeDB):
    def start(self, node) -> None: ...
    def kill(self, node) -> None: ...
    def pause(self, node) -> None: ...
    def resume(self, node) -> None: ...


def test_partition_choices_only_use_the_allowed_targets() -> None:
    c = ctx(5, specs=["leader"])
    family = nemesis.make(["partition"], c.db, nodes=5, target_specs=["leader"])[0]
    shapes = set()
    for _ in range(60):
        fault = family.choose(c)
        shapes.add(fault.params["shape"])
        if fault.params.get("spec"):
            assert fault.params["spec"] == "leader" and fault.targets == ("n1",)
    assert {"isolate", "halves", "clients"} <= shapes


class Toy(Family):
    """A family that only records what happens to it."""

    target_specs = ("one",)

    def __init__(self, name: str, fail_heals: int = 0) -> None:
        self.name, self.faults, self.heal_f = name, (f"start-{name}",), f"stop-{name}"
        super().__init__()
        self.on: Fault | None = None
        self.fail_heals = fail_heals

    def choose(self, ctx: NemesisContext) -> Fault:
        spec, nodes = ctx.pick(self.specs)
        return Fault(self.faults[0], tuple(n.name for n in nodes), {"spec": spec})

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        self.on = fault
        return {"ok": True}

    def active(self) -> bool:
        return self.on is not None

    def heal(self, ctx: NemesisContext) -> Any:
        if self.fail_heals:
            self.fail_heals -= 1
            raise RuntimeError("node unreachable")
        self.on = None
        return {}


def drive(schedule: Schedule, steps: int) -> list[float]:
    """Step the schedule through its next `steps` due moments on a made-up clock."""
    schedule.begin(0.0)
    moments = []
    for _ in range(steps):
        now = schedule.next_event()
        schedule.step(now)
        moments.append(now)
    return moments


def run_steps(families: list[Family], steps: int, seed: int,
              interval: tuple[float, float] = (1.0, 1.0)) -> list[tuple[str, Any]]:
    history = HistoryRecorder()
    drive(Schedule(families, ctx(5, seed=seed), history, interval), steps)
    return [(r["f"], r["value"]) for r in history.records if r["type"] == "invoke"]


def test_one_family_alternates_fault_and_heal() -> None:
    fs = [f for f, _ in run_steps([Toy("a")], 6, seed=4)]
    assert fs[:6] == ["start-a", "stop-a"] * 3


def test_every_fault_is_healed_within_the_interval() -> None:
    """A fault lives for its own span (not until the schedule happens to pick its heal)."""
    families = [Toy("a"), Toy("b"), Toy("c")]
    history = HistoryRecorder()
    schedule = Schedule(families, ctx(5, seed=3), history, (2.0, 5.0))
    started: dict[str, float] = {}
    schedule.begin(0.0)
    for _ in range(200):
        now = schedule.next_event()
        before = {f.name for f in families if f.active()}
        schedule.step(now)
        after = {f.name for f in families if f.active()}
        for name in after - before:
            started[name] = now
        for name in before - after:
            assert 2.0 <= now - started.pop(name) <= 5.0
    assert schedule.faults > 50


def test_several_families_overlap() -> None:
    fs = [f for f, _ in run_steps([Toy("a"), Toy("b"), Toy("c")], 40, seed=5, interval=(1.0, 3.0))]
    active, most = set(), 0
    for f in fs:
        kind, name = f.split("-")
        (active.add if kind == "start" else active.discard)(name)
        most = max(most, len(active))
    assert most >= 2, "faults of different families were in effect at the same time"


def test_a_seed_replays_the_same_faults_and_targets() -> None:
    one = run_steps([Toy("a"), Toy("b")], 30, seed=9, interval=(1.0, 3.0))
    assert one == run_steps([Toy("a"), Toy("b")], 30, seed=9, interval=(1.0, 3.0))
    assert one != run_steps([Toy("a"), Toy("b")], 30, seed=10, interval=(1.0, 3.0))


def test_a_failed_heal_leaves_the_fault_in_effect_and_reported() -> None:
    family = Toy("a", fail_heals=5)
    history = HistoryRecorder()
    schedule = Schedule([family], ctx(3), history, (1.0, 1.0))
    drive(schedule, 2)  # the fault, then a heal that fails
    assert family.active() and schedule.failures == ["stop-a: node unreachable"]
    assert history.records[-1]["error"] == "RuntimeError: node unreachable"
    left = schedule.teardown()
    assert left == ["a: start-a n1 spec=one"] or left[0].startswith("a: start-a ")


def test_the_final_heal_undoes_faults_that_hold_the_quorum_back_before_restarts_that_need_it() -> None:
    restarts, cut = Toy("disk"), Toy("partition")
    restarts.heal_needs_quorum = True
    history = HistoryRecorder()
    schedule = Schedule([restarts, cut], ctx(3), history, (1.0, 1.0))
    for family in (restarts, cut):
        schedule.start(family)
    assert schedule.teardown() == []
    assert [r["f"] for r in history.records if r["type"] == "invoke"][2:] == ["stop-partition", "stop-disk"]


def test_packet_faults_use_the_options_and_never_touch_ssh() -> None:
    from nemesis.packet import PacketFamily

    c = ctx(5, seed=2)
    c.options = {"packet_loss": 0.35, "packet_rate": 7}
    family = PacketFamily()
    seen = set()
    for _ in range(80):
        fault = family.choose(c)
        seen.add(fault.f)
        assert fault.f in ("drop-packets", "flaky-links", "limit-rate")  # no netem found: no delay
        if fault.f == "drop-packets":
            assert fault.params["probability"] == 0.35
        if fault.f == "limit-rate":
            assert fault.params["per_second"] == 7
        if "pairs" in fault.params:
            a, b = fault.params["pairs"][0]
            assert a != b and set(fault.targets) == {a, b}
        for node, rule in family._rules(c, fault):
            assert "! --dport 22" in rule and rule.endswith("--comment zkchaos-packet")
    assert seen == {"drop-packets", "flaky-links", "limit-rate"}
    family.netem = {n.name: "eth0" for n in c.nodes}
    assert {family.choose(c).f for _ in range(80)} >= {"delay-packets", "reorder-packets"}
