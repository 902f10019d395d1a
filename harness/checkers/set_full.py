"""The set checker (in the spirit of Jepsen's set-full): every element is added once, reads return
the whole set, and each element is followed from the moment it certainly exists to the last read.

History values (workloads/set.py): add {"element": e, ...}; read {"elements": [e, ...], ...}.
A read is final when its record or its value says "final": true (after healing and a sync).

An element is "known" from the first completion that proves it exists: its acknowledged add, or
a read that held it. A read "misses" an element known before the read began and absent from it.
  lost        a final read missed it. Always a violation.
  unexpected  a read held it, but no add of it that may have taken effect (ok or info) exists.
  duplicated  one read held it more than once.
  stale       an ordinary read missed it. ZooKeeper allows that of a lagging server, except when
              the read's session had already seen or added it (sessions never go back), or the
              read held an element whose add began only after this one was known (a read sees a
              prefix of the write order): those are violations. Under --consistency linearizable
              every stale read counts.
  recovered   no add of it was acknowledged, yet a read held it: an indeterminate add took effect
              (information, not an anomaly).
Visibility latency, per acknowledged element: from its add's invocation to the invocation of the
first read after which every read held it (an upper bound: reads only sample the set).

Result: {"valid", "explanation", "consistency", "anomalies" (one per element and type, those that
count first; each {"type", "element", "explanation", "zookeeper", "classification", "op": the read
that shows it, "add": the add, when there is one}), "anomaly_count", "summary": [{"classification",
"count", "zookeeper"}], "elements": {"attempted", "acknowledged", "recovered", "lost", "unexpected",
"duplicated", "stale", "stale_reads", "never_read", "unstable", "unchecked"}, "recovered": [e, ...],
"lost": [e, ...], "final_reads", "visibility_latency_ms": {"count", "p50", "p90", "p99", "max"}}.
Read records in a report carry "size" instead of their element list.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Iterable, Mapping

from .core import MAX_REPORTED_ANOMALIES, History, summarise
from .history import INF, HistoryError, Op, SessionViews, hashable, op_record, pair_ops, paused_gc
from .stats import quantile

ALLOWED, VIOLATION = "allowed", "violation"
LISTED = 20  # elements named per outcome in the result

CLASSIFICATION = {
    "lost": "lost element: known to exist, missing from a final read",
    "unexpected": "read of an element never added",
    "duplicated": "element twice in one read",
    "stale": "stale read by another session (allowed by ZooKeeper)",
    "stale-session": "read went back in its session (it had seen or added the element)",
    "stale-prefix": "read saw a later add but missed an earlier one (not a prefix of the write order)",
}


@dataclass(slots=True, eq=False)
class Element:
    """One element's life, as the sweep over the history finds it."""

    value: Any
    adds: tuple[Op, ...] = ()  # a tuple: most elements have one add, and there may be millions
    first_call: float = INF  # when it can first have been added (_first_effective_call)
    known: float = INF  # the record index from which it certainly exists
    known_by: Op | None = None  # the op that proved it exists: its acknowledged add, or a read
    first_read: Op | None = None  # the first read to complete holding it
    duplicated_in: list[Op] | None = None  # reads that held it more than once
    stale_reads: int = 0
    first_stale: Op | None = None
    violation: tuple[Op, str] | None = None  # the first stale read ZooKeeper forbids, and why
    lost_reads: int = 0
    first_lost: Op | None = None
    reads_before_add: int | None = None  # reads begun before its first acknowledged add
    last_miss: int = -1  # the last read (by position) begun after that add that missed it

    def acknowledged(self) -> bool:
        return any(op.ok for op in self.adds)


@dataclass(slots=True)
class Read:
    op: Op
    members: set
    final: bool


