"""Register operations of one key, reduced to what the checkers reason about.

Reads that failed or timed out constrain nothing and are dropped; failed writes and cas did not
happen and are dropped (but remembered: a read of a failed write's value is a distinct anomaly).
Writes and cas whose outcome is unknown stay as optional ops: they may take effect at any point
after their invocation, or never.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Iterable, Mapping

from ..history import HistoryError, Op, hashable, normalise_key
from ..search import NOT_ALLOWED, Model

REGISTER_FS = ("read", "write", "cas")


@dataclass(slots=True, eq=False)
class RegOp:
    op: Op
    kind: str  # "r" read, "w" write, "c" compare-and-set
    a: Any  # read: the value seen; cas: the expected value
    b: Any  # write / cas: the value written
    ok: bool  # False: an info op that may or may not have taken effect
    call: int
    ret: float
    final: bool  # a final/quorum read: linearizable even under ZooKeeper's model
    session: Any


@dataclass(slots=True)
class KeyOps:
    ops: list[RegOp]  # ok reads, ok/info writes and cas, sorted by invocation
    failed_writes: dict[Any, RegOp]  # value -> a failed write/cas that would have written it
    all_written: list[Any]  # every value any write/cas tried to write (uniqueness test)
    dropped_reads: int
    final_read: bool | None = None  # a final read succeeded; False: tried, none did; None: none tried


def _get(source: Any, name: str) -> Any:
    """source[name] when source is a mapping, else None (dicts tested first: this runs per op)."""
    if type(source) is dict or isinstance(source, Mapping):
        return source.get(name)
    return None


def _field(value: Any, name: str) -> Any:
    return hashable(_get(value, name))


def reduce_key_ops(ops: Iterable[Op]) -> KeyOps:
    kept: list[RegOp] = []
    failed: dict[Any, RegOp] = {}
    written: list[Any] = []
    dropped = 0
    final_read = None
    for op in ops:
        f = "read" if op.f in ("final-read", "quorum-read") else op.f
        if f == "read":
            final = is_final_read(op)
            if final:
                final_read = final_read or op.type == "ok"
            if op.type != "ok":
                dropped += 1
                continue
            kept.append(RegOp(op, "r", _field(op.value, "value"), None, True, op.call, op.ret, final, op.session))
            continue
        invoked = op.invoke.get("value")
        source = invoked if type(invoked) is dict or isinstance(invoked, Mapping) else op.value
        if f == "write":
            reg = RegOp(op, "w", None, _field(source, "value"), op.type == "ok", op.call, op.ret, False, op.session)
        else:
            reg = RegOp(op, "c", _field(source, "from"), _field(source, "to"), op.type == "ok",
                        op.call, op.ret, False, op.session)
        written.append(reg.b)
        if op.type == "fail":
            failed.setdefault(reg.b, reg)
        else:
            kept.append(reg)
    kept.sort(key=attrgetter("call"))
    return KeyOps(kept, failed, written, dropped, final_read)


def prune_unobserved(ops: list[RegOp]) -> tuple[list[RegOp], list[RegOp]]:
    """Drop optional writes/cas that no linearization needs.

    If nothing ever reads value v and no cas expects v, an unknown-outcome op writing v can be left
    out of any linearization that contains it: only ops between it and the next write could see v,
    and none does. An unknown cas whose expected value is never written can never apply. Repeat to
    a fixpoint, because dropping a cas can leave its expected value unobserved in turn. This is
    what keeps timed-out writes from blowing up the search.
    """
    alive = list(ops)
    dropped: list[RegOp] = []
    while True:
        observed: dict[Any, int] = {}
        producible = {None}
        for r in alive:
            if r.kind == "r":
                observed[r.a] = observed.get(r.a, 0) + 1
            elif r.kind == "c":
                observed[r.a] = observed.get(r.a, 0) + 1
            if r.kind != "r":
                producible.add(r.b)
        keep = []
        for r in alive:
            if not r.ok and (r.b not in observed or (r.kind == "c" and r.a not in producible)):
                dropped.append(r)
            else:
                keep.append(r)
        if len(keep) == len(alive):
            return keep, dropped
        alive = keep


def values_unique(key_ops: KeyOps) -> bool:
    """True when every write/cas (including failed ones) writes a distinct, non-null value."""
    written = key_ops.all_written
    return None not in written and len(set(written)) == len(written)


def zxid_of(r: RegOp) -> int | None:
    """The server's position for an acknowledged write or cas, when the history recorded it."""
    z = r.op.zxid if r.ok and r.kind != "r" else None
    return z if isinstance(z, int) and not isinstance(z, bool) else None


def zxid_register_step(state: tuple, r: RegOp) -> Any:
    """The register, plus the server's order: acknowledged writes with zxids linearize in zxid
    order. The state is (value, largest zxid so far); the zxid part is a function of the set of
    linearized ops, so it does not multiply the search's configurations."""
    value, last = state
    z = zxid_of(r)
    if z is not None and z <= last:
        return NOT_ALLOWED
    nxt = register_step(value, r)
    if nxt is NOT_ALLOWED:
        return NOT_ALLOWED
    return (nxt, last) if z is None else (nxt, z)


def register_step(state: Any, r: RegOp) -> Any:
    """The sequential register: returns the next state, or NOT_ALLOWED."""
    if r.kind == "r":
        return state if r.a == state else NOT_ALLOWED
    if r.kind == "w":
        return r.b
    return r.b if r.a == state else NOT_ALLOWED


class RegisterModel(Model):
    """The sequential register of one key; with zxids, acknowledged writes also keep zxid order."""

    def __init__(self, zxids: bool = False) -> None:
        self.zxids = zxids

    def init(self) -> Any:
        return (None, -1) if self.zxids else None

    def step(self, state: Any, op: RegOp) -> Any:
        return zxid_register_step(state, op) if self.zxids else register_step(state, op)

    def partition(self, ops: Iterable[Op]) -> list[list[Op]]:
        return list(partition_register(ops)[0].values())

    def describe_state(self, state: Any) -> str:
        value = state[0] if self.zxids else state
        return "null" if value is None else repr(value)


def is_final_read(op: Op) -> bool:
    """A read the harness promises is linearizable: its final reads after healing (or quorum reads).

    Convention: f is "final-read" or "quorum-read", or the value or a record carries
    `"final": true` / `"quorum": true`.
    """
    if op.f in ("final-read", "quorum-read"):
        return True
    for source in (op.value, op.invoke, op.complete):
        if type(source) is dict:  # the usual case, without a call per field: this runs per read
            if source.get("final") or source.get("quorum"):
                return True
        elif _get(source, "final") or _get(source, "quorum"):
            return True
    return False


def register_key(op: Op) -> Any:
    value = op.value
    if type(value) is not dict and not isinstance(value, Mapping):
        value = op.invoke.get("value")
    if (type(value) is not dict and not isinstance(value, Mapping)) or "key" not in value:
        raise HistoryError(f"register op at record {op.call} has no key: {op.value!r}")
    return normalise_key(value["key"])


def partition_register(ops: Iterable[Op]) -> tuple[dict[Any, list[Op]], int]:
    """Register ops grouped by key (keys are independent), plus how many other ops were skipped."""
    by_key: dict[Any, list[Op]] = {}
    skipped = 0
    for op in ops:
        f = "read" if op.f in ("final-read", "quorum-read") else op.f
        if f not in REGISTER_FS:
            skipped += 1
            continue
        by_key.setdefault(register_key(op), []).append(op)
    return by_key, skipped
