"""Exact checks from what ZooKeeper tells about each node: the Stat (version, mzxid).

Every acknowledged write and every read of a key reports the node's version and the zxid of the
txn that made that version (mzxid). A register key is never deleted, so its history is one line
of txns, each raising the version by one. That gives linear-time checks that hold under
ZooKeeper's model too, whatever overwrote the key since:

- A state (version v, mzxid z) survived only if no later txn (mzxid > z) reports a version <= v:
  the node's history after z would have to include it. An acknowledged write whose version a
  later txn took again was lost (a leader that committed without a quorum, a truncated log).
- A read that saw such a discarded state, of a write that was never acknowledged, read a write
  that never committed (a follower serving a proposal).
- The same mzxid must always mean the same version and value; a read of a value whose write was
  acknowledged must report that write's Stat.

Histories without Stat fields (other tools, older runs) pass through these checks untouched.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, NamedTuple, Sequence

from . import findings as F
from .findings import Finding, describe, show
from .ops import KeyOps, RegOp


class State(NamedTuple):  # a tuple: one is made per acknowledged op
    version: int
    mzxid: int
    value: Any
    op: RegOp  # the write that reported it, or the read that saw it


def _is_stat(version: Any, mzxid: Any) -> bool:
    if type(version) is int and type(mzxid) is int:
        return True
    return isinstance(version, int) and isinstance(mzxid, int) and not isinstance(version, bool)


def observed_states(kops: KeyOps) -> list[State]:
    """The states acknowledged writes and ok reads reported, in mzxid order."""
    states = []
    for r in kops.ops:  # in invocation order
        complete = r.op.complete
        if not r.ok or complete is None:
            continue
        value = complete.get("value")
        if isinstance(value, dict):
            version, mzxid = value.get("version"), value.get("mzxid")
            if _is_stat(version, mzxid):
                states.append(State(version, mzxid, r.a if r.kind == "r" else r.b, r))
    states.sort(key=attrgetter("mzxid"))  # stable: by invocation among equals
    return states


def version_findings(kops: KeyOps) -> list[Finding]:
    states = observed_states(kops)
    if not states:
        return []
    found: list[Finding] = []
    found += _same_txn_differs(states)
    found += _discarded(states, kops)
    found += _stat_mismatch(states)
    return found


def _same_txn_differs(states: Sequence[State]) -> list[Finding]:
    found = []
    first: dict[int, State] = {}
    for s in states:
        f = first.setdefault(s.mzxid, s)
        if (f.version, f.value) != (s.version, s.value):
            found.append(Finding(
                F.ZXID_REUSED, s.op,
                f"{describe(s.op)} reports version {s.version} = {show(s.value)} for txn {s.mzxid:#x}, "
                f"but {describe(f.op)} reported version {f.version} = {show(f.value)} for the same txn.",
                {"mzxid": s.mzxid, "versions": [f.version, s.version]}, [f.op]))
    return found


def _discarded(states: Sequence[State], kops: KeyOps) -> list[Finding]:
    """States a later txn's version shows the node's history does not contain: walking back
    from the newest txn, keep the smallest version any later txn reported."""
    found = []
    acknowledged = {r.b for r in kops.ops if r.kind != "r" and r.ok}
    reported: set[int] = set()
    later: State | None = None  # among txns after the current group: the smallest version
    i = len(states) - 1
    while i >= 0:
        j = i
        while j >= 0 and states[j].mzxid == states[i].mzxid:
            j -= 1
        group = states[j + 1:i + 1]
        for s in group:
            if later is None or later.version > s.version:
                continue
            if s.op.kind != "r" and id(s.op) not in reported:
                reported.add(id(s.op))
                found.append(Finding(
                    F.LOST_WRITE, s.op,
                    f"{describe(s.op)} was acknowledged as version {s.version} (txn {s.mzxid:#x}), but the "
                    f"later txn {later.mzxid:#x} made version {later.version} = {show(later.value)} "
                    f"({describe(later.op)}): the acknowledged write is not in the node's history.",
                    {"version": s.version, "mzxid": s.mzxid, "taken_by": later.mzxid}, [later.op]))
            elif s.op.kind == "r" and s.value not in acknowledged:
                found.append(Finding(
                    F.UNCOMMITTED_READ, s.op,
                    f"{describe(s.op)} saw version {s.version} = {show(s.value)} (txn {s.mzxid:#x}), which "
                    f"never committed: the later txn {later.mzxid:#x} made version {later.version} "
                    f"({describe(later.op)}), and no acknowledged write wrote {show(s.value)}.",
                    {"version": s.version, "mzxid": s.mzxid, "taken_by": later.mzxid}, [later.op]))
        for s in group:
            if later is None or s.version < later.version:
                later = s
        i = j
    return found


def _stat_mismatch(states: Sequence[State]) -> list[Finding]:
    """A read of a value whose acknowledged write reported another Stat saw another txn."""
    written = {s.value: s for s in states if s.op.kind != "r"}
    found = []
    for s in states:
        w = written.get(s.value)
        if s.op.kind == "r" and w is not None and (w.version, w.mzxid) != (s.version, s.mzxid):
            found.append(Finding(
                F.STAT_MISMATCH, s.op,
                f"{describe(s.op)} saw {show(s.value)} as version {s.version} (txn {s.mzxid:#x}), but its "
                f"write was acknowledged as version {w.version} (txn {w.mzxid:#x}).",
                {"read": [s.version, s.mzxid], "write": [w.version, w.mzxid]}, [w.op]))
    return found
