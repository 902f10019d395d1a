"""The ephemeral checker on hand-built histories: one per finding it claims, valid ones under both
consistency models, what it must not claim, and the generator's op mix."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from harness.checkers.ephemeral import EphemeralChecker, check_ephemeral
from harness.workload import Completion
from workloads.ephemeral import MAX_HELD, EphemeralGenerator

MODELS = ["zookeeper", "linearizable"]
A, B, C = "0xa", "0xb", "0xc"  # sessions


class H:
    """Ephemeral histories: `invoke`/`complete` for concurrent ops, `create`/`read`/`close` for
    whole ones. A process is its session's client; each record is 1 ms after the last."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}

    def _record(self, **record: Any) -> dict:
        record.setdefault("error", None)
        record.update(index=len(self.records), time_ns=len(self.records) * 1_000_000, node="n1")
        self.records.append(record)
        return record

    def invoke(self, p: Any, f: str, value: dict, session: str | None, final: bool = False) -> "H":
        marks = {"final": True} if final else {}
        self.open[p] = self._record(process=p, type="invoke", f=f, value=value, session=session, zxid=None, **marks)
        return self

    def complete(self, p: Any, kind: str = "ok", zxid: int | None = None, expired: tuple[str, ...] = (),
                 result: dict | None = None, **fields: Any) -> "H":
        """`fields` join an ok completion's value; `result` (fields named like a parameter) any."""
        inv = self.open.pop(p)
        value = dict(inv["value"], **(result or {}), **(fields if kind == "ok" else {}))
        if expired:
            value["expired"] = [{"session": s} for s in expired]
        marks = {"final": True} if inv.get("final") else {}
        self._record(process=p, type=kind, f=inv["f"], value=value, session=inv["session"], zxid=zxid, **marks)
        return self

    def create(self, p: Any, name: str, session: str, czxid: int, kind: str = "ok") -> "H":
        self.invoke(p, "create", {"name": name}, session)
        if kind == "ok":
            return self.complete(p, zxid=czxid, owner=session, czxid=czxid)
        return self.complete(p, kind)

    def read(self, p: Any, names: list[str], zxid: int | None, session: str, final: bool = False,
             expired: tuple[str, ...] = ()) -> "H":
        value = {"final": True} if final else {}
        self.invoke(p, "read", value, session, final)
        return self.complete(p, zxid=zxid, expired=expired, names=names, pzxid=1, cversion=1)

    def close(self, p: Any, session: str, zxid: int | None, kind: str = "ok") -> "H":
        self.invoke(p, "close", {}, session)
        # The client's record carries no zxid (kazoo forgets it on close); the value does.
        return self.complete(p, kind, result={"session": session, **({"zxid": zxid} if kind == "ok" else {})})

    def finals(self, names: list[str] = (), zxid: int = 100) -> "H":
        for n in range(3):
            self.read(1000 + n, list(names), zxid, f"final-{n}", final=True)
        return self


def types(result: dict) -> list[str]:
    return sorted(a["type"] for a in result["anomalies"])


def one(result: dict, kind: str) -> dict:
    found = [a for a in result["anomalies"] if a["type"] == kind]
    assert len(found) == 1, result["anomalies"]
    return found[0]


# --- valid histories ------------------------------------------------------------------------------

@pytest.mark.parametrize("consistency", MODELS)
def test_an_ephemeral_that_lives_with_its_session_is_valid(consistency: str) -> None:
    h = H().create(0, "e-1", A, 5).read(1, ["e-1"], 6, B).read(0, ["e-1"], 7, A)
    h.close(0, A, 8).read(1, [], 9, B).finals()
    result = check_ephemeral(h.records, consistency)
    assert result["valid"] is True and result["anomalies"] == [], result
    assert result["ephemerals"]["acknowledged"] == 1 and result["sessions"]["closed"] == 1
    assert result["final_reads"] == 3


def test_a_read_concurrent_with_the_create_may_miss_it() -> None:
    h = H().invoke(1, "read", {}, B).create(0, "e-1", A, 5).complete(1, zxid=4, names=[], pzxid=1, cversion=1)
    assert check_ephemeral(h.finals().records, "linearizable")["valid"] is True


