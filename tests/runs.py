"""`zkchaos` as a user runs it, for the end-to-end tests: the command in a subprocess, a short
test under faults that must end valid, and a hand-written run directory for `analyze`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nemesis
from tests.conftest import require_netns

REPO = Path(__file__).resolve().parents[1]


def zkchaos(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)


def short_run(store: Path, workload: str, prefix: str, subnet: str, *extra: str, db: str = "zkchaos",
              time_limit: int = 8, rate: int = 50) -> tuple[dict, list[dict]]:
    """A short `zkchaos test` of `workload` under partitions and kills on a local namespace
    cluster of its own; asserts it ended valid with faults injected, returns (results, history)."""
    require_netns()
    done = zkchaos(
        "test", "--workload", workload, "--db", db, *extra, "--nemesis", "partition,kill",
        "--time-limit", str(time_limit), "--nemesis-interval", "3", "--local-nodes", "3", "--concurrency", "5",
        "--rate", str(rate), "--seed", "3", "--store", str(store), "--local-prefix", prefix, "--local-subnet", subnet,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = (store / "latest").resolve()
    results = json.loads((run / "results.json").read_text())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert results["valid"] is True and results[workload]["valid"] is True, results["explanation"]
    faults = {r["f"] for r in history if r["process"] == "nemesis"} & set(nemesis.fault_fs())
    assert faults, "no fault was injected"
    return results, history


def write_run(run: Path, workload: str, records: list[dict]) -> Path:
    """A run directory as another tool might write it: test.json and history.jsonl only."""
    run.mkdir()
    (run / "test.json").write_text(json.dumps({"workload": workload, "consistency": "zookeeper", "name": "broken"}))
    (run / "history.jsonl").write_text("".join(json.dumps(dict(r, index=i, time_ns=i * 1000)) + "\n"
                                               for i, r in enumerate(records)))
    return run


def analyze_violations(run: Path, workload: str) -> list[str]:
    """`zkchaos analyze` on a run that must be judged invalid: the violations it names."""
    done = zkchaos("analyze", str(run), timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    results = json.loads((run / "results.json").read_text())
    assert results["valid"] is False
    return [a["type"] for a in results[workload]["anomalies"] if a["zookeeper"] == "violation"]
