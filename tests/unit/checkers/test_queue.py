"""The total-queue checker on hand-built histories: a valid one under each model, and one history
per anomaly it claims, each checked for its verdict and classification."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.checkers.total_queue import EMPTY, check_total_queue

MODELS = ["zookeeper", "linearizable"]


def item(seq: int) -> str:
    return f"item-{seq:010d}"


class History:
    """Records in event order. `invoke` opens an op for a process and `ok`/`fail`/`info` close
    it; `enqueue`, `dequeue` and `drain` are whole ops. Item n holds element 10 * n unless said."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}

    def _add(self, **record: Any) -> None:
        record.update(index=len(self.records), time_ns=len(self.records) * 1000, node="n1", session=f"s{record['process']}")
        record.setdefault("error", None)
        self.records.append(record)

    def invoke(self, p: Any, f: str, value: dict, final: bool = False) -> "History":
        self._add(process=p, type="invoke", f=f, value=value, **({"final": True} if final else {}))
        self.open[p] = self.records[-1]
        return self

    def complete(self, p: Any, kind: str, error: str | None = None, **value: Any) -> "History":
        inv = self.open.pop(p)
        extra = {"final": True} if inv.get("final") else {}
        self._add(process=p, type=kind, f=inv["f"], value={**inv["value"], **value}, error=error, **extra)
        return self

    def ok_enqueue(self, p: Any, seq: int) -> "History":
        return self.complete(p, "ok", name=item(seq), czxid=100 + seq)

    def ok_dequeue(self, p: Any, seq: int, element: int | None = None) -> "History":
        return self.complete(p, "ok", name=item(seq), element=10 * seq if element is None else element)

    def enqueue(self, p: Any, seq: int) -> "History":
        return self.invoke(p, "enqueue", {"element": 10 * seq}).ok_enqueue(p, seq)

    def dequeue(self, p: Any, op: str, seq: int | None, element: int | None = None, sync: bool = False) -> "History":
        self.invoke(p, "dequeue", {"op": op, **({"sync": True} if sync else {})})
        return self.complete(p, "fail", error=EMPTY) if seq is None else self.ok_dequeue(p, seq, element)

    def drain(self, *tombstones: tuple[int, str], elements: dict[int, int] | None = None) -> "History":
        """The final phase: a dequeue after a sync finds the queue empty, then the tombstones
        (item sequence, dequeue id) are read."""
        self.invoke("final", "dequeue", {"op": "drain-1", "sync": True}, final=True).complete("final", "fail", EMPTY)
        stones = [{"name": item(seq), "op": op, "element": (elements or {}).get(seq, 10 * seq), "zxid": 500 + seq}
                  for seq, op in tombstones]
        return self.invoke("final", "tombstones", {}, final=True).complete("final", "ok", tombstones=stones)


def kinds(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"]]


@pytest.mark.parametrize("consistency", MODELS)
def test_a_valid_history(consistency: str) -> None:
    h = (History().enqueue(0, 1).enqueue(0, 2)
         .invoke(1, "enqueue", {"element": 30}).complete(1, "info", "timeout")  # it went in as item 3
         .dequeue(2, "d1", 1)
         .invoke(3, "dequeue", {"op": "d2"}).complete(3, "info", "timeout")  # its tombstone tells: item 2
         .invoke(4, "dequeue", {"op": "d3"}).complete(4, "fail", "listing failed: ConnectionLoss")
         .dequeue(2, "d4", 3)
         .drain((1, "d1"), (2, "d2"), (3, "d4")))
    result = check_total_queue(h.records, consistency)
    json.dumps(result)
    assert result["valid"] is True, result["explanation"]
    assert result["anomalies"] == []
    stats = result["stats"]
    assert (stats["acknowledged"], stats["delivered"], stats["recovered"], stats["resolved_info_dequeues"]) == (2, 3, 1, 1)
    assert stats["drained"] is True


def test_an_acknowledged_element_never_delivered_is_lost() -> None:
    h = History().enqueue(0, 1).enqueue(0, 2).dequeue(1, "d1", 1).drain((1, "d1"))
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] is False
    assert kinds(result) == ["lost"]
    assert result["anomalies"][0]["classification"] == "lost acknowledged enqueue"
    assert result["stats"]["lost"] == 1


def test_an_element_delivered_twice_is_duplicated() -> None:
    # Two items of one element: the second dequeue took element 10 from item 2.
    h = (History().enqueue(0, 1).invoke(0, "enqueue", {"element": 10}).ok_enqueue(0, 2)
         .dequeue(1, "d1", 1).dequeue(1, "d2", 2, element=10).drain((1, "d1"), (2, "d2"), elements={2: 10}))
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] is False
    assert "duplicated" in kinds(result)
    assert {"classification": "element delivered more than once", "count": 1, "zookeeper": "violation"} \
        in result["summary"]


