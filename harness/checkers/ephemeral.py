"""The ephemeral checker: an ephemeral node lives exactly as long as its session.

History values (workloads/ephemeral.py): create {"name"}, ok + {"owner": "0x...", "czxid"};
read {"names": [...]} (final when the record or value says "final": true: taken after healing,
once every session of the run had ended or timed out); close, ok {"session", "zxid"}; any
completion may carry "expired": [{"session"}], sessions its client was told had expired.

In ZooKeeper's order an ephemeral exists from its create's txn (czxid) until its session's
closeSession txn (an explicit close, or the leader expiring it), and a read shows the state at
its reply's zxid. What the history proves of an ephemeral's life:
  born   at its czxid, or at the latest at the zxid of the first read that listed it;
  alive  up to every zxid a server returned to an op of its owner session (a server answers a
         session only until it applies the session's close), and every zxid of a read listing it;
  dead   from the zxid of its owner's acknowledged close.
Findings:
  vanished         a read at a zxid within the proven life missed it. Violation; named
                   "reappeared" when the proof is a read at the same or a later zxid that listed it.
  survived-close   a read at or above the close's zxid listed it, or a final read listed it
                   after the close was acknowledged. Violation.
  survived-expiry  a final read listed it after its client was told the session expired. Violation.
  outlived         a final read listed it though its session's end is not recorded: every client
                   of the run had stopped and the read waited out the session timeout. Violation.
  before-create    a read at a zxid below its czxid listed it. Violation.
  unexpected       a read listed a name no create that may have taken effect made. Violation.
  stale            a read begun after it was known to exist (acknowledged create, or a read that
                   listed it) missed it because its state predates the create (zxid < czxid):
                   allowed (a lagging server), unless the read's session had already created or
                   seen it (its view went back: violation).
  stale-listing    a read begun after its owner's close was acknowledged listed it at a zxid
                   below the close's: allowed (a lagging server).
Under --consistency linearizable the allowed findings count too. Reads without a zxid are judged
only as final reads. The absence of an expiry report proves nothing (a session may expire after
its client's last op), so only recorded evidence makes a session alive or ended.

Result: {"valid", "explanation", "consistency", "anomalies" ({"type", "name", "explanation",
"zookeeper", "classification", "op": the read, "create", "witness"?, "count"}), "anomaly_count",
"summary", "ephemerals": {"attempted", "acknowledged", "indeterminate", "life_proven"},
"sessions": {"owners", "closed", "close_unknown", "expired"}, "reads", "final_reads"}.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right, insort
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from typing import Any, Mapping

from .core import History, judge
from .history import INF, HistoryError, Op, SessionViews, op_record, pair_ops, paused_gc

ALLOWED, VIOLATION = "allowed", "violation"

CLASSIFICATION = {
    "vanished": "ephemeral missing while its session was alive",
    "reappeared": "ephemeral missing at a zxid where a read listed it or after which one did",
    "survived-close": "ephemeral listed after its session's close",
    "survived-expiry": "ephemeral listed by a final read after its session expired",
    "outlived": "ephemeral listed by a final read after every session of the run ended",
    "before-create": "ephemeral listed at a zxid before its create",
    "unexpected": "listed node no create accounts for",
    "stale": "stale read missed a new ephemeral (allowed by ZooKeeper)",
    "stale-session": "stale read missed an ephemeral its session had seen",
    "stale-listing": "stale read listed an ephemeral after its session's close (allowed by ZooKeeper)",
}


@dataclass(slots=True, eq=False)
class Ephemeral:
    name: str
    creates: list[Op] = field(default_factory=list)
    owner: str | None = None
    czxid: int | None = None
    known_at: float = INF  # record index from which it certainly exists
    # ok reads that listed it, as positions in the list of reads: one entry per name per read,
    # the largest structure of a check, so 4 bytes each rather than a reference and its slot
    listings: array = field(default_factory=lambda: array("i"))
    born: int | None = None  # the zxid from which it certainly exists (_parse)


@dataclass(slots=True)
class Session:
    alive_zxid: int = 0  # the largest zxid returned to one of its ops
    alive_op: Op | None = None
    close: Op | None = None  # its acknowledged close
    close_zxid: int | None = None
    close_unknown: bool = False
    expired_at: float = INF  # record index of the completion reporting its expiry


@dataclass(slots=True)
class Read:
    op: Op
    names: list  # the read's own list (membership is tested only where something looks wrong)
    zxid: int | None
    final: bool


class Findings:
    """One anomaly per (ephemeral, type): the first occurrence, and how many there were."""

    def __init__(self) -> None:
        self.found: dict[tuple[str, str], dict] = {}

    def add(self, kind: str, el: Ephemeral | str, read: Op, text: str, zookeeper: str = VIOLATION,
            witness: Op | None = None) -> None:
        name = el.name if isinstance(el, Ephemeral) else el
        key = (name, kind)
        if key in self.found:
            self.found[key]["count"] += 1
            return
        out = {"type": kind, "name": name, "explanation": text, "zookeeper": zookeeper,
               "classification": CLASSIFICATION[kind], "op": _brief(read), "count": 1}
        if isinstance(el, Ephemeral) and el.creates:
            out["create"] = op_record(next((c for c in el.creates if c.ok), el.creates[0]))
        if witness is not None:
            out["witness"] = _brief(witness)
        self.found[key] = out


def check_ephemeral(history: History, consistency: str = "zookeeper") -> dict[str, Any]:
    with paused_gc():
        try:
            ephemerals, sessions, reads = _parse(pair_ops(history))
        except HistoryError as err:
            return {"valid": "unknown", "explanation": f"malformed history: {err}", "anomalies": []}
        findings = Findings()
        _life(ephemerals, sessions, reads, findings)
        _after_end(ephemerals, sessions, reads, findings)
        for el in ephemerals.values():  # freed before the sweep builds its own lists
            el.listings = array("i")
        _stale_misses(ephemerals, reads, findings)
        return _result(ephemerals, sessions, reads, list(findings.found.values()), consistency)


def _zxid(op: Op) -> int | None:
    z = op.zxid
    return z if isinstance(z, int) and not isinstance(z, bool) and z > 0 else None


def _parse(ops: list[Op]) -> tuple[dict[str, Ephemeral], dict[str, Session], list[Read]]:
    ephemerals: dict[str, Ephemeral] = {}
    sessions: dict[str, Session] = {}
    reads: list[Read] = []
    for op in ops:
        value = op.complete.get("value") if op.complete is not None else None
        for lost in (value.get("expired") or ()) if isinstance(value, Mapping) else ():
            if not isinstance(lost, Mapping) or lost.get("session") is None:
                continue
            s = sessions.setdefault(lost["session"], Session())
            s.expired_at = min(s.expired_at, op.complete["index"])
        if op.f == "create":
            _parse_create(op, ephemerals)
        elif op.f == "close":
            _parse_close(op, sessions)
        if op.ok and op.f != "close" and _zxid(op) is not None and isinstance(op.session, str):
            s = sessions.setdefault(op.session, Session())
            if _zxid(op) > s.alive_zxid:
                s.alive_zxid, s.alive_op = _zxid(op), op
        if op.f == "read" and op.ok:
            names = op.value.get("names") if isinstance(op.value, Mapping) else None
            if not isinstance(names, list):
                raise HistoryError(f"ok read at record {op.call} has no list of names")
            read = Read(op, names, _zxid(op), bool(op.invoke.get("final") or op.value.get("final")))
            position = len(reads)
            reads.append(read)
            for name in set(names):  # every name of every read: the bulk of the work
                el = ephemerals.get(name)
                if el is None:
                    el = ephemerals[name] = Ephemeral(name)
                el.listings.append(position)
                if op.ret < el.known_at:
                    el.known_at = op.ret
    for el in ephemerals.values():
        el.born = el.czxid if el.czxid is not None else min(
            (z for i in el.listings if (z := reads[i].zxid) is not None), default=None)
    return ephemerals, sessions, reads


def _parse_create(op: Op, ephemerals: dict[str, Ephemeral]) -> None:
    if not isinstance(op.value, Mapping) or "name" not in op.value:
        raise HistoryError(f"create at record {op.call} has no name")
    el = ephemerals.setdefault(op.value["name"], Ephemeral(op.value["name"]))
    el.creates.append(op)
    if op.ok:
        el.owner, el.czxid = op.value.get("owner") or op.session, op.value.get("czxid")
        el.known_at = min(el.known_at, op.ret)
    elif op.type == "info" and el.owner is None:
        el.owner = op.invoke.get("session")


def _parse_close(op: Op, sessions: dict[str, Session]) -> None:
    value = op.complete.get("value") if op.complete is not None else None  # an info close names its session too
    session = value.get("session") if isinstance(value, Mapping) else None
    if session is None:
        return
    s = sessions.setdefault(session, Session())
    if op.ok and isinstance(op.value.get("zxid"), int):
        s.close, s.close_zxid = op, op.value["zxid"]
    elif op.type == "info":
        s.close_unknown = True


def _life(ephemerals: dict[str, Ephemeral], sessions: dict[str, Session], reads: list[Read],
          findings: Findings) -> None:
    """Reads whose zxid falls in an ephemeral's proven life must list it. Per ephemeral, the
    reads in that zxid range are counted (bisection) against those that listed it; only when
    they differ are the reads in the range walked."""
    by_zxid = sorted((r for r in reads if r.zxid is not None), key=lambda r: r.zxid)
    zxids = [r.zxid for r in by_zxid]
    for el in ephemerals.values():
        born = el.born
        if born is None:
            continue
        listed = sorted(((z, reads[i].op) for i in el.listings if (z := reads[i].zxid) is not None),
                        key=itemgetter(0))
        owner = sessions.get(el.owner) if el.owner is not None else None
        proofs = [p for p in (listed[-1] if listed else None,
                              (owner.alive_zxid, owner.alive_op) if owner and owner.alive_op else None) if p]
        if not proofs:
            continue
        until, proof = max(proofs, key=lambda p: p[0])
        lo, hi = bisect_left(zxids, born), bisect_right(zxids, until)
        if hi - lo <= sum(1 for z, _ in listed if born <= z <= until):
            continue
        listed_zxids = [z for z, _ in listed]
        for read in by_zxid[lo:hi]:
            if el.name in read.names:
                continue
            again = bisect_left(listed_zxids, read.zxid)
            if again < len(listed):
                z, witness = listed[again]
                findings.add("reappeared", el, read.op, f"{_describe(read)} missed {el.name}, born at "
                             f"{born:#x}, which a read at {z:#x} listed", witness=witness)
            else:
                findings.add("vanished", el, read.op, f"{_describe(read)} missed {el.name}, born at {born:#x}, "
                             f"while its session {el.owner} was alive (an op of it returned {until:#x})",
                             witness=proof)


def _after_end(ephemerals: dict[str, Ephemeral], sessions: dict[str, Session], reads: list[Read],
               findings: Findings) -> None:
    """Listings after the owner's session ended, and listings that predate the create."""
    for el in ephemerals.values():
        if not any(c.type != "fail" for c in el.creates):
            if not el.listings:
                continue
            first = reads[el.listings[0]].op
            findings.add("unexpected", el, first, f"{_describe_op(first)} listed {el.name}, "
                         f"but {'every create of it failed' if el.creates else 'nothing created it'}")
            continue
        owner = sessions.get(el.owner) if el.owner is not None else None
        for i in el.listings:
            read = reads[i]
            op, z, final = read.op, read.zxid, read.final
            if el.czxid is not None and z is not None and z < el.czxid:
                findings.add("before-create", el, op, f"{_describe_op(op)} at {z:#x} listed {el.name}, "
                             f"created at {el.czxid:#x}")
            if owner is None:
                if final:
                    findings.add("outlived", el, op, f"final {_describe_op(op)} listed {el.name}; its session "
                                 f"{el.owner} should have ended with the run's clients")
                continue
            if owner.close_zxid is not None and ((z is not None and z >= owner.close_zxid)
                                                 or (final and op.call > owner.close.ret)):
                findings.add("survived-close", el, op, f"{_describe_op(op)} listed {el.name} after its session "
                             f"{el.owner} closed at {owner.close_zxid:#x}", witness=owner.close)
            elif final:
                kind = "survived-expiry" if owner.expired_at < op.call else "outlived"
                findings.add(kind, el, op, f"final {_describe_op(op)} listed {el.name}; its session {el.owner} "
                             + ("had expired" if kind == "survived-expiry" else "should have ended with the run"))
            elif owner.close is not None and op.call > owner.close.ret:
                findings.add("stale-listing", el, op, f"{_describe_op(op)} listed {el.name} after its session "
                             f"closed at {owner.close_zxid:#x}", ALLOWED, witness=owner.close)


