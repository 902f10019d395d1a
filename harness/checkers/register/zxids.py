"""The server's own order, for keys with unique values: zxids of acknowledged writes.

ZooKeeper applies writes in zxid order, so when the history recorded zxids, the write order is
known rather than searched for: it must agree with real time and with the cas chains, and every
read must fit it (not after a later version was seen, not before an earlier one was written).
Versions written by unknown-outcome ops that some op saw get a position from their cas chain when
a neighbour in the chain has a zxid.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from operator import itemgetter
from typing import Any, Callable

from . import findings as F
from .findings import describe, show
from ..history import INF
from .ops import RegOp, zxid_of


def check_zxids(ops: list[RegOp], writers: dict, succ: dict, chains: list, observers: dict,
                report: Callable, bad: set) -> None:
    zx = sorted(((z, r) for r in ops if r.ok and r.kind != "r" and (z := zxid_of(r)) is not None),
                key=itemgetter(0))
    if not zx:
        return
    first: dict[int, RegOp] = {}
    for z, r in zx:
        if z in first:
            report(F.DUPLICATE_ZXID, r, f"{describe(r)} and {describe(first[z])} were both acknowledged "
                   f"with zxid {z:#x}.", {"zxid": z}, first[z])
        first.setdefault(z, r)
    rank = {r.b: z for z, r in zx if writers.get(r.b) is r}
    zs = sorted(rank.values())
    index = {z: i for i, z in enumerate(zs)}
    # A cas chain sits contiguously in the order, so its zxids are consecutive among this key's
    # (and the chain from the initial null holds the smallest).
    for chain in chains:
        if len(chain) == 1:
            continue  # a lone version is in place whatever its zxid
        placed = [v for v in chain if v in rank]
        expected = 0 if chain[0] is None else (index[rank[placed[0]]] if placed else 0)
        for v in placed:
            if index[rank[v]] != expected:
                before = [u for u in chain[:chain.index(v)] if u in rank]
                prev = f"{show(before[-1])} ({rank[before[-1]]:#x})" if before else "the initial state"
                report(F.ZXID_ORDER, writers[v], f"{describe(writers[v])} has zxid {rank[v]:#x}, but its cas "
                       f"chain needs it right after {prev}: another write's zxid lies between.",
                       {"zxid": rank[v]}, writers.get(before[-1]) if before else None)
                break
            expected += 1
    pos = _positions(rank, chains)
    # Real time: a write ordered later cannot have completed before an earlier one was invoked.
    order = sorted(pos, key=pos.__getitem__)
    latest = None
    for v in order:
        w = writers[v]
        if latest is not None and w.ret < latest.call:
            report(F.ZXID_ORDER, w, f"{describe(w)} completed before {describe(latest)} was invoked, yet "
                   f"the server (by zxid) ordered it later.", {"zxid": pos[v][0]}, latest)
        if latest is None or w.call > latest.call:
            latest = w
    _reads_in_order(pos, order, writers, succ, observers, report, bad)


def _positions(rank: dict, chains: list) -> dict[Any, tuple]:
    """(zxid, offset) for every version placed by the server's order: its own zxid, or its place
    next to a neighbour in a cas chain that has one (a cas makes its version the very next)."""
    pos: dict[Any, tuple] = {v: (z, 0) for v, z in rank.items()}
    for chain in chains:
        if len(chain) == 1:
            continue  # nothing to take a place from
        for prev, v in zip(chain, chain[1:]):
            if v not in pos and prev in pos:
                pos[v] = (pos[prev][0], pos[prev][1] + 1)
        for v, nxt in zip(reversed(chain[:-1]), reversed(chain[1:])):
            if v not in pos and v is not None and nxt in pos:
                pos[v] = (pos[nxt][0], pos[nxt][1] - 1)
    return pos


def _reads_in_order(pos: dict, order: list, writers: dict, succ: dict, observers: dict, report: Callable,
                    bad: set) -> None:
    """`order`: the versions of `pos`, by position."""
    keys = [pos[v] for v in order]
    # suffix: the earliest moment a later version was certainly in effect (its write or an op
    # that saw it completed); prefix: the latest invocation of an earlier version's write.
    # Of equal moments, the later suffix and the earlier prefix entry stay.
    suffix: list[tuple[float, Any]] = [(INF, None)] * (len(order) + 1)
    for i in range(len(order) - 1, -1, -1):
        v = order[i]
        seen = writers[v].ret
        for r in observers.get(v, ()):
            if r.ret < seen and id(r) not in bad:
                seen = r.ret
        c = succ.get(v)
        if c is not None and c.ok and c.ret < seen:
            seen = c.ret
        suffix[i] = (seen, v) if seen < suffix[i + 1][0] else suffix[i + 1]
    prefix: list[tuple[float, Any]] = [(-INF, None)]
    for v in order:
        call = writers[v].call
        prefix.append((call, v) if call > prefix[-1][0] else prefix[-1])
    for v, readers in observers.items():
        if v not in pos:
            continue
        ret, y = suffix[bisect_right(keys, pos[v])]
        call, x = prefix[bisect_left(keys, pos[v])]
        for r in readers:
            if call > r.ret:
                report(F.FUTURE_READ, r, f"{describe(r)} saw {show(v)}, which the server ordered (by zxid) "
                       f"after {describe(writers[x])}, invoked only after the read completed.",
                       {"read": v, "earlier": x}, writers[x])
            elif ret < r.call:
                report(F.STALE_READ, r, f"{describe(r)} saw {show(v)} after {show(y)}, which the server "
                       f"ordered later (by zxid), had been seen.", {"read": v, "newer": y}, writers[y])
