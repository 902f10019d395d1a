"""Linearizability of one register key: the direct analysis when values are unique, else the search."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Sequence

from . import findings as F
from .findings import Finding, describe, finding_dict, show
from ..history import Op, op_record
from .ops import (NOT_ALLOWED, KeyOps, RegisterModel, RegOp, prune_unobserved, reduce_key_ops, register_step,
                  values_unique, zxid_of)
from ..search import SearchResult, wgl_search
from .unique import UniqueAnalysis, analyse_unique

PREFIX_TAIL = 20  # ops of the good prefix a report lists (the rest is summarised by its length)
PREFIX_BUDGET_S = 2.0
PREFIX_STATES = 200_000


@dataclass(slots=True)
class KeyVerdict:
    valid: bool | str
    method: str  # "direct" | "search"
    findings: list[Finding]
    kops: KeyOps
    reason: str = ""
    search: SearchResult | None = None
    search_ops: list[RegOp] = field(default_factory=list)  # what the search ran on (positions)
    analysis: UniqueAnalysis | None = None  # the direct analysis, when values are unique
    stats: dict = field(default_factory=dict)


def analyse_key(ops: Sequence[Op] | KeyOps, *, deadline: float | None = None,
                max_states: int | None = None) -> KeyVerdict:
    """Decide linearizability of one key's ops (all of them register ops of that key)."""
    started = time.perf_counter()
    kops = ops if isinstance(ops, KeyOps) else reduce_key_ops(ops)
    stats = {
        "ops": len(kops.ops),
        "reads": list(map(attrgetter("kind"), kops.ops)).count("r"),  # counted in C: this runs per op
        "info_ops": list(map(attrgetter("ok"), kops.ops)).count(False),
        "dropped_reads": kops.dropped_reads,
    }
    if values_unique(kops):
        analysis = analyse_unique(kops)
        stats["unknown_outcome_dropped"] = len(analysis.dropped)
        verdict = KeyVerdict(not analysis.findings, "direct", analysis.findings, kops, analysis=analysis, stats=stats)
    else:
        verdict = _search_key(kops, deadline, max_states, stats)
    stats["time_s"] = round(time.perf_counter() - started, 4)
    return verdict


def _search_key(kops: KeyOps, deadline: float | None, max_states: int | None, stats: dict) -> KeyVerdict:
    found: list[Finding] = []
    produced = {r.b for r in kops.ops if r.kind != "r"} | {None}
    # Cheap certain findings first; the ops they name are left out of the search.
    for r in kops.ops:
        if r.kind != "r" or r.a in produced:
            continue
        if r.a in kops.failed_writes:
            found.append(Finding(F.FAILED_WRITE_READ, r, f"{describe(r)} saw {show(r.a)}, which only failed "
                                 f"writes tried to write.", {"read": r.a}, [kops.failed_writes[r.a]]))
        else:
            found.append(Finding(F.UNWRITTEN, r, f"{describe(r)} saw {show(r.a)}, which no operation wrote.",
                                 {"read": r.a}))
    first_call: dict[Any, float] = {}
    for w in kops.ops:
        if w.kind != "r":
            first_call[w.b] = min(first_call.get(w.b, w.call), w.call)
    for r in kops.ops:
        if r.kind == "r" and r.a is not None and first_call.get(r.a, -1) > r.ret:
            found.append(Finding(F.FUTURE_READ, r, f"{describe(r)} saw {show(r.a)}, but every write of "
                                 f"{show(r.a)} began after it completed.", {"read": r.a}))
    bad = {id(f.op) for f in found}
    kept, pruned = prune_unobserved([r for r in kops.ops if id(r) not in bad])
    stats["unknown_outcome_dropped"] = len(pruned)
    result = run_search(kept, deadline, max_states)
    stats["states"], stats["steps"] = result.states, result.steps
    if result.valid is False:
        blocked = kept[result.blocked] if result.blocked is not None else None
        if blocked is not None:
            found.append(_search_finding(blocked, kept, result))
    found.sort(key=F.when)
    if found:
        return KeyVerdict(False, "search", found, kops, search=result, search_ops=kept, stats=stats)
    if result.valid == "unknown":
        return KeyVerdict("unknown", "search", [], kops, reason=result.reason, search=result,
                          search_ops=kept, stats=stats)
    return KeyVerdict(True, "search", [], kops, search=result, search_ops=kept, stats=stats)


