"""The unique-ids checker: sequential creates under one parent must each get their own sequence
number, in the order the creates took effect.

History values (workloads/unique_ids.py): create {"ephemeral": b}, completed ok with + {"name":
"id-0000000042", "seq": 42, "czxid": z}; list {"names": [name, ...], "cversion": c, "pzxid": z},
final (record or value "final": true: after healing and a sync) in the final phase.

Findings, every one a violation under either consistency model (they concern writes, which
ZooKeeper makes linearizable):
  duplicate   one sequence number claimed twice: two acknowledged creates returned it, or a listed
              node holds the number an acknowledged create returned under another name.
  seq-order   sequence order contradicts the order creates took effect: a create with a smaller
              czxid got a larger number (or two creates report one czxid), or a create that
              completed before another began got a larger number.
  lost        an acknowledged persistent create is missing from a final listing.
  unexpected  a listed node no create accounts for: more listed nodes than indeterminate creates
              that could have made them (a create's number is above every number acknowledged
              before it began), or a name without a sequence number.
Gaps (numbers no create or listing shows) are information: failed and indeterminate creates,
and deletes of ephemeral nodes, consume numbers in ZooKeeper too.

Result: {"valid", "explanation", "consistency", "anomalies" ({"type", "explanation", "zookeeper",
"classification", "op": a create's record, "others": the other creates' records, "seq", "name"}),
"anomaly_count", "summary": [{"classification", "count", "zookeeper"}], "creates": {"attempted",
"acknowledged", "failed", "indeterminate", "recovered", "unresolved"}, "final_listings", "nodes",
"max_seq", "gaps": {"count", "ranges": [[first, last], ...]}}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from .core import History, judge
from .history import HistoryError, Op, op_record, pair_ops, paused_gc

VIOLATION = "violation"
LISTED_GAPS = 20
TRAILING_DIGITS = re.compile(r"(\d+)$")

CLASSIFICATION = {
    "duplicate": "sequence number claimed twice",
    "seq-order": "sequence order contradicts the order creates took effect",
    "lost": "lost acknowledged create",
    "unexpected": "listed node no create accounts for",
}


def sequence_number(name: str) -> int | None:
    """The counter ZooKeeper appends to a sequential node's name: id-0000000042 -> 42."""
    match = TRAILING_DIGITS.search(name)
    return int(match.group(1)) if match else None


@dataclass(slots=True, eq=False)
class Create:
    op: Op
    name: str
    seq: int
    czxid: int | None
    ephemeral: bool

    def describe(self) -> str:
        return f"create -> {self.name} by process {self.op.process} (records {self.op.call}..{self.op.ret})"


@dataclass(slots=True, eq=False)
class Listing:
    op: Op
    names: set[str]


def check_unique_ids(history: History, consistency: str = "zookeeper") -> dict[str, Any]:
    with paused_gc():
        try:
            ops = pair_ops(history)
            acked, listings = _parse(ops)
        except HistoryError as err:
            return {"valid": "unknown", "explanation": f"malformed history: {err}", "anomalies": []}
        return _judge(ops, acked, listings, consistency)


def _judge(ops: list[Op], acked: list[Create], listings: list[Listing], consistency: str) -> dict[str, Any]:
    creates = [op for op in ops if op.f == "create"]
    pending = [op for op in creates if op.type == "info"]
    floors, out_of_time_order = _real_time(acked, pending)
    nodes = set().union(*(listing.names for listing in listings))
    unclaimed = sorted(nodes - {c.name for c in acked})
    recovered, unexpected = _account(unclaimed, sorted(floors), listings)
    anomalies = (_duplicates(acked, unclaimed) + _one_per_create(_zxid_order(acked) + out_of_time_order)
                 + _lost(acked, listings) + unexpected)
    out = judge(anomalies, consistency, None if listings else "no final listing: a lost create cannot be ruled out",
                f"all {len(acked)} acknowledged creates got their own number, in order, and survived")
    seqs = {c.seq for c in acked} | {s for s in map(sequence_number, nodes) if s is not None}
    return {
        **out,
        "creates": {"attempted": len(creates), "acknowledged": len(acked),
                    "failed": sum(op.type == "fail" for op in creates), "indeterminate": len(pending),
                    "recovered": recovered, "unresolved": len(pending) - recovered},
        "final_listings": len(listings),
        "nodes": len(nodes),
        "max_seq": max(seqs, default=None),
        "gaps": _gaps(seqs),
    }


def _parse(ops: list[Op]) -> tuple[list[Create], list[Listing]]:
    acked, listings = [], []
    for op in ops:
        if not op.ok or not isinstance(op.value, dict):
            continue
        if op.f == "create":
            name = op.value.get("name")
            if not isinstance(name, str):
                raise HistoryError(f"ok create at record {op.call} has no name")
            seq = op.value.get("seq")
            seq = seq if isinstance(seq, int) else sequence_number(name)
            if seq is None:
                raise HistoryError(f"ok create at record {op.call} returned {name!r}, without a sequence number")
            czxid = op.value.get("czxid")
            acked.append(Create(op, name, seq, czxid if isinstance(czxid, int) else None,
                                bool(op.value.get("ephemeral"))))
        elif op.f == "list" and (op.invoke.get("final") or op.value.get("final")):
            names = op.value.get("names")
            if not isinstance(names, list):
                raise HistoryError(f"ok list at record {op.call} has no list of names")
            listings.append(Listing(op, set(names)))
    listings.sort(key=lambda listing: listing.op.call)
    return acked, listings


