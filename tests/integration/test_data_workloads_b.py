"""The counter, queue and bank workloads end to end: a short `zkchaos test` of each against a local
cluster with partitions and kills, bank's multiRead against Apache ZooKeeper too, and
`zkchaos analyze` failing a bank history whose total is off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import require_apache_zookeeper
from tests.runs import short_run, zkchaos

pytestmark = pytest.mark.integration



def run_workload(tmp_path: Path, workload: str, db: str = "zkchaos") -> tuple[dict, list[dict]]:
    """A short run; returns results.json and the history once the run ended valid."""
    return short_run(tmp_path / "store", workload, "zkb", "10.66.70.0/24", db=db)


def final_ok(history: list[dict], f: str) -> list[dict]:
    return [r for r in history if r.get("final") and r["type"] == "ok" and r["f"] == f]


def test_counter(tmp_path: Path) -> None:
    results, history = run_workload(tmp_path, "counter")
    finals = final_ok(history, "read")
    assert len(finals) == 3 and all(r["value"]["value"] == r["value"]["version"] for r in finals)
    final = results["counter"]["final"]
    assert len(final["values"]) == 1 and final["acknowledged"] <= final["values"][0] <= final["attempted"]


def test_queue(tmp_path: Path) -> None:
    results, history = run_workload(tmp_path, "queue")
    assert len(final_ok(history, "tombstones")) == 3
    stats = results["queue"]["stats"]
    assert stats["drained"] is True and stats["lost"] == stats["duplicated"] == 0
    assert stats["delivered"] >= stats["acknowledged"] > 50


@pytest.mark.parametrize("db", ["zkchaos", "zookeeper"])
def test_bank(tmp_path: Path, db: str) -> None:
    if db == "zookeeper":
        require_apache_zookeeper()
    results, history = run_workload(tmp_path, "bank", db)
    finals = final_ok(history, "read")
    assert len(finals) == 3 and len({json.dumps(r["value"]) for r in finals}) == 1
    assert sum(finals[0]["value"]["balances"]) == 5 * 100
    assert results["bank"]["stats"]["transfers"]["ok"] > 50


def test_analyze_fails_a_bank_read_whose_total_is_off(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.json").write_text(json.dumps({"workload": "bank", "accounts": 2, "consistency": "zookeeper"}))
    created = {"versions": [0, 0], "mzxids": [1, 1]}
    records = [
        ("invoke", 0, {}), ("ok", 0, {"balances": [100, 90], **created}),
        ("invoke", 1, {"sync": True}), ("ok", 1, {"sync": True, "balances": [100, 100], **created}),
    ]
    (run / "history.jsonl").write_text("".join(json.dumps({
        "index": i, "time_ns": i * 1000, "process": p, "node": "n1", "type": kind, "f": "read", "value": value,
        "error": None, "zxid": None, "session": f"s{p}", **({"final": True} if p == 1 else {})}) + "\n"
        for i, (kind, p, value) in enumerate(records)))
    done = zkchaos("analyze", "--no-report", str(run), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    results = json.loads((run / "results.json").read_text())
    assert [a["type"] for a in results["bank"]["anomalies"]] == ["wrong-total", "account-conflict"]  # 90 is no initial balance
