"""Building register histories by hand: each call appends one record, in event order."""

from __future__ import annotations

from typing import Any


class History:
    """`h.invoke(p, "write", 0, v=1)` ... `h.ok(p)`; the completion repeats the open op's f and
    value unless a value is given (reads give the value they saw)."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.open: dict[Any, dict] = {}

    def _add(self, **record: Any) -> dict:
        record.setdefault("node", None)
        record.setdefault("error", None)
        record["index"] = len(self.records)
        record["time_ns"] = record["index"] * 1000
        self.records.append(record)
        return record

    def invoke(self, p: Any, f: str, key: Any, v: Any = None, frm: Any = None, to: Any = None, **extra: Any) -> "History":
        value = {"key": key, "from": frm, "to": to} if f == "cas" else {"key": key, "value": v}
        self.open[p] = self._add(process=p, type="invoke", f=f, value=value, **extra)
        return self

    def complete(self, p: Any, kind: str, v: Any = None, stat: tuple[int, int] | None = None,
                 **extra: Any) -> "History":
        """`stat=(version, mzxid)`: the Stat the server returned, as the register client records it."""
        inv = self.open.pop(p)
        value = dict(inv["value"])
        if inv["f"] in ("read", "final-read") and kind == "ok":
            value["value"] = v
        if stat is not None:
            value["version"], value["mzxid"] = stat
        self._add(process=p, type=kind, f=inv["f"], value=value, **extra)
        return self

    def ok(self, p: Any, v: Any = None, stat: tuple[int, int] | None = None, **extra: Any) -> "History":
        return self.complete(p, "ok", v, stat, **extra)

    def fail(self, p: Any, **extra: Any) -> "History":
        return self.complete(p, "fail", **extra)

    def info(self, p: Any, **extra: Any) -> "History":
        return self.complete(p, "info", error="timeout", **extra)

    # whole ops, for sequential steps
    def write(self, p: Any, key: Any, v: Any, stat: tuple[int, int] | None = None, **extra: Any) -> "History":
        return self.invoke(p, "write", key, v).ok(p, stat=stat, **extra)

    def read(self, p: Any, key: Any, v: Any, stat: tuple[int, int] | None = None, **extra: Any) -> "History":
        return self.invoke(p, "read", key).ok(p, v, stat, **extra)

    def cas(self, p: Any, key: Any, frm: Any, to: Any, kind: str = "ok", **extra: Any) -> "History":
        return self.invoke(p, "cas", key, frm=frm, to=to).complete(p, kind, **extra)

    def nemesis(self, f: str) -> "History":
        self._add(process="nemesis", type="invoke", f=f, value=None)
        self._add(process="nemesis", type="info", f=f, value=None)
        return self