def test_a_miss_after_the_owner_may_have_ended_is_no_finding() -> None:
    # Nothing shows session A alive after zxid 5: its ephemeral may be gone legitimately at 20.
    h = H().create(0, "e-1", A, 5).read(1, [], 20, B).finals()
    assert check_ephemeral(h.records)["valid"] is True


def test_without_a_final_read_the_verdict_is_unknown() -> None:
    h = H().create(0, "e-1", A, 5).read(1, ["e-1"], 6, B)
    assert check_ephemeral(h.records)["valid"] == "unknown"


# --- violations -----------------------------------------------------------------------------------

@pytest.mark.parametrize("consistency", MODELS)
def test_vanished_while_the_owner_is_provably_alive(consistency: str) -> None:
    h = H().create(0, "e-1", A, 5).read(1, [], 7, B).read(0, ["e-1"], 10, A).finals()
    result = check_ephemeral(h.records, consistency)
    a = one(result, "reappeared")  # the owner's own read at 10 listed it again
    assert a["zookeeper"] == "violation" and a["op"]["zxid"] == 7 and a["witness"]["zxid"] == 10
    assert result["valid"] is False


def test_vanished_proven_by_an_op_of_the_owner_that_does_not_list_it() -> None:
    h = H().create(0, "e-1", A, 5).create(0, "e-2", A, 9).read(1, ["e-2"], 9, B).finals()
    a = one(check_ephemeral(h.records), "vanished")
    assert a["name"] == "e-1" and a["witness"]["zxid"] == 9


def test_an_indeterminate_create_is_born_no_later_than_the_first_listing() -> None:
    h = H().create(0, "e-1", A, 0, kind="info").read(1, ["e-1"], 6, B).read(2, [], 8, C).read(1, ["e-1"], 9, B)
    result = check_ephemeral(h.finals().records)
    assert types(result) == ["reappeared"] and one(result, "reappeared")["op"]["zxid"] == 8


def test_a_listing_at_or_after_the_close_zxid_is_a_survivor() -> None:
    h = H().create(0, "e-1", A, 5).close(0, A, 8).read(1, ["e-1"], 8, B).finals()
    a = one(check_ephemeral(h.records), "survived-close")
    assert a["zookeeper"] == "violation" and a["witness"]["f"] == "close"


def test_a_final_read_listing_a_closed_sessions_ephemeral_is_a_survivor() -> None:
    h = H().create(0, "e-1", A, 5).close(0, A, 8).read(1000, ["e-1"], None, "0xf", final=True)
    assert types(check_ephemeral(h.records)) == ["survived-close"]


def test_a_final_read_listing_an_expired_sessions_ephemeral() -> None:
    # The client reports session A expired on its next op (in its new session C).
    h = H().create(0, "e-1", A, 5).read(0, ["e-1"], 12, C, expired=(A,))
    h.finals(["e-1"], zxid=20)
    result = check_ephemeral(h.records)
    assert types(result) == ["survived-expiry"] and result["sessions"]["expired"] == 1
    assert one(result, "survived-expiry")["count"] == 3


def test_a_final_read_listing_an_ephemeral_whose_close_had_no_reply() -> None:
    h = H().create(0, "e-1", A, 5).close(0, A, None, kind="info").finals(["e-1"], zxid=20)
    result = check_ephemeral(h.records)
    assert types(result) == ["outlived"] and result["sessions"]["close_unknown"] == 1


def test_a_final_read_listing_an_ephemeral_whose_end_is_unrecorded() -> None:
    h = H().create(0, "e-1", A, 5).finals(["e-1"], zxid=20)
    assert types(check_ephemeral(h.records)) == ["outlived"]


def test_a_listing_below_the_czxid_reads_from_the_future() -> None:
    h = H().create(0, "e-1", A, 5).read(1, ["e-1"], 4, B).finals()
    assert types(check_ephemeral(h.records)) == ["before-create"]


