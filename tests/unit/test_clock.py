"""The clock family without a cluster: which nodes a fault hits and whether their monotonic clock
moves, parameters within --clock-max-offset, replay from the seed, libfaketime's offset format
and environment, the preflight line, and each node's offset over time drawn from a history."""

from __future__ import annotations

import random
from typing import Any

import pytest

import nemesis
from harness.db import Node
from harness.preflight import Needs, parse_facts, problems
from nemesis import clock_node
from nemesis.base import Fault, NemesisContext
from nemesis.clock import DURATION_MS, RATE, STROBE_PERIOD_MS, ClockFamily, fakes_monotonic
from nemesis.clock_offsets import offsets_over_time
from tests.unit.test_nemesis_choices import FakeDB


def ctx(n: int = 5, mode: str = "mixed", max_offset: float = 60.0, seed: int = 1, leader: str = "n1") -> NemesisContext:
    nodes = [Node(f"n{i}", f"10.0.0.{i}", remote=None, id=i, dir=f"/tmp/run-n{i}") for i in range(1, n + 1)]
    return NemesisContext(nodes, FakeDB(leader), random.Random(seed),
                          options={"clock_monotonic": mode, "clock_max_offset": max_offset})


class FakeDBWithEnv(FakeDB):
    def set_env(self, node, env) -> None: ...


def family(specs: list[str] | None = None, n: int = 5) -> ClockFamily:
    return nemesis.make(["clock"], FakeDBWithEnv(), nodes=n, target_specs=specs)[0]


# --- which nodes, which clocks ---------------------------------------------------------------

def test_mixed_mode_fakes_every_other_nodes_monotonic_clock() -> None:
    nodes = ctx(5).nodes
    assert fakes_monotonic(nodes, "mixed") == {"n1": True, "n2": False, "n3": True, "n4": False, "n5": True}
    assert set(fakes_monotonic(nodes, "both").values()) == {True}
    assert set(fakes_monotonic(nodes, "wall").values()) == {False}


@pytest.mark.parametrize("mode", ["wall", "both", "mixed"])
def test_a_fault_hits_nodes_of_one_kind_and_says_which(mode: str) -> None:
    c, fam = ctx(mode=mode), family()
    kinds = fakes_monotonic(c.nodes, mode)
    seen = set()
    for _ in range(200):
        fault = fam.choose(c)
        assert fault.targets and {kinds[t] for t in fault.targets} == {fault.params["monotonic"]}
        seen.add(fault.params["monotonic"])
    assert seen == {"wall": {False}, "both": {True}, "mixed": {True, False}}[mode]


def test_targets_follow_the_allowed_specs() -> None:
    for leader, monotonic in (("n1", True), ("n2", False)):
        c, fam = ctx(leader=leader), family(["leader"])
        for _ in range(30):
            fault = fam.choose(c)
            assert fault.targets == (leader,) and fault.params["spec"] == "leader"
            assert fault.params["monotonic"] is monotonic
    c, fam = ctx(leader="n3"), family(["followers"])
    for _ in range(30):
        assert "n3" not in fam.choose(c).targets


# --- parameters ------------------------------------------------------------------------------

@pytest.mark.parametrize("max_offset", [0.5, 60.0, 600.0])
def test_parameters_stay_in_range(max_offset: float) -> None:
    c, fam = ctx(max_offset=max_offset, seed=7), family()
    limit = max_offset * 1000
    fs = set()
    for _ in range(300):
        fault = fam.choose(c)
        fs.add(fault.f)
        p = fault.params
        if fault.f == "skew-clock":
            assert RATE[0] <= abs(p["rate"]) <= RATE[1]
            assert abs(p["rate"]) * p["duration_ms"] <= limit + 1
            assert 1 <= p["duration_ms"] <= DURATION_MS[1]
            continue
        assert set(p["delta_ms"]) == set(fault.targets)
        assert all(1 <= abs(d) <= limit for d in p["delta_ms"].values())
        if fault.f == "strobe-clock":
            assert STROBE_PERIOD_MS[0] <= p["period_ms"] <= STROBE_PERIOD_MS[1]
            assert DURATION_MS[0] <= p["duration_ms"] <= DURATION_MS[1]
    assert fs == {"bump-clock", "strobe-clock", "skew-clock"}


