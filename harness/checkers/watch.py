"""The watch checker: every committed change a watch covers is notified, once, in zxid order,
before any reply that shows it.

History values (workloads/watch.py): writes create {"key"} ok + {"czxid"}, set ok + {"mzxid"},
delete (the record's zxid); events ok {"watcher": id, "journal": [entry, ...]}, entries
{"kind": "watch"|"event"|"read"|"disconnected", "conn", "seq", "zxid", "mode"?, "type"?, "path"?}
in the order the watcher's connection received them (`seq`).

The model (ZooKeeper 3.8, one notification per connection per (type, path) whatever number of
its watches match). A change makes notifications: create p -> created p and child of p's parent;
set p -> changed p; delete p -> deleted p and child of the parent. A watch covers:
  data        created/changed/deleted of its path; one-shot
  child       child of its path, and its path deleted; one-shot
  persistent  every notification of its path
  recursive   created/changed/deleted of its path and every path below it
A watch is set when its reply arrives, at the reply's zxid r, covers changes above r, and dies
with its connection (watch and notifications are per connection, `conn`). What a connection
must receive is then known from the acknowledged writes: for each path, the notifications its
standing watches cover (a one-shot: the first after it was set), in zxid order. A reply with zxid
z shows every change up to z, so every notification up to z must have come before it
(ZooKeeper's ordering guarantee). Findings, all violations:
  missed-event      a notification due before a reply the connection received never came
  late-event        a notification came after a reply whose zxid shows its change
  wrong-event       the k-th notification of a path is not of the type of its k-th covered change
  duplicate-event   more notifications of a path than covered changes (a one-shot firing twice)
  unexpected-event  a notification no watch on the connection covers
  stale-after-event a reply after a notification shows a state older than its change
Writes with an unknown outcome may have made changes the history does not show; on the paths
they touch only what stays provable is checked (late by rank, missed by count). Notifications
due after a connection's last reply are unconfirmed (the connection may have ended first), as are
those lost with a disconnection the client was told of: not findings.

Result: {"valid", "explanation", "anomalies" ({"type", "explanation", "zookeeper",
"classification", "watcher", "conn", "path", "event"?, "change"?}), "anomaly_count", "summary",
"watchers", "connections", "disconnections", "watches_set", "events", "expected", "unconfirmed",
"changes": {"known", "uncertain_paths"}}.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .core import History, judge
from .history import HistoryError, Op, op_record, pair_ops, paused_gc

VIOLATION = "violation"
WRITES = ("create", "set", "delete")
DATA_TYPES = ("created", "changed", "deleted")
TYPES = DATA_TYPES + ("child",)

CLASSIFICATION = {
    "missed-event": "notification never delivered though a later reply showed its change",
    "late-event": "notification delivered after a reply that showed its change",
    "wrong-event": "notification of another type than the change it stands for",
    "duplicate-event": "more notifications than covered changes",
    "unexpected-event": "notification no watch covered",
    "stale-after-event": "reply after a notification older than its change",
}


@dataclass(frozen=True, slots=True)
class Notification:
    zxid: int
    type: str
    path: str
    op: Op


@dataclass(slots=True)
class Connection:
    watcher: str
    conn: int
    dropped: bool = False  # the client was told it ended
    watches: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)  # entries with a reply zxid, by seq
    reply_seqs: list[int] = field(default_factory=list)  # their seqs, for bisection


def parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def notifications(f: str, path: str) -> list[tuple[str, str]]:
    """(type, path) of what a write makes."""
    return {"create": [("created", path), ("child", parent(path))], "set": [("changed", path)],
            "delete": [("deleted", path), ("child", parent(path))]}[f]


def covers(mode: str, watched: str, kind: str, path: str) -> bool:
    if mode == "data":
        return path == watched and kind in DATA_TYPES
    if mode == "child":
        return path == watched and kind in ("child", "deleted")
    if mode == "persistent":
        return path == watched
    if mode == "recursive":
        return kind != "child" and (path == watched or path.startswith(watched.rstrip("/") + "/"))
    return False


def watches_path(watch: Mapping, path: str) -> bool:
    """Whether a watch entry covers some notification of `path`."""
    return any(covers(watch["mode"], watch["path"], t, path) for t in TYPES)


def check_watch(history: History, key_path: Callable[[Any], str]) -> dict[str, Any]:
    """`key_path`: the znode a write's "key" names."""
    with paused_gc():
        try:
            ops = pair_ops(history)
            streams, uncertain = _changes(ops, key_path)
            connections = _connections(ops)
        except HistoryError as err:
            return {"valid": "unknown", "explanation": f"malformed history: {err}", "anomalies": []}
        anomalies: list[dict] = []
        tally = {"expected": 0, "unconfirmed": 0}
        for c in connections:
            for path in _paths(c, streams):
                _check_path(c, path, streams.get(path, []), path in uncertain, anomalies, tally)
        return _result(connections, streams, uncertain, anomalies, tally)


