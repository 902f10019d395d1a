"""Session guarantees under ZooKeeper's model, for a key with unique values.

Nodes are versions, the start and end of each block (a cas chain, which sits contiguously in the
write order) and time points; edges say "comes earlier in the write order": cas chains, the
initial block first, real time (through a chain of time-point nodes, so the graph stays linear in
size) and zxids. Reads add "nothing reads the future" (the version existed when the read
completed) and sessions add "never go back" (each observation is no older than the session's
previous one). A write order exists iff the graph is acyclic. When it is not, the constraints are
added in history order, keeping a topological order up to date; a constraint that would close a
cycle is the violation of its op: a read from the future, a read that went back in its session, a
read that missed the session's own write, or a write that went back.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from . import findings as F
from .findings import Finding, describe, show
from ..history import INF
from .ops import KeyOps, RegOp
from .unique import UniqueAnalysis


MAX_FUTURE_READS = 20  # findings of reads from the future per key, each costs a few graph builds
MAX_EXPLICIT_EDGES = 64  # per block spanning a period (more only when the order is contradictory)


def session_findings(kops: KeyOps, analysis: UniqueAnalysis) -> list[Finding]:
    graph = _Graph(analysis)
    reads = sorted(((v, r) for v, rs in analysis.observers.items() if v in graph.block for r in rs),
                   key=lambda vr: (vr[1].ret, vr[1].call))
    found: list[Finding] = []
    zxid_edges = graph.zxid_edges()
    if _has_cycle(graph.n, graph.edges(reads) + zxid_edges):
        # Either the write order is contradictory (reported by the write check: fall back to the
        # order real time and cas chains force, or give up), or some read saw the future.
        if _has_cycle(graph.n, graph.edges([]) + zxid_edges):
            zxid_edges = []
            if _has_cycle(graph.n, graph.edges([])):
                return []
        reads, found = _future_reads(graph, reads, zxid_edges)
    fixed = graph.edges(reads) + zxid_edges
    if _has_cycle(graph.n, fixed):
        return found
    constraints = _session_edges(kops, analysis.writers, graph.block, graph.edge)
    return found + _culprits(graph.n, fixed, constraints)


def _future_reads(graph: "_Graph", reads: list, zxid_edges: list) -> tuple[list, list[Finding]]:
    """Reads, in completion order, whose "nothing reads the future" constraint closes a cycle."""
    good: list = []
    found: list[Finding] = []
    pending = reads
    while pending and len(found) < MAX_FUTURE_READS:
        lo, hi = 0, len(pending)  # the first lo pending reads fit; find the first that does not
        if not _has_cycle(graph.n, graph.edges(good + pending) + zxid_edges):
            return good + pending, found
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _has_cycle(graph.n, graph.edges(good + pending[:mid]) + zxid_edges):
                hi = mid
            else:
                lo = mid
        v, r = pending[lo]
        found.append(Finding(F.FUTURE_READ, r, f"{describe(r)} saw {show(v)} before {show(v)} could have "
                             f"been written: every write order consistent with the other ops puts it "
                             f"after the read completed.", {"saw": v}))
        good += pending[:lo]
        pending = pending[lo + 1:]
    return good + pending, found


class _Graph:
    """Nodes: each version, each block's start and end, and time points. Edges mean "earlier in
    the write order". A block sits contiguously in that order, so an order between versions of two
    blocks orders the whole blocks: such edges go from the end of one to the start of the other."""

    def __init__(self, analysis: UniqueAnalysis) -> None:
        self.analysis = analysis
        self.block = {v: b for b, chain in enumerate(analysis.chains) for v in chain}
        self.ids: dict[tuple, int] = {}
        self.initial = next((b for b, chain in enumerate(analysis.chains) if chain[0] is None), None)
        for b, chain in enumerate(analysis.chains):
            self.node(("s", b))
            for v in chain:
                self.node(("v", v))
            self.node(("e", b))

    @property
    def n(self) -> int:
        return len(self.ids)

    def node(self, name: tuple) -> int:
        if name not in self.ids:
            self.ids[name] = len(self.ids)
        return self.ids[name]

    def edge(self, u: Any, v: Any) -> tuple[int, int]:
        if self.block[u] == self.block[v]:
            return self.node(("v", u)), self.node(("v", v))
        return self.node(("e", self.block[u])), self.node(("s", self.block[v]))

    def zxid_edges(self) -> list[tuple[int, int]]:
        zx = sorted((w.op.zxid, v) for v, w in self.analysis.writers.items()
                    if v in self.block and w is not None and w.ok and isinstance(w.op.zxid, int))
        return [self.edge(a, b) for (_, a), (_, b) in zip(zx, zx[1:])]

    def edges(self, reads: list[tuple[Any, RegOp]]) -> list[tuple[int, int]]:
        """Chains, the initial block first, and real time: a block's first version was installed
        before `a` (a write of it completed, or a read of it: nothing reads the future) and its
        last was replaced after `b` (a write of it began, or a final read still saw it). So block
        B1 precedes B2 whenever a(B1) < b(B2)."""
        writers, chains = self.analysis.writers, self.analysis.chains
        a = [INF] * len(chains)
        b = [-INF] * len(chains)
        for bl, chain in enumerate(chains):
            for v in chain:
                w = writers[v]
                if w is not None:
                    a[bl] = min(a[bl], w.ret)
                    b[bl] = max(b[bl], w.call)
        for v, r in reads:
            a[self.block[v]] = min(a[self.block[v]], r.ret)
            if r.final:
                b[self.block[v]] = max(b[self.block[v]], r.call)
        out: list[tuple[int, int]] = []
        for bl, chain in enumerate(chains):
            path = [self.node(("s", bl))] + [self.node(("v", v)) for v in chain] + [self.node(("e", bl))]
            out.extend(zip(path, path[1:]))
            if bl != self.initial and self.initial is not None:
                out.append((self.node(("e", self.initial)), path[0]))
        times = sorted({t for t in a + b if t not in (INF, -INF)})
        index = {t: i for i, t in enumerate(times)}
        q = [self.node(("t", t)) for t in times]
        out.extend(zip(q, q[1:]))
        by_b = sorted((b[bl], bl) for bl in range(len(chains)) if b[bl] != -INF)
        starts = [t for t, _ in by_b]
        for bl in range(len(chains)):
            if b[bl] != -INF:
                out.append((q[index[b[bl]]], self.node(("s", bl))))
            if a[bl] == INF or bl == self.initial:
                continue  # the initial block precedes every other block already
            # Leave through the time point after max(a, b): a block spanning a period (a < b) must
            # not reach its own start; the blocks whose b falls inside that period get direct edges.
            leave = index[max(a[bl], b[bl])] + 1
            if leave < len(q):
                out.append((self.node(("e", bl)), q[leave]))
            if a[bl] < b[bl]:
                lo, hi = bisect_right(starts, a[bl]), bisect_left(starts, b[bl])
                for _, other in by_b[lo:min(hi, lo + MAX_EXPLICIT_EDGES)]:
                    if other != bl:
                        out.append((self.node(("e", bl)), self.node(("s", other))))
        return out


def _session_edges(kops: KeyOps, writers: dict, block: dict, edge) -> list[tuple]:
    out = []
    by_session: dict[Any, list[RegOp]] = {}
    for r in kops.ops:
        if r.ok:
            by_session.setdefault(r.session, []).append(r)
    for ops in by_session.values():
        ops.sort(key=lambda r: r.call)
        prev: RegOp | None = None
        prev_v: Any = None
        for r in ops:
            v = r.a if r.kind == "r" else r.b
            if v not in block or (r.kind != "r" and writers[v] is not r):
                continue  # a value no write produced: reported elsewhere, says nothing about order
            if prev is not None and v != prev_v:
                out.append((*edge(prev_v, v), r, prev, prev_v, v))
            prev, prev_v = r, v
    return out


def _adjacency(n: int, edges: list[tuple]) -> list[list[int]]:
    # time nodes are created while building edges: size the table from the edges too
    n = max([n] + [max(e[0], e[1]) + 1 for e in edges])
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v, *_ in edges:
        adj[u].append(v)
    return adj


def _has_cycle(n: int, edges: list[tuple]) -> bool:
    adj = _adjacency(n, edges)
    return len(_topological(adj)) < len(adj)


def _culprits(n: int, fixed: list[tuple], constraints: list[tuple]) -> list[Finding]:
    """Add the session edges in history order to the (acyclic) fixed graph, keeping a topological
    order up to date (Pearce & Kelly's dynamic topological sort, so most edges cost O(1)); an edge
    that would close a cycle is a violation by its op and is left out."""
    adj = _adjacency(n, fixed)
    n = len(adj)
    radj: list[list[int]] = [[] for _ in range(n)]
    for u in range(n):
        for v in adj[u]:
            radj[v].append(u)
    pos = [0] * n
    for i, u in enumerate(_topological(adj)):
        pos[u] = i
    found: list[Finding] = []
    done: set[int] = set()
    for u, v, r, prev, prev_v, seen_v in sorted(constraints, key=lambda e: (e[2].ret, e[2].call)):
        if id(r) in done or u == v:
            continue
        if pos[u] > pos[v]:
            forward = _region(v, adj, lambda w: pos[w] <= pos[u])
            if u in forward:
                done.add(id(r))
                found.append(_finding(r, prev, prev_v, seen_v))
                continue
            backward = _region(u, radj, lambda w: pos[w] >= pos[v])
            moved = sorted(backward, key=pos.__getitem__) + sorted(forward, key=pos.__getitem__)
            for w, p in zip(moved, sorted(pos[w] for w in moved)):
                pos[w] = p
        adj[u].append(v)
        radj[v].append(u)
    return found


def _topological(adj: list[list[int]]) -> list[int]:
    indeg = [0] * len(adj)
    for u in range(len(adj)):
        for v in adj[u]:
            indeg[v] += 1
    ready = [u for u in range(len(adj)) if indeg[u] == 0]
    out = []
    while ready:
        u = ready.pop()
        out.append(u)
        for v in adj[u]:
            indeg[v] -= 1
            if indeg[v] == 0:
                ready.append(v)
    return out


def _region(start: int, adj: list[list[int]], inside) -> set[int]:
    seen = {start}
    todo = [start]
    while todo:
        u = todo.pop()
        for v in adj[u]:
            if v not in seen and inside(v):
                seen.add(v)
                todo.append(v)
    return seen


def _finding(r: RegOp, prev: RegOp, prev_v: Any, v: Any) -> Finding:
    if r.kind != "r":
        kind, did = F.WRITE_WENT_BACK, "wrote"
    elif prev.kind != "r":
        kind, did = F.MISSED_OWN_WRITE, "saw"
    else:
        kind, did = F.WENT_BACK, "saw"
    earlier = "written" if prev.kind != "r" else "seen"
    text = (f"{describe(r)} {did} {show(v)}, but its session had already {earlier} {show(prev_v)} "
            f"({describe(prev)}), which comes later in the write order.")
    return Finding(kind, r, text, {"saw": v, "session_had": prev_v, "session": str(r.session)}, [prev])
