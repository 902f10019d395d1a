"""Checking the counter workload (workloads/counter.py): one number, only ever incremented by one.

Bounds on what a read may return (the counter starts at 0):
  upper: the increments that may have happened by the time the read completed, that is those
         invoked before then that did not fail (ok or info);
  lower: under linearizability, what the increments acknowledged before the read began force:
         their number, and the largest value one of them wrote. A sync read (and a final read)
         owes the same under ZooKeeper's model, since the sync begins after the read is invoked;
         a plain read owes only its session's view: no less than the session's previous read
         or its own last increment. A plain read below the global bound is a stale read, which
         ZooKeeper allows.
Exact: every increment is a setData of value + 1 at the version it read, and each setData
raises the version by one, so in every state value == version. A value that differs from its
version means an increment was applied to a value that was no longer current (a lost update);
two acknowledged increments that wrote the same value mean one of them was overwritten.
Final: after healing, every node's sync read gives the same value, at least the number of
acknowledged increments (otherwise some were lost) and at most the number attempted.

Result: {"valid", "explanation", "summary": [{"classification", "count", "zookeeper"}], "anomalies",
"anomaly_count", "consistency", "final": {"values", "acknowledged", "attempted"}, "stats"}.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping

from .core import judge
from .history import Op, op_record, pair_ops

ABOVE_ATTEMPTS = "read-above-attempts"
STALE_READ = "stale-read"
STALE_SYNC_READ = "stale-sync-read"
WENT_BACK = "read-went-back"
MISSED_OWN = "missed-own-increment"
VERSION_MISMATCH = "value-version-mismatch"
LOST_UPDATE = "lost-update"
LOST_INCREMENT = "lost-increment"
FINAL_DISAGREE = "final-reads-disagree"

CLASSIFICATION = {
    ABOVE_ATTEMPTS: "read counts increments never attempted",
    STALE_READ: "stale read (allowed by ZooKeeper)",
    STALE_SYNC_READ: "stale read after a sync",
    WENT_BACK: "read went back in session order",
    MISSED_OWN: "missed own increment",
    VERSION_MISMATCH: "value differs from version: an increment applied to a stale value",
    LOST_UPDATE: "two acknowledged increments wrote the same value",
    LOST_INCREMENT: "lost acknowledged increments",
    FINAL_DISAGREE: "final reads disagree",
}
ALLOWED_BY_ZOOKEEPER = {STALE_READ}


class Before:
    """The largest value among events at positions before a point of the history, and the op
    that produced it."""

    def __init__(self, events: Iterable[tuple[float, int, Op]]) -> None:
        self.times: list[float] = []
        self.best: list[tuple[int, Op]] = []
        best: tuple[int, Op] | None = None
        for t, v, op in sorted(events, key=lambda e: e[0]):
            if best is None or v > best[0]:
                best = (v, op)
            self.times.append(t)
            self.best.append(best)

    def at(self, t: float) -> tuple[int, Op | None]:
        i = bisect_left(self.times, t)
        return self.best[i - 1] if i else (0, None)


def _number(op: Op, field: str = "value") -> int | None:
    v = op.value.get(field) if type(op.value) is dict else None  # plain type checks: this runs per op
    return v if type(v) is int else None


def _is_sync(op: Op) -> bool:
    return bool(op.invoke.get("final") or (type(op.value) is dict and op.value.get("sync")))


def _anomaly(kind: str, ops: list[Op], explanation: str, **values: Any) -> dict:
    return {"type": kind, "explanation": explanation, "ops": [op_record(o) for o in ops], "values": values,
            "zookeeper": "allowed" if kind in ALLOWED_BY_ZOOKEEPER else "violation",
            "classification": CLASSIFICATION[kind]}


def _bound_findings(reads: list[Op], increments: list[Op]) -> list[dict]:
    """Each read against the increments around it (upper bound, global lower bound)."""
    attempted = sorted(op.call for op in increments if op.type != "fail")
    acked = [op for op in increments if op.ok and _number(op) is not None]
    acked_rets = sorted(op.ret for op in acked)
    highest = Before((op.ret, _number(op), op) for op in acked)
    found = []
    for r in reads:
        v = _number(r)
        upper = bisect_left(attempted, r.ret)
        if v > upper:
            found.append(_anomaly(ABOVE_ATTEMPTS, [r], f"read {v} (record {r.ret}), but only {upper} increments "
                                  "that did not fail were invoked before it completed", read=v, attempted=upper))
            continue
        count = bisect_left(acked_rets, r.call)
        written, writer = highest.at(r.call)
        lower = max(count, written)
        if v < lower:
            kind = STALE_SYNC_READ if _is_sync(r) else STALE_READ
            why = (f"{count} increments were acknowledged before it began" if count >= written else
                   f"an increment acknowledged before it began (record {writer.ret}) had written {written}")
            found.append(_anomaly(kind, [r] + ([writer] if writer is not None else []),
                                  f"read {v} (record {r.ret}), but {why}", read=v, lower=lower))
    return found


def _session_findings(reads: list[Op], increments: list[Op]) -> list[dict]:
    """A session's reads never go back, and see its own increments."""
    seen_by_session: dict[Any, list[tuple[float, int, Op]]] = defaultdict(list)
    for op in reads + [i for i in increments if i.ok and _number(i) is not None]:
        seen_by_session[op.session].append((op.ret, _number(op), op))
    views = {session: Before(events) for session, events in seen_by_session.items()}
    found = []
    for r in reads:
        had, source = views[r.session].at(r.call)
        v = _number(r)
        if source is None or v >= had:
            continue
        kind = WENT_BACK if source.f == "read" else MISSED_OWN
        what = "read" if kind == WENT_BACK else "written"
        found.append(_anomaly(kind, [r, source], f"read {v} (record {r.ret}), but session {r.session} had already "
                              f"{what} {had} (record {source.ret})", read=v, session_had=had))
    return found


