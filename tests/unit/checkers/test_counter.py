"""The counter checker on hand-built histories: a valid one under each model, and one history per
anomaly it claims, each checked for its verdict and classification."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.checkers.counter import check_counter

MODELS = ["zookeeper", "linearizable"]


class History:
    """Records in event order. `invoke` opens an op for a process, `ok`/`fail`/`info` close it;
    `incr` and `read` are whole ops. Each process is its own session unless one is given."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}

    def _add(self, **record: Any) -> None:
        record.update(index=len(self.records), time_ns=len(self.records) * 1000, node="n1", error=record.get("error"))
        self.records.append(record)

    def invoke(self, p: Any, f: str, session: str | None = None, sync: bool = False, final: bool = False) -> "History":
        value = {"value": None, **({"sync": True} if sync else {})}
        extra = {"final": True} if final else {}
        self._add(process=p, type="invoke", f=f, value=value, session=session or f"s{p}", **extra)
        self.open[p] = self.records[-1]
        return self

    def _complete(self, p: Any, kind: str, value: dict | None = None, error: str | None = None) -> "History":
        inv = self.open.pop(p)
        extra = {"final": True} if inv.get("final") else {}
        self._add(process=p, type=kind, f=inv["f"], value={**inv["value"], **(value or {})}, error=error,
                  session=inv["session"], **extra)
        return self

    def ok(self, p: Any, v: int, version: int | None = None) -> "History":
        return self._complete(p, "ok", {"value": v, "version": v if version is None else version, "mzxid": 100 + v})

    def fail(self, p: Any) -> "History":
        return self._complete(p, "fail", error="version changed")

    def info(self, p: Any) -> "History":
        return self._complete(p, "info", error="timeout")

    def incr(self, p: Any, v: int, **kw: Any) -> "History":
        return self.invoke(p, "increment", **kw).ok(p, v)

    def read(self, p: Any, v: int, version: int | None = None, **kw: Any) -> "History":
        return self.invoke(p, "read", **kw).ok(p, v, version)

    def finals(self, *values: int) -> "History":
        for n, v in enumerate(values):
            self.read(f"final{n}", v, sync=True, final=True)
        return self


def violations(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"] if a["zookeeper"] == "violation"]


@pytest.mark.parametrize("consistency", MODELS)
def test_a_valid_history(consistency: str) -> None:
    h = (History().incr(0, 1).read(1, 1)
         .invoke(0, "increment").invoke(1, "read").ok(0, 2).ok(1, 1)  # concurrent: may miss it
         .invoke(2, "increment").info(2)  # unknown: may show up at any later time
         .invoke(3, "increment").fail(3)
         .read(1, 3).incr(0, 4).read(0, 4)
         .finals(4, 4, 4))
    result = check_counter(h.records, consistency)
    json.dumps(result)
    assert result["valid"] is True, result["explanation"]
    assert result["anomalies"] == []
    assert result["final"] == {"values": [4], "acknowledged": 3, "attempted": 4}


def test_a_plain_stale_read_is_allowed_by_zookeeper_but_not_linearizable() -> None:
    h = History().incr(0, 1).incr(0, 2).read(1, 1).finals(2)
    zk = check_counter(h.records, "zookeeper")
    assert zk["valid"] is True, zk["explanation"]
    [stale] = zk["anomalies"]
    assert stale["type"] == "stale-read" and stale["zookeeper"] == "allowed"
    assert stale["classification"] == "stale read (allowed by ZooKeeper)"
    assert stale["values"] == {"read": 1, "lower": 2}
    lin = check_counter(h.records, "linearizable")
    assert lin["valid"] is False and lin["anomalies"][0]["type"] == "stale-read"


def test_a_read_after_sync_must_see_every_acknowledged_increment() -> None:
    h = History().incr(0, 1).incr(0, 2).read(1, 1, sync=True).finals(2)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] is False
    assert violations(result) == ["stale-sync-read"]
    assert result["summary"] == [{"classification": "stale read after a sync", "count": 1, "zookeeper": "violation"}]


def test_a_read_of_more_increments_than_were_attempted() -> None:
    h = History().incr(0, 1).invoke(2, "increment").info(2).read(1, 3).finals(2)
    result = check_counter(h.records, "zookeeper")
    assert violations(result)[0] == "read-above-attempts"
    assert result["anomalies"][0]["values"] == {"read": 3, "attempted": 2}


def test_a_session_whose_reads_go_back() -> None:
    h = History().incr(0, 1).incr(0, 2).read(1, 2).read(1, 1).finals(2)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] is False
    kinds = violations(result)
    assert "read-went-back" in kinds
    went_back = next(a for a in result["anomalies"] if a["type"] == "read-went-back")
    assert went_back["classification"] == "read went back in session order"
    assert went_back["values"] == {"read": 1, "session_had": 2}


def test_a_session_that_misses_its_own_increment() -> None:
    h = History().incr(0, 1).incr(0, 2).read(0, 1).finals(2)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] is False
    assert "missed-own-increment" in violations(result)


def test_a_value_that_differs_from_its_version_is_a_lost_update() -> None:
    h = History().incr(0, 1).incr(0, 2).read(1, 2, version=3).finals(2)
    result = check_counter(h.records, "zookeeper")
    assert violations(result) == ["value-version-mismatch"]
    assert result["anomalies"][0]["values"] == {"value": 2, "version": 3}


def test_two_acknowledged_increments_that_wrote_the_same_value() -> None:
    h = History().invoke(0, "increment").invoke(1, "increment").ok(0, 1).ok(1, 1).finals(1)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] is False
    lost = [a for a in result["anomalies"] if a["type"] == "lost-update"]
    assert len(lost) == 1 and len(lost[0]["ops"]) == 2
    assert "lost-increment" in violations(result)  # the final 1 holds only one of the two


def test_a_final_value_below_the_acknowledged_increments() -> None:
    h = History().incr(0, 1).incr(0, 2).incr(0, 3).finals(2, 2)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] is False
    lost = next(a for a in result["anomalies"] if a["type"] == "lost-increment")
    assert lost["classification"] == "lost acknowledged increments"
    assert lost["values"] == {"final": 2, "acknowledged": 3}


def test_final_reads_that_disagree() -> None:
    h = History().incr(0, 1).incr(0, 2).finals(2, 1, 2)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] is False
    assert "final-reads-disagree" in violations(result)
    assert result["final"]["values"] == [1, 2]


def test_without_a_final_read_the_verdict_is_unknown() -> None:
    h = History().incr(0, 1).read(1, 1)
    result = check_counter(h.records, "zookeeper")
    assert result["valid"] == "unknown"
    assert "no final read" in result["explanation"]


def test_a_long_history_is_checked_quickly() -> None:
    """Linear-ish: 20k ops (10 sessions, a stale read now and then) well within the bound."""
    h, value = History(), 0
    for n in range(10_000):
        value += 1
        h.incr(n % 10, value).read((n + 3) % 10, value - (n % 7 == 0))
    h.finals(value)
    started = time.perf_counter()
    result = check_counter(h.records, "zookeeper")
    assert time.perf_counter() - started < 10
    assert result["valid"] is True and result["anomaly_count"] > 0