class Sweep:
    """Events in history order. `known` holds every element known so far, so what a read misses
    is `known - members` as it begins: set operations carry the bulk of the work, and an element
    costs interpreted code only when something happens to it."""

    def __init__(self, elements: dict[Any, Element]) -> None:
        self.elements = elements
        for el in elements.values():
            el.first_call = _first_effective_call(el)
        self.known: set = set()
        self.pending: set = set()  # acknowledged elements whose add began, not yet known
        self.seen = SessionViews(_elements_of)  # its returned reads and acknowledged adds
        self.reads: list[Op] = []  # ok reads, by invocation: a read's position is its index here
        self.in_flight: dict[int, Read] = {}

    def add_began(self, op: Op) -> None:
        el = self.elements[hashable(op.value["element"])]
        if op.ok and el.reads_before_add is None:  # events come by invocation: the first acknowledged add
            el.reads_before_add = len(self.reads)
            if el.value not in self.known:
                self.pending.add(el.value)

    def add_acknowledged(self, op: Op) -> None:
        e = hashable(op.value["element"])
        self._learn(e, op)
        self.seen.saw(op.session, op)

    def read_began(self, op: Op) -> None:
        seen, members = _elements_read(op)
        read = Read(op, members, _is_final(op))
        if len(members) != len(seen):
            for e, n in Counter(seen).items():
                if n > 1:
                    el = self._element(e)
                    el.duplicated_in = (el.duplicated_in or []) + [op]
        position = len(self.reads)
        self.reads.append(op)
        self.in_flight[op.id] = read
        missed = self.known - members
        if missed:
            self._missed(read, position, missed)
        for e in self.pending - members:
            self.elements[e].last_miss = position

    def read_returned(self, op: Op) -> None:
        read = self.in_flight.pop(op.id)
        for e in read.members - self.known:
            el = self._element(e)
            el.first_read = op
            self._learn(e, op)
        self.seen.saw(op.session, op)

    def _missed(self, read: Read, position: int, missed: set) -> None:
        seen = None
        newest_add = None
        for e in missed:
            el = self.elements[e]
            el.last_miss = position
            if read.final:
                el.lost_reads += 1
                el.first_lost = el.first_lost or read.op
                continue
            el.stale_reads += 1
            el.first_stale = el.first_stale or read.op
            if el.violation is not None:
                continue
            if seen is None:  # only reads that missed something need these two
                seen = self.seen.of(read.op.session)
            if e in seen:
                el.violation = (read.op, "stale-session")
                continue
            if newest_add is None:
                newest_add = self._newest_add(read.members)
            if newest_add > el.known:
                el.violation = (read.op, "stale-prefix")

    def _newest_add(self, members: set) -> float:
        """The latest moment at which one of these elements can first have been added."""
        get = self.elements.get
        return max((c for e in members if (el := get(e)) is not None and (c := el.first_call) != INF), default=-INF)

    def _learn(self, e: Any, by: Op) -> None:
        if e in self.known:
            return
        el = self.elements[e]
        el.known, el.known_by = by.ret, by
        self.known.add(e)
        self.pending.discard(e)

    def _element(self, e: Any) -> Element:
        el = self.elements.get(e)
        if el is None:
            el = self.elements[e] = Element(e)
        return el


def check_set(history: History, consistency: str = "zookeeper") -> dict[str, Any]:
    with paused_gc():
        try:
            sweep = _sweep(pair_ops(history))
        except HistoryError as err:
            return {"valid": "unknown", "explanation": f"malformed history: {err}", "anomalies": []}
        return _judge(sweep, consistency)


def _judge(sweep: Sweep, consistency: str) -> dict[str, Any]:
    final_calls = [op.call for op in sweep.reads if _is_final(op)]
    anomalies: list[dict] = []
    named: dict[str, list] = {k: [] for k in ("recovered", "lost", "unexpected", "duplicated", "stale",
                                              "never_read", "unstable", "unchecked")}
    latencies: list[float] = []
    for el in sweep.elements.values():
        found = _anomalies(el)
        anomalies.extend(found)
        for a in found:
            named[a["type"]].append(el.value)
        if el.first_read is not None and not el.acknowledged() and any(op.type == "info" for op in el.adds):
            named["recovered"].append(el.value)
        if el.known != INF and bisect_right(final_calls, el.known) == len(final_calls):
            named["unchecked"].append(el.value)
        visibility = _visibility(el, sweep.reads)
        if isinstance(visibility, str):
            named[visibility].append(el.value)
        elif visibility is not None:
            latencies.append(visibility)
    stale_reads = sum(el.stale_reads for el in sweep.elements.values())
    return _result(sweep.elements, anomalies, named, stale_reads, latencies, len(final_calls), consistency)