def _stale_misses(ephemerals: dict[str, Ephemeral], reads: list[Read], findings: Findings) -> None:
    """Reads begun after an ephemeral was known that missed it with a state older than its
    create. Swept in record order; the known ephemerals are kept sorted by birth zxid, so a
    read only visits those born after its own zxid: the ones it missed."""
    # (record index, order, item), merged from three sorted lists rather than sorted as one list
    # of every event: an ephemeral known, a create acknowledged or a read returned, a read begun.
    known_at = sorted((el for el in ephemerals.values() if el.known_at != INF and el.born is not None),
                      key=attrgetter("known_at"))
    done = sorted([c for el in ephemerals.values() for c in el.creates if c.ok] + reads, key=_returned)
    begun = [r for r in reads if r.zxid is not None and not r.final]  # reads come in invocation order
    events = heapq.merge(((el.known_at, 0, el) for el in known_at), ((_returned(x), 1, x) for x in done),
                         ((r.op.call, 2, r) for r in begun), key=itemgetter(0, 1))
    known: list[tuple[int, str]] = []  # (born, name)
    seen = SessionViews(lambda names: (names,) if isinstance(names, str) else names)  # created or listed
    for _, kind, item in events:
        if kind == 0:
            insort(known, (item.born, item.name))
        elif kind == 1:  # an acknowledged create, or a read that returned
            if type(item) is Read:
                seen.saw(item.op.session, item.names)
            else:
                seen.saw(item.session, item.value["name"])
        else:
            for born, name in known[bisect_right(known, (item.zxid, "\uffff")):]:
                if name in item.names:
                    continue  # listed below its czxid: before-create
                went_back = name in seen.of(item.op.session)
                findings.add("stale-session" if went_back else "stale", ephemerals[name], item.op,
                             f"{_describe(item)} missed {name}, known to exist and born at {born:#x}"
                             + (", though its session had already seen it" if went_back else ""),
                             VIOLATION if went_back else ALLOWED)


