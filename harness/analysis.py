"""From a history to results.json and reports: statistics (pandas) and the checkers.

Used at the end of `zkchaos test` and by `zkchaos analyze STORE_DIR`, which re-checks a stored
history, ours or one another tool wrote in the same format.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from .history import NEMESIS, read_history, to_dataframe
from .store import RunDir

log = logging.getLogger(__name__)


def fault_windows(records: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """(start_ns, end_ns, fault) for every fault, from the nemesis's own records."""
    windows = []
    open_at: tuple[int, str] | None = None
    for rec in records:
        if rec["process"] != NEMESIS or rec["type"] != "invoke":
            continue
        f = rec["f"]
        if f in ("start-partition", "kill", "pause", "clock-skew", "start-clock"):
            open_at = (rec["time_ns"], f)
        elif open_at is not None:
            windows.append((open_at[0], rec["time_ns"], open_at[1]))
            open_at = None
    if open_at is not None:
        end = records[-1]["time_ns"] if records else open_at[0]
        windows.append((open_at[0], end, open_at[1]))
    return windows


def statistics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-op outcomes and latency quantiles, throughput, per-node outcomes, fault windows."""
    df = to_dataframe(records)
    if df.empty:
        return {"ops": {}, "faults": {}, "total_ops": 0}
    clients = df[~df["nemesis"]]
    ops: dict[str, Any] = {}
    for f, group in clients.groupby("f"):
        counts = group["type"].value_counts().to_dict()
        lat = group.loc[group["type"] == "ok", "latency_ms"]
        ops[str(f)] = {
            "ok": int(counts.get("ok", 0)),
            "fail": int(counts.get("fail", 0)),
            "info": int(counts.get("info", 0)),
            "p50_ms": float(lat.quantile(0.5)) if len(lat) else None,
            "p99_ms": float(lat.quantile(0.99)) if len(lat) else None,
            "max_ms": float(lat.max()) if len(lat) else None,
        }
    per_node = {
        str(node): {str(k): int(v) for k, v in g["type"].value_counts().items()}
        for node, g in clients.groupby("node")
    }
    windows = fault_windows(records)
    in_fault = clients["start_s"].apply(lambda s: any(a / 1e9 <= s <= b / 1e9 for a, b, _ in windows))
    during = {str(k): int(v) for k, v in clients.loc[in_fault, "type"].value_counts().items()}
    outside = {str(k): int(v) for k, v in clients.loc[~in_fault, "type"].value_counts().items()}
    duration = float(clients["start_s"].max() - clients["start_s"].min()) if len(clients) > 1 else 0.0
    per_second = clients.assign(second=clients["start_s"].astype(int)).groupby("second").size()
    faults: dict[str, int] = {}
    for _, _, f in windows:
        faults[f] = faults.get(f, 0) + 1
    return {
        "total_ops": int(len(clients)),
        "duration_s": duration,
        "ops_per_s": float(len(clients) / duration) if duration > 0 else None,
        "ops": ops,
        "nodes": per_node,
        "faults": faults,
        "fault_windows_s": [(a / 1e9, b / 1e9, f) for a, b, f in windows],
        "during_faults": during,
        "outside_faults": outside,
        "rate_per_second": {int(k): int(v) for k, v in per_second.items()},
    }


def check(records: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any]:
    """Run the workload's checker under the chosen consistency model."""
    workload = options.get("workload", "register")
    consistency = options.get("consistency", "zookeeper")
    if workload != "register":
        return {"valid": "unknown", "explanation": f"no checker for workload {workload!r}"}
    from .checkers import check_register

    return check_register(records, consistency=consistency, time_limit=float(options.get("check_time_limit") or 60.0))


def missing_final_reads(records: list[dict[str, Any]]) -> list[Any]:
    """Keys no final read succeeded on, when the history has final reads at all. Without one
    a lost write can look like a stale read ZooKeeper allows, so the verdict cannot be valid."""
    final_invoked = any(isinstance(r["value"], dict) and r["value"].get("final") for r in records if r["type"] == "invoke")
    if not final_invoked:
        return []
    keys, seen = set(), set()
    for r in records:
        v = r["value"]
        if r["process"] == NEMESIS or not isinstance(v, dict) or "key" not in v:
            continue
        keys.add(v["key"])
        if r["type"] == "ok" and r["f"] == "read" and v.get("final"):
            seen.add(v["key"])
    return sorted(keys - seen, key=str)


def analyze_run(run_dir: RunDir, records: list[dict[str, Any]], options: dict[str, Any], console=None) -> dict[str, Any]:
    checked = check(records, options)
    missing = missing_final_reads(records)
    if missing and checked.get("valid") is True:
        checked = dict(checked, valid="unknown")
        checked["explanation"] = (
            f"no successful final read of key(s) {', '.join(map(str, missing))}: "
            "a lost write cannot be ruled out"
        )
    explanation = checked.get("explanation", "")
    if checked.get("valid") is False and checked.get("only_stale_reads_allowed_by_zookeeper"):
        explanation += (
            " Every violation is a stale read, which ZooKeeper's own model allows (its reads are"
            " not linearizable): under --consistency zookeeper this history is valid."
        )
    results = {
        "valid": checked.get("valid", "unknown"),
        "explanation": explanation,
        "consistency": options.get("consistency", "zookeeper"),
        options.get("workload", "register"): checked,
        "stats": statistics(records),
    }
    run_dir.write_json(run_dir.results, results)
    try:
        from reports.html import write_report

        write_report(run_dir, records, results, options)
    except ImportError:
        pass
    except Exception as e:  # noqa: BLE001 - a report problem must not change the verdict
        log.warning("HTML report failed: %s", e)
    if console is not None:
        from reports.terminal import print_summary

        print_summary(console, results, run_dir.path)
    return results


def analyze_store(path: Path, console=None, consistency: str | None = None) -> dict[str, Any]:
    """`zkchaos analyze`: re-check a stored run (test.json + history.jsonl)."""
    run_dir = RunDir(path)
    if not run_dir.history.exists():
        raise FileNotFoundError(f"{path}: no history.jsonl")
    options = run_dir.read_json(run_dir.test_json) if run_dir.test_json.exists() else {}
    if consistency is not None:
        options["consistency"] = consistency
    return analyze_run(run_dir, read_history(run_dir.history), options, console)