def _version_findings(reads: list[Op], increments: list[Op]) -> list[dict]:
    """value == version in every state; no two acknowledged increments share a result."""
    found = []
    for op in reads + increments:
        v, version = _number(op), _number(op, "version")
        if op.ok and v is not None and version is not None and v != version:
            found.append(_anomaly(VERSION_MISMATCH, [op], f"{op.f} (record {op.ret}) reports value {v} at version "
                                  f"{version}", value=v, version=version))
    by_value: dict[int, list[Op]] = defaultdict(list)
    for op in increments:
        if op.ok and _number(op) is not None:
            by_value[_number(op)].append(op)
    for v, ops in sorted(by_value.items()):
        if len(ops) > 1:
            found.append(_anomaly(LOST_UPDATE, ops, f"{len(ops)} acknowledged increments (records "
                                  f"{', '.join(str(o.ret) for o in ops)}) all wrote {v}: only one can be in the "
                                  "counter's history", value=v))
    return found


def _final_findings(finals: list[Op], acknowledged: int) -> list[dict]:
    values = sorted({_number(r) for r in finals})
    found = []
    if len(values) > 1:
        found.append(_anomaly(FINAL_DISAGREE, finals, f"final reads after healing saw {values}", values=values))
    if values and values[-1] < acknowledged:
        found.append(_anomaly(LOST_INCREMENT, finals, f"the final value is {values[-1]}, but {acknowledged} "
                              "increments were acknowledged", final=values[-1], acknowledged=acknowledged))
    return found


def check_counter(history: Iterable[Mapping], consistency: str = "zookeeper") -> dict:
    ops = pair_ops(history)
    increments = [op for op in ops if op.f == "increment"]
    reads = [op for op in ops if op.f == "read" and op.ok and _number(op) is not None]
    finals = [r for r in reads if r.invoke.get("final")]
    acknowledged = sum(op.ok for op in increments)
    attempted = sum(op.type != "fail" for op in increments)
    anomalies = (_version_findings(reads, increments) + _final_findings(finals, acknowledged)
                 + _bound_findings(reads, increments) + _session_findings(reads, increments))
    out = _verdict(anomalies, consistency, have_final=bool(finals))
    out["final"] = {"values": sorted({_number(r) for r in finals}), "acknowledged": acknowledged, "attempted": attempted}
    out["stats"] = {"increments": dict(Counter(op.type for op in increments)), "reads": len(reads)}
    return out


def _verdict(anomalies: list[dict], consistency: str, have_final: bool) -> dict:
    """Without a final read a lost increment would be invisible."""
    return judge(anomalies, consistency,
                 None if have_final else "no final read succeeded: lost increments cannot be ruled out",
                 f"every read of the counter is {_model(consistency)}")


def _model(consistency: str) -> str:
    return "linearizable" if consistency == "linearizable" else "ZooKeeper-consistent"


class CounterChecker:
    def __init__(self, consistency: str = "zookeeper") -> None:
        self.consistency = consistency

    def check(self, history: list[dict], options: Mapping[str, Any]) -> dict:
        return check_counter(history, self.consistency)