def _zxid_order(acked: list[Create]) -> list[dict]:
    """In czxid order the numbers must strictly increase; each create is compared with the
    largest number an earlier czxid got."""
    found = []
    best = prev = None
    for c in sorted((c for c in acked if c.czxid is not None), key=lambda c: (c.czxid, c.seq)):
        if prev is not None and prev.czxid == c.czxid and prev.name != c.name:
            found.append(_anomaly("seq-order", c, [prev], f"{c.describe()} and {prev.describe()} report one "
                                  f"czxid ({c.czxid}), but one transaction creates one node."))
        elif best is not None and best.seq > c.seq:
            found.append(_anomaly("seq-order", c, [best], f"{c.describe()} (czxid {c.czxid}) got a smaller "
                                  f"number than {best.describe()}, created earlier (czxid {best.czxid})."))
        if best is None or c.seq > best.seq:
            best = c
        prev = c
    return found


def _real_time(acked: list[Create], pending: list[Op]) -> tuple[list[int], list[dict]]:
    """One sweep in invocation order over the numbers acknowledged so far: an acknowledged create
    must top every number acknowledged before it began; an indeterminate one can only have taken
    a number above that (its floor). Returns the floors and the creates that did not top it."""
    done = sorted(acked, key=lambda c: c.op.ret)
    by_call = sorted([(c.op.call, c) for c in acked] + [(op.call, None) for op in pending], key=lambda x: x[0])
    floors, found = [], []
    best, j = None, 0
    for call, c in by_call:
        while j < len(done) and done[j].op.ret < call:
            if best is None or done[j].seq > best.seq:
                best = done[j]
            j += 1
        if c is None:
            floors.append(best.seq if best is not None else -1)
        elif best is not None and best.seq > c.seq:
            found.append(_anomaly("seq-order", c, [best], f"{c.describe()} got a smaller number than "
                                  f"{best.describe()}, which completed before it began."))
    return floors, found


def _one_per_create(anomalies: list[dict]) -> list[dict]:
    """A create out of order both ways is reported once, for the first reason found."""
    seen, out = set(), []
    for a in anomalies:
        if a["op"]["invoke_index"] not in seen:
            seen.add(a["op"]["invoke_index"])
            out.append(a)
    return out


def _duplicates(acked: list[Create], unclaimed: list[str]) -> list[dict]:
    claims: dict[int, list] = {}
    for c in acked:
        claims.setdefault(c.seq, []).append(c)
    for name in unclaimed:
        seq = sequence_number(name)
        if seq in claims:
            claims[seq].append(name)
    found = []
    for seq, claimants in claims.items():
        if len(claimants) < 2:
            continue
        first, others = claimants[0], claimants[1:]
        what = ", ".join(o.describe() if isinstance(o, Create) else f"the listed node {o}" for o in others)
        found.append(_anomaly("duplicate", first, [o for o in others if isinstance(o, Create)],
                              f"number {seq} was claimed by {first.describe()} and by {what}."))
    return found


def _lost(acked: list[Create], listings: list[Listing]) -> list[dict]:
    """Persistent nodes outlive their sessions: a final listing after the create must show it."""
    found = []
    for c in acked:
        if c.ephemeral:
            continue
        missing = [listing for listing in listings if listing.op.call > c.op.ret and c.name not in listing.names]
        if missing:
            op = missing[0].op
            found.append(_anomaly("lost", c, [], f"{c.describe()} is missing from the final listing by "
                                  f"process {op.process} (records {op.call}..{op.ret}; listings that miss it: "
                                  f"{len(missing)})."))
    return found


def _account(unclaimed: list[str], floors: list[int], listings: list[Listing]) -> tuple[int, list[dict]]:
    """Match listed nodes no acknowledged create returned to indeterminate creates that could have
    made them (its number above the create's floor). Numbers ascending, a node can use any create
    a smaller number could, so taking any available create is as good as any other choice."""
    recovered, found, available, i = 0, [], 0, 0
    for name in sorted(unclaimed, key=lambda n: (sequence_number(n) is None, sequence_number(n) or 0)):
        seq = sequence_number(name)
        while seq is not None and i < len(floors) and floors[i] < seq:
            available, i = available + 1, i + 1
        if seq is not None and available:
            available, recovered = available - 1, recovered + 1
            continue
        why = "has no sequence number" if seq is None else "is one node more than the creates that could have made it"
        shown_by = next(listing.op for listing in listings if name in listing.names)
        found.append({"type": "unexpected", "name": name, "seq": seq, "zookeeper": VIOLATION,
                      "classification": CLASSIFICATION["unexpected"], "op": _brief(shown_by),
                      "explanation": f"the final listing by process {shown_by.process} holds {name}, which {why}."})
    return recovered, found


def _brief(listing: Op) -> dict:
    """A listing's record for a report: its size instead of every name."""
    record = op_record(listing)
    names = record["value"].pop("names", None) or []
    record["size"] = len(names)
    return record


def _gaps(seqs: set[int]) -> dict[str, Any]:
    """Numbers from 0 to the largest one seen that nothing shows, as inclusive ranges."""
    ranges, expected = [], 0
    for s in sorted(seqs):
        if s > expected:
            ranges.append([expected, s - 1])
        expected = max(expected, s + 1)
    return {"count": sum(b - a + 1 for a, b in ranges), "ranges": ranges[:LISTED_GAPS]}


def _anomaly(kind: str, c: Create, others: list[Create], explanation: str) -> dict:
    return {"type": kind, "name": c.name, "seq": c.seq, "explanation": explanation, "zookeeper": VIOLATION,
            "classification": CLASSIFICATION[kind], "op": op_record(c.op), "others": [op_record(o.op) for o in others]}


class UniqueIdsChecker:
    """The unique-ids workload's checker; its findings concern writes, so both models agree."""

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        return check_unique_ids(history, options.get("consistency", "zookeeper"))
