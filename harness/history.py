"""Recording a history: every operation as an invocation and a completion, plain dicts.

Records follow docs/formats.md: `{index, time_ns, process, node, type, f, value, error, zxid,
session}` (plus `"final": true` on the final phase's ops), appended to history.jsonl as they
happen, so a crashed run still leaves the history up to the crash.
"""

from __future__ import annotations

import json
import re
import threading
import time
from itertools import islice
from pathlib import Path
from typing import Any, Iterable

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
    """history.jsonl from us or from another tool; missing optional fields become None."""
    with paused_gc():
        records = _parse_batches(path)
        if records is None:
            return _read_lines(path)  # line by line: the error names the first bad line
        return records


# A line holding two objects side by side: the batch parse would take it for two lines.
_TWO_ON_ONE_LINE = re.compile(r"\}[ \t\r]*,[ \t\r]*\{")
_FIELDS = frozenset(FIELDS)
_BATCH = 20_000  # lines per call to the decoder


def _parse_batches(path: Path) -> list[Any] | None:
    """The lines in batches of a few thousand, each batch one JSON array for one call to the
    decoder: faster than a call per line, and field names are shared between the records of a
    batch instead of repeated in each; only one batch of text is held at a time. A batch that is
    not plainly one value per line (a blank line, a line with two values, bad JSON) is decoded
    line by line. None when some line is not a record: the caller then names it."""
    records: list[Any] = []
    shared = {kind: kind for kind in (INVOKE, OK, FAIL, INFO)}
    with open(path) as f:
        while lines := list(islice(f, _BATCH)):
            batch = _as_array(lines)
            if batch is None:
                batch = _each(lines)
            if batch is None or not _complete(batch, shared):
                return None
            records += batch
    return records


def _as_array(lines: list[str]) -> list[Any] | None:
    """The lines decoded as one array, or None. A value spanning lines is caught by the count: it
    would need a line with two values to make up for it, and such lines are refused."""
    text = "[" + ",".join(lines) + "]"  # the lines keep their newlines: JSON whitespace
    if _TWO_ON_ONE_LINE.search(text):
        return None
    try:
        batch = json.loads(text)
    except ValueError:
        return None
    return batch if len(batch) == len(lines) else None


def _each(lines: list[str]) -> list[Any] | None:
    """The non-blank lines decoded one by one, as _read_lines does; None at a line that is not JSON."""
    out = []
    for line in lines:
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except ValueError:
                return None
    return out


def _complete(records: list[Any], shared: dict[str, str]) -> bool:
    """Fill in missing optional fields, and share the strings records repeat (outcome, f, node,
    session: a third of a record's memory, freed batch by batch for the next one to reuse); False
    when some record breaks the format."""
    share = shared.setdefault
    for rec in records:
        if type(rec) is not dict:
            return False
        if not rec.keys() >= _FIELDS:
            if not all(k in rec for k in REQUIRED):
                return False
            for key in FIELDS:
                rec.setdefault(key, None)
        kind = rec["type"]
        if (not isinstance(rec["time_ns"], int) or not isinstance(rec["index"], int)
                or kind not in (INVOKE, OK, FAIL, INFO)):
            return False
        rec["type"] = shared[kind]
        if type(value := rec["f"]) is str:
            rec["f"] = share(value, value)
        if type(value := rec["node"]) is str:
            rec["node"] = share(value, value)
        if type(value := rec["session"]) is str:
            rec["session"] = share(value, value)
    return True


def _read_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: not a JSON object ({e.msg})") from None
            if not isinstance(rec, dict):
                raise ValueError(f"{path}:{lineno}: expected an operation object, got {type(rec).__name__}")
            missing = [k for k in REQUIRED if k not in rec]
            if missing:
                raise ValueError(f"{path}:{lineno}: missing {', '.join(missing)}")
            if not isinstance(rec["time_ns"], int) or not isinstance(rec["index"], int):
                raise ValueError(f"{path}:{lineno}: index and time_ns must be integers")
            for key in FIELDS:
                rec.setdefault(key, None)
            if rec["type"] not in (INVOKE, OK, FAIL, INFO):
                raise ValueError(f"{path}:{lineno}: type must be invoke|ok|fail|info, got {rec['type']!r}")
            out.append(rec)
    return out


def write_history(records: Iterable[dict[str, Any]], path: Path) -> None:
    with open(path, "w") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
