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
from operator import itemgetter, le
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
    ordered = _ordered(graph, graph.edges(reads) + zxid_edges)
    if ordered is None:
        # Either the write order is contradictory (reported by the write check: fall back to the
        # order real time and cas chains force, or give up), or some read saw the future.
        if _has_cycle(graph, graph.edges([]) + zxid_edges):
            zxid_edges = []
            if _has_cycle(graph, graph.edges([])):
                return []
        reads, found = _future_reads(graph, reads, zxid_edges)
        ordered = _ordered(graph, graph.edges(reads) + zxid_edges)
        if ordered is None:
            return found
    constraints = _session_edges(kops, analysis.writers, graph)
    return found + _culprits(*ordered, constraints)


def _future_reads(graph: "_Graph", reads: list, zxid_edges: list) -> tuple[list, list[Finding]]:
    """Reads, in completion order, whose "nothing reads the future" constraint closes a cycle."""
    good: list = []
    found: list[Finding] = []
    pending = reads
    while pending and len(found) < MAX_FUTURE_READS:
        lo, hi = 0, len(pending)  # the first lo pending reads fit; find the first that does not
        if not _has_cycle(graph, graph.edges(good + pending) + zxid_edges):
            return good + pending, found
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if _has_cycle(graph, graph.edges(good + pending[:mid]) + zxid_edges):
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
    blocks orders the whole blocks: such edges go from the end of one to the start of the other.
    What does not depend on the reads (node ids, chain edges, writes' times) is computed once."""

    def __init__(self, analysis: UniqueAnalysis) -> None:
        self.analysis = analysis
        chains, writers = analysis.chains, analysis.writers
        self.block: dict[Any, int] = {}
        self.vnode: dict[Any, int] = {}
        self.start: list[int] = []
        self.end: list[int] = []
        self.chain_edges: list[tuple[int, int]] = []
        # a block's first version was installed before its writes completed, and its last
        # replaced after its writes began
        self.installed: list[float] = []
        self.replaced: list[float] = []
        n = 0
        for b, chain in enumerate(chains):
            self.start.append(n)
            installed, replaced = INF, -INF
            for v in chain:
                n += 1
                self.block[v] = b
                self.vnode[v] = n
                self.chain_edges.append((n - 1, n))
                w = writers[v]
                if w is not None:
                    installed = w.ret if w.ret < installed else installed
                    replaced = w.call if w.call > replaced else replaced
            n += 1
            self.chain_edges.append((n - 1, n))
            self.end.append(n)
            self.installed.append(installed)
            self.replaced.append(replaced)
            n += 1
        self.n = n
        self.times: dict[float, int] = {}  # time point -> node, made as edges need them
        self.initial = next((b for b, chain in enumerate(chains) if chain[0] is None), None)
        if self.initial is not None:  # the initial block precedes every other block
            first = self.end[self.initial]
            self.chain_edges.extend((first, s) for b, s in enumerate(self.start) if b != self.initial)

    def time(self, t: float) -> int:
        node = self.times.get(t)
        if node is None:
            node = self.times[t] = self.n
            self.n += 1
        return node

    def edge(self, u: Any, v: Any) -> tuple[int, int]:
        bu, bv = self.block[u], self.block[v]
        if bu == bv:
            return self.vnode[u], self.vnode[v]
        return self.end[bu], self.start[bv]

    def zxid_edges(self) -> list[tuple[int, int]]:
        block = self.block
        zx = sorted((w.op.zxid, v) for v, w in self.analysis.writers.items()
                    if w is not None and w.ok and isinstance(w.op.zxid, int) and v in block)
        return [self.edge(a, b) for (_, a), (_, b) in zip(zx, zx[1:])]

    def edges(self, reads: list[tuple[Any, RegOp]]) -> list[tuple[int, int]]:
        """Chains, the initial block first, and real time: a block's first version was installed
        before `a` (a write of it completed, or a read of it: nothing reads the future) and its
        last was replaced after `b` (a write of it began, or a final read still saw it). So block
        B1 precedes B2 whenever a(B1) < b(B2)."""
        a = self.installed[:]
        b = self.replaced[:]
        block = self.block
        for v, r in reads:
            bl = block[v]
            if r.ret < a[bl]:
                a[bl] = r.ret
            if r.final and r.call > b[bl]:
                b[bl] = r.call
        out = self.chain_edges[:]
        times = sorted({t for t in a + b if t != INF and t != -INF})
        index = {t: i for i, t in enumerate(times)}
        q = [self.time(t) for t in times]
        out.extend(zip(q, q[1:]))
        by_b = sorted((t, bl) for bl, t in enumerate(b) if t != -INF)
        starts = [t for t, _ in by_b]
        start, end, initial = self.start, self.end, self.initial
        for bl, (ta, tb) in enumerate(zip(a, b)):
            if tb != -INF:
                out.append((q[index[tb]], start[bl]))
            if ta == INF or bl == initial:
                continue  # the initial block precedes every other block already
            # Leave through the time point after max(a, b): a block spanning a period (a < b) must
            # not reach its own start; the blocks whose b falls inside that period get direct edges.
            leave = index[max(ta, tb)] + 1
            if leave < len(q):
                out.append((end[bl], q[leave]))
            if ta < tb:
                lo, hi = bisect_right(starts, ta), bisect_left(starts, tb)
                for _, other in by_b[lo:min(hi, lo + MAX_EXPLICIT_EDGES)]:
                    if other != bl:
                        out.append((end[bl], start[other]))
        return out


def _session_edges(kops: KeyOps, writers: dict, graph: _Graph) -> list[tuple]:
    """(u, v, op, its session's previous op, the version that one saw, the version op saw) for
    each op that saw another version than its session's previous one: u must come before v."""
    out = []
    by_session: dict[Any, list[RegOp]] = {}
    for r in kops.ops:
        if r.ok:
            by_session.setdefault(r.session, []).append(r)
    block, vnode, start, end = graph.block, graph.vnode, graph.start, graph.end
    for ops in by_session.values():  # in invocation order, like kops.ops
        prev: RegOp | None = None
        prev_v: Any = None
        for r in ops:
            v = r.a if r.kind == "r" else r.b
            if v not in block or (r.kind != "r" and writers[v] is not r):
                continue  # a value no write produced: reported elsewhere, says nothing about order
            if prev is not None and v != prev_v:
                bu, bv = block[prev_v], block[v]  # graph.edge(prev_v, v), inlined: this runs per op
                if bu == bv:
                    out.append((vnode[prev_v], vnode[v], r, prev, prev_v, v))
                else:
                    out.append((end[bu], start[bv], r, prev, prev_v, v))
            prev, prev_v = r, v
    return out


def _adjacency(n: int, edges: list[tuple]) -> list[list[int]]:
    adj: list[list[int]] = [[] for _ in range(n)]
    for u, v in edges:
        adj[u].append(v)
    return adj


def _ordered(graph: _Graph, edges: list[tuple[int, int]]) -> tuple[list[list[int]], list[int]] | None:
    """The graph's adjacency and a topological position of every node; None if it has a cycle."""
    adj = _adjacency(graph.n, edges)  # after building the edges: they add time nodes
    order = _topological(adj)
    if len(order) < len(adj):
        return None
    pos = [0] * len(adj)
    for i, u in enumerate(order):
        pos[u] = i
    return adj, pos


def _has_cycle(graph: _Graph, edges: list[tuple[int, int]]) -> bool:
    return _ordered(graph, edges) is None


def _culprits(adj: list[list[int]], pos: list[int], constraints: list[tuple]) -> list[Finding]:
    """Add the session edges in history order to the (acyclic) graph, keeping its topological
    order up to date (Pearce & Kelly's dynamic topological sort, so most edges cost O(1)); an edge
    that would close a cycle is a violation by its op and is left out."""
    at = pos.__getitem__
    if all(map(le, map(at, map(itemgetter(0), constraints)), map(at, map(itemgetter(1), constraints)))):
        return []  # no session goes back: the order holds with every session edge added
    radj: list[list[int]] | None = None  # reverse edges, only once an edge goes against the order
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
            if radj is None:
                radj = [[] for _ in adj]
                for w, targets in enumerate(adj):
                    for x in targets:
                        radj[x].append(w)
            backward = _region(u, radj, lambda w: pos[w] >= pos[v])
            moved = sorted(backward, key=pos.__getitem__) + sorted(forward, key=pos.__getitem__)
            for w, p in zip(moved, sorted(pos[w] for w in moved)):
                pos[w] = p
        adj[u].append(v)
        if radj is not None:
            radj[v].append(u)
    return found


def _topological(adj: list[list[int]]) -> list[int]:
    indeg = [0] * len(adj)
    for targets in adj:
        for v in targets:
            indeg[v] += 1
    ready = [u for u, d in enumerate(indeg) if d == 0]
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
