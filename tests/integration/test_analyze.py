"""`zkchaos analyze` on histories written by hand, as another tool would write them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


class H:
    """A history builder: ops as (process, f, value, outcome) in real-time order."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.t = 0

    def add(self, process, type_, f, value, zxid=None):
        self.t += 1_000_000
        self.records.append(
            {"index": len(self.records), "time_ns": self.t, "process": process, "node": "n1", "type": type_,
             "f": f, "value": value, "error": None, "zxid": zxid, "session": None}
        )

    def op(self, process, f, value, outcome="ok", result=None, zxid=None):
        self.add(process, "invoke", f, value)
        self.add(process, outcome, f, result if result is not None else value, zxid)
        return self


def _store(tmp_path: Path, h: H, consistency: str = "zookeeper") -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "test.json").write_text(json.dumps({"workload": "register", "consistency": consistency, "name": "hand"}))
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in h.records))
    return run


def analyze(run: Path, *extra: str) -> tuple[int, dict]:
    done = subprocess.run([sys.executable, "-m", "cli", "analyze", str(run), *extra], capture_output=True, text=True, cwd=REPO, timeout=120)
    return done.returncode, json.loads((run / "results.json").read_text())


def test_valid_history(tmp_path):
    h = H().op(0, "write", {"key": 0, "value": 1}).op(1, "read", {"key": 0, "value": None}, result={"key": 0, "value": 1})
    code, results = analyze(_store(tmp_path, h))
    assert code == 0 and results["valid"] is True


def test_lost_write_is_invalid_under_both_models(tmp_path):
    h = (
        H()
        .op(0, "write", {"key": 0, "value": 1})
        .op(0, "write", {"key": 0, "value": 2})
        .op(1, "read", {"key": 0, "value": None, "final": True}, result={"key": 0, "value": 1, "final": True})
    )
    run = _store(tmp_path, h)
    code, results = analyze(run)
    assert code == 1 and results["valid"] is False
    code, results = analyze(run, "--consistency", "linearizable")
    assert code == 1 and results["valid"] is False


def test_stale_read_is_allowed_by_zookeeper_only(tmp_path):
    h = (
        H()
        .op(0, "write", {"key": 0, "value": 1})
        .op(0, "write", {"key": 0, "value": 2})
        .op(1, "read", {"key": 0, "value": None}, result={"key": 0, "value": 1})
    )
    run = _store(tmp_path, h)
    assert analyze(run)[0] == 0
    code, results = analyze(run, "--consistency", "linearizable")
    assert code == 1
    anomalies = results["register"]["anomalies"]
    assert anomalies and anomalies[0]["zookeeper"] == "allowed"


def test_history_with_repeated_values_from_another_tool(tmp_path):
    h = H()
    for i in range(30):
        v = i % 5
        h.op(i % 3, "write", {"key": 0, "value": v}).op(3, "read", {"key": 0, "value": None}, result={"key": 0, "value": v})
    h.op(0, "cas", {"key": 0, "from": 4, "to": 0})
    code, results = analyze(_store(tmp_path, h, "linearizable"))
    assert code == 0 and results["valid"] is True


def test_missing_history_is_a_clear_error(tmp_path):
    done = subprocess.run([sys.executable, "-m", "cli", "analyze", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 3 and "no history.jsonl" in done.stderr


def test_malformed_history_is_a_one_line_error(tmp_path):
    (tmp_path / "history.jsonl").write_text('[1, 2]\n')
    done = subprocess.run([sys.executable, "-m", "cli", "analyze", str(tmp_path)], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 3 and "history.jsonl:1" in done.stderr and "Traceback" not in done.stderr


def _raw(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 3 and "Traceback" not in done.stderr, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("Error:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.parametrize("history, test, expected", [
    ('{"index":0,"time_ns":0,"process":0,"type":"invoke","f":"read","value":{"key":0}}\nnot json\n', None,
     "history.jsonl:2: not a JSON object"),
    ('{"index":0,"time_ns":0,"type":"invoke","f":"read"}\n', None, "history.jsonl:1: missing process"),
    ('{"index":0,"time_ns":0,"process":0,"type":"ok","f":"read","value":null}\n', None,
     "record 0 completes nothing"),
    ('', {"workload": "elections"}, "test.json: unknown workload 'elections'; choose from register"),
    ('', "{not json", "test.json: not JSON"),
])
def test_bad_input_is_one_line_and_loses_nothing(tmp_path, history, test, expected):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.jsonl").write_text(history)
    if test is not None:
        (run / "test.json").write_text(test if isinstance(test, str) else json.dumps(test))
    (run / "results.json").write_text('{"valid": true, "kept": "yes"}\n')
    done = subprocess.run([sys.executable, "-m", "cli", "analyze", str(run)], capture_output=True, text=True,
                          cwd=REPO, timeout=60)
    assert expected in _raw(done)
    assert json.loads((run / "results.json").read_text()) == {"valid": True, "kept": "yes"}
    assert not (run / "report.html").exists()


def test_a_whole_store_is_rechecked_and_a_broken_run_marked(tmp_path):
    store = tmp_path / "store"
    good = store / "good" / "20260101T000000"
    good.mkdir(parents=True)
    (good / "test.json").write_text(json.dumps({"workload": "register"}))
    (good / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in H().op(0, "write", {"key": 1, "value": 1})
                                                 .op(1, "read", {"key": 1, "value": None}, "ok", {"key": 1, "value": 1}).records))
    broken = store / "broken" / "20260102T000000"
    broken.mkdir(parents=True)
    (broken / "history.jsonl").write_text("not json\n")
    done = subprocess.run([sys.executable, "-m", "cli", "analyze", "--no-report", str(store)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert done.returncode == 3, done.stdout + done.stderr  # a broken run: the harness could not check it
    assert "good/20260101T000000" in done.stdout and "VALID" in done.stdout
    assert "broken/20260102T000000" in done.stdout and "BROKEN" in done.stdout and "history.jsonl:1" in done.stdout
    index = json.loads((store / "index.json").read_text())
    assert {e["path"]: e["exit_code"] for e in index} == {"good/20260101T000000": 0, "broken/20260102T000000": 3}
