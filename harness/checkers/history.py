"""Pairing a flat history of op records into operations.

A history is a list of records `{index, time_ns, process, node, type, f, value, error, zxid?,
session?}` in the order events happened. An `invoke` opens an op for its process; the next record
of that process closes it with `ok` (it happened), `fail` (it certainly did not) or `info` (unknown).
An invocation that never completes is treated like `info`. The nemesis (process "nemesis") is not a
client and is skipped. Times used by the checkers are event positions (the `index`), never wall
clocks: real-time precedence only needs the order in which the harness saw events.
"""

from __future__ import annotations

import gc
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

INF = math.inf
NEMESIS = "nemesis"


class HistoryError(ValueError):
    """The history breaks the format's rules (a completion without an invocation, ...)."""


@dataclass(slots=True, eq=False)
class Op:
    """One operation: an invocation with its completion (if any)."""

    id: int  # dense, in invocation order
    process: Any
    session: Any  # the record's "session", else the process: the unit of session guarantees
    f: str
    type: str  # "ok" | "fail" | "info" (no completion counts as info)
    call: int  # index of the invocation record
    ret: float  # index of the completion record; INF when the outcome is unknown
    value: Any  # the completion's value for ok reads, else the invocation's
    zxid: int | None
    invoke: dict = field(repr=False)
    complete: dict | None = field(repr=False, default=None)

    @property
    def ok(self) -> bool:
        return self.type == "ok"


@contextmanager
def paused_gc() -> Iterator[None]:
    """Reading and checking a history build millions of small objects and no reference cycles;
    the cyclic collector would scan them all again and again as they pile up (a third of the
    time). Refcounting still frees everything; the collector resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def normalise_key(key: Any) -> Any:
    """JSON object keys arrive as strings ("3"); values use ints (3). Make both the same."""
    if type(key) is int:
        return key
    if isinstance(key, bool):
        return key
    if isinstance(key, float) and key.is_integer():
        return int(key)
    if isinstance(key, str):
        text = key.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return key


class SessionViews:
    """What each session has seen, for the rare read that misses something: whether its session
    had already seen it. Each session keeps only references to what it saw (ops, lists) until
    first asked; `expand(entry)` then gives an entry's items, and the session's set is kept up to
    date from there. A set for every session of everything it read would outweigh the history."""

    def __init__(self, expand: Callable[[Any], Iterable[Any]]) -> None:
        self.expand = expand
        self.pending: dict[Any, list] = {}
        self.sets: dict[Any, set] = {}

    def saw(self, session: Any, entry: Any) -> None:
        self.pending.setdefault(session, []).append(entry)

    def of(self, session: Any) -> set:
        seen = self.sets.setdefault(session, set())
        for entry in self.pending.pop(session, ()):
            seen.update(self.expand(entry))
        return seen


def hashable(value: Any) -> Any:
    """Values are compared and used as dict keys; JSON lists become tuples."""
    if value is None or type(value) is int or type(value) is str:
        return value
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), hashable(v)) for k, v in value.items()))
    return value


class PairedHistory(list):
    """A history (a list of records) that pairs its ops once, however many checkers ask: pairing
    is a pass over every record, and the workload's checker, the statistics and the report each
    need the ops. The records must not change once paired."""

    __slots__ = ("_ops",)

    def __init__(self, records: Iterable[Mapping] = ()) -> None:
        super().__init__(records)
        self._ops: list[Op] | None = None

    def ops(self) -> list[Op]:
        if self._ops is None:
            with paused_gc():
                self._ops = _pair(self)
        return self._ops


def pair_ops(history: Iterable[Mapping]) -> list[Op]:
    """Pair invocations with completions. Raises HistoryError on records that break the rules.
    The ops are shared when the history is a PairedHistory: do not change them."""
    if isinstance(history, PairedHistory):
        return history.ops()
    with paused_gc():
        return _pair(history)


def _in_order(history: Iterable[Mapping]) -> list[Mapping]:
    """The records by index. Records without an integer index get their position; those are
    copied, like all records when the file order is not the index order (which is rare): the
    caller's records are never changed."""
    records = history if isinstance(history, list) else list(history)
    last = -INF
    for record in records:
        index = record.get("index")
        if not isinstance(index, int) or index < last:
            break
        last = index
    else:
        return records
    copies = [dict(r) for r in records]
    for pos, record in enumerate(copies):
        index = record.get("index")
        record["index"] = index if isinstance(index, int) else pos
    copies.sort(key=lambda r: r["index"])  # stable: the file order breaks ties
    return copies


def _pair(history: Iterable[Mapping]) -> list[Op]:
    ops: list[Op] = []
    open_ops: dict[Any, Op] = {}
    new_op, pop_open = Op, open_ops.pop  # locals: this loop runs once per record
    for record in _in_order(history):
        process = record.get("process")
        if process == NEMESIS:
            continue
        kind = record.get("type")
        if kind == "invoke":
            if process in open_ops:
                raise HistoryError(
                    f"process {process!r} invoked record {record['index']} while op "
                    f"{open_ops[process].call} was still open"
                )
            op = new_op(len(ops), process, record.get("session"), record.get("f"), "info", record["index"], INF,
                        record.get("value"), None, record)
            ops.append(op)
            open_ops[process] = op
        elif kind == "ok" or kind == "fail" or kind == "info":
            op = pop_open(process, None)
            if op is None:
                raise HistoryError(f"record {record['index']} completes nothing: process {process!r} had no open op")
            if record.get("f") != op.f:
                raise HistoryError(f"record {record['index']} completes {record.get('f')!r} but {op.f!r} was open")
            op.complete = record
            op.type = kind
            if kind != "info":  # an info op may take effect until the end of the history: ret stays INF
                op.ret = record["index"]
            if kind == "ok":
                value = record.get("value")
                if value is not None:
                    op.value = value
                op.zxid = record.get("zxid")
            session = record.get("session")
            if session is not None:
                op.session = session
        else:
            raise HistoryError(f"record {record['index']} has unknown type {kind!r}")
    for op in ops:
        if op.session is None:
            op.session = ("process", op.process)
    return ops


def op_record(op: Op) -> dict:
    """The record a report shows for an op: its completion (or invocation), plus where it began."""
    record = dict(op.complete if op.complete is not None else op.invoke)
    if op.complete is None:
        record["type"] = "info"
        record["error"] = record.get("error") or "no completion in the history"
    if isinstance(op.value, Mapping):
        record["value"] = dict(op.value)
    record["invoke_index"] = op.call
    return record
