"""Direct linearizability analysis for a key whose written values are unique.

With unique values every read names the write it saw, and every cas names the version it replaced,
so no search is needed. Versions linked by cas form chains ("blocks") that must sit contiguously in
the version order; a plain write (or the initial state) starts a block. The analysis, in order:

1. map reads and cas to versions: unwritten or failed values, duplicate cas, cas cycles;
2. inside each block, place ops greedily in chain order: finds reads/cas from the future and reads
   that saw a chain version after a later one had completed;
3. a per-op rule: an op that saw version x is stale if some op that saw another version ran
   entirely after x was in effect and before this op began (a version is current over one interval);
4. zxids of ok writes, when present, as the server's own order (zxids.py);
5. Gibbons & Korach's zones over blocks: a block that must stay current over [first completion,
   last invocation] (a forward zone) may not overlap another forward zone or contain a backward one.

Every finding proves non-linearizability; with no findings, steps 2 and 5 together are exact
(Gibbons & Korach, "Testing shared memories", 1997, for registers with a read mapping).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from . import findings as F
from .findings import Finding, describe, show
from ..history import INF
from .ops import KeyOps, RegOp
from .zxids import check_zxids


@dataclass(slots=True)
class UniqueAnalysis:
    findings: list[Finding]
    writers: dict[Any, RegOp | None]  # version -> the op that wrote it (None: the initial state)
    succ: dict[Any, RegOp]  # version -> the cas that replaced it
    chains: list[list[Any]]  # blocks: versions linked by cas, each starting at a write or the initial state
    observers: dict[Any, list[RegOp]] = field(default_factory=dict)  # version -> ok reads of it
    dropped: list[RegOp] = field(default_factory=list)  # unknown-outcome ops that did not happen
    bad: set[int] = field(default_factory=set)  # ids (id(RegOp)) of ops already in a finding


def analyse_unique(kops: KeyOps) -> UniqueAnalysis:
    ops = kops.ops
    found: list[Finding] = []
    bad: set[int] = set()

    def report(kind: str, op: RegOp, text: str, values: dict, *witnesses: RegOp | None) -> None:
        if id(op) not in bad:
            bad.add(id(op))
            found.append(Finding(kind, op, text, values, [w for w in witnesses if w is not None]))

    reads = [r for r in ops if r.kind == "r"]
    changes = [r for r in ops if r.kind != "r"]
    by_value = {r.b: r for r in changes}
    # An unknown-outcome op happened iff something saw its value (values are unique).
    happened = {id(r) for r in changes if r.ok}
    todo = reads + [r for r in changes if r.kind == "c" and r.ok]
    while todo:
        r = todo.pop()
        w = by_value.get(r.a)
        if w is not None and id(w) not in happened:
            happened.add(id(w))
            if w.kind == "c":
                todo.append(w)
    writers: dict[Any, RegOp | None] = {None: None}
    for r in changes:
        if id(r) in happened:
            writers[r.b] = r
    dropped = [r for r in changes if id(r) not in happened]

    # 1. mapping
    observers: dict[Any, list[RegOp]] = {}
    succ: dict[Any, RegOp] = {}
    for r in reads:
        if r.a in writers:
            observers.setdefault(r.a, []).append(r)
        elif r.a in kops.failed_writes:
            report(F.FAILED_WRITE_READ, r, f"{describe(r)} saw {show(r.a)}, which only "
                   f"{describe(kops.failed_writes[r.a])} tried to write, and that failed.", {"read": r.a},
                   kops.failed_writes[r.a])
        else:
            report(F.UNWRITTEN, r, f"{describe(r)} saw {show(r.a)}, which no operation wrote.", {"read": r.a})
    for r in sorted((r for r in changes if r.kind == "c" and id(r) in happened), key=lambda r: (r.ret, r.call)):
        if r.a not in writers:
            report(F.IMPOSSIBLE_CAS, r, f"{describe(r)} took effect, but no operation wrote {show(r.a)}.",
                   {"from": r.a, "to": r.b})
        elif r.a in succ:
            first = succ[r.a]
            report(F.DUPLICATE_CAS, r, f"{describe(r)} and {describe(first)} both took effect from "
                   f"{show(r.a)}, which only one of them can have replaced.", {"from": r.a, "to": [first.b, r.b]}, first)
        else:
            succ[r.a] = r
    # A block starts at the initial state, a plain write, or a cas whose link back is broken (its
    # expected value was never written, or another cas already replaced that value).
    roots = [v for v, w in writers.items() if w is None or w.kind == "w" or succ.get(w.a) is not w]
    chains: list[list[Any]] = []
    reached: set[Any] = set()
    for root in roots:
        chain = [root]
        while chain[-1] in succ and succ[chain[-1]].b not in reached and succ[chain[-1]].b != root:
            chain.append(succ[chain[-1]].b)
        reached.update(chain)
        chains.append(chain)
    for v, w in writers.items():
        if v not in reached and w is not None:
            report(F.CAS_CYCLE, w, f"{describe(w)} is part of a cycle of cas ops that no write or initial "
                   f"state starts.", {"from": w.a, "to": w.b})

    # 2. inside blocks
    for chain in chains:
        _check_block(chain, writers, succ, observers, report, bad)

    # 3. the interval rule (repeated: a pass may blame a witness and leave its op for the next),
    # 4. zxids (the server's order names the culprit best), 5. zones (the catch-all)
    where = {v: (b, i) for b, chain in enumerate(chains) for i, v in enumerate(chain)}
    for _ in range(100):
        before = len(found)
        _interval_rule(chains, writers, succ, observers, report, bad, where)
        if len(found) == before:
            break
    check_zxids(ops, writers, succ, chains, observers, report, bad)
    _zones(chains, writers, succ, observers, report, bad)
    if found:
        _lost_writes(ops, writers, succ, observers, where, report)
    found.sort(key=F.when)
    return UniqueAnalysis(found, writers, succ, chains, observers, dropped, bad)


def _lost_writes(ops, writers, succ, observers, where, report) -> None:
    """Name the acknowledged writes that nobody ever saw and that the last read of the history,
    begun after they completed, shows were undone: the register went back to an older value."""
    reads = [r for r in ops if r.kind == "r" and r.a in writers]
    if not reads:
        return
    last = max(reads, key=lambda r: r.call)
    for v, w in writers.items():
        if (w is not None and w.ok and w.ret < last.call and not observers.get(v) and v not in succ
                and _certainly_before(last.a, v, writers, where)):
            report(F.LOST_WRITE, w, f"{describe(w)} was acknowledged, but no op ever saw {show(v)}, and the "
                   f"last read, {describe(last)}, begun after it completed, saw the older {show(last.a)}.",
                   {"lost": v, "read": last.a}, last)


def _phases(chain, writers, succ, observers, bad):
    """The block's ops in chain order: [writer], [its readers], [the cas], [its readers], ..."""
    out = []
    for i, v in enumerate(chain):
        if i == 0:
            out.append([(writers[v], v)])
        out.append([(r, v) for r in observers.get(v, ()) if id(r) not in bad])
        c = succ.get(v)
        if c is not None and i + 1 < len(chain) and id(c) not in bad:
            out.append([(c, chain[i + 1])])
    return out