def test_a_bump_never_takes_a_node_past_the_largest_offset() -> None:
    c, fam = ctx(max_offset=1.0), family()
    fam.offsets = {n.name: 900 for n in c.nodes}  # already far off: the delta is cut to fit
    for _ in range(100):
        fault = fam.choose(c)
        for name, delta in fault.params.get("delta_ms", {}).items():
            assert abs(900 + delta) <= 1000


def test_a_seed_replays_the_same_faults() -> None:
    def draws(seed: int) -> list[Any]:
        c, fam = ctx(seed=seed), family()
        return [fam.choose(c) for _ in range(20)]

    assert draws(3) == draws(3) and draws(3) != draws(4)


# --- what the nodes get ----------------------------------------------------------------------

@pytest.mark.parametrize("ms, spec", [(0, "+0.000"), (1500, "+1.500"), (-250, "-0.250"), (-61001, "-61.001"),
                                      (7, "+0.007")])
def test_offsets_are_written_in_seconds_with_a_fraction(ms: int, spec: str) -> None:
    assert clock_node.faketime_spec(ms) == spec


def test_the_monotonic_fix_follows_the_mode() -> None:
    node = ctx().nodes[0]
    shared = "/faketime_sem_7 /faketime_shm_7"
    both = clock_node.server_env(node, "/lib/libfaketime.so.1", fake_monotonic=True, shared=shared)
    wall = clock_node.server_env(node, "/lib/libfaketime.so.1", fake_monotonic=False, shared=None)
    assert both["FAKETIME_TIMESTAMP_FILE"] == "/tmp/run-n1/faketime" and both["FAKETIME_NO_CACHE"] == "1"
    assert (both["FAKETIME_DONT_FAKE_MONOTONIC"], both["FAKETIME_FORCE_MONOTONIC_FIX"]) == ("0", "1")
    assert (wall["FAKETIME_DONT_FAKE_MONOTONIC"], wall["FAKETIME_FORCE_MONOTONIC_FIX"]) == ("1", "0")
    assert both["FAKETIME_SHARED"] == shared and "FAKETIME_SHARED" not in wall


def test_preflight_names_a_missing_libfaketime() -> None:
    facts = parse_facts("user=admin\nbase=/tmp\nbase_writable=ok\nfree_kb=10485760\n")
    assert problems(facts, Needs(faketime=True)) == ["libfaketime not found: apt-get install libfaketime"]
    assert problems({**facts, "faketime": ["ok"]}, Needs(faketime=True)) == []
    assert (Needs(root=True) | ClockFamily.needs) == Needs(root=True, faketime=True)


# --- offsets over time -----------------------------------------------------------------------

def nemesis_step(t_s: float, f: str, nodes: dict[str, dict] | None, error: str | None = None) -> list[dict]:
    """An invocation and its info completion, as the schedule records them."""
    base = {"process": "nemesis", "node": None, "f": f, "zxid": None, "session": None}
    return [{**base, "index": 0, "time_ns": int((t_s - 0.01) * 1e9), "type": "invoke", "value": {"targets": []},
             "error": None},
            {**base, "index": 1, "time_ns": int(t_s * 1e9), "type": "info",
             "value": None if nodes is None else {"nodes": nodes}, "error": error}]


def test_a_bump_and_a_reset_are_steps() -> None:
    history = (nemesis_step(2.0, "bump-clock", {"n1": {"from_ms": 0, "to_ms": 5000}})
               + nemesis_step(5.0, "reset-clock", {"n1": {"to_ms": 0}}))
    assert offsets_over_time(history) == {"n1": [(0.0, 0.0), (2.0, 0.0), (2.0, 5000.0), (5.0, 5000.0), (5.0, 0.0)]}


def test_a_strobe_is_a_square_wave_that_ends_low() -> None:
    strobe = {"from_ms": 0, "high_ms": 800, "period_ms": 500, "duration_ms": 1200}
    line = offsets_over_time(nemesis_step(1.0, "strobe-clock", {"n2": strobe}))["n2"]
    assert line == [(0.0, 0.0), (1.0, 0.0), (1.0, 800.0), (1.5, 800.0), (1.5, 0.0), (2.0, 0.0), (2.0, 800.0),
                    (2.2, 800.0), (2.2, 0.0)]


