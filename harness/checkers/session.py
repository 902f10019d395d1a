"""ZooKeeper's session guarantees, on any workload's history, from the zxids the server returned.

Every reply carries a zxid: for a write, the zxid of its txn; for a read, the last txn the
serving server had applied. Within one session (by session id, whichever server it is connected
to, whatever process used it), taking its successful operations in the order they were issued
(pipelined requests included: the server answers them in order):

- single system image: a read never returns a smaller zxid than anything the session saw before,
  even after failing over to another server (read-went-back);
- read your writes: a read never returns a smaller zxid than the session's own earlier write
  (missed-own-write);
- FIFO client order: the session's writes commit in the order issued (writes-out-of-order);
- writes follow reads: a write commits after what the session read before it (write-before-read).

And the sync guarantee: a read issued right after a successful `sync` (a read whose value says
`"sync": true`, or an op invoked after the session's ok `sync` op and before anything else)
sees every write that completed, on any session, before the sync was invoked (stale-after-sync).
`sync` is not a quorum operation in ZooKeeper: a deposed leader that has not yet noticed answers
it from its stale state. So under --consistency zookeeper such a read is reported as allowed, and
only --consistency linearizable makes it a violation.

Which ops are reads and which writes: the `f`s named by the workload, or by default the common
ones (read, get, exists, list, children, sync... vs write, create, delete, set, cas, ...).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .history import NEMESIS, Op, op_record, pair_ops

READS = frozenset({"read", "get", "exists", "list", "children", "read-all", "multi-read", "final-read"})
# Ops whose last reply is the txn they made (so their zxid is a new one); composite recipes that
# end with a read (a lock's acquire) are not in this list.
WRITES = frozenset({"write", "create", "delete", "set", "cas", "add", "increment", "enqueue", "dequeue",
                    "transfer", "generate"})
SYNC = "sync"

KINDS = {
    "read-went-back": "the session read an older state than it had seen (single system image)",
    "missed-own-write": "the session read a state without its own earlier write",
    "writes-out-of-order": "the session's writes committed in another order than issued",
    "write-before-read": "the session's write committed before what it had read",
    "stale-after-sync": "a read after sync missed a write that completed before the sync",
}


@dataclass(frozen=True)
class _Seen:
    zxid: int
    op: Op
    write: bool


def _zxid(op: Op) -> int | None:
    z = op.zxid
    return z if isinstance(z, int) and not isinstance(z, bool) and z > 0 else None


class SessionChecker:
    def __init__(self, reads: Iterable[str] = READS, writes: Iterable[str] = WRITES) -> None:
        self.reads, self.writes = frozenset(reads), frozenset(writes)

    def check(self, history: list[dict[str, Any]], options: Mapping[str, Any]) -> dict[str, Any]:
        # (op, kind, zxid) for the ok ops that recorded a zxid, in the order they were issued
        ops = [(op, self._kind(op), z) for op in pair_ops(history)
               if op.type == "ok" and op.process != NEMESIS and (z := _zxid(op))]
        ops.sort(key=lambda t: t[0].call)
        sync_model = "violation" if options.get("consistency") == "linearizable" else "allowed"
        anomalies = self._sessions(ops) + self._syncs(ops, sync_model)
        anomalies.sort(key=lambda a: a["op"]["index"])
        sessions = len({op.session for op, _, _ in ops})
        if not ops:  # nothing to judge by (histories of tools that record no zxids): no finding
            return {"valid": True, "explanation": "not checked: no successful operation recorded a zxid",
                    "anomalies": [], "sessions": 0, "checked_ops": 0}
        violations = [a for a in anomalies if a["zookeeper"] == "violation"]
        explanation = (f"{len(violations)} session-guarantee violations; first: {violations[0]['explanation']}"
                       if violations else f"{sessions} sessions kept their guarantees"
                       + (f" ({len(anomalies)} stale reads after sync, which ZooKeeper allows)" if anomalies else ""))
        return {"valid": not violations, "explanation": explanation, "anomalies": anomalies,
                "sessions": sessions, "checked_ops": len(ops)}

    def _kind(self, op: Op) -> str | None:
        if op.f in self.writes:
            return "write"
        if op.f in self.reads or op.f == SYNC:
            return "read"
        return None

    @staticmethod
    def _sessions(ops: list[tuple[Op, str | None, int]]) -> list[dict]:
        found = []
        latest: dict[Any, _Seen] = {}  # session -> the op with the largest zxid so far
        last_write: dict[Any, _Seen] = {}
        for op, kind, z in ops:
            if kind is None:
                continue
            before, own = latest.get(op.session), last_write.get(op.session)
            if before is not None:
                if kind == "read" and z < before.zxid:
                    what = "missed-own-write" if own is not None and own.zxid > z else "read-went-back"
                    witness = own if what == "missed-own-write" else before
                    found.append(_anomaly(what, op, witness))
                elif kind == "write" and z <= before.zxid:
                    what = "writes-out-of-order" if before.write else "write-before-read"
                    found.append(_anomaly(what, op, before))
            seen = _Seen(z, op, kind == "write")
            if before is None or z >= before.zxid:
                latest[op.session] = seen
            if kind == "write" and (own is None or z > own.zxid):
                last_write[op.session] = seen
        return found

    def _syncs(self, ops: list[tuple[Op, str | None, int]], model: str) -> list[dict]:
        """Reads right after a sync against the writes completed before the sync was invoked."""
        writes = sorted((op.ret, z, op) for op, kind, z in ops if kind == "write")
        done_at = [w[0] for w in writes]
        best: list[tuple[int, Op]] = []  # prefix maxima of write zxids by completion
        for _, z, op in writes:
            best.append(best[-1] if best and best[-1][0] >= z else (z, op))
        found = []
        for read, z, synced_at in self._synced_reads(ops):
            i = bisect_left(done_at, synced_at)  # writes that completed before the sync began
            if i and z < best[i - 1][0]:
                found.append(_anomaly("stale-after-sync", read, _Seen(best[i - 1][0], best[i - 1][1], True), model))
        return found

    @staticmethod
    def _synced_reads(ops: list[tuple[Op, str | None, int]]) -> list[tuple[Op, int, int]]:
        """(read, its zxid, when its sync was invoked) for reads that carry their own sync or
        follow one."""
        out = []
        pending: dict[Any, Op] = {}
        for op, kind, z in ops:
            if op.f == SYNC:
                pending[op.session] = op
                continue
            sync = pending.pop(op.session, None) if pending else None
            if kind != "read":
                continue
            value = op.invoke.get("value")
            if isinstance(value, Mapping) and value.get("sync"):
                out.append((op, z, op.call))
            elif sync is not None:
                out.append((op, z, sync.call))
        return out


def _anomaly(kind: str, op: Op, witness: _Seen, model: str = "violation") -> dict:
    w = witness.op
    text = (f"session {op.session}: {op.f} at record {op.call} on {op.invoke.get('node')} returned zxid "
            f"{_zxid(op):#x}, below {witness.zxid:#x} of {w.f} at record {w.call} on {w.invoke.get('node')}")
    return {"type": kind, "classification": KINDS[kind], "zookeeper": model, "session": op.session,
            "explanation": text, "op": op_record(op), "witness": op_record(w),
            "zxids": [witness.zxid, _zxid(op)], "servers": [w.invoke.get("node"), op.invoke.get("node")]}