def _in_chain_order(chain, writers, succ, observers, bad) -> bool:
    """True when no op of the block completed before an op of an earlier phase was invoked: what
    _check_block looks for, decided without building the phases (nearly every block passes)."""
    w = writers[chain[0]]
    low = -INF if w is None else w.call
    last = len(chain) - 1
    for i, v in enumerate(chain):
        phase_low = low
        for r in observers.get(v, ()):
            if id(r) not in bad:
                if r.ret < low:
                    return False
                if r.call > phase_low:
                    phase_low = r.call
        low = phase_low
        c = succ.get(v)
        if c is not None and i < last and id(c) not in bad:
            if c.ret < low:
                return False
            low = max(low, c.call)
    return True


def _check_block(chain, writers, succ, observers, report, bad) -> None:
    if _in_chain_order(chain, writers, succ, observers, bad):
        return
    for _ in range(50):  # restart after blaming an op that pushed the lower bound up
        low, low_op, low_v = -INF, None, None
        blamed = False
        for phase in _phases(chain, writers, succ, observers, bad):
            new_low, new_op, new_v = low, low_op, low_v
            for r, v in phase:
                if r is None:
                    continue
                t = max(low, r.call)
                if t > r.ret:
                    if low_op is not None and low_op.kind == "r":
                        report(F.STALE_READ, low_op, f"{describe(low_op)} saw {show(low_v)} after "
                               f"{describe(r)} (later in the cas chain, with {show(v)}) had completed.",
                               {"read": low_v, "newer": v}, r)
                    else:
                        kind = F.FUTURE_READ if r.kind == "r" else F.FUTURE_CAS
                        report(kind, r, f"{describe(r)} completed before {describe(low_op)}, which "
                               f"{'wrote' if low_v == v else 'led to'} the value {show(v)} it saw, was invoked.",
                               {"saw": v, "written_by": low_op.call if low_op else None}, low_op)
                    blamed = True
                    break
                if r.call > new_low:
                    new_low, new_op, new_v = r.call, r, v
            if blamed:
                break
            low, low_op, low_v = new_low, new_op, new_v
        if not blamed:
            return


