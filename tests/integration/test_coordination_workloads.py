"""The ephemeral, lock and watch workloads end to end: a short `zkchaos test` of each, on both
DBs, on a local namespace cluster under partitions and kills; and `zkchaos analyze` rejecting a
history that breaks each checker's guarantee. Apache ZooKeeper is the control: it passes all three."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import require_apache_zookeeper
from tests.runs import analyze_violations, short_run, write_run
from workloads.watch import ROOT, key_path

pytestmark = pytest.mark.integration

WORKLOADS = ["ephemeral", "lock", "watch"]


def _what_was_checked(workload: str, checked: dict) -> None:
    """Each checker judged a real amount of work, final phase included."""
    if workload == "ephemeral":
        assert checked["ephemerals"]["acknowledged"] > 30 and checked["sessions"]["closed"] > 10
        assert checked["final_reads"] == 3 and checked["ephemerals"]["life_proven"] > 30
    elif workload == "lock":
        assert checked["holds"] > 10 and checked["final_inspections"] == 3
        assert checked["fences"]["listed"] >= checked["fences"]["written"] > 10
        assert checked["acquire_latency_ms"]["count"] == checked["acquires"]["ok"]
    else:
        assert checked["watchers"] == 4 and checked["expected"] > 50 and checked["events"] >= checked["expected"]


@pytest.mark.parametrize("db", ["zkchaos", "zookeeper"])
@pytest.mark.parametrize("workload", WORKLOADS)
def test_a_short_run_under_faults_is_valid(tmp_path: Path, workload: str, db: str) -> None:
    if db == "zookeeper":
        require_apache_zookeeper()
    results, _ = short_run(tmp_path / "store", workload, "zkw", "10.66.63.0/24", db=db, time_limit=10, rate=40)
    _what_was_checked(workload, results[workload])


def _op(process: int, f: str, value: dict, result: dict, session: str, zxid: int | None = None,
        final: bool = False) -> list[dict]:
    base = {"process": process, "node": "n1", "f": f, "error": None, "session": session}
    marks = {"final": True} if final else {}
    return [dict(base, type="invoke", value=value, zxid=None, **marks),
            dict(base, type="ok", value={**value, **result}, zxid=zxid, **marks)]


# Session 0xa's ephemeral is still listed after its close was acknowledged.
SURVIVOR = (_op(0, "create", {"name": "e-1"}, {"owner": "0xa", "czxid": 5}, "0xa", 5)
            + _op(0, "close", {}, {"session": "0xa", "zxid": 6}, "0xa")
            + _op(1000, "read", {"final": True}, {"names": ["e-1"]}, "0xf", 7, final=True))
# B's acquire returns while A's lock node (ahead of B's) provably exists: A fences after it.
TWO_HOLDERS = (_op(0, "acquire", {}, {"node": "a__lock__0000000001", "seq": 1, "czxid": 5, "owner": "0xa"}, "0xa")
               + _op(1, "acquire", {}, {"node": "b__lock__0000000002", "seq": 2, "czxid": 6, "owner": "0xb"}, "0xb")
               + _op(0, "fence", {"token": 5, "process": 0, "node": "a__lock__0000000001"},
                     {"name": "5-0", "fence_czxid": 7}, "0xa", 7)
               + _op(0, "release", {"node": "a__lock__0000000001"}, {}, "0xa", 8))
# The recursive watch was set at zxid 5, the key created at 6; a reply at 6 came, the notification never.
MISSED = (_op(1, "events", {"role": "recursive"}, {"role": "recursive", "watcher": "w", "journal": [
              {"kind": "watch", "mode": "recursive", "path": ROOT, "zxid": 5, "seq": 1, "conn": 0}]}, "0xw")
          + _op(0, "create", {"key": 0}, {"czxid": 6}, "0x0", 6)
          + _op(1, "events", {"role": "recursive"}, {"role": "recursive", "watcher": "w", "journal": [
              {"kind": "read", "path": key_path(0), "zxid": 6, "exists": True, "mzxid": 6, "seq": 2, "conn": 0}]},
                "0xw"))


@pytest.mark.parametrize("workload, records, anomaly", [("ephemeral", SURVIVOR, "survived-close"),
                                                         ("lock", TWO_HOLDERS, "overlap"),
                                                         ("watch", MISSED, "missed-event")],
                         ids=["ephemeral-survivor", "lock-two-holders", "watch-missed"])
def test_analyze_rejects_a_broken_history(tmp_path: Path, workload: str, records: list[dict], anomaly: str) -> None:
    assert analyze_violations(write_run(tmp_path / "run", workload, records), workload) == [anomaly]