def _sweep(ops: list[Op]) -> Sweep:
    elements: dict[Any, Element] = {}
    for op in ops:
        if op.f == "add":
            if not isinstance(op.value, dict) or "element" not in op.value:
                raise HistoryError(f"add at record {op.call} has no element")
            e = hashable(op.value["element"])
            el = elements.get(e)
            if el is None:
                el = elements[e] = Element(e)
            el.adds += (op,)
    sweep = Sweep(elements)
    # Events in record order, merged from invocations (the ops' own order) and completions
    # (sorted by record): two lists of ops rather than a list of every event.
    begins = [op for op in ops if op.f == "add" or (op.f == "read" and op.ok)]
    ends = sorted((op for op in begins if op.ok), key=attrgetter("ret"))
    i = j = 0
    while i < len(begins) or j < len(ends):
        if j == len(ends) or (i < len(begins) and begins[i].call < ends[j].ret):
            op, i = begins[i], i + 1
            (sweep.add_began if op.f == "add" else sweep.read_began)(op)
        else:
            op, j = ends[j], j + 1
            (sweep.add_acknowledged if op.f == "add" else sweep.read_returned)(op)
    return sweep


def _first_effective_call(el: Element) -> float:
    """When it can first have been added: the earliest add that may have taken effect."""
    return min((op.call for op in el.adds if op.type != "fail"), default=INF)


def _elements_of(op: Op) -> Iterable[Any]:
    """The elements an acknowledged add added or an ok read held."""
    return (hashable(op.value["element"]),) if op.f == "add" else _elements_read(op)[1]


def _elements_read(op: Op) -> tuple[list, set]:
    seen = op.value.get("elements") if isinstance(op.value, dict) else None
    if not isinstance(seen, list):
        raise HistoryError(f"ok read at record {op.call} has no list of elements")
    try:
        return seen, set(seen)
    except TypeError:  # JSON lists or objects as elements: compare them as tuples
        seen = [hashable(e) for e in seen]
        return seen, set(seen)


def _anomalies(el: Element) -> list[dict]:
    found = []
    if el.first_read is not None and _first_effective_call(el) == INF:
        what = "no add of it was attempted" if not el.adds else "every add of it failed"
        return [_anomaly("unexpected", el, el.first_read, VIOLATION, f"{_describe_read(el.first_read)} saw "
                         f"{el.value!r}, but {what}.")]
    if el.duplicated_in:
        first = el.duplicated_in[0]
        found.append(_anomaly("duplicated", el, first, VIOLATION, f"{_describe_read(first)} held {el.value!r} "
                              f"more than once (reads that did: {len(el.duplicated_in)})."))
    if el.first_lost is not None:
        found.append(_anomaly("lost", el, el.first_lost, VIOLATION, f"{_describe_read(el.first_lost)} "
                              f"missed {el.value!r}, which exists since {_known_by(el)} (final reads that missed "
                              f"it: {el.lost_reads})."))
    if el.violation is not None:
        read, why = el.violation
        because = ("its session had already seen or added it" if why == "stale-session"
                   else "it saw an add that began after that")
        found.append(_anomaly("stale", el, read, VIOLATION, f"{_describe_read(read)} missed {el.value!r}, which "
                              f"exists since {_known_by(el)}, though {because}.", CLASSIFICATION[why]))
    elif el.first_stale is not None:
        found.append(_anomaly("stale", el, el.first_stale, ALLOWED, f"{_describe_read(el.first_stale)} missed "
                              f"{el.value!r}, which exists since {_known_by(el)} (reads that missed it: "
                              f"{el.stale_reads})."))
    return found


def _visibility(el: Element, reads: list[Op]) -> float | str | None:
    """Milliseconds from an acknowledged element's add to the first read after which every read
    held it; or why there is no such read ("never_read", "unstable"); None if not acknowledged."""
    add = min((op for op in el.adds if op.ok), key=lambda op: op.call, default=None)
    if add is None:
        return None
    if el.reads_before_add == len(reads):
        return "never_read"
    stable_at = max(el.reads_before_add, el.last_miss + 1)
    if stable_at == len(reads):
        return "unstable"
    t0, t1 = add.invoke.get("time_ns"), reads[stable_at].invoke.get("time_ns")
    return max(0.0, (t1 - t0) / 1e6) if isinstance(t0, int) and isinstance(t1, int) else None


