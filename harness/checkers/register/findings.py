"""Findings: one anomaly about one op, and how reports show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..history import INF, op_record
from .ops import RegOp

# Kinds of finding. Under ZooKeeper's model only a stale read by an ordinary read is allowed.
STALE_READ = "stale-read"
STALE_CAS = "stale-cas"
FUTURE_READ = "read-from-future"
FUTURE_CAS = "cas-from-future"
UNWRITTEN = "read-of-unwritten-value"
FAILED_WRITE_READ = "read-of-failed-write"
IMPOSSIBLE_CAS = "impossible-cas"
DUPLICATE_CAS = "duplicate-cas"
CAS_CYCLE = "cas-cycle"
ZXID_ORDER = "zxid-order"
DUPLICATE_ZXID = "duplicate-zxid"
NOT_LINEARIZABLE = "not-linearizable"  # found by the search: no finer diagnosis
LOST_WRITE = "lost-write"
WENT_BACK = "read-went-back"
MISSED_OWN_WRITE = "missed-own-write"
WRITE_WENT_BACK = "write-went-back"
UNCOMMITTED_READ = "read-of-uncommitted-write"
ZXID_REUSED = "zxid-reused"
STAT_MISMATCH = "stat-mismatch"

# The one-line classification reports show for each kind under ZooKeeper's model.
CLASSIFICATION = {
    STALE_READ: "stale-read (allowed by ZooKeeper)",
    STALE_CAS: "lost update: a cas took effect on a value that had been overwritten",
    FUTURE_READ: "read from the future",
    FUTURE_CAS: "cas from the future",
    UNWRITTEN: "read of a value never written",
    FAILED_WRITE_READ: "read of a value never written (its write failed)",
    IMPOSSIBLE_CAS: "cas from a value never written",
    DUPLICATE_CAS: "two cas took effect from the same value",
    CAS_CYCLE: "cas ops form a cycle with no initial write",
    ZXID_ORDER: "server (zxid) order contradicts real time or the values seen",
    DUPLICATE_ZXID: "two writes share a zxid",
    NOT_LINEARIZABLE: "not linearizable",
    LOST_WRITE: "lost write",
    WENT_BACK: "read went back in session order",
    MISSED_OWN_WRITE: "missed own write",
    WRITE_WENT_BACK: "write went back in session order",
    UNCOMMITTED_READ: "read of a write that never committed",
    ZXID_REUSED: "one txn reported as two different states",
    STAT_MISMATCH: "read saw another txn than the one its write was acknowledged with",
}


@dataclass(slots=True, eq=False)
class Finding:
    kind: str
    op: RegOp
    explanation: str
    values: dict = field(default_factory=dict)
    witnesses: list[RegOp] = field(default_factory=list)


def describe(r: RegOp | None) -> str:
    """A short human name for an op, e.g. `read -> 3 by process 2 (records 10..14)`."""
    if r is None:
        return "the initial state"
    if r.kind == "r":
        what = f"{'final ' if r.final else ''}read -> {show(r.a)}"
    elif r.kind == "w":
        what = f"write {show(r.b)}"
    else:
        what = f"cas {show(r.a)}->{show(r.b)}"
    end = "?" if r.ret == INF else str(r.ret)
    outcome = "" if r.ok else ", outcome unknown"
    return f"{what} by process {r.op.process} (records {r.call}..{end}{outcome})"


def show(value: Any) -> str:
    return "null" if value is None else repr(value)


def when(f: Finding) -> tuple[float, int]:
    """Order findings by when the history first proves them: the op's completion (for a lost
    write, that of the read that shows it lost)."""
    r = f.witnesses[0] if f.kind == LOST_WRITE and f.witnesses else f.op
    return (r.ret, r.call)


def finding_dict(key: Any, f: Finding, extra: dict | None = None) -> dict:
    out = {
        "type": f.kind,
        "key": key,
        "op": op_record(f.op.op),
        "values": f.values,
        "explanation": f.explanation,
        "witnesses": [w.op.call for w in f.witnesses if w is not None],
    }
    if extra:
        out.update(extra)
    return out
