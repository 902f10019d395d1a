"""The set checker on hand-built histories: one per finding it claims, valid ones for each mode
and consistency model, and the generator's op mix."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from harness.checkers.set_full import SetChecker, check_set
from workloads.set import SetGenerator, element_of

MODELS = ["zookeeper", "linearizable"]
# What each mode's client adds to completions: the checker must not depend on it.
STAT = {"children": {"add": {"czxid": 7}, "read": {"cversion": 3, "pzxid": 7}},
        "cas": {"add": {"version": 2, "mzxid": 7, "attempts": 1}, "read": {"version": 2, "mzxid": 7}}}


class H:
    """Set histories: `invoke`/`complete` for concurrent ops, `add`/`read` for whole ones. Each
    record is 1 ms after the last; a process is its own session unless one is given."""

    def __init__(self, mode: str = "children") -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}
        self.stat = STAT[mode]

    def _record(self, **record: Any) -> None:
        record.update(index=len(self.records), time_ns=len(self.records) * 1_000_000, node="n1", error=None)
        self.records.append(record)

    def invoke(self, p: Any, f: str, value: dict, final: bool = False, session: str | None = None) -> "H":
        extra = {"final": True} if final else {}
        self._record(process=p, type="invoke", f=f, value=value, session=session, **extra)
        self.open[p] = self.records[-1]
        return self

    def complete(self, p: Any, kind: str = "ok", elements: list | None = None) -> "H":
        inv = self.open.pop(p)
        value = dict(inv["value"])
        if kind == "ok":
            value.update(self.stat[inv["f"]])
            if inv["f"] == "read":
                value["elements"] = elements
        extra = {"final": True} if inv.get("final") else {}
        self._record(process=p, type=kind, f=inv["f"], value=value, session=inv["session"], **extra)
        return self

    def add(self, p: Any, e: Any, kind: str = "ok", session: str | None = None) -> "H":
        return self.invoke(p, "add", {"element": e}, session=session).complete(p, kind)

    def read(self, p: Any, elements: list, final: bool = False, session: str | None = None) -> "H":
        return self.invoke(p, "read", {"elements": None}, final, session).complete(p, "ok", elements)

    def finals(self, elements: list, nodes: int = 3) -> "H":
        for n in range(nodes):
            self.read(1000 + n, elements, final=True)
        return self


def only(result: dict, kind: str) -> dict:
    found = [a for a in result["anomalies"] if a["type"] == kind]
    assert len(found) == 1, result["anomalies"]
    return found[0]


@pytest.mark.parametrize("mode", ["children", "cas"])
@pytest.mark.parametrize("consistency", MODELS)
def test_concurrent_adds_and_reads_that_agree_are_valid(mode: str, consistency: str) -> None:
    h = (H(mode).invoke(0, "add", {"element": 1}).invoke(1, "add", {"element": 2})
         .read(2, [1]).complete(0).read(2, [1]).complete(1).read(3, [1, 2])
         .add(0, 3).read(2, [1, 2, 3]).finals([1, 2, 3]))
    result = check_set(h.records, consistency)
    json.dumps(result)
    assert result["valid"] is True, result["explanation"]
    assert result["anomalies"] == [] and result["elements"]["acknowledged"] == 3
    assert result["visibility_latency_ms"]["count"] == 3


@pytest.mark.parametrize("consistency", MODELS)
def test_an_acknowledged_element_missing_from_a_final_read_is_lost(consistency: str) -> None:
    h = H().add(0, 1).add(0, 2).read(1, [1, 2]).read(1000, [1, 2], final=True).read(1001, [1], final=True)
    result = check_set(h.records, consistency)
    assert result["valid"] is False
    lost = only(result, "lost")
    assert lost["element"] == 2 and lost["zookeeper"] == "violation"
    assert lost["classification"] == "lost element: known to exist, missing from a final read"
    assert lost["op"]["process"] == 1001 and lost["add"]["value"]["element"] == 2
    assert "elements" not in lost["op"]["value"] and lost["op"]["size"] == 1
    assert result["lost"] == [2]


def test_an_indeterminate_add_that_a_read_saw_cannot_vanish_either() -> None:
    h = H().add(0, 1, kind="info").read(1, [1]).finals([])
    result = check_set(h.records, "zookeeper")
    assert result["valid"] is False and only(result, "lost")["element"] == 1


@pytest.mark.parametrize("elements, why", [([1, 9], "no add of it was attempted"), ([1, 2], "every add of it failed")])
def test_a_read_of_an_element_never_added_is_unexpected(elements: list, why: str) -> None:
    h = H().add(0, 1).add(0, 2, kind="fail").read(1, elements).finals([1])
    result = check_set(h.records, "zookeeper")
    assert result["valid"] is False
    unexpected = only(result, "unexpected")
    assert unexpected["element"] == elements[1] and why in unexpected["explanation"]
    assert unexpected["classification"] == "read of an element never added"


def test_a_foreign_child_name_is_unexpected() -> None:
    assert element_of("e-12") == 12 and element_of("stray") == "stray"
    h = H().add(0, 1).finals([1, "stray"])
    assert only(check_set(h.records, "zookeeper"), "unexpected")["element"] == "stray"


def test_an_element_twice_in_one_read_is_duplicated() -> None:
    h = H("cas").add(0, 1).add(0, 2).read(1, [1, 2, 2]).read(1, [1, 2, 2]).finals([1, 2])
    result = check_set(h.records, "zookeeper")
    assert result["valid"] is False
    dup = only(result, "duplicated")
    assert dup["element"] == 2 and "reads that did: 2" in dup["explanation"]
    assert dup["classification"] == "element twice in one read"


def test_an_indeterminate_add_that_took_effect_is_recovered() -> None:
    h = H().add(0, 1).add(0, 2, kind="info").add(0, 3, kind="info").finals([1, 2])
    result = check_set(h.records, "zookeeper")
    assert result["valid"] is True, result["explanation"]
    assert result["recovered"] == [2] and result["elements"]["recovered"] == 1


def test_another_sessions_stale_read_is_allowed_by_zookeeper_only() -> None:
    h = H().add(0, 1, session="a").read(1, [], session="b").read(1, [1], session="b").finals([1])
    zk = check_set(h.records, "zookeeper")
    assert zk["valid"] is True, zk["explanation"]
    stale = only(zk, "stale")
    assert stale["zookeeper"] == "allowed"
    assert stale["classification"] == "stale read by another session (allowed by ZooKeeper)"
    assert zk["elements"]["stale_reads"] == 1
    lin = check_set(h.records, "linearizable")
    assert lin["valid"] is False and "ZooKeeper's own model allows every one" in lin["explanation"]
    assert only(lin, "stale")["zookeeper"] == "allowed"


@pytest.mark.parametrize("first", ["read", "add"])
def test_a_session_that_misses_what_it_saw_or_added_went_back(first: str) -> None:
    h = H().add(0, 1, session="a")
    if first == "read":
        h.read(1, [1], session="b")
    else:
        h.add(1, 2, session="b")
    h.read(1, [] if first == "read" else [1], session="b").finals([1, 2] if first == "add" else [1])
    result = check_set(h.records, "zookeeper")
    assert result["valid"] is False
    stale = only(result, "stale")
    assert stale["zookeeper"] == "violation"
    assert stale["classification"] == "read went back in its session (it had seen or added the element)"


def test_a_session_goes_back_again_after_its_first_miss() -> None:
    # What the session saw after its first stale read counts too: 2, seen by its third read,
    # is missed by its fourth (another session's stale reads are allowed: c reads nothing).
    h = (H().add(0, 1, session="a").read(1, [1], session="b").read(1, [], session="b").read(2, [], session="c")
         .add(0, 2, session="a").read(1, [1, 2], session="b").read(1, [1], session="b").finals([1, 2]))
    result = check_set(h.records, "zookeeper")
    went_back = [a for a in result["anomalies"] if a["type"] == "stale" and a["zookeeper"] == "violation"]
    assert sorted(a["element"] for a in went_back) == [1, 2]
    assert all(a["classification"].startswith("read went back in its session") for a in went_back)
    assert result["elements"]["stale_reads"] == 3


def test_a_read_that_saw_a_later_add_but_missed_an_earlier_one_is_no_prefix() -> None:
    h = H().add(0, 1, session="a").add(0, 2, session="a").read(1, [2], session="b").finals([1, 2])
    result = check_set(h.records, "zookeeper")
    assert result["valid"] is False
    stale = only(result, "stale")
    assert stale["element"] == 1 and stale["zookeeper"] == "violation"
    assert stale["classification"].startswith("read saw a later add but missed an earlier one")


def test_a_read_concurrent_with_the_add_is_not_stale() -> None:
    h = H().invoke(0, "add", {"element": 1}).read(1, []).complete(0).read(1, [1]).finals([1])
    result = check_set(h.records, "linearizable")
    assert result["valid"] is True and result["anomalies"] == []


def test_an_element_only_the_last_replica_held_is_lost_in_the_second_round_of_final_reads() -> None:
    """The final phase reads every node twice over: an element a diverged last node alone held
    (an indeterminate add it kept) is unchecked after one round and lost after two."""
    one_round = H().add(0, 1).add(0, 2, kind="info").read(1000, [1], final=True).read(1001, [1], final=True)
    one_round.read(1002, [1, 2], final=True)
    result = check_set(one_round.records, "zookeeper")
    assert result["valid"] == "unknown" and result["elements"]["unchecked"] == 1
    second = one_round.read(1003, [1], final=True).read(1004, [1], final=True).read(1005, [1, 2], final=True)
    result = check_set(second.records, "zookeeper")
    assert result["valid"] is False
    assert only(result, "lost")["element"] == 2 and only(result, "lost")["op"]["process"] == 1003


def test_without_final_reads_the_verdict_is_unknown() -> None:
    result = check_set(H().add(0, 1).read(1, [1]).records, "zookeeper")
    assert result["valid"] == "unknown" and "no final read" in result["explanation"]


def test_visibility_latency_runs_to_the_first_read_after_which_every_read_saw_it() -> None:
    # add 1 invoked at record 0; reads at 2 (has it), 4 (misses it: stale), 6 (has it), finals from 8
    h = H().add(0, 1, session="a").read(1, [1], session="b").read(2, [], session="c").read(1, [1], session="b")
    result = check_set(h.finals([1]).records, "zookeeper")
    assert result["valid"] is True
    assert result["visibility_latency_ms"] == {"count": 1, "p50": 6.0, "p90": 6.0, "p99": 6.0, "max": 6.0}


def test_malformed_reads_make_the_verdict_unknown() -> None:
    h = H().add(0, 1).read(1, [1])
    h.records[-1]["value"] = {"oops": 1}
    result = check_set(h.records, "zookeeper")
    assert result["valid"] == "unknown" and "no list of elements" in result["explanation"]


def test_the_checker_takes_the_model_from_the_options() -> None:
    h = H().add(0, 1, session="a").read(1, [], session="b").finals([1])
    assert SetChecker().check(h.records, {"consistency": "zookeeper"})["valid"] is True
    assert SetChecker().check(h.records, {"consistency": "linearizable"})["valid"] is False


def test_the_generator_adds_fresh_elements_and_reads_about_a_quarter_of_the_time() -> None:
    gen = SetGenerator(random.Random(5))
    ops = [gen.next(p % 5) for p in range(4000)]
    added = [v["element"] for f, v in ops if f == "add"]
    assert len(added) == len(set(added)) and all(isinstance(e, int) for e in added)
    reads = sum(f == "read" for f, _ in ops)
    assert 0.2 < reads / len(ops) < 0.3
    assert all(v == {"elements": None} for f, v in ops if f == "read")


def test_checking_costs_the_ops_plus_what_the_reads_returned() -> None:
    # 100k adds from 10 sessions and a read every 1000 adds, lagging a little behind (stale reads
    # ZooKeeper allows): 200k ops and 5M elements read, with a stale read in every element's life.
    h, rng, elements = H(), random.Random(3), []
    for e in range(1, 100_001):
        h.add(e % 10, e, session=f"s{e % 10}")
        elements.append(e)
        if e % 1000 == 0:
            h.read(10 + e % 7, elements[: -rng.randrange(1, 50)], session=f"r{e % 7}")
    h.finals(elements, nodes=1)
    started = time.perf_counter()
    result = check_set(h.records, "zookeeper")
    took = time.perf_counter() - started
    assert result["valid"] is True, result["explanation"]
    assert result["elements"]["stale_reads"] > 0
    assert took < 20, took