def _anomaly(kind: str, el: Element, read: Op, zookeeper: str, explanation: str,
             classification: str | None = None) -> dict:
    out = {"type": kind, "element": el.value, "explanation": explanation, "zookeeper": zookeeper,
           "classification": classification or CLASSIFICATION[kind], "op": _brief(read)}
    add = next((op for op in el.adds if op.ok), el.adds[0] if el.adds else None)
    if add is not None:
        out["add"] = op_record(add)
    return out


def _brief(read: Op) -> dict:
    """A read's record for a report: its size instead of the whole set."""
    record = op_record(read)
    record["size"] = len(record["value"].pop("elements", None) or ())
    return record


def _known_by(el: Element) -> str:
    """What proved the element exists (made into words only for the few elements reported)."""
    op = el.known_by
    return f"its add was acknowledged (record {op.ret})" if op.f == "add" else f"{_describe_read(op)} saw it"


def _is_final(read: Op) -> bool:
    return bool(read.invoke.get("final") or read.value.get("final"))


def _describe_read(op: Op) -> str:
    return f"{'final read' if _is_final(op) else 'read'} by process {op.process} (records {op.call}..{op.ret})"


def _counts(a: dict, consistency: str) -> bool:
    """Whether an anomaly makes the history invalid under the test's consistency model."""
    return a["zookeeper"] == VIOLATION or consistency == "linearizable"


def _verdict(anomalies: list[dict], named: dict[str, list], stale_reads: int, acknowledged: int,
             final_reads: int, consistency: str) -> tuple[bool | str, str]:
    bad = [a for a in anomalies if _counts(a, consistency)]
    if bad:
        only_stale = all(a["zookeeper"] == ALLOWED for a in bad)
        return False, (f"{bad[0]['explanation']} (anomalies: {len(bad)})"
                       + (" ZooKeeper's own model allows every one of them." if only_stale else ""))
    if final_reads == 0:
        return "unknown", "no final read: a lost element cannot be ruled out"
    if named["unchecked"]:
        return "unknown", (f"{len(named['unchecked'])} known elements have no final read after them: "
                           "their loss cannot be ruled out")
    allowed = f"; {stale_reads} stale reads, allowed by ZooKeeper" if stale_reads else ""
    return True, f"all {acknowledged} acknowledged elements survived{allowed}"


def _result(elements: dict[Any, Element], anomalies: list[dict], named: dict[str, list], stale_reads: int,
            latencies: list[float], final_reads: int, consistency: str) -> dict[str, Any]:
    anomalies.sort(key=lambda a: (not _counts(a, consistency), a["op"]["invoke_index"]))
    acknowledged = sum(1 for el in elements.values() if el.acknowledged())
    valid, explanation = _verdict(anomalies, named, stale_reads, acknowledged, final_reads, consistency)
    latencies.sort()
    return {
        "valid": valid,
        "explanation": explanation,
        "consistency": consistency,
        "anomalies": anomalies[:MAX_REPORTED_ANOMALIES],
        "anomaly_count": len(anomalies),
        "summary": summarise(anomalies),
        "elements": {
            "attempted": sum(1 for el in elements.values() if el.adds),
            "acknowledged": acknowledged,
            **{k: len(v) for k, v in named.items()},
            "stale_reads": stale_reads,
        },
        "recovered": sorted(named["recovered"], key=str)[:LISTED],
        "lost": sorted(named["lost"], key=str)[:LISTED],
        "final_reads": final_reads,
        "visibility_latency_ms": {"count": len(latencies), "p50": quantile(latencies, 0.5),
                                  "p90": quantile(latencies, 0.9), "p99": quantile(latencies, 0.99),
                                  "max": latencies[-1] if latencies else None},
    }


class SetChecker:
    """The set workload's checker; the consistency model comes from the test's options."""

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        return check_set(history, options.get("consistency", "zookeeper"))
