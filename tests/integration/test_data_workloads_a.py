"""The set and unique-ids workloads end to end: a short `zkchaos test` of each on a local
namespace cluster under partitions and kills, and `zkchaos analyze` catching a broken history."""

from __future__ import annotations

from pathlib import Path

import pytest

import workloads
from tests.runs import analyze_violations, short_run, write_run

pytestmark = pytest.mark.integration

@pytest.mark.parametrize("workload, extra", [("set", ["--set-mode", "children"]), ("set", ["--set-mode", "cas"]),
                                             ("unique-ids", [])], ids=["set-children", "set-cas", "unique-ids"])
def test_a_short_run_under_faults_is_valid(tmp_path: Path, workload: str, extra: list[str]) -> None:
    results, history = short_run(tmp_path / "store", workload, "zka", "10.66.71.0/24", *extra)
    rounds = workloads.get(workload).final_rounds  # the set reads every node twice over
    final = [r for r in history if r.get("final") and r["type"] == "ok"]
    assert [r["node"] for r in final] == ["n1", "n2", "n3"] * rounds, "the final phase missed a node"
    checked = results[workload]
    if workload == "set":
        assert checked["final_reads"] == 3 * rounds and checked["elements"]["acknowledged"] > 50
        assert checked["visibility_latency_ms"]["count"] > 0
    else:
        assert checked["final_listings"] == 3 and checked["creates"]["acknowledged"] > 50


def _op(process: int, f: str, value: dict, result: dict, final: bool = False) -> list[dict]:
    base = {"process": process, "node": "n1", "f": f, "error": None, "zxid": None, "session": None}
    marks = {"final": True} if final else {}
    return [dict(base, type="invoke", value=value, **marks), dict(base, type="ok", value=result, **marks)]


ID_0 = {"ephemeral": False, "name": "id-0000000000", "seq": 0}
LOST_ADD = (_op(0, "add", {"element": 1}, {"element": 1, "czxid": 5})
            + _op(0, "add", {"element": 2}, {"element": 2, "czxid": 6})  # acknowledged, then gone
            + _op(1000, "read", {"elements": None, "final": True}, {"elements": [1], "final": True}, final=True))
DUPLICATE_ID = (_op(0, "create", {"ephemeral": False}, dict(ID_0, czxid=5))
                + _op(1, "create", {"ephemeral": False}, dict(ID_0, czxid=6))  # the same name again
                + _op(1000, "list", {"final": True}, {"final": True, "names": [ID_0["name"]]}, final=True))


@pytest.mark.parametrize("workload, records, anomaly", [("set", LOST_ADD, "lost"),
                                                         ("unique-ids", DUPLICATE_ID, "duplicate")],
                         ids=["set-lost-add", "unique-ids-duplicate"])
def test_analyze_rejects_a_broken_history(tmp_path: Path, workload: str, records: list[dict], anomaly: str) -> None:
    assert analyze_violations(write_run(tmp_path / "run", workload, records), workload) == [anomaly]
