"""The lock checker: a mutex checker in Jepsen's spirit that knows a ZooKeeper lock dies with its
holder's session.

History values (workloads/lock.py): acquire ok {"node", "seq", "czxid" (the token), "owner"};
fence {"token", "process", "node"}, ok + {"name", "fence_czxid"}; release {"node"}, fail
"lock node gone"; inspect (final) {"holders", "fences": [{"name", "czxid", "token", ...}]};
completions may carry "expired": [{"session"}] and, on info, "dropped": {"session", "zxid"}.

A hold starts when an acquire returns ok. Its client believes it holds the lock until it invokes
the release, until an op of the hold ends unknown (the client then drops its session), or to the
end of the history. Its lock node provably exists up to the invocation of the hold's last op
that shows it: an acknowledged fence written in the node's own session (a session writes only
while open, and only the release deletes the node otherwise), or an acknowledged release.

The recipe grants the lock to the contender whose node is first in line, so a holder is granted
only once every node ahead of it is gone. Two holds overlapping in real time, E's node ahead:
  overlap      a violation when E's node provably existed when the other acquire returned
               (ZooKeeper showed that holder a state without E's node while it was there);
               otherwise allowed: E's session ended and ZooKeeper deleted its node while E still
               believed it held the lock, which the recipe cannot prevent. Classified "the first
               holder's session had expired" when the history shows it (an expiry report, a
               release finding the node gone, a fence written in another session, the session
               dropped), else "nothing shows the first holder's node still existed". Not a
               finding when E's client did nothing after acquiring (the run ended: closing the
               client ended its session and released the lock; those holds are `unfinished`).
  token-order  an acquire invoked after another returned got a token no larger, or two
               acquires one token (tokens are czxids, which follow real time). Violation.
  stale-fence  a fencing record written (record czxid) after one with a larger token: a
               violation when written in its lock node's own session (still open, so its node,
               ahead of the other's, existed when the other was granted); allowed when written
               in a later session or one the history does not show: the stale holder had lost its
               session, which is what fencing tokens are for.
  lost-fence   an acknowledged fencing record missing from a final inspection. Violation.
  held-at-end  a final inspection found lock nodes after every client of the run had stopped and
               it had waited out the session timeout. Violation.
The consistency option changes nothing here: these are facts about writes and sessions.

Result: {"valid", "explanation", "anomalies" ({"type", "explanation", "zookeeper",
"classification", "op", "other"?}), "anomaly_count", "summary", "acquires": {"ok", "failed",
"unknown", "during_faults"}, "acquire_latency_ms": {"count", "p50", "p90", "p99", "max"},
"holds", "unfinished", "overlaps", "fences": {"written", "listed", "stale"}, "final_inspections"}.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .core import History, judge
from .history import INF, HistoryError, Op, op_record, pair_ops, paused_gc
from .stats import fault_windows, quantile

ALLOWED, VIOLATION = "allowed", "violation"
GONE = "lock node gone"

CLASSIFICATION = {
    "overlap": "two holders at once while the first one's lock node existed",
    "overlap-expired": "two holders at once: the first holder's session had expired (allowed by ZooKeeper)",
    "overlap-unproven": "two holders at once: nothing shows the first holder's node still existed "
                        "(allowed by ZooKeeper)",
    "token-order": "fencing token not larger than one acquired before",
    "stale-fence": "stale fencing record written in its lock node's live session",
    "stale-fence-expired": "stale fencing record written after its holder's session ended (allowed by ZooKeeper)",
    "lost-fence": "acknowledged fencing record missing",
    "held-at-end": "lock held after every client of the run stopped",
}


@dataclass(slots=True, eq=False)
class Hold:
    acquire: Op
    seq: int
    token: int
    owner: str
    end: float = INF  # record index where its client stops believing it holds the lock
    proven_until: float = -INF  # record index up to which its node provably existed
    ended_by: str | None = None  # what shows its session ended, if anything does
    fence: Op | None = None
    finished: bool = False  # its client did something after acquiring

    @property
    def start(self) -> int:
        return self.acquire.ret

    def describe(self) -> str:
        return (f"hold of process {self.acquire.process} (node {self.seq}, token {self.token:#x}, session "
                f"{self.owner}, records {self.start}..{self.end if self.end != INF else 'end'})")


def check_lock(history: History, faults: Mapping[str, str] | None = None,
               heals: Mapping[str, str] | None = None) -> dict[str, Any]:
    with paused_gc():
        try:
            ops = pair_ops(history)
            holds = _holds(ops)
        except HistoryError as err:
            return {"valid": "unknown", "explanation": f"malformed history: {err}", "anomalies": []}
        finals = [op for op in ops if op.f == "inspect" and op.ok]
        anomalies = _overlaps(holds) + _token_order(holds) + _fences(ops, holds, finals)
        anomalies += [_anomaly("held-at-end", op, f"final inspection by process {op.process} found "
                               f"{len(op.value['holders'])} lock nodes after waiting {op.value.get('waited_s')} s")
                      for op in finals if op.value.get("holders")]
        windows = fault_windows(history, faults, heals or {}) if faults else []
        return _result(ops, holds, finals, anomalies, windows)


def _holds(ops: list[Op]) -> list[Hold]:
    """Each acquired lock with what followed it in its process: fence, release or an unknown end."""
    expired = {lost.get("session") for op in ops if op.complete is not None
               for lost in _value(op.complete).get("expired") or () if isinstance(lost, Mapping)}
    by_process: dict[Any, list[Op]] = {}
    for op in ops:
        by_process.setdefault(op.process, []).append(op)
    holds = []
    for chain in by_process.values():
        hold = None
        for op in chain:
            if op.f == "acquire":
                hold = _start(op, expired) if op.ok else None
                holds += [hold] if hold else []
            elif hold is not None and op.f in ("fence", "release"):
                _follow(hold, op)
    return holds


def _start(op: Op, expired: set) -> Hold:
    v = op.value
    if not isinstance(v, Mapping) or not all(isinstance(v.get(k), int) for k in ("seq", "czxid")):
        raise HistoryError(f"ok acquire at record {op.call} has no seq and czxid")
    owner = v.get("owner") or op.session
    return Hold(op, v["seq"], v["czxid"], owner,
                ended_by="its client reported the session expired" if owner in expired else None)


def _follow(hold: Hold, op: Op) -> None:
    hold.finished = True
    if op.f == "fence" and op.ok:
        hold.fence = op
        if op.session == hold.owner:
            hold.proven_until = max(hold.proven_until, op.call)
        else:
            hold.ended_by = hold.ended_by or f"its fence ran in another session ({op.session})"
    if op.f == "release":
        hold.end = min(hold.end, op.call)
        if op.ok:
            hold.proven_until = max(hold.proven_until, op.call)
        elif op.type == "fail" and op.complete.get("error") == GONE:
            hold.ended_by = hold.ended_by or "its release found the node gone"
    if op.type == "info":
        hold.end = min(hold.end, op.complete["index"] if op.complete is not None else INF)
        if _value(op.complete).get("dropped"):
            hold.ended_by = hold.ended_by or "its client dropped the session"


def _value(record: Mapping | None) -> Mapping:
    value = record.get("value") if record is not None else None
    return value if isinstance(value, Mapping) else {}


def _overlaps(holds: list[Hold]) -> list[dict]:
    """Sweep by start; the active heap holds those still believed held. A mutex keeps it at
    one, so the work is the overlaps found."""
    found = []
    active: list[tuple[float, int, Hold]] = []
    for i, hold in enumerate(sorted(holds, key=lambda h: h.start)):
        while active and active[0][0] < hold.start:
            heapq.heappop(active)
        found += [a for _, _, other in active if (a := _overlap(other, hold)) is not None]
        heapq.heappush(active, (hold.end, i, hold))
    return found


def _overlap(a: Hold, b: Hold) -> dict | None:
    first, second = (a, b) if (a.seq, a.token) < (b.seq, b.token) else (b, a)
    text = f"{first.describe()} and {second.describe()} overlap"
    if first.proven_until >= second.start:
        return _anomaly("overlap", second.acquire, f"{text}; the first node provably existed at record "
                        f"{first.proven_until:.0f}, after the second acquire returned", other=first.acquire)
    if not first.finished:
        return None
    if first.ended_by:
        return _anomaly("overlap", second.acquire, f"{text}; the first holder's session had ended: "
                        f"{first.ended_by}", ALLOWED, "overlap-expired", other=first.acquire)
    return _anomaly("overlap", second.acquire, f"{text}; nothing shows the first node still existed when the "
                    "second acquire returned", ALLOWED, "overlap-unproven", other=first.acquire)


def _token_order(holds: list[Hold]) -> list[dict]:
    found = []
    by_token: dict[int, Hold] = {}
    for hold in holds:
        if hold.token in by_token:
            found.append(_anomaly("token-order", hold.acquire, f"{hold.describe()} got the token of "
                                  f"{by_token[hold.token].describe()}", other=by_token[hold.token].acquire))
        by_token.setdefault(hold.token, hold)
    events = sorted([(h.acquire.call, 1, h) for h in holds] + [(h.start, 0, h) for h in holds],
                    key=lambda e: (e[0], e[1]))
    best: Hold | None = None  # the largest token acquired so far
    for _, kind, hold in events:
        if kind == 0:
            best = hold if best is None or hold.token > best.token else best
        elif best is not None and hold.token < best.token:
            found.append(_anomaly("token-order", hold.acquire, f"{hold.describe()}, begun after "
                                  f"{best.describe()} returned, got a smaller token", other=best.acquire))
    return found


def _fences(ops: list[Op], holds: list[Hold], finals: list[Op]) -> list[dict]:
    """Fencing records in the order written: tokens must not go down; acknowledged ones survive."""
    written = {op.value["name"]: op for op in ops if op.f == "fence" and op.ok and "name" in op.value}
    listed: dict[str, Mapping] = {}
    for op in finals:
        for record in op.value.get("fences") or ():
            if not isinstance(record, Mapping) or not all(isinstance(record.get(k), int) for k in ("czxid", "token")):
                raise HistoryError(f"final inspection at record {op.call} lists a fence without czxid and token")
            listed.setdefault(record.get("name"), record)
    records = [(r["czxid"], r["token"], name) for name, r in listed.items()]
    records += [(op.value["fence_czxid"], op.value["token"], name) for name, op in written.items()
                if name not in listed]
    owners = {h.token: h for h in holds}
    found = []
    top: tuple[int, str] | None = None  # (largest token so far, its record)
    for _, token, name in sorted(records):
        if top is not None and token < top[0]:
            found.append(_stale_fence(name, token, top, written.get(name), owners.get(token)))
        if top is None or token > top[0]:
            top = (token, name)
    if finals:
        for name, op in written.items():
            if name not in listed:
                found.append(_anomaly("lost-fence", op, f"fencing record {name}, acknowledged at records "
                                      f"{op.call}..{op.ret}, is missing from the final inspection"))
    return found


def _stale_fence(name: str, token: int, top: tuple[int, str], op: Op | None, hold: Hold | None) -> dict:
    text = f"fencing record {name} (token {token:#x}) was written after {top[1]} (token {top[0]:#x})"
    in_own_session = op is not None and hold is not None and op.session == hold.owner
    if in_own_session:
        return _anomaly("stale-fence", op, f"{text} by its lock node's own session {hold.owner}",
                        other=hold.acquire)
    why = f"in session {op.session}, not its lock node's {hold.owner}" if op and hold else "by an unknown session"
    return _anomaly("stale-fence", op or (hold.acquire if hold else None), f"{text} {why}", ALLOWED,
                    "stale-fence-expired", other=hold.acquire if hold else None)


def _anomaly(kind: str, op: Op | None, text: str, zookeeper: str = VIOLATION, classification: str | None = None,
             other: Op | None = None) -> dict:
    out = {"type": kind, "explanation": text, "zookeeper": zookeeper,
           "classification": CLASSIFICATION[classification or kind]}
    if op is not None:
        out["op"] = _brief(op)
    if other is not None:
        out["other"] = _brief(other)
    return out


def _brief(op: Op) -> dict:
    """An op's record for a report; an inspection's fence list replaced by its size."""
    record = op_record(op)
    if isinstance(record.get("value"), dict) and isinstance(record["value"].get("fences"), list):
        record["value"]["fences"] = len(record["value"]["fences"])
    return record


def _during(times: Iterable[int], windows: list[tuple[int, int, str]]) -> int:
    """How many of the times fall inside a fault window (windows may overlap)."""
    merged: list[list[int]] = []
    for start, end, _ in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    starts = [w[0] for w in merged]
    return sum(1 for t in times if (i := bisect_right(starts, t)) and t <= merged[i - 1][1])


def _result(ops: list[Op], holds: list[Hold], finals: list[Op], anomalies: list[dict],
            windows: list[tuple[int, int, str]]) -> dict[str, Any]:
    acquires = [op for op in ops if op.f == "acquire"]
    done = [op.complete["time_ns"] for op in acquires if op.ok]
    latencies = sorted((op.complete["time_ns"] - op.invoke["time_ns"]) / 1e6 for op in acquires if op.ok)
    overlaps = [a for a in anomalies if a["type"] == "overlap"]
    # What is allowed here is allowed under either model: a holder whose session expired lost the lock.
    out = judge(anomalies, "zookeeper",
                None if finals else "no final inspection: a lock held forever or a lost fence cannot be ruled out",
                f"{len(holds)} holds kept mutual exclusion while their sessions lived"
                + (f"; {len(anomalies)} overlaps or stale fences after a session ended, allowed by ZooKeeper"
                   if anomalies else ""))
    return {
        **out,
        "acquires": {"ok": len(done), "failed": sum(1 for op in acquires if op.type == "fail"),
                     "unknown": sum(1 for op in acquires if op.type == "info"),
                     "during_faults": _during(done, windows)},
        "acquire_latency_ms": {"count": len(latencies), "p50": quantile(latencies, 0.5),
                               "p90": quantile(latencies, 0.9), "p99": quantile(latencies, 0.99),
                               "max": latencies[-1] if latencies else None},
        "holds": len(holds),
        "unfinished": sum(1 for h in holds if not h.finished),
        "overlaps": len(overlaps),
        "fences": {"written": sum(1 for op in ops if op.f == "fence" and op.ok),
                   "listed": max((len(op.value.get("fences") or ()) for op in finals), default=0),
                   "stale": sum(1 for a in anomalies if a["type"] == "stale-fence")},
        "final_inspections": len(finals),
    }


class LockChecker:
    """The lock workload's checker; `faults`/`heals` name the nemesis's fs (for counting
    acquisitions during faults)."""

    def __init__(self, faults: Mapping[str, str] | None = None, heals: Mapping[str, str] | None = None) -> None:
        self.faults, self.heals = dict(faults or {}), dict(heals or {})

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        return check_lock(history, self.faults, self.heals)
