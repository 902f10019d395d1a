"""The unique-ids checker on hand-built histories: one per finding it claims, valid ones under
both consistency models, gaps as information, and the generator's op mix."""

from __future__ import annotations

import json
import random
import time
from typing import Any

import pytest

from harness.checkers.unique_ids import UniqueIdsChecker, check_unique_ids, sequence_number
from workloads.unique_ids import CreateGenerator

MODELS = ["zookeeper", "linearizable"]


def name(seq: int) -> str:
    return f"id-{seq:010d}"


class H:
    """Unique-ids histories: `invoke`/`ok`/`info` for concurrent creates, `create` for a whole
    one, `listing` for a final one. Each record is 1 ms after the last."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}

    def _record(self, **record: Any) -> None:
        record.update(index=len(self.records), time_ns=len(self.records) * 1_000_000, node="n1", error=None,
                      session=None)
        self.records.append(record)

    def invoke(self, p: Any, ephemeral: bool = False) -> "H":
        self._record(process=p, type="invoke", f="create", value={"ephemeral": ephemeral})
        self.open[p] = self.records[-1]
        return self

    def ok(self, p: Any, seq: int, czxid: int | None = None, node: str | None = None) -> "H":
        value = dict(self.open.pop(p)["value"], name=node or name(seq), seq=seq, czxid=czxid)
        self._record(process=p, type="ok", f="create", value=value)
        return self

    def info(self, p: Any) -> "H":
        self._record(process=p, type="info", f="create", value=self.open.pop(p)["value"])
        return self

    def create(self, p: Any, seq: int, czxid: int | None = None, ephemeral: bool = False) -> "H":
        return self.invoke(p, ephemeral).ok(p, seq, czxid)

    def listing(self, names: list[str], p: Any = 1000) -> "H":
        self._record(process=p, type="invoke", f="list", value={"final": True}, final=True)
        self._record(process=p, type="ok", f="list", final=True,
                     value={"final": True, "names": names, "cversion": 9, "pzxid": 9})
        return self


def only(result: dict, kind: str) -> dict:
    found = [a for a in result["anomalies"] if a["type"] == kind]
    assert len(found) == 1, result["anomalies"]
    assert found[0]["zookeeper"] == "violation"
    return found[0]


@pytest.mark.parametrize("consistency", MODELS)
def test_unique_ordered_surviving_numbers_are_valid(consistency: str) -> None:
    # 0 and 1 concurrent; 2 timed out but the listing shows it; 3 ephemeral (gone); 5 after a gap
    h = (H().invoke(0).invoke(1).ok(1, 0, czxid=10).ok(0, 1, czxid=11)
         .invoke(2).info(2).create(0, 3, czxid=13, ephemeral=True).create(1, 5, czxid=15)
         .listing([name(0), name(1), name(2), name(5)]).listing([name(0), name(1), name(2), name(5)], p=1001))
    result = check_unique_ids(h.records, consistency)
    json.dumps(result)
    assert result["valid"] is True, result["explanation"]
    assert result["creates"] == {"attempted": 5, "acknowledged": 4, "failed": 0, "indeterminate": 1,
                                 "recovered": 1, "unresolved": 0}
    assert result["gaps"] == {"count": 1, "ranges": [[4, 4]]} and result["max_seq"] == 5
    assert result["consistency"] == consistency


def test_two_acknowledged_creates_with_one_name_are_a_duplicate() -> None:
    h = H().create(0, 0, czxid=10).invoke(1).invoke(2).ok(1, 1, czxid=11).ok(2, 1, czxid=12).listing([name(0), name(1)])
    result = check_unique_ids(h.records, "zookeeper")
    assert result["valid"] is False
    dup = only(result, "duplicate")
    assert dup["seq"] == 1 and dup["classification"] == "sequence number claimed twice"
    assert len(dup["others"]) == 1 and dup["others"][0]["value"]["name"] == name(1)


def test_a_listed_node_with_an_acknowledged_number_under_another_name_is_a_duplicate() -> None:
    h = H().create(0, 0, czxid=10).invoke(1).info(1).listing([name(0), "other-0000000000"])
    result = check_unique_ids(h.records, "linearizable")
    assert result["valid"] is False
    assert "the listed node other-0000000000" in only(result, "duplicate")["explanation"]


def test_a_smaller_czxid_with_a_larger_number_is_out_of_order() -> None:
    h = H().invoke(0).invoke(1).ok(0, 2, czxid=10).ok(1, 1, czxid=11).listing([name(1), name(2)])
    result = check_unique_ids(h.records, "zookeeper")
    assert result["valid"] is False
    order = only(result, "seq-order")
    assert order["name"] == name(1) and "czxid" in order["explanation"]
    assert order["classification"] == "sequence order contradicts the order creates took effect"


def test_two_creates_reporting_one_czxid_are_out_of_order() -> None:
    h = H().invoke(0).invoke(1).ok(0, 1, czxid=10).ok(1, 2, czxid=10).listing([name(1), name(2)])
    assert "report one czxid" in only(check_unique_ids(h.records, "zookeeper"), "seq-order")["explanation"]


def test_a_later_create_with_a_smaller_number_is_out_of_real_time_order() -> None:
    h = H().create(0, 5).create(1, 3).listing([name(3), name(5)])  # no czxids: real time alone
    result = check_unique_ids(h.records, "zookeeper")
    assert result["valid"] is False
    order = only(result, "seq-order")
    assert order["name"] == name(3) and "completed before it began" in order["explanation"]


def test_an_acknowledged_persistent_node_missing_from_a_final_listing_is_lost() -> None:
    h = H().create(0, 0, czxid=10).create(0, 1, czxid=11).create(0, 2, czxid=12, ephemeral=True)
    result = check_unique_ids(h.listing([name(0), name(1)]).listing([name(0)], p=1001).records, "zookeeper")
    assert result["valid"] is False
    lost = only(result, "lost")
    assert lost["name"] == name(1) and lost["classification"] == "lost acknowledged create"
    assert "listings that miss it: 1" in lost["explanation"]


@pytest.mark.parametrize("before", [False, True], ids=["no-create-at-all", "only-an-earlier-create"])
def test_a_listed_node_no_create_accounts_for_is_unexpected(before: bool) -> None:
    # An indeterminate create begun after number 5 was acknowledged cannot have made number 2.
    h = H().create(0, 5, czxid=15)
    if before:
        h.invoke(1).info(1)
    result = check_unique_ids(h.listing([name(2), name(5)]).records, "zookeeper")
    assert result["valid"] is False
    unexpected = only(result, "unexpected")
    assert unexpected["name"] == name(2) and unexpected["classification"] == "listed node no create accounts for"
    assert unexpected["op"]["f"] == "list" and unexpected["op"]["size"] == 2


def test_an_indeterminate_create_begun_earlier_accounts_for_a_listed_node() -> None:
    h = H().invoke(1).create(0, 5, czxid=15).info(1).listing([name(2), name(5)])
    result = check_unique_ids(h.records, "zookeeper")
    assert result["valid"] is True and result["creates"]["recovered"] == 1


def test_a_listed_name_without_a_number_is_unexpected() -> None:
    h = H().create(0, 0, czxid=10).listing([name(0), "stray"])
    assert "no sequence number" in only(check_unique_ids(h.records, "zookeeper"), "unexpected")["explanation"]


def test_without_a_final_listing_the_verdict_is_unknown() -> None:
    result = UniqueIdsChecker().check(H().create(0, 0, czxid=10).records, {"consistency": "zookeeper"})
    assert result["valid"] == "unknown" and "no final listing" in result["explanation"]


def test_sequence_numbers_are_the_trailing_digits() -> None:
    assert sequence_number("id-0000000042") == 42 and sequence_number("id-") is None


def test_the_generator_makes_creates_a_given_fraction_of_them_ephemeral() -> None:
    gen = CreateGenerator(random.Random(4), ephemeral=0.25)
    ops = [gen.next(p % 5) for p in range(4000)]
    assert {f for f, _ in ops} == {"create"}
    share = sum(v["ephemeral"] for _, v in ops) / len(ops)
    assert 0.2 < share < 0.3
    assert not any(v["ephemeral"] for _, v in (CreateGenerator(random.Random(4), 0.0).next(0) for _ in range(100)))


def test_a_quarter_million_creates_are_checked_in_seconds() -> None:
    # 250k creates from 50 processes, 1% indeterminate; every number in one final listing.
    # (A million took 13 s on the machine this was written on: the cost is n log n.)
    h, rng, names = H(), random.Random(8), []
    for seq in range(250_000):
        p = seq % 50
        h.invoke(p)
        if rng.random() < 0.01:
            h.info(p)
        else:
            h.ok(p, seq, czxid=1000 + seq)
        names.append(name(seq))
    h.listing(names)
    started = time.perf_counter()
    result = check_unique_ids(h.records, "zookeeper")
    took = time.perf_counter() - started
    assert result["valid"] is True, result["explanation"]
    assert result["creates"]["unresolved"] == 0
    assert took < 15, took
