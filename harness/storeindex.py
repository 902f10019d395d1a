"""store/index.json: every run in the store with its verdict, newest last.

Each `zkchaos test` adds its run when it ends (under a lock: campaigns and parallel CI jobs may
share a store). The index can always be rebuilt from the run directories (`scan`), which is
what `zkchaos serve` does when it is missing or out of date; a run whose files cannot be read is
listed as broken, with the reason, instead of hiding the rest.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

INDEX = "index.json"


def entry(store: Path, run: Path) -> dict[str, Any]:
    """What the index says of one run directory."""
    out: dict[str, Any] = {"path": str(run.relative_to(store))}
    try:
        test = json.loads((run / "test.json").read_text())
    except (OSError, ValueError) as e:
        return {**out, "broken": f"test.json: {_reason(e)}"}
    out.update({k: test.get(k) for k in ("name", "workload", "nemesis", "db", "start_time", "seed",
                                          "time_limit", "consistency")})
    if not (run / "results.json").exists():
        return {**out, "valid": None, "status": "no results (still running, or the harness failed)"}
    try:
        results = json.loads((run / "results.json").read_text())
    except (OSError, ValueError) as e:
        return {**out, "broken": f"results.json: {_reason(e)}"}
    stats = results.get("stats") or {}
    out.update({
        "valid": results.get("valid"),
        "explanation": str(results.get("explanation", ""))[:300],
        "anomaly_count": results.get("anomaly_count", len(results.get("anomalies", ()))),
        "ops": stats.get("total_ops"),
        "duration_s": stats.get("duration_s"),
        "report": "report.html" if (run / "report.html").exists() else None,
    })
    return out


def _reason(e: Exception) -> str:
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0]


def run_dirs(store: Path) -> list[Path]:
    """Every run directory: store/<test>/<timestamp>/ holding a test.json or a history."""
    found = []
    for test in sorted(p for p in store.iterdir() if p.is_dir() and not p.is_symlink()) if store.is_dir() else []:
        for run in sorted(p for p in test.iterdir() if p.is_dir()):
            if (run / "test.json").exists() or (run / "history.jsonl").exists():
                found.append(run)
    return found


def scan(store: Path) -> list[dict[str, Any]]:
    """The index rebuilt from the run directories, oldest first."""
    entries = [entry(store, run) for run in run_dirs(store)]
    return sorted(entries, key=lambda e: (e.get("start_time") or "", e["path"]))


@contextmanager
def _locked(store: Path) -> Iterator[None]:
    store.mkdir(parents=True, exist_ok=True)
    with open(store / ".index.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def load(store: Path) -> list[dict[str, Any]]:
    """The index as stored, or rebuilt when it is missing or unreadable."""
    try:
        entries = json.loads((store / INDEX).read_text())
        if isinstance(entries, list):
            return entries
    except (OSError, ValueError):
        pass
    return scan(store)


def record(store: Path, run: Path, **extra: Any) -> dict[str, Any]:
    """Add (or refresh) one run in store/index.json, with `extra` fields (its exit code);
    returns its entry."""
    new = {**entry(store, run), **extra}
    with _locked(store):
        entries = [e for e in load(store) if e.get("path") != new["path"]] + [new]
        tmp = store / f".{INDEX}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(entries, indent=1, default=str) + "\n")
        os.replace(tmp, store / INDEX)
    return new