def test_an_element_nobody_enqueued_is_unexpected() -> None:
    h = History().enqueue(0, 1).dequeue(1, "d1", 1).dequeue(1, "d2", 7).drain((1, "d1"), (7, "d2"))
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] is False
    assert kinds(result) == ["unexpected"]


def test_a_failed_enqueue_that_is_delivered_is_unexpected() -> None:
    h = (History().invoke(0, "enqueue", {"element": 10}).complete(0, "fail", "NoNodeError")
         .dequeue(1, "d1", 1).drain((1, "d1")))
    result = check_total_queue(h.records, "zookeeper")
    assert kinds(result) == ["unexpected"]
    assert "its enqueue failed" in result["explanation"]


def test_an_acknowledged_dequeue_without_its_tombstone_is_lost() -> None:
    # The final state says d2 (whose outcome was unknown) took item 1, which d1 was acknowledged taking.
    h = (History().enqueue(0, 1).dequeue(1, "d1", 1)
         .invoke(2, "dequeue", {"op": "d2"}).complete(2, "info", "timeout").drain((1, "d2")))
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] is False
    assert sorted(kinds(result)) == ["duplicated", "lost-dequeue"]
    lost = next(a for a in result["anomalies"] if a["type"] == "lost-dequeue")
    assert lost["classification"] == "acknowledged dequeue missing from the final state"


def test_a_tombstone_of_a_failed_dequeue_is_a_phantom() -> None:
    h = (History().enqueue(0, 1).invoke(1, "dequeue", {"op": "d1"}).complete(1, "fail", "multi refused: X")
         .drain((1, "d1")))
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] is False
    assert kinds(result) == ["phantom-dequeue"]


@pytest.mark.parametrize("consistency", MODELS)
def test_a_dequeue_that_skips_a_waiting_lower_item(consistency: str) -> None:
    h = History().enqueue(0, 1).enqueue(0, 2).dequeue(1, "d1", 2).dequeue(1, "d2", 1).drain((1, "d2"), (2, "d1"))
    result = check_total_queue(h.records, consistency)
    assert result["valid"] is False
    [skip] = result["anomalies"]
    assert skip["type"] == "out-of-order" and skip["zookeeper"] == "violation"
    assert skip["values"] == {"took": item(2), "waiting": item(1)}


def test_taking_a_higher_item_while_the_lower_one_is_being_taken_is_fine() -> None:
    h = (History().enqueue(0, 1).enqueue(0, 2)
         .invoke(2, "dequeue", {"op": "d2"}).dequeue(1, "d1", 2).ok_dequeue(2, 1)
         .drain((1, "d2"), (2, "d1")))
    assert check_total_queue(h.records, "linearizable")["valid"] is True


def test_an_empty_listing_while_an_item_waits_is_a_stale_read() -> None:
    h = History().enqueue(0, 1).dequeue(1, "d1", None).dequeue(1, "d2", 1).drain((1, "d2"))
    zk = check_total_queue(h.records, "zookeeper")
    assert zk["valid"] is True, zk["explanation"]
    [stale] = zk["anomalies"]
    assert stale["type"] == "stale-empty" and stale["zookeeper"] == "allowed"
    lin = check_total_queue(h.records, "linearizable")
    assert lin["valid"] is False and kinds(lin) == ["stale-empty"]


def test_an_empty_listing_after_a_sync_while_an_item_waits() -> None:
    h = History().enqueue(0, 1).dequeue(1, "d1", None, sync=True).dequeue(1, "d2", 1).drain((1, "d2"))
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] is False
    assert kinds(result) == ["stale-sync-empty"]
    assert result["summary"] == [{"classification": "empty queue seen after a sync while an item was waiting",
                                  "count": 1, "zookeeper": "violation"}]


def test_without_the_final_drain_an_undelivered_element_is_unknown() -> None:
    h = History().enqueue(0, 1).enqueue(0, 2).dequeue(1, "d1", 1)
    result = check_total_queue(h.records, "zookeeper")
    assert result["valid"] == "unknown"
    assert result["stats"]["drained"] is False


def test_a_long_history_is_checked_quickly() -> None:
    """Linear-ish: 20k ops, the queue a few items deep, every dequeue taking the lowest."""
    h, taken = History(), []
    for seq in range(1, 10_001):
        h.enqueue(seq % 10, seq)
        if seq > 5:
            lowest = seq - 5
            h.dequeue((seq + 3) % 10, f"d{lowest}", lowest)
            taken.append((lowest, f"d{lowest}"))
    for seq in range(9_996, 10_001):
        h.dequeue("final-drain", f"f{seq}", seq)
        taken.append((seq, f"f{seq}"))
    h.drain(*taken)
    started = time.perf_counter()
    result = check_total_queue(h.records, "linearizable")
    assert time.perf_counter() - started < 10
    assert result["valid"] is True, result["explanation"]
    assert result["stats"]["delivered"] == 10_000
