"""`zkchaos test` end to end, as a user runs it: a local namespace cluster, a real ensemble,
kazoo clients, partitions and kills, then the checker; and `zkchaos analyze` on the result."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nemesis
from harness.localproc import free_port
from tests.conftest import require_apache_zookeeper, require_netns

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SNAPSHOT_LINE = {"zkchaos": " written (", "zookeeper": "Snapshotting: 0x"}  # what each logs per snapshot
STARTUP_SNAPSHOTS = {"zkchaos": 0, "zookeeper": 3}  # ZooKeeper snapshots its empty state on each node


def zkchaos(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def _run_test(tmp_path: Path, db: str) -> tuple[subprocess.CompletedProcess, Path]:
    store = tmp_path / "store"
    done = zkchaos(
        "test", "--db", db, "--nemesis", "partition,kill", "--time-limit", "8", "--nemesis-interval", "2,4",
        "--local-nodes", "3", "--concurrency", "6", "--rate", "60", "--seed", "7", "--store", str(store),
        "--local-prefix", "zke", "--local-subnet", "10.66.72.0/24",
    )
    return done, store


def _assert_complete_store(store: Path, db: str) -> Path:
    run = (store / "latest").resolve()
    for name in ("test.json", "history.jsonl", "results.json", "harness.log", "report.html"):
        assert (run / name).exists(), f"{name} missing from {run}"
    test = json.loads((run / "test.json").read_text())
    assert test["db"] == db and test["workload"] == "register" and test["name"] and test["start_time"]
    results = json.loads((run / "results.json").read_text())
    assert "valid" in results and "register" in results
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["index"] for r in history] == list(range(len(history)))
    nemesis_fs = {r["f"] for r in history if r["process"] == "nemesis"}
    assert nemesis_fs & set(nemesis.fault_fs()), f"no fault was injected: {nemesis_fs}"
    clients = [r for r in history if r["process"] != "nemesis"]
    assert sum(r["type"] == "ok" for r in clients) > 200
    logs = [(run / "nodes" / node / "server.log").read_text(errors="replace") for node in ("n1", "n2", "n3")]
    assert all("snapCount=100\n" in (run / "nodes" / node / "zoo.cfg").read_text() for node in ("n1", "n2", "n3"))
    # --snap-count's default of 100 makes the servers snapshot during the run, not only at start-up.
    snapshots = sum(log.count(SNAPSHOT_LINE[db]) for log in logs)
    assert snapshots > STARTUP_SNAPSHOTS[db], snapshots
    return run


@pytest.mark.parametrize("db", ["zkchaos", "zookeeper"])
def test_short_run_ends_valid_with_a_complete_store(tmp_path, db):
    require_netns()
    if db == "zookeeper":
        require_apache_zookeeper()
    done, store = _run_test(tmp_path, db)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = _assert_complete_store(store, db)
    assert json.loads((run / "results.json").read_text())["valid"] is True
    assert "VALID" in done.stdout
    # Nothing left behind: the cluster this run made is gone.
    assert "zke-" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    again = zkchaos("analyze", str(run))
    assert again.returncode == 0, again.stdout + again.stderr


def test_unreachable_host_is_a_one_line_error(tmp_path):
    port = free_port()  # nobody listens there: connection refused on loopback
    done = zkchaos("test", "--nodes", "127.0.0.1", "--ssh-port", str(port), "--time-limit", "5", "--store", str(tmp_path))
    assert done.returncode == 3
    out = done.stdout + done.stderr
    assert "127.0.0.1" in out and "refused" in out
    failure_lines = [ln for ln in out.splitlines() if "harness failure" in ln]
    assert len(failure_lines) == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nemesis", "flood"], "unknown nemesis flood"),
        (["--db", "etcd"], "Invalid value for '--db'"),
        (["--time-limit", "0"], "Invalid value for '--time-limit'"),
    ],
)
def test_bad_options_are_rejected_before_anything_starts(args, message):
    done = zkchaos("test", *args)
    assert done.returncode == 3 and message in done.stderr