def _returned(item: Op | Read) -> float:
    return item.op.ret if type(item) is Read else item.ret


def _result(ephemerals: dict[str, Ephemeral], sessions: dict[str, Session], reads: list[Read],
            anomalies: list[dict], consistency: str) -> dict[str, Any]:
    finals = sum(1 for r in reads if r.final)
    allowed = sum(a["count"] for a in anomalies)
    acknowledged = sum(1 for e in ephemerals.values() if e.czxid is not None)
    out = judge(anomalies, consistency,
                None if finals else "no final read: an ephemeral outliving its session cannot be ruled out",
                f"{acknowledged} acknowledged ephemerals lived exactly as long as their sessions"
                + (f"; {allowed} stale reads, allowed by ZooKeeper" if allowed else ""))
    owners = {e.owner for e in ephemerals.values() if e.owner is not None}
    return {
        **out,
        "ephemerals": {
            "attempted": sum(1 for e in ephemerals.values() if e.creates),
            "acknowledged": sum(1 for e in ephemerals.values() if e.czxid is not None),
            "indeterminate": sum(1 for e in ephemerals.values() if e.creates and not any(c.ok for c in e.creates)),
            "life_proven": sum(1 for e in ephemerals.values() if e.born is not None and e.owner in sessions),
        },
        "sessions": {
            "owners": len(owners),
            "closed": sum(1 for s in sessions.values() if s.close is not None),
            "close_unknown": sum(1 for s in sessions.values() if s.close_unknown and s.close is None),
            "expired": sum(1 for s in sessions.values() if s.expired_at != INF),
        },
        "reads": len(reads),
        "final_reads": finals,
    }


def _brief(op: Op) -> dict:
    """An op's record for a report, a read's listing replaced by its size."""
    record = op_record(op)
    if isinstance(record.get("value"), dict) and isinstance(record["value"].get("names"), list):
        record["size"] = len(record["value"].pop("names"))
    return record


def _describe_op(op: Op) -> str:
    return f"read by process {op.process} on {op.invoke.get('node')} (records {op.call}..{op.ret})"


def _describe(read: Read) -> str:
    at = f" at {read.zxid:#x}" if read.zxid is not None else ""
    return f"{'final ' if read.final else ''}{_describe_op(read.op)}{at}"


class EphemeralChecker:
    """The ephemeral workload's checker; the consistency model comes from the test's options."""

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        return check_ephemeral(history, options.get("consistency", "zookeeper"))
