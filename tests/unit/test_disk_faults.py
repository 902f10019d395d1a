"""The disk and lazyfs families without a cluster: which targets a disk fault may hit, the
faults chosen from a seed, where bytes are flipped and cut, the node helper on plain files, the
outcomes of a restart, and what the preflight asks of a host for them."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from harness.db import Node
from harness.preflight import Needs, parse_facts, problems
from nemesis import disk_node, recovery
from nemesis.base import NemesisContext
from nemesis.disk import FAULTS, DiskFamily, allowed_specs, plan_cut, plan_flips
from nemesis.lazyfs import LazyfsFamily
from nemesis.targets import SPECS


class FakeDB:
    def leader(self, nodes):
        return nodes[0]


def ctx(n: int, seed: int = 1, **options) -> NemesisContext:
    nodes = [Node(f"n{i}", f"10.0.0.{i}", remote=None, id=i) for i in range(1, n + 1)]
    return NemesisContext(nodes, FakeDB(), random.Random(seed), options)


@pytest.mark.parametrize("cap, n, expected", [
    ("minority", 3, ["one", "minority", "leader", "primaries"]),
    ("minority", 5, ["one", "minority", "leader", "primaries"]),
    ("majority", 5, ["one", "minority", "majority", "leader", "followers", "primaries"]),
    ("all", 3, list(SPECS)),
    ("minority", 2, []),
])
def test_the_target_cap_keeps_the_specs_that_fit(cap: str, n: int, expected: list[str]):
    assert allowed_specs(list(SPECS), cap, n) == expected


def test_setup_applies_the_cap_and_refuses_a_cluster_it_leaves_no_target_in():
    family = DiskFamily()
    family.setup(ctx(5, disk_max_targets="majority"))
    assert "all" not in family.specs and "followers" in family.specs
    with pytest.raises(ValueError, match="no target fits --disk-max-targets minority on 2 node"):
        DiskFamily().setup(ctx(2))


def test_a_disk_fault_never_hits_more_than_the_cap():
    c, family = ctx(5, seed=4), DiskFamily()
    family.setup(c)
    faults = [family.choose(c) for _ in range(300)]
    assert {f.f for f in faults} == set(FAULTS)
    assert max(len(f.targets) for f in faults) == 2
    for f in faults:
        if f.f == "truncate-log":
            assert 1 <= f.params["bytes"] <= 256
        if f.f.startswith("corrupt"):
            assert 1 <= f.params["flips"] <= 4 and "seed" in f.params


def test_the_same_seed_chooses_the_same_faults():
    def draw(seed: int) -> list:
        c, family = ctx(5, seed=seed), DiskFamily()
        family.setup(c)
        return [family.choose(c) for _ in range(20)]

    assert draw(9) == draw(9) and draw(9) != draw(10)


def test_a_power_loss_may_hit_any_target_even_all():
    c, family = ctx(3, seed=2), LazyfsFamily()
    targets = {family.choose(c).params["spec"] for _ in range(200)}
    assert targets == set(SPECS)


def test_flips_are_distinct_bytes_inside_the_data_with_a_nonzero_mask():
    plan = plan_flips(100, 4, random.Random(3))
    assert len({offset for offset, _ in plan}) == 4
    assert all(0 <= offset < 100 and 1 <= mask <= 255 for offset, mask in plan)
    assert plan == plan_flips(100, 4, random.Random(3))
    assert len(plan_flips(2, 4, random.Random(3))) == 2 and plan_flips(0, 4, random.Random(3)) == []
    past_header = plan_flips(20, 4, random.Random(3), start=16)  # a log's header is not its data
    assert sorted(offset for offset, _ in past_header) == [16, 17, 18, 19]
    assert plan_flips(16, 4, random.Random(3), start=16) == []


def test_a_cut_never_goes_below_zero():
    assert plan_cut(1000, 5) == 995 and plan_cut(3, 5) == 0


def test_files_are_ordered_by_the_zxid_in_their_name(tmp_path: Path):
    for name in ("log.a", "log.10", "log.0000000000000009", "snapshot.5.tmp"):
        (tmp_path / name).write_bytes(b"x")
    names = [Path(f["path"]).name for f in disk_node.listing(str(tmp_path / "log.*"))]
    assert names == ["log.0000000000000009", "log.a", "log.10"]
    assert disk_node.zxid_of("snapshot.5.tmp") is None and disk_node.listing(str(tmp_path / "none.*")) == []


def test_the_data_ends_before_the_zero_padding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(disk_node, "CHUNK", 16)  # the backwards scan crosses chunks
    log = tmp_path / "log.1"
    log.write_bytes(b"\x00header\x00record\x42" + bytes(100))
    assert disk_node.listing(str(tmp_path / "log.*"))[-1] == {"path": str(log), "size": 115, "end": 15}
    log.write_bytes(bytes(50))
    assert disk_node.data_end(str(log)) == 0


def test_flip_and_cut_change_exactly_what_they_report(tmp_path: Path):
    f = tmp_path / "snapshot.1"
    f.write_bytes(b"abcdef")
    assert disk_node.flip(str(f), ["1:255", "4:1"]) == [{"offset": 1, "before": 98, "after": 98 ^ 255},
                                                        {"offset": 4, "before": 101, "after": 100}]
    assert f.read_bytes() == b"a" + bytes([98 ^ 255]) + b"cddf"
    assert disk_node.cut(str(f), 2) == {"size_before": 6, "size_after": 2} and f.stat().st_size == 2


def test_restart_outcomes_say_whether_the_node_serves():
    assert recovery.serving("serving after 1.2s") and recovery.serving("reseeded, serving after 3.0s")
    assert not recovery.serving("exited") and not recovery.serving("not serving after 60s")
    assert not recovery.serving("reseeded, exited")


class FakeClock:
    """recovery's `time`: sleeping moves the clock on, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class RestartDB(FakeDB):
    """Servers that run and serve from given moments of the fake clock (None: never); a node
    given `refuses` exits at once until it is wiped."""

    def __init__(self, clock: FakeClock, serves_at: dict[str, float | None], refuses: set[str] = frozenset()) -> None:
        self.clock, self.serves_at, self.refuses = clock, serves_at, set(refuses)
        self.wiped: list[str] = []

    def mode(self, node):
        at = self.serves_at.get(node.name)
        return "follower" if at is not None and self.clock.now >= at and node.name not in self.refuses else None

    def is_running(self, node) -> bool:
        return node.name not in self.refuses

    def start(self, node) -> None: ...

    def data_layout(self, node):
        return type("Layout", (), {"data_dir": f"/data/{node.name}"})()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(recovery, "time", fake)
    return fake


