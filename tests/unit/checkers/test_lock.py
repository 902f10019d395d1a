"""The lock checker on hand-built histories: one per finding it claims, the allowed overlaps of
expired sessions, valid histories under both consistency models, statistics, and the generator."""

from __future__ import annotations

from typing import Any

import pytest

from harness.checkers.lock import LockChecker, check_lock
from harness.workload import Completion
from workloads.lock import LockGenerator

A, A2, B = "0xa", "0xa2", "0xb"  # sessions; A2 is the one A's client got after losing A


class H:
    """Lock histories: `invoke`/`complete` for concurrent ops, whole ops by name. Each record is
    1 ms after the last."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}

    def _record(self, **record: Any) -> dict:
        record.setdefault("error", None)
        record.update(index=len(self.records), time_ns=len(self.records) * 1_000_000, node="n1", zxid=None)
        self.records.append(record)
        return record

    def invoke(self, p: Any, f: str, value: dict, session: str, final: bool = False) -> "H":
        marks = {"final": True} if final else {}
        self.open[p] = self._record(process=p, type="invoke", f=f, value=value, session=session, **marks)
        return self

    def complete(self, p: Any, kind: str = "ok", error: str | None = None, session: str | None = None,
                 **result: Any) -> "H":
        inv = self.open.pop(p)
        marks = {"final": True} if inv.get("final") else {}
        self._record(process=p, type=kind, f=inv["f"], value=dict(inv["value"], **result), error=error,
                     session=session or inv["session"], **marks)
        return self

    def acquired(self, p: Any, session: str, seq: int, token: int) -> "H":
        return self.complete(p, node=f"u{p}__lock__{seq:010d}", seq=seq, czxid=token, owner=session)

    def acquire(self, p: Any, session: str, seq: int, token: int) -> "H":
        return self.invoke(p, "acquire", {}, session).acquired(p, session, seq, token)

    def fence(self, p: Any, session: str, token: int, written_at: int, kind: str = "ok", **extra: Any) -> "H":
        self.invoke(p, "fence", {"token": token, "process": p, "node": "n"}, session)
        if kind == "ok":
            return self.complete(p, name=f"{token}-{p}", fence_czxid=written_at)
        return self.complete(p, kind, error="ConnectionLoss", **extra)

    def release(self, p: Any, session: str, kind: str = "ok", error: str | None = None, **extra: Any) -> "H":
        return self.invoke(p, "release", {"node": "n"}, session).complete(p, kind, error, **extra)

    def hold(self, p: Any, session: str, seq: int, token: int, written_at: int) -> "H":
        return self.acquire(p, session, seq, token).fence(p, session, token, written_at).release(p, session)

    def inspect(self, fences: list[tuple[int, int, Any]], holders: tuple[str, ...] = ()) -> "H":
        """fences: (token, record czxid, process)."""
        listed = [{"name": f"{t}-{p}", "czxid": c, "token": t, "process": p} for t, c, p in fences]
        for n in range(3):
            self.invoke(1000 + n, "inspect", {"final": True}, f"final-{n}", final=True)
            self.complete(1000 + n, holders=list(holders), waited_s=0.0, fences=listed)
        return self

    def nemesis(self, f: str) -> "H":
        self._record(process="nemesis", type="invoke", f=f, value=None, session=None)
        self._record(process="nemesis", type="info", f=f, value=None, session=None)
        return self


def kinds(result: dict) -> list[tuple[str, str]]:
    return sorted((a["type"], a["zookeeper"]) for a in result["anomalies"])


# --- valid histories ------------------------------------------------------------------------------

@pytest.mark.parametrize("consistency", ["zookeeper", "linearizable"])
def test_holders_one_after_another_are_valid(consistency: str) -> None:
    h = H().hold(0, A, 1, 10, 11).hold(1, B, 2, 12, 13).inspect([(10, 11, 0), (12, 13, 1)])
    result = LockChecker().check(h.records, {"consistency": consistency})
    assert result["valid"] is True and result["anomalies"] == [], result
    assert result["holds"] == 2 and result["acquires"]["ok"] == 2 and result["fences"] == {
        "written": 2, "listed": 2, "stale": 0}
    assert result["acquire_latency_ms"]["count"] == 2 and result["final_inspections"] == 3


def test_a_failed_acquire_holds_nothing() -> None:
    h = H().acquire(0, A, 1, 10).invoke(1, "acquire", {}, B).fence(0, A, 10, 11).release(0, A)
    h.complete(1, "fail", error="not acquired in time").inspect([(10, 11, 0)])
    result = check_lock(h.records)
    assert result["valid"] is True and result["acquires"]["failed"] == 1


def test_without_a_final_inspection_the_verdict_is_unknown() -> None:
    assert check_lock(H().hold(0, A, 1, 10, 11).records)["valid"] == "unknown"


# --- overlapping holds ----------------------------------------------------------------------------

def overlapping() -> H:
    """A holds; B's acquire returns while A still believes it holds the lock."""
    return H().acquire(0, A, 1, 10).acquire(1, B, 2, 12)


