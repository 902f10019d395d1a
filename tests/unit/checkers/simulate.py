"""Simulated register histories with a known verdict: a linearizable register, concurrent clients,
timed-out writes (that took effect or not), and optionally one injected stale read."""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Op:
    process: int
    f: str
    key: int
    start: float
    end: float
    point: float  # when it takes effect (linearization point)
    value: Any = None
    frm: Any = None
    timed_out: bool = False
    happens: bool = True
    result: Any = None
    zxid: int | None = None
    extra: dict = field(default_factory=dict)


def simulate(n_ops: int = 10_000, processes: int = 10, keys: int = 1, info_rate: float = 0.02,
             unique: bool = True, values: int = 5, cas_rate: float = 0.2, read_rate: float = 0.5,
             zxids: bool = False, readers: int = 0, lag: float = 0.0, seed: int = 1,
             client: bool = False) -> list[dict]:
    """A linearizable history: ops run back to back per process with random durations. The first
    `readers` processes only read. With `lag`, reads are served like a lagging follower does: the
    state at a random moment up to `lag` ago, but never older than what the session saw or wrote
    last (ZooKeeper's model, not linearizable). With `client`, records are what the register
    client writes (see `to_records`) and every key gets a final read at the end."""
    rng = random.Random(seed)
    clock = [(rng.random(), p) for p in range(processes)]
    heapq.heapify(clock)  # the process that is free first goes next (the lowest on ties)
    ops: list[_Op] = []
    counter = 0
    for _ in range(n_ops):
        start, p = clock[0]
        end = start + rng.uniform(0.5, 3.0)
        heapq.heapreplace(clock, (end + rng.uniform(0.0, 0.5), p))
        key = rng.randrange(keys)
        x = rng.random()
        op = _Op(p, "read", key, start, end, rng.uniform(start, end))
        if x >= read_rate and p >= readers:
            counter += 1
            value = counter if unique else rng.randrange(values)
            if x < read_rate + cas_rate:
                op.f, op.value = "cas", value
            else:
                op.f, op.value = "write", value
            if rng.random() < info_rate / (1 - read_rate):
                op.timed_out, op.happens = True, rng.random() < 0.5
        ops.append(op)
    if client:
        last = max(o.end for o in ops) if ops else 0.0
        for key in range(keys):  # after healing, one read of every key
            start = last + 1.0 + 2 * key
            ops.append(_Op(key % processes, "read", key, start, start + 1.0, start + 0.5, extra={"final": True}))
    state: dict[int, Any] = {}
    history: dict[int, list] = {}  # key -> values in order (for cas "from" choices)
    timeline: dict[int, tuple[list, list]] = {}  # key -> (points, values) of every write
    stats: dict[int, list] = {}  # key -> the node's Stat (version, mzxid) after each write
    cursor: dict[tuple, float] = {}  # (process, key) -> the moment its session last observed
    zxid = 0
    for op in sorted(ops, key=lambda o: o.point):
        cur = state.get(op.key)
        points, vals = timeline.setdefault(op.key, ([-1.0], [None]))
        stat = stats.setdefault(op.key, [(None, None)])
        op.extra["reply_zxid"] = zxid  # the server's last txn when the op took effect
        if op.f == "read":
            since = cursor.get((op.process, op.key), -1.0)
            moment = rng.uniform(max(since, op.point - lag), op.point) if lag else op.point
            i = bisect_right(points, moment) - 1
            op.result = vals[i]
            op.extra["stat"] = stat[i]
            cursor[(op.process, op.key)] = moment
            continue
        if op.f == "cas":
            # mostly expect the current value (the cas succeeds), sometimes a stale one (it fails)
            seen = history.get(op.key, [])
            op.frm = cur if rng.random() < 0.7 or not seen else rng.choice(seen)
            op.happens = op.happens and op.frm == cur
        if op.happens:  # a write, or a cas that matched
            state[op.key] = op.value
            history.setdefault(op.key, []).append(op.value)
            zxid += 1
            op.zxid = zxid
            points.append(op.point)
            vals.append(op.value)
            stat.append((0 if stat[-1][0] is None else stat[-1][0] + 1, zxid))  # create makes version 0
            op.extra["stat"] = stat[-1]
            if not op.timed_out:
                cursor[(op.process, op.key)] = op.point
    return to_records(ops, zxids, client)


ZXID_BASE = 1 << 32  # zxids of the simulated client: epoch 1, as a fresh ensemble's first leader