def test_a_restarted_node_gets_its_time_while_the_rest_of_the_ensemble_serves(clock: FakeClock):
    c = ctx(3)
    c.db = RestartDB(clock, {"n1": 40.0, "n2": 0.0, "n3": 0.0})
    assert recovery.await_serving(c, [c.node("n1")]) == {"n1": "serving after 40.0s"}
    c.db = RestartDB(clock, {"n1": None, "n2": 0.0, "n3": 0.0})
    clock.now = 0.0
    assert recovery.await_serving(c, [c.node("n1")]) == {"n1": "not serving after 60s"}


def test_while_no_node_serves_a_restart_is_not_waited_for_long(clock: FakeClock):
    """Another fault (every node cut off) holds the quorum back; only its heal brings it."""
    c = ctx(3)
    c.db = RestartDB(clock, {"n1": None, "n2": None, "n3": None})
    assert recovery.await_serving(c, [c.node("n1"), c.node("n2")]) == {
        "n1": "not serving after 15s", "n2": "not serving after 15s"}
    assert clock.now < recovery.NO_QUORUM_S + 1


def test_revive_reseeds_a_node_that_refuses_and_waits_for_the_others_again(clock: FakeClock, monkeypatch):
    c = ctx(3)
    db = c.db = RestartDB(clock, {"n1": 12.0, "n2": 12.0, "n3": None}, refuses={"n1"})
    monkeypatch.setattr(recovery, "wipe_state", lambda node, data_dir: (db.wiped.append(data_dir),
                                                                        db.refuses.discard(node.name)))
    report, down = recovery.revive(c, [c.node("n1"), c.node("n2")])
    assert db.wiped == ["/data/n1"] and down == []
    assert report["n1"].startswith("reseeded, serving after") and recovery.serving(report["n2"])


HOST = "user=admin\nsudo=ok\npython=3.11.2\nbase=/tmp\nbase_writable=ok\nfree_kb=10485760\n"
FUSE_OK = "fuse_dev=ok\nfuse_rw=ok\nfusermount=ok\nlibfuse=libfuse3.so.3\n"


@pytest.mark.parametrize("facts, needs, expected", [
    (HOST + FUSE_OK, Needs(fuse=True), []),
    (HOST + FUSE_OK.replace("fuse_dev=ok\n", ""), Needs(fuse=True), ["no /dev/fuse"]),
    (HOST + FUSE_OK.replace("fuse_rw=ok\n", ""), Needs(fuse=True), ["admin cannot open /dev/fuse: chmod 0666"]),
    (HOST + FUSE_OK.replace("fusermount=ok\n", ""), Needs(fuse=True), ["fusermount3 not found (admin mounts"]),
    (HOST.replace("sudo=ok", "sudo=root") + "fuse_dev=ok\nlibfuse=libfuse.so.2\n", Needs(fuse=True), []),
    (HOST.replace("sudo=ok", "sudo=root") + FUSE_OK.replace("fusermount=ok\n", ""), Needs(fuse=True), []),
    (HOST + FUSE_OK.replace("libfuse3.so.3", ""), Needs(fuse=True), ["python3 cannot find libfuse"]),
    (HOST.replace("3.11.2", "3.8.10") + FUSE_OK, Needs(helpers=True), ["python3 is 3.8.10, the fault helpers"]),
    (HOST.replace("python=3.11.2", "python="), Needs(helpers=True), ["python3 not found: install python3 (>= 3.9)"]),
    (HOST, Needs(), []),
])
def test_preflight_names_what_the_fault_helpers_lack(facts: str, needs: Needs, expected: list[str]):
    found = problems(parse_facts(facts), needs)
    assert len(found) == len(expected) and all(e in f for e, f in zip(expected, found)), found


def test_zkchaos_needs_of_python_cover_the_helpers_without_saying_it_twice():
    found = problems(parse_facts(HOST.replace("3.11.2", "3.9.2") + "venv=ok\n"), Needs(python=True, helpers=True))
    assert found == ["python3 is 3.9.2, zkchaos needs >= 3.11: install a newer python3"]
