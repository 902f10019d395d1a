"""Checking the queue workload (workloads/queue.py) as a total queue: every acknowledged element
delivered exactly once, nothing delivered that was not enqueued, plus FIFO where it is decidable.

What each dequeue took is known even when its outcome was not: an ok dequeue names its item,
and the final phase's tombstone read maps every consumed item to the dequeue (by op id) whose
multi deleted it, info dequeues included. A delivery is an ok dequeue or a tombstone of a
dequeue that was not acknowledged.

Anomalies (violations under both models unless said otherwise):
  lost             an acknowledged enqueue's element was never delivered, though the queue was
                   drained and the tombstones read after healing
  duplicated       an element delivered more than once
  unexpected       an element delivered that no enqueue attempted (none invoked, or it failed)
  lost-dequeue     an acknowledged dequeue whose tombstone is missing or names another dequeue
  phantom-dequeue  a tombstone of a dequeue that failed or never ran
  out-of-order     a dequeue took an item while a lower one was waiting throughout it
  stale-empty      a dequeue found the queue empty while an item was waiting throughout it:
                   a stale listing, which ZooKeeper allows
  stale-sync-empty the same after a sync (the final drain's dequeues)
"Waiting throughout" a dequeue: the item's enqueue was acknowledged before the dequeue began,
and whatever took the item began after the dequeue completed. Sequence numbers follow the zxid
order of the creates. Why out-of-order is a violation under ZooKeeper's model too: a dequeue
tries the items it listed lowest first, and a listing, stale or not, is the state after some
prefix of the log; a listing that holds an item holds every lower item not yet deleted, and
the waiting item was deleted by nothing that began before the dequeue completed, so the dequeue
reaches it before any higher one, and its multi (at the leader) finds it. An empty listing,
though, may come from a server that has not yet seen the enqueue: a stale read.
Not an anomaly: recovered (an enqueue of unknown outcome whose element was delivered).

Result: {"valid", "explanation", "summary", "anomalies", "anomaly_count", "consistency",
"stats": {"enqueues", "dequeues", "acknowledged", "delivered", "recovered", "lost",
"duplicated", "unexpected", "resolved_info_dequeues", "drained"}}.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .core import judge
from .history import INF, Op, op_record, pair_ops

EMPTY = "empty"  # the error of a dequeue that listed no items

LOST = "lost"
DUPLICATED = "duplicated"
UNEXPECTED = "unexpected"
LOST_DEQUEUE = "lost-dequeue"
PHANTOM_DEQUEUE = "phantom-dequeue"
OUT_OF_ORDER = "out-of-order"
STALE_EMPTY = "stale-empty"
STALE_SYNC_EMPTY = "stale-sync-empty"

CLASSIFICATION = {
    LOST: "lost acknowledged enqueue",
    DUPLICATED: "element delivered more than once",
    UNEXPECTED: "element delivered that was never enqueued",
    LOST_DEQUEUE: "acknowledged dequeue missing from the final state",
    PHANTOM_DEQUEUE: "dequeue that failed or never ran took an item",
    OUT_OF_ORDER: "dequeue skipped a lower item that was waiting",
    STALE_EMPTY: "empty queue seen while an item was waiting (stale listing, allowed by ZooKeeper)",
    STALE_SYNC_EMPTY: "empty queue seen after a sync while an item was waiting",
}
ALLOWED_BY_ZOOKEEPER = {STALE_EMPTY}


@dataclass(frozen=True)
class Delivery:
    """An element leaving the queue: an ok dequeue's report, or a tombstone."""

    element: Any
    name: str  # the item's
    by: Op | None  # the dequeue; None for a tombstone naming no dequeue of the history


def _anomaly(kind: str, ops: Iterable[Op | None], explanation: str, **values: Any) -> dict:
    return {"type": kind, "explanation": explanation, "ops": [op_record(o) for o in ops if o is not None],
            "values": values, "zookeeper": "allowed" if kind in ALLOWED_BY_ZOOKEEPER else "violation",
            "classification": CLASSIFICATION[kind]}