def _changes(ops: list[Op], key_path: Callable[[Any], str]) -> tuple[dict[str, list[Notification]], set[str]]:
    """Per path, the notifications acknowledged writes made, in zxid order; and the paths a
    write with an unknown outcome may have notified."""
    streams: dict[str, list[Notification]] = {}
    uncertain: set[str] = set()
    for op in ops:
        if op.f not in WRITES or op.type == "fail":
            continue
        if not isinstance(op.value, Mapping) or "key" not in op.value:
            raise HistoryError(f"{op.f} at record {op.call} has no key")
        path = key_path(op.value["key"])
        made = notifications(op.f, path)
        if not op.ok:
            uncertain.update(p for _, p in made)
            continue
        zxid = op.value.get("czxid" if op.f == "create" else "mzxid") if op.f != "delete" else None
        zxid = zxid if isinstance(zxid, int) else op.zxid
        if not isinstance(zxid, int):
            raise HistoryError(f"ok {op.f} at record {op.call} has no zxid")
        for kind, p in made:
            streams.setdefault(p, []).append(Notification(zxid, kind, p, op))
    for stream in streams.values():
        stream.sort(key=lambda n: n.zxid)
    return streams, uncertain


def _connections(ops: list[Op]) -> list[Connection]:
    """Every watcher connection's entries, in the order received."""
    found: dict[tuple[str, int], Connection] = {}
    for op in ops:
        if op.f != "events" or not op.ok or not isinstance(op.value, Mapping):
            continue
        for entry in op.value.get("journal") or ():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("seq"), int):
                raise HistoryError(f"events at record {op.call} has a journal entry without seq")
            key = (op.value.get("watcher") or str(op.process), entry.get("conn", 0))
            c = found.get(key) or found.setdefault(key, Connection(*key))
            kind = entry.get("kind")
            if kind == "watch":
                c.watches.append(entry)
            elif kind == "event":
                c.events.append(entry)
            elif kind == "disconnected":
                c.dropped = True
            if kind in ("watch", "read") and isinstance(entry.get("zxid"), int):
                c.replies.append(entry)
    for c in found.values():
        for entries in (c.watches, c.events, c.replies):
            entries.sort(key=lambda e: e["seq"])
        c.reply_seqs = [r["seq"] for r in c.replies]
    return list(found.values())


def _paths(c: Connection, streams: Mapping[str, list]) -> Iterable[str]:
    """Paths whose notifications this connection may owe or received."""
    return sorted({e["path"] for e in c.events} | {p for p in streams if any(watches_path(w, p) for w in c.watches)})


def _due(c: Connection, path: str, stream: list[Notification], limit: int) -> list[Notification]:
    """What the connection's watches covered of a path's stream, in zxid order: a persistent
    watch everything above its zxid, a one-shot the first covered change above its zxid. Only
    up to the connection's last reply, plus `limit` beyond it (enough to match every event)."""
    last = max((e["zxid"] for e in c.replies), default=0)
    zxids = [n.zxid for n in stream]
    due: dict[int, Notification] = {}
    for w in c.watches:
        if not watches_path(w, path):
            continue
        beyond = 0
        for n in stream[bisect_right(zxids, w["zxid"]):]:
            if not covers(w["mode"], w["path"], n.type, path):
                continue
            due.setdefault(id(n), n)
            if w["mode"] in ("data", "child"):
                break
            beyond += n.zxid > last
            if beyond > limit:
                break
    return sorted(due.values(), key=lambda n: n.zxid)


def _check_path(c: Connection, path: str, stream: list[Notification], uncertain: bool,
                anomalies: list[dict], tally: dict[str, int]) -> None:
    events = [e for e in c.events if e["path"] == path]
    watches = [w for w in c.watches if watches_path(w, path)]
    first_set = watches[0]["seq"] if watches else None
    covered = []
    for e in events:
        if first_set is None or e["seq"] < first_set or not any(covers(w["mode"], w["path"], e["type"], path)
                                                                 for w in watches if w["seq"] < e["seq"]):
            anomalies.append(_anomaly("unexpected-event", c, path, f"{_at(c, e)} no watch covered", event=e))
        else:
            covered.append(e)
    due = _due(c, path, stream, len(covered))
    last = max((e["zxid"] for e in c.replies), default=0)
    owed = sum(1 for n in due if n.zxid <= last)
    tally["expected"] += owed
    tally["unconfirmed"] += sum(1 for n in due[len(covered):] if n.zxid > last)
    if uncertain:
        _judge_by_rank(c, path, covered, due, owed, last, anomalies)
    else:
        _judge_exactly(c, path, covered, due, last, anomalies)


