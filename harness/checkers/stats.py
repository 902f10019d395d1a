"""Latency, rate and outcome statistics, as a checker that is always valid (composed with the
workload's checker, like Jepsen's perf and stats checkers). Plain Python, so checking a history
never waits for pandas; the report draws its plots with pandas and matplotlib later."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping

from .history import NEMESIS, pair_ops


def quantile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what numpy and pandas do by default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def fault_windows(records: Iterable[Mapping], faults: Mapping[str, str],
                  heals: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """(start_ns, end_ns, family) for every fault, from the nemesis's own records. `faults` and
    `heals` map history fs to their family; families may overlap in time."""
    windows = []
    opened: dict[str, int] = {}
    last = 0
    for rec in records:
        last = max(last, rec["time_ns"])
        if rec.get("process") != NEMESIS or rec.get("type") != "invoke":
            continue
        f = rec.get("f")
        if f in faults:
            opened.setdefault(faults[f], rec["time_ns"])
        elif f in heals and heals[f] in opened:
            windows.append((opened.pop(heals[f]), rec["time_ns"], heals[f]))
    windows += [(start, last, family) for family, start in opened.items()]
    return sorted(windows)


class StatsChecker:
    def __init__(self, faults: Mapping[str, str] | None = None, heals: Mapping[str, str] | None = None) -> None:
        self.faults = dict(faults or {})
        self.heals = dict(heals or {})

    def check(self, history: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
        return {"valid": True, **statistics(history, self.faults, self.heals)}


def statistics(records: list[dict[str, Any]], faults: Mapping[str, str], heals: Mapping[str, str]) -> dict[str, Any]:
    """Per-op outcomes and latency quantiles, throughput, per-node outcomes, fault windows."""
    ops = [op for op in pair_ops(records) if op.process != NEMESIS]
    if not ops:
        return {"total_ops": 0, "ops": {}, "nodes": {}, "faults": {}, "fault_windows_s": []}
    windows = fault_windows(records, faults, heals)
    latencies: dict[str, list[float]] = defaultdict(list)
    outcomes: dict[str, Counter] = defaultdict(Counter)
    nodes: dict[str, Counter] = defaultdict(Counter)
    during, outside, per_second = Counter(), Counter(), Counter()
    starts = []
    for op in ops:
        start_ns = op.invoke["time_ns"]
        starts.append(start_ns)
        outcomes[op.f][op.type] += 1
        nodes[str(op.invoke.get("node"))][op.type] += 1
        if op.type == "ok" and op.complete is not None:
            latencies[op.f].append((op.complete["time_ns"] - start_ns) / 1e6)
        (during if any(a <= start_ns <= b for a, b, _ in windows) else outside)[op.type] += 1
        per_second[start_ns // 1_000_000_000] += 1
    per_f = {}
    for f in sorted(outcomes):
        lat = sorted(latencies[f])
        per_f[f] = {"ok": outcomes[f]["ok"], "fail": outcomes[f]["fail"], "info": outcomes[f]["info"],
                    "p50_ms": quantile(lat, 0.5), "p99_ms": quantile(lat, 0.99), "max_ms": lat[-1] if lat else None}
    duration = (max(starts) - min(starts)) / 1e9
    return {
        "total_ops": len(ops),
        "duration_s": duration,
        "ops_per_s": len(ops) / duration if duration > 0 else None,
        "ops": per_f,
        "nodes": {n: dict(c) for n, c in sorted(nodes.items())},
        "faults": dict(Counter(family for _, _, family in windows)),
        "fault_windows_s": [(a / 1e9, b / 1e9, family) for a, b, family in windows],
        "during_faults": dict(during),
        "outside_faults": dict(outside),
        "rate_per_second": {int(k): v for k, v in sorted(per_second.items())},
    }
