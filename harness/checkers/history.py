"""Pairing a flat history of op records into operations.

A history is a list of records `{index, time_ns, process, node, type, f, value, error, zxid?,
session?}` in the order events happened. An `invoke` opens an op for its process; the next record
of that process closes it with `ok` (it happened), `fail` (it certainly did not) or `info` (unknown).
An invocation that never completes is treated like `info`. The nemesis (process "nemesis") is not a
client and is skipped. Times used by the checkers are event positions (the `index`), never wall
clocks: real-time precedence only needs the order in which the harness saw events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

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


def normalise_key(key: Any) -> Any:
    """JSON object keys arrive as strings ("3"); values use ints (3). Make both the same."""
    if isinstance(key, bool):
        return key
    if isinstance(key, float) and key.is_integer():
        return int(key)
    if isinstance(key, str):
        text = key.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    return key


def hashable(value: Any) -> Any:
    """Values are compared and used as dict keys; JSON lists become tuples."""
    if isinstance(value, list):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), hashable(v)) for k, v in value.items()))
    return value


def _position(record: Mapping, fallback: int) -> int:
    index = record.get("index")
    return index if isinstance(index, int) else fallback


def pair_ops(history: Iterable[Mapping]) -> list[Op]:
    """Pair invocations with completions. Raises HistoryError on records that break the rules."""
    records = [dict(r) for r in history]
    for pos, record in enumerate(records):
        record["index"] = _position(record, pos)
    records.sort(key=lambda r: r["index"])  # stable: the file order breaks ties
    ops: list[Op] = []
    open_ops: dict[Any, Op] = {}
    for record in records:
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
            op = Op(
                id=len(ops), process=process, session=record.get("session"), f=record.get("f"),
                type="info", call=record["index"], ret=INF, value=record.get("value"),
                zxid=None, invoke=record,
            )
            ops.append(op)
            open_ops[process] = op
        elif kind in ("ok", "fail", "info"):
            op = open_ops.pop(process, None)
            if op is None:
                raise HistoryError(f"record {record['index']} completes nothing: process {process!r} had no open op")
            if record.get("f") != op.f:
                raise HistoryError(f"record {record['index']} completes {record.get('f')!r} but {op.f!r} was open")
            op.complete = record
            op.type = kind
            # An info op may take effect until the end of the history: its return is open-ended.
            op.ret = INF if kind == "info" else record["index"]
            if kind == "ok" and record.get("value") is not None:
                op.value = record["value"]
            op.zxid = record.get("zxid") if kind == "ok" else None
            if record.get("session") is not None:
                op.session = record["session"]
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