def test_a_skew_is_a_ramp_and_a_reset_cuts_it_short() -> None:
    history = (nemesis_step(1.0, "skew-clock", {"n1": {"from_ms": 0, "to_ms": 4000, "duration_ms": 4000},
                                                "n2": {"from_ms": 0, "to_ms": -400, "duration_ms": 4000}})
               + nemesis_step(3.0, "reset-clock", {"n1": {"to_ms": 0}, "n2": {"to_ms": 0}}))
    lines = offsets_over_time(history)
    assert lines["n1"] == [(0.0, 0.0), (1.0, 0.0), (3.0, 2000.0), (3.0, 0.0)]
    assert lines["n2"] == [(0.0, 0.0), (1.0, 0.0), (3.0, -200.0), (3.0, 0.0)]


def test_a_reset_during_a_strobe_stops_the_wave() -> None:
    strobe = {"from_ms": 0, "high_ms": 100, "period_ms": 1000, "duration_ms": 10000}
    history = nemesis_step(1.0, "strobe-clock", {"n1": strobe}) + nemesis_step(2.5, "reset-clock", {"n1": {"to_ms": 0}})
    assert offsets_over_time(history)["n1"] == [(0.0, 0.0), (1.0, 0.0), (1.0, 100.0), (2.0, 100.0), (2.0, 0.0),
                                                (2.5, 0.0)]


def test_steps_that_failed_draw_nothing() -> None:
    history = (nemesis_step(1.0, "bump-clock", None, error="RuntimeError: n1: unreachable")
               + nemesis_step(2.0, "bump-clock", {"n1": {"error": "RemoteError: down"},
                                                  "n2": {"from_ms": 0, "to_ms": -30}}))
    assert offsets_over_time(history) == {"n2": [(0.0, 0.0), (2.0, 0.0), (2.0, -30.0)]}


# --- state ------------------------------------------------------------------------------------

def test_a_node_that_cannot_be_reset_stays_in_effect(monkeypatch: pytest.MonkeyPatch) -> None:
    c, fam = ctx(3), family(n=3)
    written: list[tuple[str, int]] = []
    monkeypatch.setattr(clock_node, "set_offset", lambda node, ms: written.append((node.name, ms)))
    monkeypatch.setattr(clock_node, "remove_shared_memory", lambda node: None)
    bump = Fault("bump-clock", ("n1", "n2"), {"spec": "all", "monotonic": True, "delta_ms": {"n1": 5, "n2": -7}})
    assert fam.inject(c, bump) == {"nodes": {"n1": {"from_ms": 0, "to_ms": 5}, "n2": {"from_ms": 0, "to_ms": -7}}}

    def unreachable(node, ms):
        if node.name == "n2":
            raise OSError("no route")
        written.append((node.name, ms))

    monkeypatch.setattr(clock_node, "set_offset", unreachable)
    with pytest.raises(RuntimeError, match="clock still off on n2"):
        fam.heal(c)
    assert fam.active() and fam.touched == {"n2"}
    monkeypatch.setattr(clock_node, "set_offset", lambda node, ms: written.append((node.name, ms)))
    assert fam.heal(c) == {"nodes": {"n2": {"to_ms": 0}}} and not fam.active()
    fam.teardown(c)
    fam.teardown(c)  # twice is fine
    assert written[-3:] == [("n1", 0), ("n2", 0), ("n3", 0)]


def test_a_fault_names_the_nodes_it_failed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    c, fam = ctx(3), family(n=3)

    def flaky(node, ms):
        if node.name != "n1":
            raise OSError("no route")

    monkeypatch.setattr(clock_node, "set_offset", flaky)
    done = fam.inject(c, Fault("bump-clock", ("n1", "n2"), {"delta_ms": {"n1": 5, "n2": 5}}))
    assert done == {"nodes": {"n1": {"from_ms": 0, "to_ms": 5}, "n2": {"error": "OSError: no route"}}}
    assert fam.touched == {"n1", "n2"}  # n2 may be half done: the heal resets it too
    with pytest.raises(RuntimeError, match="n3: OSError: no route"):
        fam.inject(c, Fault("bump-clock", ("n3",), {"delta_ms": {"n3": 5}}))