def _judge_exactly(c: Connection, path: str, events: list[dict], due: list[Notification], last: int,
                   anomalies: list[dict]) -> None:
    """Every change is known: a correct connection receives a prefix of what is due, each
    notification of its change's type and before any reply showing the change. A notification
    that does not fit the next due one is taken for the first later one it fits, the due ones in
    between missed; one that fits only a change already passed over came out of order; one that
    fits nothing is reported as it stands. Each due notification is passed over at most once."""
    i, missed = 0, []
    for e in events:
        j = next((j for j in range(i, len(due)) if _fits(e, due[j])), None)
        if j is None:
            earlier = next((n for n in missed if _fits(e, n)), None)
            if earlier is not None:
                anomalies.append(_anomaly("wrong-event", c, path, f"{_at(c, e)} stands for {_change(earlier)}, "
                                          "but came after the notification of a later change", e, earlier))
                return
            if i >= len(due):
                anomalies.append(_anomaly("duplicate-event", c, path, f"{_at(c, e)} is one more than the "
                                          f"{len(due)} changes its watches covered", event=e))
                return
            n = due[i]
            kind = "wrong-event" if e["type"] != n.type else "late-event"
            anomalies.append(_anomaly(kind, c, path, f"{_at(c, e)} stands for {_change(n)}"
                                      + ("" if kind == "wrong-event" else f", but came after a reply at "
                                                                          f"{e['zxid']:#x} showing it"), e, n))
            return
        missed += due[i:j]
        _stale_after(c, path, e, due[j], anomalies)
        i = j + 1
    missed += [n for n in due[i:] if n.zxid <= last]
    if missed:
        _missed(c, path, missed, last, anomalies)


def _judge_by_rank(c: Connection, path: str, events: list[dict], due: list[Notification], owed: int, last: int,
                   anomalies: list[dict]) -> None:
    """Writes with an unknown outcome may have notified too: the k-th change is then no later than
    the k-th known one, so the k-th notification is late if a reply before it showed the k-th
    known change; and fewer notifications than known changes owed means some were missed."""
    for e, n in zip(events, due):
        if isinstance(e.get("zxid"), int) and e["zxid"] >= n.zxid:
            anomalies.append(_anomaly("late-event", c, path, f"{_at(c, e)} came after a reply at {e['zxid']:#x}, "
                                      f"which shows {_change(n)} or an earlier change", e, n))
    if len(events) < owed:
        _missed(c, path, [n for n in due if n.zxid <= last][len(events):], last, anomalies)


def _fits(e: dict, n: Notification) -> bool:
    return e["type"] == n.type and not (isinstance(e.get("zxid"), int) and e["zxid"] >= n.zxid)


def _stale_after(c: Connection, path: str, e: dict, n: Notification, anomalies: list[dict]) -> None:
    after = _next_reply(c, e["seq"])
    if after is not None and after["zxid"] < n.zxid:
        anomalies.append(_anomaly("stale-after-event", c, path, f"{_at(c, e)} was followed by a reply at "
                                  f"{after['zxid']:#x}, older than {_change(n)}", e, n))


def _missed(c: Connection, path: str, missed: list[Notification], last: int, anomalies: list[dict]) -> None:
    n = missed[0]
    anomalies.append(_anomaly("missed-event", c, path, f"watcher {c.watcher} connection {c.conn} never got the "
                              f"notification of {_change(n)}, though a reply at {last:#x} showed it (missed on "
                              f"this path: {len(missed)})", change=n))


def _next_reply(c: Connection, seq: int) -> dict | None:
    i = bisect_right(c.reply_seqs, seq)
    return c.replies[i] if i < len(c.replies) else None


def _at(c: Connection, e: dict) -> str:
    return f"watcher {c.watcher} connection {c.conn}: {e['type']} notification of {e['path']} (frame {e['seq']})"


def _change(n: Notification) -> str:
    return f"the {n.op.f} at {n.zxid:#x} by process {n.op.process} (records {n.op.call}..{n.op.ret})"


def _anomaly(kind: str, c: Connection, path: str, text: str, event: dict | None = None,
             change: Notification | None = None) -> dict:
    out = {"type": kind, "explanation": text, "zookeeper": VIOLATION, "classification": CLASSIFICATION[kind],
           "watcher": c.watcher, "conn": c.conn, "path": path}
    if event is not None:
        out["event"] = dict(event)
    if change is not None:
        out["change"] = op_record(change.op)
    return out


def _result(connections: list[Connection], streams: dict[str, list[Notification]], uncertain: set[str],
            anomalies: list[dict], tally: dict[str, int]) -> dict[str, Any]:
    watches = sum(len(c.watches) for c in connections)
    events = sum(len(c.events) for c in connections)
    out = judge(anomalies, "zookeeper", None if watches else "no watch was set: nothing to check",
                f"{events} notifications on {len(connections)} connections: every one of the "
                f"{tally['expected']} due came, in order, before any reply showing its change")
    return {
        **out,
        "watchers": len({c.watcher for c in connections}),
        "connections": len(connections),
        "disconnections": sum(1 for c in connections if c.dropped),
        "watches_set": watches,
        "events": events,
        "expected": tally["expected"],
        "unconfirmed": tally["unconfirmed"],
        "changes": {"known": len({id(n.op) for s in streams.values() for n in s}),
                    "uncertain_paths": sorted(uncertain)},
    }


class WatchChecker:
    """The watch workload's checker (the consistency option changes nothing: the ordering of
    notifications is one guarantee under both models)."""

    def __init__(self, key_path: Callable[[Any], str]) -> None:
        self.key_path = key_path

    def check(self, history: History, options: Mapping[str, Any]) -> dict[str, Any]:
        return check_watch(history, self.key_path)