def _observations(chains, writers, succ, observers, bad) -> list[tuple]:
    """(op, version) for every op that saw or wrote a version, skipping ops already reported."""
    out = []
    add = out.append
    for chain in chains:
        for v in chain:
            w = writers[v]
            if w is not None and id(w) not in bad:
                add((w, v))
            for r in observers.get(v, ()):
                if id(r) not in bad:
                    add((r, v))
            c = succ.get(v)
            if c is not None and id(c) not in bad and c.b in writers:
                add((c, v))
    return out


def _certainly_before(y: Any, x: Any, writers: dict, where: dict) -> bool:
    """y precedes x in every version order: initial state, cas chain, real time or zxids say so."""
    if y is None:
        return x is not None
    if y in where and x in where and where[y][0] == where[x][0]:
        return where[y][1] < where[x][1]
    wy, wx = writers.get(y), writers.get(x)
    if wy is None or wx is None:
        return False
    if wy.ret < wx.call:
        return True
    zy, zx = wy.op.zxid if wy.ok else None, wx.op.zxid if wx.ok else None
    return isinstance(zy, int) and isinstance(zx, int) and zy < zx


def _interval_rule(chains, writers, succ, observers, report, bad, where) -> None:
    obs = _observations(chains, writers, succ, observers, bad)
    first_done: dict[Any, float] = {}  # version -> earliest completion of an op that saw it
    for r, v in obs:
        done, ret = first_done.get(v, INF), r.ret
        first_done[v] = ret if ret < done else done
    first_done[None] = -INF  # the initial state is in effect before anything happens
    calls = [r.call for r, _ in obs]
    order = sorted(range(len(obs)), key=calls.__getitem__)  # stable, like sorting obs by call
    obs = [obs[i] for i in order]
    calls = [calls[i] for i in order]
    # suffix minima of completion, keeping the best two with different versions
    none = (INF, object(), None)
    best: list[tuple] = [(none, none)] * (len(obs) + 1)
    for i in range(len(obs) - 1, -1, -1):
        r, v = obs[i]
        b1, b2 = best[i + 1]
        cand = (r.ret, v, r)
        if cand[0] < b1[0]:
            best[i] = (cand, b1 if b1[1] != v else b2)
        elif cand[0] < b2[0] and v != b1[1]:
            best[i] = (b1, cand)
        else:
            best[i] = (b1, b2)
    after: dict[Any, tuple] = {}  # version v -> the op of another version done first after first_done[v]
    for r, v in obs:
        if id(r) in bad or r.kind == "w" or (r.kind == "c" and writers.get(r.b) is r and v == r.b):
            continue  # writers are checked through their readers (step 2)
        found = after.get(v)
        if found is None:
            b1, b2 = best[bisect_right(calls, first_done.get(v, INF))]
            found = after[v] = b1 if b1[1] != v else b2
        ret, y, a = found
        if ret >= r.call or id(a) in bad:
            continue
        # v was in effect by first_done[v], a saw y inside (first_done[v], r.call), r saw v after:
        # one of a and r saw the past. Blame the one that saw the older version; when the order of
        # v and y is open, blame a read rather than a cas.
        since = "from the start" if first_done[v] == -INF else f"by record {first_done[v]}"
        if _certainly_before(y, v, writers, where) or (
                not _certainly_before(v, y, writers, where) and a.kind == "r" and r.kind == "c"):
            text = (f"{describe(a)} saw {show(y)}, after {show(v)} had replaced it (in effect {since}, "
                    f"and seen again by {describe(r)}).")
            r, v, a, y = a, y, r, v
        else:
            verb = "wrote" if a.kind != "r" and a.b == y else "saw"
            text = (f"{describe(r)} saw {show(v)}, but {describe(a)} {verb} {show(y)} after {show(v)} was "
                    f"in effect ({since}) and completed before it began.")
        kind = {"r": F.STALE_READ, "c": F.STALE_CAS}.get(r.kind, F.NOT_LINEARIZABLE)
        report(kind, r, text, {"read": v, "newer": y}, a)