def _sequence(name: str | None) -> int | None:
    match = re.search(r"(\d+)$", name or "")
    return int(match.group(1)) if match else None


def _field(op: Op, key: str) -> Any:
    return op.value.get(key) if type(op.value) is dict else None  # a plain type check: this runs per op


def _deliveries(dequeues: list[Op], tombstones: dict[str, Mapping] | None) -> tuple[list[Delivery], list[dict]]:
    """Who took what, and the tombstones that contradict the dequeues' own reports."""
    by_id = {_field(d, "op"): d for d in dequeues}
    found: list[Delivery] = []
    anomalies = []
    for d in dequeues:
        if d.ok:
            found.append(Delivery(_field(d, "element"), _field(d, "name"), d))
            stone = tombstones.get(_field(d, "name")) if tombstones is not None else None
            if tombstones is not None and (stone is None or stone.get("op") != _field(d, "op")):
                held = "no tombstone" if stone is None else f"a tombstone naming dequeue {stone.get('op')}"
                anomalies.append(_anomaly(LOST_DEQUEUE, [d], f"dequeue {_field(d, 'op')} was acknowledged taking "
                                          f"{_field(d, 'name')}, but the final state holds {held}", tombstone=stone))
    for name, stone in sorted((tombstones or {}).items()):
        d = by_id.get(stone.get("op"))
        if d is not None and d.ok:
            continue
        found.append(Delivery(stone.get("element"), name, d))
        if d is None or d.type == "fail":
            what = "failed" if d is not None else "never ran"
            anomalies.append(_anomaly(PHANTOM_DEQUEUE, [d], f"the tombstone of {name} names dequeue {stone.get('op')}, "
                                      f"which {what}", tombstone=dict(stone)))
    return found, anomalies


def _delivery_findings(enqueues: dict[Any, Op], delivered: dict[Any, list[Delivery]], decided: bool) -> list[dict]:
    found = []
    for element, deliveries in delivered.items():
        takers = [d.by for d in deliveries]
        enqueue = enqueues.get(element)
        if enqueue is None or enqueue.type == "fail":
            how = "no enqueue of it was invoked" if enqueue is None else "its enqueue failed"
            found.append(_anomaly(UNEXPECTED, [enqueue, *takers], f"element {element} was delivered, but {how}",
                                  element=element))
        if len(deliveries) > 1:
            found.append(_anomaly(DUPLICATED, takers, f"element {element} was delivered {len(deliveries)} times "
                                  f"(items {', '.join(sorted({str(d.name) for d in deliveries}))})", element=element))
    if decided:
        for element, enqueue in enqueues.items():
            if enqueue.ok and element not in delivered:
                found.append(_anomaly(LOST, [enqueue], f"element {element} was enqueued as {_field(enqueue, 'name')} "
                                      "and acknowledged, but no dequeue took it and the final drain did not find it",
                                      element=element))
    return found


