"""Recording a history: every operation as an invocation and a completion, plain dicts.

Records follow docs/formats.md: `{index, time_ns, process, node, type, f, value, error, zxid,
session}` (plus `"final": true` on the final phase's ops), appended to history.jsonl as they
happen, so a crashed run still leaves the history up to the crash.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable

import orjson

from .checkers.history import paused_gc

INVOKE, OK, FAIL, INFO = "invoke", "ok", "fail", "info"
NEMESIS = "nemesis"
FIELDS = ("index", "time_ns", "process", "node", "type", "f", "value", "error", "zxid", "session")
REQUIRED = ("index", "time_ns", "process", "type", "f")


class HistoryRecorder:
    """Thread-safe: workers and the nemesis record concurrently; indices follow real order."""

    def __init__(self, path: Path | None = None, start_ns: int | None = None) -> None:
        self.start_ns = time.monotonic_ns() if start_ns is None else start_ns
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.file = open(path, "w", buffering=1) if path is not None else None

    def _add(self, process: int | str, node: str | None, type_: str, f: str, value: Any, error: str | None,
             zxid: int | None, session: str | None, final: bool = False,
             session_epoch: int | None = None) -> dict[str, Any]:
        with self.lock:
            rec = {
                "index": len(self.records),
                "time_ns": time.monotonic_ns() - self.start_ns,
                "process": process,
                "node": node,
                "type": type_,
                "f": f,
                "value": value,
                "error": error,
                "zxid": zxid,
                "session": session,
            }
            if session_epoch is not None:
                rec["session_epoch"] = session_epoch
            if final:
                rec["final"] = True  # an op of the final phase, after every fault was healed
            self.records.append(rec)
            if self.file is not None:
                self.file.write(json.dumps(rec, separators=(",", ":")) + "\n")
            return rec

    def invoke(self, process: int | str, node: str | None, f: str, value: Any, session: str | None = None,
               final: bool = False, session_epoch: int | None = None) -> dict[str, Any]:
        return self._add(process, node, INVOKE, f, value, None, None, session, final, session_epoch)

    def complete(
        self,
        invocation: dict[str, Any],
        type_: str,
        value: Any = None,
        error: str | None = None,
        zxid: int | None = None,
        session: str | None = None,
        node: str | None = None,
        session_epoch: int | None = None,
    ) -> dict[str, Any]:
        """The completion repeats the invocation's process, f and final mark; its node is the
        server the op ended on when given (a session may fail over while the op runs)."""
        return self._add(
            invocation["process"],
            node if node is not None else invocation["node"],
            type_,
            invocation["f"],
            invocation["value"] if value is None else value,
            error,
            zxid,
            session if session is not None else invocation.get("session"),
            invocation.get("final", False),
            session_epoch if session_epoch is not None else invocation.get("session_epoch"),
        )

    def close(self) -> None:
        with self.lock:  # a straggling worker may still be recording
            if self.file is not None:
                self.file.close()
                self.file = None


def read_history(path: Path) -> list[dict[str, Any]]:
    """history.jsonl from us or from another tool: one record per line, blank lines skipped,
    missing optional fields filled in with None. What records repeat is kept once: the strings
    (outcome, f, node, session: a third of a record's memory) and what lists in values repeat
    (_share_items). A line that is not a record raises ValueError naming the file and line."""
    records: list[dict[str, Any]] = []
    shared: dict[Any, Any] = {}  # each repeated string or number, once
    share = shared.setdefault
    compact = os.path.getsize(path) > COMPACT_ABOVE
    with paused_gc(), open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            try:
                rec = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                if line.isspace():
                    continue
                raise ValueError(f"{path}:{lineno}: not a JSON object ({e})") from None
            if compact and type(rec) is dict:
                rec = dict(rec.items())
            try:  # the usual record, with every field and the right types, checked without a call
                rec["type"] = _KINDS[rec["type"]]
                if type(rec["index"]) is not int or type(rec["time_ns"]) is not int:
                    raise TypeError
                rec["process"], rec["f"], rec["value"], rec["error"], rec["zxid"], rec["node"], rec["session"]
            except (KeyError, TypeError):  # one from another tool, or not a record
                if problem := _fill_in(rec):
                    raise ValueError(f"{path}:{lineno}: {problem}") from None
                rec["type"] = _KINDS[rec["type"]]
            # one line per shared field: this loop runs once per record
            if type(value := rec["f"]) is str:
                rec["f"] = share(value, value)
            if type(value := rec["node"]) is str:
                rec["node"] = share(value, value)
            if type(value := rec["session"]) is str:
                rec["session"] = share(value, value)
            if len(line) > LONG_LINE:
                _share_items(rec["value"], shared)
            records.append(rec)
    return records


# orjson makes each record a dict with room for any key; rebuilt, it takes 80 bytes less (a
# sixth of a record) for 0.7 us more. Worth it where memory is what runs out: large histories.
COMPACT_ABOVE = 64 * 2**20  # bytes of history.jsonl (about 170k ops)
LONG_LINE = 512  # bytes: only a line this long can hold lists worth sharing the items of


def _share_items(value: Any, shared: dict) -> None:
    """Lists in a value mostly repeat what earlier records held: the items of long lists of
    numbers or strings (the set's or queue's elements, a parent's children), and the strings of
    objects in lists (the kinds, types and paths of a watcher's journal). Each is kept once."""
    if type(value) is not dict:
        return
    share = shared.setdefault
    for items in value.values():
        if type(items) is not list or not items:
            continue
        if type(items[0]) is dict:
            for item in items:
                if type(item) is dict:
                    for key, field in item.items():  # replacing a value leaves the dict's size alone
                        if type(field) is str:
                            item[key] = share(field, field)
        elif len(items) > 16 and {type(item) for item in items} <= _SHAREABLE:
            items[:] = map(share, items, items)


# Kept once by value: types whose equal values are interchangeable (True == 1 == 1.0 are not).
_SHAREABLE = {int, str}


_KINDS = {kind: kind for kind in (INVOKE, OK, FAIL, INFO)}


def _fill_in(rec: Any) -> str | None:
    """Give a record its missing optional fields; what breaks the format, if anything."""
    if type(rec) is not dict:
        return f"expected an operation object, got {type(rec).__name__}"
    missing = [k for k in REQUIRED if k not in rec]
    if missing:
        return f"missing {', '.join(missing)}"
    for key in FIELDS:
        rec.setdefault(key, None)
    if type(rec["time_ns"]) is not int or type(rec["index"]) is not int:
        return "index and time_ns must be integers"
    kind = rec["type"]
    if type(kind) is not str or kind not in _KINDS:
        return f"type must be invoke|ok|fail|info, got {kind!r}"
    return None


def write_history(records: Iterable[dict[str, Any]], path: Path) -> None:
    with open(path, "w") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
