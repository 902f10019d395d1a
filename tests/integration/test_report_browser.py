"""The HTML report in a real browser (Debian's headless Chromium): a report of an invalid run and
of a valid one load with no console errors, their script runs, and what is rendered says what
the run found: the verdict, each anomaly with its timeline lanes, the charts."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import require

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
E1, E2 = 1 << 32, 2 << 32


def chromium() -> str:
    path = shutil.which("chromium")
    require(None if path else "Debian's chromium is not installed", "ZKCHAOS_REQUIRE_BROWSER")
    return path


def render_in_browser(page: Path) -> tuple[str, str]:
    """(the DOM after scripts ran, the browser's log)."""
    profile = tempfile.mkdtemp(prefix="zkchaos-chromium-")
    try:
        done = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=3000",
             "--dump-dom", page.as_uri()],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return done.stdout, done.stderr


class H:
    def __init__(self) -> None:
        self.records: list[dict] = []

    def add(self, process, type_, f, value, zxid=None, final=False):
        client = isinstance(process, int)
        rec = {"index": len(self.records), "time_ns": (len(self.records) + 1) * 50_000_000, "process": process,
               "node": f"n{process % 3 + 1}" if client else None, "type": type_, "f": f, "value": value,
               "error": None, "zxid": zxid, "session": f"0x{process + 1}" if client else None}
        if final:
            rec["final"] = True
        self.records.append(rec)
        return self

    def op(self, p, f, value, result, zxid=None, final=False):
        return self.add(p, "invoke", f, value, final=final).add(p, "ok", f, result, zxid, final)


def store_run(tmp_path: Path, name: str, h: H) -> Path:
    run = tmp_path / name
    run.mkdir()
    (run / "test.json").write_text(json.dumps({"workload": "register", "consistency": "zookeeper", "name": name,
                                               "db": "zkchaos", "nemesis": ["partition"], "seed": 5}))
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in h.records))
    done = subprocess.run([sys.executable, "-m", "cli", "analyze", str(run)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode in (0, 1), done.stderr
    return run / "report.html"


def lost_write_history() -> H:
    h = H().add("nemesis", "invoke", "start-partition", {"targets": ["n1"], "shape": "isolate"})
    h.add("nemesis", "info", "start-partition", {"rules": 4})
    h.op(0, "write", {"key": 1, "value": 1}, {"key": 1, "value": 1, "version": 0, "mzxid": E1 + 1}, E1 + 1)
    h.op(1, "write", {"key": 1, "value": 2}, {"key": 1, "value": 2, "version": 1, "mzxid": E1 + 2}, E1 + 2)
    h.op(2, "write", {"key": 1, "value": 3}, {"key": 1, "value": 3, "version": 1, "mzxid": E2 + 1}, E2 + 1)
    h.add("nemesis", "invoke", "stop-partition", None).add("nemesis", "info", "stop-partition", {"removed_rules": 4})
    return h.op(9, "read", {"key": 1, "value": None, "final": True},
                {"key": 1, "value": 3, "version": 1, "mzxid": E2 + 1, "final": True}, E2 + 1, final=True)


def valid_history() -> H:
    h = H().op(0, "write", {"key": 1, "value": 1}, {"key": 1, "value": 1, "version": 0, "mzxid": E1 + 1}, E1 + 1)
    return h.op(9, "read", {"key": 1, "value": None, "final": True},
                {"key": 1, "value": 1, "version": 0, "mzxid": E1 + 1, "final": True}, E1 + 1, final=True)


def no_console_errors(log: str) -> None:
    errors = [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
    assert not errors, "\n".join(errors)


def test_an_invalid_run_shows_its_lost_write_on_a_timeline(tmp_path: Path) -> None:
    dom, log = render_in_browser(store_run(tmp_path, "lost", lost_write_history()))
    no_console_errors(log)
    assert 'id="verdict" class="verdict invalid">INVALID' in dom
    assert 'data-zoom="ready"' in dom  # the page's script ran to its end
    assert "lost write" in dom and "not in the node's history" in dom
    timelines = re.findall(r'<svg class="chart timeline".*?</text></svg>', dom, re.S)
    assert timelines, "no timeline drawn for the anomaly"
    lanes = re.findall(r'class="lane"[^>]*>process (\d+)<', timelines[0])
    assert {"1", "2"} <= set(lanes)  # the lost write's process and the one that took its version
    assert timelines[0].count('class="op hl"') >= 2 and 'class="fault"' in timelines[0]
    assert "start-partition" in dom  # the faults table


def test_a_valid_run_says_so_and_draws_its_charts(tmp_path: Path) -> None:
    dom, log = render_in_browser(store_run(tmp_path, "fine", valid_history()))
    no_console_errors(log)
    assert 'id="verdict" class="verdict valid">VALID' in dom and "No anomaly." in dom
    assert 'data-zoom="ready"' in dom
    assert dom.count('class="chart series"') >= 3
