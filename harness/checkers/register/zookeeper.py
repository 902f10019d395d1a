"""ZooKeeper's consistency model for the register workload (--consistency zookeeper).

Writes and cas are linearizable: the history restricted to writes, cas and final/quorum reads must
linearize (a final read that misses an acknowledged write is a lost write). Ordinary reads need
only ordered sequential consistency: each returns the value of some write in the write order (or
the initial null), never one not yet written when the read completed, and a session's reads and
writes never go back in that order. Every read that is not linearizable is classified: a stale
read ZooKeeper allows, or a real violation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from . import findings as F
from .findings import CLASSIFICATION, Finding, describe, finding_dict, show
from ..history import INF, Op, op_record
from .linearizable import KeyVerdict, analyse_key, good_prefix
from .ops import NOT_ALLOWED, KeyOps, RegOp, prune_unobserved, reduce_key_ops, zxid_of
from ..search import Model, wgl_search
from .sessions import session_findings

ALLOWED, VIOLATION = "allowed", "violation"
# Findings of the full (reads included) analysis that name one op of a conflict between several.
# A lost write found with ordinary reads is one too: only final reads (or cas) prove it lost.
BLAME_KINDS = (F.STALE_READ, F.STALE_CAS, F.NOT_LINEARIZABLE, F.LOST_WRITE)


@dataclass(slots=True)
class ZkVerdict:
    valid: bool | str
    method: str
    classified: list[tuple[Finding, str]]  # (finding, ALLOWED | VIOLATION), in history order
    full: KeyVerdict
    reason: str = ""
    stats: dict = field(default_factory=dict)


def analyse_key_zookeeper(ops: Sequence[Op] | KeyOps, *, deadline: float | None = None,
                          max_states: int | None = None) -> ZkVerdict:
    started = time.perf_counter()
    kops = ops if isinstance(ops, KeyOps) else reduce_key_ops(ops)
    full = analyse_key(kops, deadline=deadline, max_states=max_states)
    analysis = full.analysis
    if full.method == "direct" and not full.findings:
        # Then the write-only analysis finds nothing either: its history is a sub-history of this
        # one, with bounds this one implies (an unknown write done once something saw it), and each
        # of its checks is implied by this one's (blocks, zones and zxids directly, the interval
        # rule through the exactness of blocks and zones). Skipping it saves a third of the work.
        restricted = KeyVerdict(True, "direct", [], kops)
    else:
        writes_only = KeyOps(_writes_only(kops, analysis), kops.failed_writes, kops.all_written, kops.dropped_reads)
        restricted = analyse_key(writes_only, deadline=deadline, max_states=max_states)
    violations: dict[int, Finding] = {}
    for f in restricted.findings:
        violations[id(f.op)] = _as_lost_write(f)
    reason = restricted.reason
    allowed: list[Finding] = []
    if full.method == "direct":
        culprits = {id(f.op): f for f in session_findings(kops, analysis)}
        for f in full.findings:
            if id(f.op) in violations:
                continue
            if f.kind in BLAME_KINDS and (f.op.kind != "r" or f.op.final):
                # Which op of a conflict is to blame is a judgement; for writes, cas and final
                # reads the write-only check above is exact, and it found this op fine.
                allowed.append(f)
            elif f.kind in BLAME_KINDS:
                if id(f.op) in culprits:
                    violations[id(f.op)] = culprits.pop(id(f.op))
                else:
                    allowed.append(f)
            else:
                violations[id(f.op)] = f
        for key, f in culprits.items():
            violations.setdefault(key, f)
    else:
        for f in full.findings:
            if f.kind in (F.UNWRITTEN, F.FAILED_WRITE_READ, F.FUTURE_READ):
                violations.setdefault(id(f.op), f)
        if full.valid is not True and not violations:
            seq = sessional_search(kops, full, deadline, max_states)
            if seq is True:
                allowed.extend(f for f in full.findings if id(f.op) not in violations)
            elif isinstance(seq, Finding):
                violations[id(seq.op)] = seq
            else:
                reason = seq
    classified = [(f, VIOLATION) for f in violations.values()] + [(f, ALLOWED) for f in allowed]
    classified.sort(key=lambda fc: F.when(fc[0]))
    valid: bool | str = True
    if violations:
        valid = False
    elif reason or restricted.valid == "unknown":
        valid, reason = "unknown", reason or restricted.reason
    stats = dict(full.stats)
    stats["time_s"] = round(time.perf_counter() - started, 4)
    stats["allowed_stale_reads"] = len(allowed)
    return ZkVerdict(valid, full.method, classified, full, reason, stats)


def _writes_only(kops: KeyOps, analysis: Any) -> list[RegOp]:
    """Writes, cas and final reads. With unique values, an unknown-outcome write whose value some
    op saw certainly happened, and before that op completed (nothing reads the future): keep it
    as done by then, or the write-only history would silently drop it."""
    seen_by: dict[Any, float] = {}
    if analysis is not None:
        for chain in analysis.chains:
            later = INF
            for v in reversed(chain):
                c = analysis.succ.get(v)
                if c is not None and c.ok and c.ret < later:
                    later = c.ret
                for r in analysis.observers.get(v, ()):
                    if r.ret < later:
                        later = r.ret
                seen_by[v] = later
    dropped = {id(r) for r in analysis.dropped} if analysis is not None else None
    out = []
    for r in kops.ops:
        if r.kind == "r" and not r.final:
            continue
        if dropped is not None and not r.ok and id(r) not in dropped:
            r = RegOp(r.op, r.kind, r.a, r.b, True, r.call, max(r.call + 0.5, seen_by.get(r.b, INF)),
                      r.final, r.session)
        out.append(r)
    return out


def _as_lost_write(f: Finding) -> Finding:
    """In the write-only history, a final read that missed a write means the write was lost."""
    if f.kind == F.STALE_READ and f.op.final:
        text = f"the write of {show(f.values.get('newer'))} was lost: {f.explanation}"
        return Finding(F.LOST_WRITE, f.op, text, f.values, f.witnesses)
    return f


def classify(f: Finding, verdict_of: str) -> str:
    if verdict_of == VIOLATION:
        return CLASSIFICATION.get(f.kind, f.kind)
    if f.op.kind == "r" and not f.op.final:
        return CLASSIFICATION[F.STALE_READ]
    if f.kind == F.LOST_WRITE:
        return "unseen write (allowed by ZooKeeper: only stale reads missed it, no final read)"
    return "allowed by ZooKeeper: writes alone linearize; the conflict is with stale reads"


def zookeeper_dict(key: Any, verdict: ZkVerdict, deadline: float | None = None, prefix: bool = True) -> dict:
    out: dict = {"valid": verdict.valid, "method": verdict.method, "stats": verdict.stats}
    out["anomalies"] = [
        finding_dict(key, f, {"zookeeper": verdict_of, "classification": classify(f, verdict_of)})
        for f, verdict_of in verdict.classified
    ]
    bad = [f for f, v in verdict.classified if v == VIOLATION]
    if verdict.valid is False:
        first = bad[0]
        out["first_bad"] = op_record(first.op.op)
        out["values"] = first.values
        if prefix:
            out["prefix"] = good_prefix(verdict.full, first, deadline)
        more = f" ({len(bad) - 1} more violations)" if len(bad) > 1 else ""
        out["explanation"] = f"key {key}: {CLASSIFICATION.get(first.kind, first.kind)}: {first.explanation}{more}"
    elif verdict.valid == "unknown":
        out["reason"] = verdict.reason
        out["explanation"] = f"key {key}: unknown: {verdict.reason}"
    else:
        stale = verdict.stats.get("allowed_stale_reads", 0)
        out["explanation"] = f"key {key}: consistent with ZooKeeper's model ({stale} stale reads, all allowed)"
    return out


# --- the sessional search, for keys whose values repeat -------------------------------------


def sessional_search(kops: KeyOps, full: KeyVerdict, deadline: float | None,
                     max_states: int | None) -> bool | Finding | str:
    """Search for a write order that every session's reads fit. Returns True, a Finding naming the
    op it could not place, or the reason it gave up."""
    ops, _ = prune_unobserved(list(kops.ops))
    sessions = {s: i for i, s in enumerate(dict.fromkeys(r.session for r in ops))}
    last = {}
    for r in sorted(ops, key=lambda r: r.call):
        last[r.session] = r
    payload = [(r, sessions[r.session], last[r.session] is r) for r in ops]
    result = wgl_search(
        payload, SessionalModel(len(sessions)), calls=[r.call for r in ops], rets=[r.ret for r in ops],
        optional=[not r.ok for r in ops], pure=[False] * len(ops), signature=[(r.kind, r.a, r.b) for r in ops],
        deadline=deadline, max_states=max_states,
    )
    if result.valid is True:
        return True
    if result.valid == "unknown" or result.blocked is None:
        return result.reason or "the sessional search gave up"
    r = ops[result.blocked]
    written_before = [w for w in ops if w.kind != "r" and w.b == r.a and w.call < r.ret]
    own = [w for w in ops if w.kind != "r" and w.ok and w.session == r.session and w.ret < r.call]
    if r.kind == "r" and r.a is not None and not written_before:
        kind = F.FUTURE_READ
    elif r.kind == "r" and own:
        kind = F.MISSED_OWN_WRITE
    elif r.kind == "r":
        kind = F.WENT_BACK
    else:
        kind = F.NOT_LINEARIZABLE
    text = (f"{describe(r)} cannot be placed in any write order consistent with its session's earlier "
            f"reads and writes and the values written before it completed.")
    return Finding(kind, r, text, {"saw": r.a})


class SessionalModel(Model):
    """Every write order the ops so far allow, with each session's place in it: a state is a
    set of (versions, per-session cursors, last zxid). A session reads at or after its cursor."""

    def __init__(self, sessions: int) -> None:
        self.sessions = sessions

    def init(self) -> frozenset:
        return frozenset({((None,), (0,) * self.sessions, -1)})

    def step(self, states: frozenset, item: tuple) -> Any:
        return _sessional_step(states, item)


def _sessional_step(states: frozenset, item: tuple) -> Any:
    r, s, is_last = item
    z = zxid_of(r)
    out = set()
    for versions, cursors, last in states:
        if r.kind == "r":
            low = len(versions) - 1 if r.final else cursors[s]
            for i in range(max(low, 0), len(versions)):
                if versions[i] == r.a:
                    out.add(_trim(versions, cursors, s, -1 if is_last else i, last))
        elif (r.kind == "w" or versions[-1] == r.a) and (z is None or z > last):
            grown = versions + (r.b,)
            # an unknown-outcome write does not bind its session: the session may be gone
            mark = (-1 if is_last else len(grown) - 1) if r.ok else cursors[s]
            out.add(_trim(grown, cursors, s, mark, last if z is None else z))
    return frozenset(out) if out else NOT_ALLOWED


def _trim(versions: tuple, cursors: tuple, s: int, mark: int, last: int) -> tuple:
    """Set session s's cursor, then drop versions no session can read any more (canonical states)."""
    cursors = cursors[:s] + (mark,) + cursors[s + 1:]
    live = [c for c in cursors if c >= 0]
    low = min(min(live), len(versions) - 1) if live else len(versions) - 1
    if low > 0:
        versions = versions[low:]
        cursors = tuple(c - low if c >= 0 else -1 for c in cursors)
    return versions, cursors, last
