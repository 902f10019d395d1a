"""Latency, rate and outcome statistics, as a checker that is always valid (composed with the
workload's checker, like Jepsen's perf and stats checkers). Plain Python, so checking a history
never waits for pandas; the report aggregates with pandas later, when it is drawn."""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from itertools import compress
from operator import itemgetter
from typing import Any, Mapping, Sequence

from .history import NEMESIS, pair_ops, paused_gc


def quantile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (what numpy and pandas do by default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def fault_windows(records: Sequence[Mapping], faults: Mapping[str, str],
                  heals: Mapping[str, str]) -> list[tuple[int, int, str]]:
    """(start_ns, end_ns, family) for every fault, from the nemesis's own records. `faults` and
    `heals` map history fs to their family; families may overlap in time. A heal whose
    completion carries an error did not heal: the window goes on (to the end, if no later heal
    succeeds)."""
    return _faults(records, faults, heals)[0]


def _faults(records: Sequence[Mapping], faults: Mapping[str, str],
            heals: Mapping[str, str]) -> tuple[list[tuple[int, int, str]], list[str]]:
    """The fault windows, and the families whose fault was still in effect when the history ended."""
    windows = []
    opened: dict[str, int] = {}
    healing: tuple[str, int] | None = None  # (family, when) of the heal awaiting its completion
    last = max(0, max(map(itemgetter("time_ns"), records), default=0))
    for rec in records:
        if rec.get("process") != NEMESIS:
            continue
        f = rec.get("f")
        if rec.get("type") == "invoke":
            healing = None
            if f in faults:
                opened.setdefault(faults[f], rec["time_ns"])
            elif f in heals and heals[f] in opened:
                healing = (heals[f], rec["time_ns"])
        elif healing is not None and f in heals:
            family, at = healing
            if not rec.get("error"):
                windows.append((opened.pop(family), at, family))
            healing = None
    windows += [(start, last, family) for family, start in opened.items()]
    return sorted(windows), sorted(opened)


class StatsChecker:
    def __init__(self, faults: Mapping[str, str] | None = None, heals: Mapping[str, str] | None = None) -> None:
        self.faults = dict(faults or {})
        self.heals = dict(heals or {})

    def check(self, history: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
        """Valid, unless the history ends with a fault in effect: then what the final phase saw
        is not the healed cluster, and no verdict can be trusted ("unknown")."""
        with paused_gc():
            windows, left = _faults(history, self.faults, self.heals)
            stats = statistics(history, windows)
        if left:
            return {"valid": "unknown", "explanation": f"the run ended with a fault still in place ({', '.join(left)})",
                    "faults_left": left, **stats}
        return {"valid": True, **stats}


def statistics(records: list[dict[str, Any]], windows: list[tuple[int, int, str]]) -> dict[str, Any]:
    """Per-op outcomes and latency quantiles, throughput, per-node outcomes, fault windows
    (`fault_windows`)."""
    ops = [op for op in pair_ops(records) if op.process != NEMESIS]
    if not ops:
        return {"total_ops": 0, "ops": {}, "nodes": {}, "faults": {}, "fault_windows_s": []}
    # This runs over every op: counting goes through Counter(iterable), which counts in C, once
    # for (f, node, outcome) together; the few distinct keys are then summed up.
    types = [op.type for op in ops]
    starts = [op.invoke["time_ns"] for op in ops]
    counts = Counter(zip([op.f for op in ops], [op.invoke.get("node") for op in ops], types))
    outcomes: Counter = Counter()
    by_node: dict[str, Counter] = defaultdict(Counter)
    for (f, node, kind), n in counts.items():
        outcomes[f, kind] += n
        by_node[str(node)][kind] += n
    durations: dict[str, list[int]] = defaultdict(list)
    for op, start_ns in zip(ops, starts):
        if op.type == "ok" and op.complete is not None:
            durations[op.f].append(op.complete["time_ns"] - start_ns)
    in_fault = _in_windows(starts, windows)
    during = Counter(compress(types, in_fault))
    outside = Counter(compress(types, [not x for x in in_fault]))
    per_second = Counter([start_ns // 1_000_000_000 for start_ns in starts])
    per_f = {}
    for f in sorted({f for f, _ in outcomes}):
        lat = [d / 1e6 for d in sorted(durations[f])]  # sorting before scaling: the same order
        per_f[f] = {"ok": outcomes[f, "ok"], "fail": outcomes[f, "fail"], "info": outcomes[f, "info"],
                    "p50_ms": quantile(lat, 0.5), "p99_ms": quantile(lat, 0.99), "max_ms": lat[-1] if lat else None}
    duration = (max(starts) - min(starts)) / 1e9
    return {
        "total_ops": len(ops),
        "duration_s": duration,
        "ops_per_s": len(ops) / duration if duration > 0 else None,
        "ops": per_f,
        "nodes": {node: dict(c) for node, c in sorted(by_node.items())},
        "faults": dict(Counter(family for _, _, family in windows)),
        "fault_windows_s": [(a / 1e9, b / 1e9, family) for a, b, family in windows],
        "during_faults": dict(during),
        "outside_faults": dict(outside),
        "rate_per_second": {int(k): v for k, v in sorted(per_second.items())},
    }


def _in_windows(moments: list[int], windows: list[tuple[int, int, str]]) -> list[bool]:
    """For each moment, whether it falls inside some fault window (bounds included): the windows
    merged into disjoint spans, searched by bisection."""
    if not windows:
        return [False] * len(moments)
    spans: list[list[int]] = []
    for a, b, _ in windows:  # sorted by start
        if spans and a <= spans[-1][1]:
            spans[-1][1] = max(spans[-1][1], b)
        else:
            spans.append([a, b])
    starts = [a for a, _ in spans]
    ends = [b for _, b in spans]
    out = []
    for t in moments:
        i = bisect_right(starts, t) - 1
        out.append(i >= 0 and t <= ends[i])
    return out