def run_search(ops: list[RegOp], deadline: float | None, max_states: int | None) -> SearchResult:
    """The register search; when acknowledged writes carry zxids, they must also keep zxid order."""
    zxids = any(zxid_of(r) is not None for r in ops)
    result = wgl_search(
        ops, RegisterModel(zxids),
        calls=[r.call for r in ops], rets=[r.ret for r in ops], optional=[not r.ok for r in ops],
        pure=[r.kind == "r" for r in ops], signature=[(r.kind, r.a, r.b) for r in ops],
        deadline=deadline, max_states=max_states,
    )
    if zxids:
        result.blocked_states = list(dict.fromkeys(s[0] for s in result.blocked_states))
    return result


def _search_finding(blocked: RegOp, ops: list[RegOp], result: SearchResult) -> Finding:
    states = sorted({show(s) for s in result.blocked_states})
    older = any(w.kind != "r" and w.b == blocked.a and w.call < blocked.ret for w in ops)
    if blocked.kind == "r" and older:
        kind = F.STALE_READ
    elif blocked.kind == "c" and older:
        kind = F.STALE_CAS
    else:
        kind = F.NOT_LINEARIZABLE
    seen = f"saw {show(blocked.a)}" if blocked.kind != "w" else "could not be placed"
    text = (f"{describe(blocked)} {seen}, but every linearization of the ops before it leaves the "
            f"register holding {' or '.join(states) or 'another value'}.")
    return Finding(kind, blocked, text, {"saw": blocked.a, "register_could_hold": [s for s in result.blocked_states]})


def good_prefix(verdict: KeyVerdict, first: Finding, deadline: float | None) -> dict:
    """The longest linearizable prefix before the first bad op, compactly: its length, its last ops
    (invocation indices, in linearization order) and the value the register then held."""
    search = verdict.search
    if search is not None and search.valid is False and search.blocked is not None \
            and verdict.search_ops[search.blocked] is first.op:
        return _prefix_dict([verdict.search_ops[i] for i in search.order], "the furthest point the search reached")
    bad = first.op
    # leave out the reads named in findings (they change nothing); writes happened regardless
    bad_ids = {id(f.op) for f in verdict.findings if f.op.kind == "r"}
    trunc = []
    for r in verdict.kops.ops:
        if id(r) in bad_ids or r.call >= bad.call:
            continue
        if r.ret < bad.call:
            trunc.append(r)
        elif r.kind != "r":  # still open when the bad op began: it may or may not have happened yet
            trunc.append(RegOp(r.op, r.kind, r.a, r.b, False, r.call, float("inf"), r.final, r.session))
    trunc, _ = prune_unobserved(trunc)
    budget = time.perf_counter() + PREFIX_BUDGET_S
    limit = budget if deadline is None else min(budget, deadline)
    result = run_search(trunc, limit, PREFIX_STATES)
    if result.valid is True:
        return _prefix_dict([trunc[i] for i in result.order], f"ops invoked before record {bad.call}")
    return {"description": f"not computed ({result.reason or 'ops before it are not linearizable either'})"}


def _prefix_dict(order: list[RegOp], what: str) -> dict:
    state: Any = None
    for r in order:
        nxt = register_step(state, r)
        state = state if nxt is NOT_ALLOWED else nxt
    return {
        "description": f"a linearization of {len(order)} ops ({what}); the register then held {show(state)}",
        "length": len(order),
        "tail": [r.call for r in order[-PREFIX_TAIL:]],
        "state": state,
    }


def verdict_dict(key: Any, verdict: KeyVerdict, deadline: float | None = None) -> dict:
    out: dict = {"valid": verdict.valid, "method": verdict.method, "stats": dict(verdict.stats)}
    out["anomalies"] = [finding_dict(key, f) for f in verdict.findings]
    if verdict.valid == "unknown":
        out["reason"] = verdict.reason
        out["explanation"] = f"key {key}: unknown: {verdict.reason}"
    elif verdict.findings:
        first = verdict.findings[0]
        out["first_bad"] = op_record(first.op.op)
        out["values"] = first.values
        out["prefix"] = good_prefix(verdict, first, deadline)
        more = f" ({len(verdict.findings) - 1} more anomalies)" if len(verdict.findings) > 1 else ""
        out["explanation"] = f"key {key}: {first.explanation}{more}"
    else:
        out["explanation"] = f"key {key}: linearizable ({verdict.stats.get('ops', 0)} ops, {verdict.method})"
    return out