def test_an_overlap_while_the_first_node_provably_existed_is_a_violation() -> None:
    h = overlapping().fence(0, A, 10, 13).release(0, A).fence(1, B, 12, 14).release(1, B)
    result = check_lock(h.inspect([(10, 13, 0), (12, 14, 1)]).records)
    assert result["valid"] is False and ("overlap", "violation") in kinds(result)
    overlap = next(a for a in result["anomalies"] if a["type"] == "overlap")
    assert overlap["other"]["value"]["seq"] == 1 and overlap["op"]["value"]["seq"] == 2


def test_an_overlap_after_the_first_holders_session_expired_is_allowed() -> None:
    # A's client learned A had expired: its fence ran in a new session, its release found no node.
    h = overlapping().fence(1, B, 12, 13).release(1, B)
    h.fence(0, A2, 10, 14).release(0, A2, "fail", "lock node gone", expired=[{"session": A}])
    result = check_lock(h.inspect([(12, 13, 1), (10, 14, 0)]).records)
    assert result["valid"] is True
    assert kinds(result) == [("overlap", "allowed"), ("stale-fence", "allowed")]
    assert "session had ended" in result["anomalies"][0]["explanation"]
    assert any(row["classification"].startswith("two holders at once: the first holder's session had expired")
               for row in result["summary"])


def test_an_overlap_nothing_proves_is_allowed_as_unproven() -> None:
    h = overlapping().release(0, A, "info", "ConnectionLoss").fence(1, B, 12, 13).release(1, B)
    result = check_lock(h.inspect([(12, 13, 1)]).records)
    assert result["valid"] is True and kinds(result) == [("overlap", "allowed")]
    assert "nothing shows" in result["anomalies"][0]["classification"]
    assert result["overlaps"] == 1


def test_holds_taken_as_the_run_ended_are_unfinished_not_overlaps() -> None:
    # Neither client did anything after acquiring: the runner closed them (and their sessions).
    h = H().hold(2, A, 1, 8, 9).acquire(0, A, 2, 10).acquire(1, B, 3, 12).inspect([(8, 9, 2)])
    result = check_lock(h.records)
    assert result["valid"] is True and result["anomalies"] == [] and result["unfinished"] == 2


def test_a_dropped_session_ends_the_hold_at_its_unknown_op() -> None:
    h = H().acquire(0, A, 1, 10).fence(0, A, 10, 0, kind="info", dropped={"session": A, "zxid": 12})
    h.acquire(1, B, 2, 13).fence(1, B, 13, 14).release(1, B).inspect([(13, 14, 1)])
    assert check_lock(h.records)["valid"] is True and check_lock(h.records)["anomalies"] == []


# --- tokens and fences ----------------------------------------------------------------------------