@pytest.mark.parametrize("creates", ["none", "failed"])
def test_a_listed_name_nothing_created(creates: str) -> None:
    h = H()
    if creates == "failed":
        h.create(0, "e-1", A, 0, kind="fail")
    h.read(1, ["e-1"], 6, B).finals()
    a = one(check_ephemeral(h.records), "unexpected")
    assert ("failed" in a["explanation"]) == (creates == "failed")


# --- stale reads: allowed by ZooKeeper, not under linearizable -------------------------------------

def test_a_stale_read_missing_a_new_ephemeral_is_allowed() -> None:
    h = H().create(0, "e-1", A, 5).read(1, [], 4, B).finals()
    zk = check_ephemeral(h.records, "zookeeper")
    assert zk["valid"] is True and one(zk, "stale")["zookeeper"] == "allowed"
    assert check_ephemeral(h.records, "linearizable")["valid"] is False


def test_a_stale_read_missing_what_its_session_saw_is_a_violation() -> None:
    h = H().create(0, "e-1", A, 5).read(1, ["e-1"], 6, B).read(1, [], 4, B).finals()
    a = one(check_ephemeral(h.records), "stale-session")
    assert a["zookeeper"] == "violation" and a["op"]["zxid"] == 4


def test_what_a_session_saw_after_its_first_stale_read_counts_too() -> None:
    h = (H().create(0, "e-1", A, 5).read(1, ["e-1"], 6, B).read(1, [], 4, B)
         .create(0, "e-2", A, 7).read(1, ["e-1", "e-2"], 8, B).read(1, ["e-1"], 6, B).finals(["e-1", "e-2"]))
    went_back = [a for a in check_ephemeral(h.records)["anomalies"] if a["type"] == "stale-session"]
    assert sorted(a["name"] for a in went_back) == ["e-1", "e-2"]


def test_a_stale_listing_after_the_close_is_allowed() -> None:
    h = H().create(0, "e-1", A, 5).close(0, A, 8).read(1, ["e-1"], 7, B).finals()
    zk = check_ephemeral(h.records, "zookeeper")
    assert zk["valid"] is True and one(zk, "stale-listing")["zookeeper"] == "allowed"
    assert check_ephemeral(h.records, "linearizable")["valid"] is False


def test_the_checker_takes_the_model_from_the_options() -> None:
    h = H().create(0, "e-1", A, 5).read(1, [], 4, B).finals()
    assert EphemeralChecker().check(h.records, {"consistency": "linearizable"})["valid"] is False
    assert EphemeralChecker().check(h.records, {})["valid"] is True


def test_a_read_without_names_makes_the_history_malformed() -> None:
    h = H().invoke(1, "read", {}, B).complete(1, zxid=3)
    assert check_ephemeral(h.records)["valid"] == "unknown"


def test_a_long_history_is_checked_quickly() -> None:
    h = H()
    zxid, live = 1, []
    for i in range(4000):
        session = f"0x{i // 3:x}"
        zxid += 1
        h.create(0, f"e-{i}", session, zxid)
        live.append(f"e-{i}")
        h.read(1, list(live), zxid, "0xreader")
        if i % 3 == 2:
            zxid += 1
            h.close(0, session, zxid)
            live = []
    started = time.perf_counter()
    result = check_ephemeral(h.finals(zxid=zxid + 1).records)
    assert result["valid"] is True and time.perf_counter() - started < 3


# --- the generator --------------------------------------------------------------------------------

def test_the_generator_closes_only_sessions_holding_something_and_caps_what_they_hold() -> None:
    gen = EphemeralGenerator(random.Random(1))
    names = []
    for _ in range(2000):
        f, value = gen.next(0)
        held = gen.held.get(0, 0)
        assert f != "close" or held > 0
        assert f != "create" or held < MAX_HELD
        done = Completion("ok", dict(value, owner="0x1", czxid=1) if f == "create" else None)
        names += [value["name"]] if f == "create" else []
        gen.update(0, f, value, done)
    assert len(names) == len(set(names)) > 100
    expired = Completion("ok", {"names": [], "expired": [{"session": "0x1"}]})
    gen.update(0, "read", {}, expired)
    assert gen.held[0] == 0