def _zones(chains, writers, succ, observers, report, bad) -> None:
    forward, backward = [], []
    for chain in chains:
        f_op, f_v, s_op, s_v = _extremes(chain, writers, succ, observers, bad)
        f = -INF if writers[chain[0]] is None else (f_op.ret if f_op else INF)
        if s_op is None:
            continue
        zone = (f, s_op.call, f_op, f_v, s_op, s_v)
        (forward if f < s_op.call else backward).append(zone)
    forward.sort(key=lambda z: z[0])
    starts = [z[0] for z in forward]
    widest = []  # prefix maximum of s, to test containment even when forward zones overlap
    for z in forward:
        widest.append(z if not widest or z[1] > widest[-1][1] else widest[-1])
    for j in range(1, len(forward)):
        if forward[j][0] < widest[j - 1][1]:
            _blame_zone(widest[j - 1], forward[j], report)
    for z in backward:
        j = bisect_right(starts, z[1]) - 1  # last forward zone starting before z's last invocation
        if j >= 0 and widest[j][1] > z[0]:
            _blame_zone(widest[j], z, report)


def _extremes(chain, writers, succ, observers, bad) -> tuple:
    """The block's op that completed first and the one invoked last, each with its version; of
    equals, the first in phase order (see _phases)."""
    f_op = f_v = s_op = s_v = None
    w = writers[chain[0]]
    if w is not None:
        f_op = s_op = w
        f_v = s_v = chain[0]
    last = len(chain) - 1
    for i, v in enumerate(chain):
        for r in observers.get(v, ()):
            if id(r) not in bad:
                if f_op is None or r.ret < f_op.ret:
                    f_op, f_v = r, v
                if s_op is None or r.call > s_op.call:
                    s_op, s_v = r, v
        c = succ.get(v)
        if c is not None and i < last and id(c) not in bad:
            if f_op is None or c.ret < f_op.ret:
                f_op, f_v = c, chain[i + 1]
            if s_op is None or c.call > s_op.call:
                s_op, s_v = c, chain[i + 1]
    return f_op, f_v, s_op, s_v


def _blame_zone(x, y, report) -> None:
    # The block that was in effect first (smaller f) comes first in the natural order; its op
    # invoked after the other block was already visible (its s) is the one that saw the past.
    # A read is preferred to a cas: writes are checked on their own elsewhere.
    if y[0] < x[0]:
        x, y = y, x
    _, _, fx_op, fx_v, s_op, s_v = x
    _, _, fy_op, fy_v, alt_op, alt_v = y
    if s_op.kind != "r" and alt_op.kind == "r":
        report(F.STALE_READ, alt_op, f"{describe(alt_op)} saw {show(alt_v)}, but the block of versions "
               f"holding {show(alt_v)} and the one holding {show(s_v)} (seen by {describe(s_op)}) would "
               f"both have to be current over an overlapping period.", {"read": alt_v, "newer": s_v}, s_op)
        return
    kind = F.STALE_READ if s_op.kind == "r" else F.STALE_CAS
    report(kind, s_op, f"{describe(s_op)} saw {show(s_v)}, although {show(s_v)}'s block was in effect "
           f"before {describe(fy_op)} saw {show(fy_v)}, which completed before it began.",
           {"read": s_v, "newer": fy_v}, fx_op, fy_op)