def test_a_later_acquire_with_a_smaller_token_is_a_violation() -> None:
    h = H().hold(0, A, 1, 20, 21).hold(1, B, 2, 15, 22).inspect([(20, 21, 0), (15, 22, 1)])
    result = check_lock(h.records)
    assert ("token-order", "violation") in kinds(result) and result["valid"] is False


def test_two_acquires_with_one_token_are_a_violation() -> None:
    h = H().hold(0, A, 1, 20, 21).hold(1, B, 2, 20, 22).inspect([(20, 21, 0), (20, 22, 1)])
    assert [k for k in kinds(check_lock(h.records)) if k[0] == "token-order"] == [("token-order", "violation")]


def test_a_stale_fence_in_the_lock_nodes_own_session_is_a_violation() -> None:
    h = overlapping().fence(1, B, 12, 13).fence(0, A, 10, 14).release(0, A).release(1, B)
    result = check_lock(h.inspect([(12, 13, 1), (10, 14, 0)]).records)
    stale = next(a for a in result["anomalies"] if a["type"] == "stale-fence")
    assert stale["zookeeper"] == "violation" and stale["op"]["value"]["name"] == "10-0"
    assert result["fences"]["stale"] == 1


def test_a_stale_fence_known_only_from_the_listing_is_allowed() -> None:
    h = overlapping().fence(1, B, 12, 13).release(1, B).fence(0, A, 10, 0, kind="info")
    result = check_lock(h.inspect([(12, 13, 1), (10, 14, 0)]).records)
    assert ("stale-fence", "allowed") in kinds(result)


def test_an_acknowledged_fence_missing_at_the_end_is_lost() -> None:
    h = H().hold(0, A, 1, 10, 11).hold(1, B, 2, 12, 13).inspect([(12, 13, 1)])
    result = check_lock(h.records)
    assert kinds(result) == [("lost-fence", "violation")]


def test_a_lock_still_held_after_the_run_is_a_violation() -> None:
    h = H().hold(0, A, 1, 10, 11).inspect([(10, 11, 0)], holders=("x__lock__0000000009",))
    result = check_lock(h.records)
    assert [k for k in kinds(result)] == [("held-at-end", "violation")] * 3


def test_an_acquire_without_its_token_makes_the_history_malformed() -> None:
    h = H().invoke(0, "acquire", {}, A).complete(0, node="x")
    assert check_lock(h.records)["valid"] == "unknown"


# --- statistics -----------------------------------------------------------------------------------

def test_acquisitions_during_faults_are_counted() -> None:
    h = H().hold(0, A, 1, 10, 11).nemesis("start-partition").hold(1, B, 2, 12, 13).nemesis("stop-partition")
    h.hold(0, A, 3, 14, 15).inspect([(10, 11, 0), (12, 13, 1), (14, 15, 0)])
    result = LockChecker({"start-partition": "partition"}, {"stop-partition": "partition"}).check(h.records, {})
    assert result["acquires"]["during_faults"] == 1 and result["acquires"]["ok"] == 3
    assert result["acquire_latency_ms"]["p50"] == 1.0


# --- the generator --------------------------------------------------------------------------------

def test_the_generator_runs_each_hold_through_fence_and_release() -> None:
    gen = LockGenerator()
    assert gen.next(0) == ("acquire", {})
    gen.update(0, "acquire", {}, Completion("ok", {"node": "n1", "czxid": 7}))
    f, value = gen.next(0)
    assert (f, value) == ("fence", {"token": 7, "process": 0, "node": "n1"})
    gen.update(0, "fence", value, Completion("fail", error="fencing record exists"))
    assert gen.next(0) == ("release", {"node": "n1"})
    gen.update(0, "release", {"node": "n1"}, Completion("ok"))
    assert gen.next(0) == ("acquire", {})
    gen.update(0, "acquire", {}, Completion("fail"))
    assert gen.next(0) == ("acquire", {})