def to_records(ops: list[_Op], zxids: bool, client: bool = False) -> list[dict]:
    """With `client`, as the register client records them: ok values carry the node's Stat
    (`version`, `mzxid`), every completion the reply's zxid, every record the session id, and
    the final reads their `final` marks."""
    events = []
    for op in ops:
        value = ({"key": op.key, "from": op.frm, "to": op.value} if op.f == "cas"
                 else {"key": op.key, "value": op.value if op.f == "write" else None})
        if client and op.extra.get("final"):
            value["final"] = True
        events.append((op.start, 0, op, "invoke", value))
        if op.timed_out:
            done, out = "info", dict(value)
        elif op.f == "cas" and not op.happens:
            done, out = "fail", dict(value)
        else:
            done, out = "ok", dict(value)
            if op.f == "read":
                out["value"] = op.result
            if client:
                version, mzxid = op.extra["stat"]
                out["version"], out["mzxid"] = version, None if mzxid is None else ZXID_BASE + mzxid
        events.append((op.end, 1, op, done, out))
    events.sort(key=lambda e: (e[0], e[1]))
    records = []
    for t, _, op, kind, value in events:
        rec = {"index": len(records), "time_ns": int(t * 1e6), "process": op.process, "node": "n1",
               "type": kind, "f": op.f, "value": value, "error": "timeout" if kind == "info" else None}
        if client:
            # a write's reply carries its own txn's zxid; any other reply the server's latest
            zxid = op.zxid if kind == "ok" and op.f != "read" else op.extra["reply_zxid"]
            rec["zxid"] = ZXID_BASE + zxid if kind != "invoke" and zxid else None
            rec["session"] = f"0x1000a3f2c{op.process:04x}"
            if op.extra.get("final"):
                rec["final"] = True
        elif kind == "ok" and op.f != "read" and zxids:
            rec["zxid"] = op.zxid
        records.append(rec)
    return records


def inject_stale_read(records: list[dict], seed: int = 1, where: float = 0.5) -> dict:
    """Make one ok read, about `where` through the history, return a value that a write which
    completed before the read began had already replaced. Returns the changed record."""
    rng = random.Random(seed)
    start = int(len(records) * where)
    invoked = {}
    # versions per key in completion order of acknowledged writes (unique values: order by value
    # is not time; use the order the writes completed in, which is consistent with real time)
    for i, rec in enumerate(records):
        if rec["type"] == "invoke":
            invoked[rec["process"]] = i
        if i < start or rec["type"] != "ok" or rec["f"] != "read":
            continue
        key = rec["value"]["key"]
        inv = invoked[rec["process"]]
        # acknowledged writes of this key that completed before the read was invoked
        done = [r for r in records[:inv] if r["type"] == "ok" and r["f"] in ("write", "cas")
                and r["value"]["key"] == key]
        if len(done) < 2:
            continue
        last = done[-1]
        # a value the last acknowledged write certainly replaced: one acknowledged before it began
        last_inv = max(j for j in range(records.index(last)) if records[j]["process"] == last["process"]
                       and records[j]["type"] == "invoke")
        older = [r for r in records[:last_inv] if r["type"] == "ok" and r["f"] in ("write", "cas")
                 and r["value"]["key"] == key]
        if not older:
            continue
        old = older[rng.randrange(len(older))]
        rec["value"] = dict(rec["value"], value=old["value"]["value"] if old["f"] == "write" else old["value"]["to"])
        return rec
    raise ValueError("no read to make stale")


def inject_allowed_stale_read(records: list[dict], seed: int = 1, where: float = 0.5) -> dict:
    """Make a read by a read-only process stale but still allowed by ZooKeeper: it returns a value
    a finished write had replaced, yet no older than what its session saw before. Needs zxids
    (the write order) and single-key unique values."""
    rng = random.Random(seed)
    zxid = {(r["value"].get("to") if r["f"] == "cas" else r["value"]["value"]): r["zxid"]
            for r in records if r["type"] == "ok" and r["f"] != "read"}
    by_zxid = sorted(zxid, key=zxid.get)
    writing = {r["process"] for r in records if r["f"] != "read"}
    seen: dict[int, int] = {}  # process -> zxid of the newest value it read
    invoked: dict[int, int] = {}
    latest_done = 0  # zxid of the newest acknowledged write so far
    for i, rec in enumerate(records):
        if rec["type"] == "invoke":
            invoked[rec["process"]] = latest_done
            continue
        if rec["type"] == "ok" and rec["f"] != "read":
            latest_done = max(latest_done, rec["zxid"])
            continue
        if rec["type"] != "ok" or rec["f"] != "read":
            continue
        p = rec["process"]
        floor = seen.get(p, 0)
        ceiling = invoked[p]  # replaced by a write acknowledged before this read began
        value = rec["value"]["value"]
        seen[p] = max(floor, zxid.get(value, 0))
        if i < len(records) * where or p in writing:
            continue
        choices = [v for v in by_zxid if floor < zxid[v] < ceiling]
        if choices:
            rec["value"] = dict(rec["value"], value=rng.choice(choices))
            return rec
    raise ValueError("no read to make stale")


def inject_going_back(records: list[dict], where: float = 0.5) -> dict:
    """Make a read-only process's read return a value older (by zxid) than the one its previous
    read returned: a session going back. Needs zxids and single-key unique values."""
    zxid = {(r["value"].get("to") if r["f"] == "cas" else r["value"]["value"]): r["zxid"]
            for r in records if r["type"] == "ok" and r["f"] != "read"}
    writing = {r["process"] for r in records if r["f"] != "read"}
    last: dict[int, int] = {}
    for i, rec in enumerate(records):
        if rec["type"] != "ok" or rec["f"] != "read" or rec["process"] in writing:
            continue
        before = last.get(rec["process"], 0)
        last[rec["process"]] = max(before, zxid.get(rec["value"]["value"], 0))
        older = [v for v in zxid if 0 < zxid[v] < before]
        if i >= len(records) * where and older:
            rec["value"] = dict(rec["value"], value=max(older, key=zxid.get))
            return rec
    raise ValueError("no read to send back")