class _SuffixMin:
    """The smallest number added at or after a position, numbers only ever added (a Fenwick tree
    over reversed positions)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tree: list[float] = [INF] * (size + 1)

    def add(self, position: int, number: int) -> None:
        tree, i = self.tree, self.size - position
        while i <= self.size:
            if number < tree[i]:
                tree[i] = number
            i += i & -i

    def at_or_after(self, position: int) -> float:
        tree, i, best = self.tree, self.size - position, INF
        while i > 0:
            if tree[i] < best:
                best = tree[i]
            i -= i & -i
        return best


def _order_findings(enqueues: dict[Any, Op], delivered: dict[Any, list[Delivery]], dequeues: list[Op]) -> list[dict]:
    """Each dequeue that took an item or found none, against the lowest item waiting throughout it."""
    waiting = []  # (enqueue completed, taker began, sequence, enqueue)
    for element, deliveries in delivered.items():
        enqueue, taker = enqueues.get(element), deliveries[0].by
        seq = _sequence(_field(enqueue, "name")) if enqueue is not None and enqueue.ok else None
        if seq is not None and taker is not None:
            waiting.append((enqueue.ret, taker.call, seq, enqueue))
    waiting.sort(key=lambda w: w[0])
    enqueues_by_seq = {seq: enqueue for _, _, seq, enqueue in waiting}
    began = sorted({w[1] for w in waiting})
    lowest = _SuffixMin(len(began))
    queries = sorted((d for d in dequeues if d.ok or (d.type == "fail" and d.complete.get("error") == EMPTY)),
                     key=lambda d: d.call)
    found, added = [], 0
    for d in queries:
        while added < len(waiting) and waiting[added][0] < d.call:
            _, taken_at, seq, _ = waiting[added]
            lowest.add(bisect_left(began, taken_at), seq)
            added += 1
        seq = lowest.at_or_after(bisect_right(began, d.ret))
        if seq == INF:
            continue
        enqueue = enqueues_by_seq[seq]
        item = _field(enqueue, "name")
        if not d.ok:
            kind = STALE_SYNC_EMPTY if _field(d, "sync") else STALE_EMPTY
            found.append(_anomaly(kind, [d, enqueue], f"dequeue {_field(d, 'op')} found the queue empty, but "
                                  f"{item} was waiting throughout it", waiting=item))
        elif _sequence(_field(d, "name")) is not None and seq < _sequence(_field(d, "name")):
            found.append(_anomaly(OUT_OF_ORDER, [d, enqueue], f"dequeue {_field(d, 'op')} took {_field(d, 'name')}, "
                                  f"but the lower {item} was waiting throughout it", took=_field(d, "name"), waiting=item))
    return found


def check_total_queue(history: Iterable[Mapping], consistency: str = "zookeeper") -> dict:
    ops = pair_ops(history)
    enqueues = {_field(op, "element"): op for op in ops if op.f == "enqueue"}
    dequeues = [op for op in ops if op.f == "dequeue"]
    reads = [op for op in ops if op.f == "tombstones" and op.ok]
    tombstones = {t["name"]: t for t in _field(max(reads, key=lambda r: r.ret), "tombstones")} if reads else None
    drained = any(d.invoke.get("final") and d.type == "fail" and d.complete.get("error") == EMPTY for d in dequeues)
    deliveries, anomalies = _deliveries(dequeues, tombstones)
    delivered: dict[Any, list[Delivery]] = defaultdict(list)
    for delivery in deliveries:
        delivered[delivery.element].append(delivery)
    decided = tombstones is not None and drained
    anomalies += _delivery_findings(enqueues, delivered, decided) + _order_findings(enqueues, delivered, dequeues)
    undecided = [e for e, op in enqueues.items() if op.ok and e not in delivered] if not decided else []
    out = _verdict(anomalies, consistency, undecided)
    kinds = Counter(a["type"] for a in anomalies)
    out["stats"] = {
        "enqueues": dict(Counter(op.type for op in enqueues.values())),
        "dequeues": dict(Counter(op.type for op in dequeues)),
        "acknowledged": sum(op.ok for op in enqueues.values()),
        "delivered": len(delivered),
        "recovered": sum(op.type == "info" and e in delivered for e, op in enqueues.items()),
        "lost": kinds[LOST], "duplicated": kinds[DUPLICATED], "unexpected": kinds[UNEXPECTED],
        "resolved_info_dequeues": sum(d.by is not None and d.by.type == "info" for d in deliveries),
        "drained": decided,
    }
    return out


def _verdict(anomalies: list[dict], consistency: str, undecided: list) -> dict:
    """Unknown while acknowledged elements are neither delivered nor shown lost (no drain and
    tombstone read after healing)."""
    why = (f"{len(undecided)} acknowledged elements were never delivered, and without a final drain and "
           "tombstone read it is unknown whether they were lost") if undecided else None
    return judge(anomalies, consistency, why, "every acknowledged element was delivered exactly once")


class TotalQueueChecker:
    def __init__(self, consistency: str = "zookeeper") -> None:
        self.consistency = consistency

    def check(self, history: list[dict], options: Mapping[str, Any]) -> dict:
        return check_total_queue(history, self.consistency)
