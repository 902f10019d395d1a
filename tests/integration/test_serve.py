"""`zkchaos serve` on a store with a valid run, an invalid one and a broken one: the index lists
them all (newest first, filterable), files inside the store are served, nothing outside is."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from reports.serve import make_server


def _run(store: Path, name: str, stamp: str, valid, start: str, broken: bool = False) -> Path:
    run = store / name / stamp
    run.mkdir(parents=True)
    (run / "test.json").write_text("{not json" if broken else json.dumps(
        {"name": name, "workload": "register", "nemesis": ["kill"], "db": "zkchaos", "start_time": start}))
    (run / "results.json").write_text(json.dumps({"valid": valid, "explanation": f"{name} says so",
                                                  "anomaly_count": 0 if valid else 2, "stats": {"duration_s": 12.0}}))
    (run / "history.jsonl").write_text("{}\n")
    (run / "report.html").write_text(f"<html><body>report of {name}</body></html>")
    return run


@pytest.fixture
def served(tmp_path: Path):
    store = tmp_path / "store"
    _run(store, "old-valid", "20260101T000000", True, "2026-01-01T00:00:00")
    _run(store, "new-invalid", "20260102T000000", False, "2026-01-02T00:00:00")
    _run(store, "broken", "20260103T000000", True, "", broken=True)
    (tmp_path / "secret.txt").write_text("outside the store")
    server = make_server(store, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


def test_index_lists_every_run_newest_first_and_marks_the_broken_one(served: str) -> None:
    status, page = get(served + "/")
    assert status == 200
    assert page.index("new-invalid") < page.index("old-valid")
    assert "INVALID" in page and "VALID" in page and "BROKEN" in page and "test.json" in page
    _, only = get(served + "/?verdict=invalid")
    assert "new-invalid" in only and "old-valid" not in only


def test_run_files_are_served_and_nothing_outside(served: str) -> None:
    status, report = get(served + "/runs/new-invalid/20260102T000000/report.html")
    assert status == 200 and "report of new-invalid" in report
    status, listing = get(served + "/runs/new-invalid/20260102T000000/")
    assert status == 200 and "history.jsonl" in listing
    for attack in ("/runs/../secret.txt", "/runs/%2e%2e/secret.txt", "/runs/..%2fsecret.txt",
                   "/runs//etc/passwd", "/etc/passwd"):
        status, body = get(served + attack)
        assert status == 404 and "outside the store" not in body, attack
