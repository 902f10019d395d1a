"""History checking speed: `zkchaos analyze --no-report` on generated valid histories of each
workload, 10k, 100k and 1M ops by default, against the targets and against the I/O floor.

Targets: a valid 100k-op register history (20 processes, 10 keys, ~2% info ops, unique values,
zxids and Stat as the register client records them) checked in <= 2.2 s wall, start-up included;
1M ops of any workload in < 60 s and < 2 GB; `analyze` on a tiny history started and done in
< 0.3 s without importing pandas, matplotlib, fabric or paramiko.

The histories are valid ones, made by a small simulation of each workload's client against one
server that applies every op at a point inside its interval (records, Stat fields and reply
zxids as the workload's module docstring describes them; register: tests/unit/checkers/simulate.py
with 20 processes, 10 keys, ~2% info ops). Every measurement is a process of its own, so
interpreter start-up counts and the peak memory is that process's (ru_maxrss). The floor is the
same kind of process that only reads the history (`harness.history.read_history`: the file, the
JSON, the required fields). Wall time on a shared machine is noisy: CPU time (user + sys) is
shown beside it, with the load average, and --repeat takes the median of several runs.
Histories are written to a temporary directory, removed at the end. This is a script, not a
test: speed targets are measured here, never asserted in tests.

    python benchmarks/checker.py --sizes 10000,100000 --workloads register --repeat 3
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import multiprocessing
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # harness, tests.unit.checkers.simulate

REGISTER_100K_S = 2.2
MILLION_S = 60.0
MILLION_MB = 2048
TINY_S = 0.3
TINY_OPS = 10
FORBIDDEN = ("pandas", "matplotlib", "fabric", "paramiko")
ZXID_BASE = 1 << 32  # epoch 1
READ_ONLY = "import sys; from harness.history import read_history; read_history(sys.argv[1])"


# --- generated histories: valid ones, records as the workload's client writes them ------------


def register_history(n_ops: int, seed: int) -> tuple[Iterable[dict], dict]:
    from tests.unit.checkers.simulate import simulate

    records = simulate(n_ops, processes=20, keys=10, info_rate=0.02, client=True, seed=seed)
    return records, {"workload": "register", "consistency": "zookeeper", "keys": 10}


@dataclass
class SimOp:
    process: int
    f: str
    value: dict  # the invocation's
    start: float
    end: float
    point: float  # when it takes effect
    final: bool = False
    type: str = "ok"
    out: dict | None = None  # the completion's value: the invocation's plus these fields
    error: str | None = None
    zxid: int | None = None  # the reply's
    session: str | None = None  # when not the process's one session


class Server:
    """One ZooKeeper-like server applying ops in the order they take effect: every op is atomic
    at its point, so the history is linearizable. `txn()` makes a new zxid."""

    def __init__(self) -> None:
        self.zxid = ZXID_BASE + 1  # the workload's setup (a create or a multi) was the first txn

    def txn(self) -> int:
        self.zxid += 1
        return self.zxid


def simulated(n_ops: int, seed: int, new_op: Callable, apply: Callable, final_ops: Callable,
              processes: int = 20) -> list[dict]:
    """Processes run ops back to back (random durations); `new_op(process, rng)` gives (f, value)
    or (f, value, session), `apply(server, op)` fills in the outcome in effect order, then
    `final_ops(server)` gives the final phase's ops (the same shapes), run one at a time through
    process 0 until it returns nothing more."""
    rng = random.Random(seed)
    free = [(rng.random(), p) for p in range(processes)]
    ops = []
    for _ in range(n_ops):
        start, p = free[0]
        end = start + rng.uniform(0.5, 3.0)
        heapq.heapreplace(free, (end + rng.uniform(0.0, 0.5), p))
        f, value, session = _shape(new_op(p, rng))
        ops.append(SimOp(p, f, value, start, end, rng.uniform(start, end), session=session))
    server = Server()
    for op in sorted(ops, key=lambda o: o.point):
        apply(server, op)
    t = max((o.end for o in ops), default=0.0) + 1.0
    while (nxt := final_ops(server)) is not None:
        f, value, session = _shape(nxt)
        op = SimOp(0, f, value, t, t + 1.0, t + 0.5, final=True, session=session)
        apply(server, op)
        ops.append(op)
        t += 2.0
    events = sorted([(o.start, 0, o) for o in ops] + [(o.end, 1, o) for o in ops], key=lambda e: e[:2])
    records = []
    for t, done, o in events:
        rec = {"index": len(records), "time_ns": int(t * 1e6), "process": o.process, "node": "n1",
               "type": o.type if done else "invoke", "f": o.f,
               "value": dict(o.value, **(o.out or {})) if done else o.value, "error": o.error if done else None,
               "zxid": o.zxid if done else None, "session": o.session or f"0x1000a3f2c{o.process:04x}"}
        if o.final:
            rec["final"] = True
        records.append(rec)
    return records


def _shape(op: tuple) -> tuple[str, dict, str | None]:
    """(f, value, session) from an op given as (f, value) or (f, value, session)."""
    return (*op, None) if len(op) == 2 else op


def counter_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    state = {"value": 0, "mzxid": ZXID_BASE + 1, "final": True}

    def apply(server: Server, op: SimOp) -> None:
        if op.f == "increment":
            state["value"] += 1
            state["mzxid"] = op.zxid = server.txn()
            op.out = {"value": state["value"], "version": state["value"], "mzxid": op.zxid, "attempts": 1}
        else:
            op.zxid = server.zxid
            op.out = {"value": state["value"], "version": state["value"], "mzxid": state["mzxid"]}

    def final(server: Server) -> tuple | None:
        once, state["final"] = state["final"], False
        return ("read", {"value": None, "sync": True}) if once else None

    def new(p: int, rng: random.Random) -> tuple:
        return ("increment", {"value": None}) if rng.random() < 0.5 else ("read", {"value": None})

    return simulated(n_ops, seed, new, apply, final), {"workload": "counter", "consistency": "zookeeper"}


def set_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    """Reads list the whole set, so there are few: about 20 whatever the size."""
    elements = itertools.count()
    state = {"elements": [], "cversion": 0, "pzxid": ZXID_BASE + 1, "final": True}

    def new(p: int, rng: random.Random) -> tuple:
        if rng.random() < 20 / max(n_ops, 20):
            return "read", {"elements": None}
        return "add", {"element": next(elements)}

    def apply(server: Server, op: SimOp) -> None:
        if op.f == "add":
            state["elements"].append(op.value["element"])
            state["cversion"] += 1
            state["pzxid"] = op.zxid = server.txn()
            op.out = {"czxid": op.zxid}
        else:
            op.zxid = server.zxid
            op.out = {"elements": sorted(state["elements"]), "cversion": state["cversion"], "pzxid": state["pzxid"]}

    def final(server: Server) -> tuple | None:
        once, state["final"] = state["final"], False
        return ("read", {"elements": None, "final": True}) if once else None

    return simulated(n_ops, seed, new, apply, final), {"workload": "set", "consistency": "zookeeper"}


def unique_ids_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    state = {"names": [], "cversion": 0, "pzxid": ZXID_BASE + 1, "final": True}

    def apply(server: Server, op: SimOp) -> None:
        if op.f == "create":
            seq = state["cversion"]  # the parent's cversion before the create: ZooKeeper's number
            state["cversion"] += 1
            state["pzxid"] = op.zxid = server.txn()
            state["names"].append(f"id-{seq:010d}")
            op.out = {"name": state["names"][-1], "seq": seq, "czxid": op.zxid}
        else:
            op.zxid = server.zxid
            op.out = {"names": list(state["names"]), "cversion": state["cversion"], "pzxid": state["pzxid"]}

    def final(server: Server) -> tuple | None:
        once, state["final"] = state["final"], False
        return ("list", {"final": True}) if once else None

    new = lambda p, rng: ("create", {"ephemeral": False})  # noqa: E731
    return simulated(n_ops, seed, new, apply, final), {"workload": "unique-ids", "consistency": "zookeeper"}


def queue_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    elements, dequeues, drains = itertools.count(), itertools.count(), itertools.count(1)
    state = {"items": deque(), "seq": 0, "tombstones": [], "phase": "drain"}

    def new(p: int, rng: random.Random) -> tuple:
        if rng.random() < 0.5:
            return "enqueue", {"element": next(elements)}
        return "dequeue", {"op": f"d{next(dequeues)}"}

    def apply(server: Server, op: SimOp) -> None:
        if op.f == "enqueue":
            op.zxid = server.txn()
            state["items"].append((f"item-{state['seq']:010d}", op.value["element"]))
            state["seq"] += 1
            op.out = {"name": state["items"][-1][0], "czxid": op.zxid}
        elif op.f == "dequeue" and state["items"]:
            name, element = state["items"].popleft()
            op.zxid = server.txn()
            state["tombstones"].append({"name": name, "op": op.value["op"], "element": element, "zxid": op.zxid})
            op.out = {"name": name, "element": element}
        elif op.f == "dequeue":
            op.type, op.error, op.zxid = "fail", "empty", server.zxid
        else:
            op.zxid = server.zxid
            op.out = {"tombstones": sorted(state["tombstones"], key=lambda t: t["name"])}

    def final(server: Server) -> tuple | None:
        if state["phase"] == "drain":  # dequeue after a sync until one finds the queue empty
            state["phase"] = "drain" if state["items"] else "tombstones"
            return "dequeue", {"op": f"drain-n1-{next(drains)}", "sync": True}
        if state["phase"] == "tombstones":
            state["phase"] = "done"
            return "tombstones", {}
        return None

    return simulated(n_ops, seed, new, apply, final), {"workload": "queue", "consistency": "zookeeper"}


def bank_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    from harness.checkers.bank import INITIAL_BALANCE

    accounts = 5
    state = {"balances": [INITIAL_BALANCE] * accounts, "versions": [0] * accounts,
             "mzxids": [ZXID_BASE + 1] * accounts, "final": True}

    def new(p: int, rng: random.Random) -> tuple:
        if rng.random() < 0.5:
            return "read", {}
        payer, payee = rng.sample(range(accounts), 2)
        return "transfer", {"from": payer, "to": payee, "amount": rng.randint(1, 20)}

    def apply(server: Server, op: SimOp) -> None:
        balances, versions, mzxids = state["balances"], state["versions"], state["mzxids"]
        if op.f == "read":
            op.zxid = server.zxid
            op.out = {"balances": list(balances), "versions": list(versions), "mzxids": list(mzxids)}
            return
        a, b, amount = op.value["from"], op.value["to"], op.value["amount"]
        if balances[a] < amount:
            op.type, op.error, op.zxid = "fail", "insufficient funds", server.zxid
            return
        op.zxid = server.txn()
        balances[a] -= amount
        balances[b] += amount
        for i in (a, b):
            versions[i] += 1
            mzxids[i] = op.zxid
        op.out = {"balances": [balances[a], balances[b]], "versions": [versions[a], versions[b]], "zxid": op.zxid}

    def final(server: Server) -> tuple | None:
        once, state["final"] = state["final"], False
        return ("read", {"sync": True}) if once else None

    return simulated(n_ops, seed, new, apply, final), {"workload": "bank", "consistency": "zookeeper",
                                                        "accounts": accounts}


def ephemeral_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    """Each process's session creates up to 3 ephemerals, reads the children and at times closes
    (its next op starts a new session); the final phase closes the sessions still holding
    ephemerals, as the run's clients do when they stop, then reads the children."""
    names = itertools.count()
    sessions = {}  # process -> (its session, how many of its creates began)
    state = {"owned": {}, "children": {}, "pzxid": ZXID_BASE + 1, "cversion": 0, "closing": None}

    def new(p: int, rng: random.Random) -> tuple:
        session, created = sessions.get(p, (f"0x{p + 1:04x}{0:012x}", 0))
        r = rng.random()
        if created < 3 and r < 0.35:
            sessions[p] = (session, created + 1)
            return "create", {"name": f"e-{next(names)}"}, session
        if r < 0.9:
            sessions[p] = (session, created)
            return "read", {}, session
        sessions[p] = (f"0x{p + 1:04x}{int(session[6:], 16) + 1:012x}", 0)
        return "close", {}, session

    def apply(server: Server, op: SimOp) -> None:
        owned, children = state["owned"], state["children"]
        if op.f == "read":
            op.zxid = server.zxid
            op.out = {"names": sorted(children), "pzxid": state["pzxid"], "cversion": state["cversion"]}
            return
        op.zxid = server.txn()
        if op.f == "create":
            children[op.value["name"]] = op.session
            owned.setdefault(op.session, []).append(op.value["name"])
            state["pzxid"], state["cversion"] = op.zxid, state["cversion"] + 1
            op.out = {"owner": op.session, "czxid": op.zxid}
            return
        for name in owned.pop(op.session, ()):  # the closeSession txn deletes its ephemerals
            del children[name]
            state["pzxid"], state["cversion"] = op.zxid, state["cversion"] + 1
        op.out = {"session": op.session, "zxid": op.zxid}

    def final(server: Server) -> tuple | None:
        if state["closing"] is None:
            state["closing"] = sorted(state["owned"])
        if state["closing"]:
            return "close", {}, state["closing"].pop()
        if state["closing"] == []:
            state["closing"] = False
            return "read", {"final": True}
        return None

    return simulated(n_ops, seed, new, apply, final), {"workload": "ephemeral", "consistency": "zookeeper"}


@dataclass
class Txn:
    at: float  # when it takes effect
    zxid: int = 0  # given once every txn is known, in the order they take effect


@dataclass
class LockStep:
    """One op of a hold: the process, f, times, the txn it makes and its hold's lock node."""
    process: int
    f: str
    start: float
    end: float
    made: Txn
    node: Txn
    seq: int

    @property
    def name(self) -> str:
        return f"c{self.process}__lock__{self.seq:010d}"

    @property
    def session(self) -> str:
        return f"0x1000a3f2c{self.process:04x}"

    def invoked(self) -> dict:
        if self.f == "fence":
            return {"token": self.node.zxid, "process": self.process, "node": self.name}
        return {"node": self.name} if self.f == "release" else {}

    def returned(self) -> dict:
        if self.f == "acquire":
            return {"node": self.name, "seq": self.seq, "czxid": self.node.zxid, "owner": self.session}
        if self.f == "fence":
            return {"name": f"{self.node.zxid}-{self.process}", "fence_czxid": self.made.zxid}
        return {}


def lock_history(n_ops: int, seed: int, processes: int = 10) -> tuple[list[dict], dict]:
    """Processes loop acquire, fence, release; the lock is granted in the order the contenders'
    nodes were created (the order of their acquires), each once the previous holder's release
    has deleted its node. Txns get zxids in the order they take effect. The final phase
    inspects the lock: no holder, every fencing record."""
    rng = random.Random(seed)
    txns: list[Txn] = []
    steps: list[LockStep] = []
    requests = [(rng.uniform(0.0, 0.01), p) for p in range(processes)]
    heapq.heapify(requests)
    free_at = 0.0
    for seq in itertools.count():
        if len(steps) >= n_ops:
            break
        asked, p = heapq.heappop(requests)
        node = Txn(asked)
        granted = max(asked + 0.001, free_at + 0.0005)
        begin = granted + 0.0002
        end = begin + rng.uniform(0.02, 0.03)
        release = end + 0.0002
        fence, delete = Txn((begin + end) / 2), Txn(release + 0.0005)
        txns += [node, fence, delete]
        steps += [LockStep(p, "acquire", asked, granted, node, node, seq),
                  LockStep(p, "fence", begin, end, fence, node, seq),
                  LockStep(p, "release", release, release + 0.001, delete, node, seq)]
        free_at = delete.at
        heapq.heappush(requests, (release + 0.001 + rng.uniform(0.0, 0.01), p))
    for zxid, t in enumerate(sorted(txns, key=attrgetter("at")), ZXID_BASE + 2):
        t.zxid = zxid
    events = sorted([(s.start, 0, s) for s in steps] + [(s.end, 1, s) for s in steps], key=lambda e: e[:2])
    records = [{"index": i, "time_ns": int(t * 1e9), "process": s.process, "node": "n1",
                "type": "ok" if done else "invoke", "f": s.f,
                "value": dict(s.invoked(), **s.returned()) if done else s.invoked(),
                "error": None, "zxid": s.made.zxid if done else None, "session": s.session}
               for i, (t, done, s) in enumerate(events)]
    fences = [{"name": f"{s.node.zxid}-{s.process}", "czxid": s.made.zxid, "token": s.node.zxid,
               "process": s.process, "session": s.session, "begin_ns": int(s.start * 1e9),
               "end_ns": int(s.end * 1e9)} for s in steps if s.f == "fence"]
    last = int((max(s.end for s in steps) + 1.0) * 1e9)
    inspect = {"process": 0, "node": "n1", "f": "inspect", "error": None, "session": steps[0].session, "final": True}
    records += [dict(inspect, index=len(records), time_ns=last, type="invoke", value={"final": True}, zxid=None),
                dict(inspect, index=len(records) + 1, time_ns=last + 1, type="ok", zxid=max(t.zxid for t in txns),
                     value={"final": True, "holders": [], "waited_s": 0.0, "fences": fences})]
    return records, {"workload": "lock", "consistency": "zookeeper"}


def watch_history(n_ops: int, seed: int) -> tuple[list[dict], dict]:
    """Three writers create, set and delete keys k0..k2 under the root; a recursive and a
    persistent watcher record every notification, as the watch workload's clients journal them:
    watches set on their first `events`, then each `events` returns what arrived since the last
    one and a read of the root (at the current zxid: after every notification it shows)."""
    root, keys = "/zkchaos/watch", 3
    nodes: dict[int, int] = {}  # key -> version, for the keys that exist
    roles = {3: "recursive", 4: "persistent"}
    watchers = {p: {"armed": False, "seq": itertools.count(), "reply": 0, "journal": []} for p in roles}
    values = itertools.count()

    def new(p: int, rng: random.Random) -> tuple:
        if p in roles:
            return "events", {"role": roles[p]}
        f, key = rng.choice(("create", "set", "set", "delete")), rng.randrange(keys)
        return (f, {"key": key, "value": next(values)}) if f == "set" else (f, {"key": key})

    def notify(kind: str, path: str) -> None:
        for p, w in watchers.items():
            if w["armed"] and (path != root or roles[p] == "persistent") and (kind != "child" or roles[p] == "persistent"):
                w["journal"].append({"kind": "event", "type": kind, "path": path, "conn": 0, "seq": next(w["seq"]),
                                     "zxid": w["reply"], "server_zxid": None})

    def reply(w: dict, entry: dict, zxid: int) -> None:
        w["journal"].append(dict(entry, conn=0, seq=next(w["seq"]), zxid=zxid))
        w["reply"] = zxid

    def apply(server: Server, op: SimOp) -> None:
        if op.f == "events":
            w = watchers[op.process]
            if not w["armed"]:
                paths = [root] + ([f"{root}/k{k}" for k in range(keys)] if roles[op.process] == "persistent" else [])
                for path in paths:
                    reply(w, {"kind": "watch", "mode": roles[op.process], "path": path}, server.zxid)
                w["armed"] = True
            reply(w, {"kind": "read", "path": root, "exists": True, "mzxid": ZXID_BASE + 1}, server.zxid)
            op.zxid, op.out = server.zxid, {"watcher": f"w{op.process}", "journal": w["journal"]}
            w["journal"] = []
            return
        key = op.value["key"]
        path = f"{root}/k{key}"
        if (op.f == "create") == (key in nodes):
            op.type, op.error = "fail", "node exists" if op.f == "create" else "no node"
            return
        op.zxid = server.txn()
        if op.f == "create":
            nodes[key] = 0
            op.out = {"czxid": op.zxid}
        elif op.f == "set":
            nodes[key] += 1
            op.out = {"mzxid": op.zxid, "version": nodes[key]}
        else:
            del nodes[key]
        notify({"create": "created", "set": "changed", "delete": "deleted"}[op.f], path)
        if op.f != "set":
            notify("child", root)

    return simulated(n_ops, seed, new, apply, lambda server: None, processes=5), {"workload": "watch",
                                                                                   "consistency": "zookeeper"}


GENERATORS: dict[str, Callable[[int, int], tuple[Iterable[dict], dict]]] = {
    "register": register_history,
    "counter": counter_history,
    "set": set_history,
    "unique-ids": unique_ids_history,
    "queue": queue_history,
    "bank": bank_history,
    "ephemeral": ephemeral_history,
    "lock": lock_history,
    "watch": watch_history,
}


def write_store(workload: str, n_ops: int, seed: int, store: Path) -> None:
    """history.jsonl and test.json, as `zkchaos test` leaves them."""
    records, options = GENERATORS[workload](n_ops, seed)
    store.mkdir(parents=True)
    with open(store / "history.jsonl", "w") as f:
        for rec in records:
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    (store / "test.json").write_text(json.dumps(options))


def generate(workload: str, n_ops: int, seed: int, store: Path) -> None:
    """In a child process: a million ops take gigabytes to build, which this process keeps none of."""
    child = multiprocessing.get_context("fork").Process(target=write_store, args=(workload, n_ops, seed, store))
    child.start()
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"generating {n_ops} {workload} ops failed (exit {child.exitcode})")


# --- measuring one process ----------------------------------------------------------------------


@dataclass
class Run:
    wall: float
    cpu: float  # user + sys
    peak_mb: float
    code: int  # analyze: 0 valid, 1 invalid, 2 unknown, 3 error
    err: str = ""


def run(argv: list[str]) -> Run:
    with tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode(errors="replace").strip()
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, text)


def median_run(argv: list[str], repeat: int) -> Run:
    runs = [run(argv) for _ in range(repeat)]
    return Run(statistics.median(r.wall for r in runs), statistics.median(r.cpu for r in runs),
               max(r.peak_mb for r in runs), max(r.code for r in runs), runs[-1].err)


def analyze_argv(store: Path) -> list[str]:
    return [sys.executable, "-m", "cli", "analyze", "--no-report", str(store)]


VERDICT = {0: "valid", 1: "INVALID", 2: "unknown", 3: "ERROR"}


# --- the table ----------------------------------------------------------------------------------


def targets(workload: str, n_ops: int, r: Run) -> str:
    out = []
    if workload == "register" and n_ops == 100_000:
        out.append(_against(r.wall, REGISTER_100K_S, "s"))
    if n_ops >= 1_000_000:
        out.append(_against(r.wall, MILLION_S, "s"))
        out.append(_against(r.peak_mb, MILLION_MB, "MB"))
    return ", ".join(out) or "-"


def _against(value: float, target: float, unit: str) -> str:
    return f"{value / target:.2f} of {target:g} {unit} {'ok' if value <= target else 'MISSED'}"


def row(cells: Iterable[str], widths: list[int]) -> str:
    return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))


HEADER = ["workload", "ops", "records", "file MB", "wall s", "CPU s", "peak MB", "verdict",
          "read-only wall s", "CPU s", "peak MB", "wall/read-only", "vs targets"]
WIDTHS = [10, 9, 9, 8, 7, 7, 8, 8, 16, 6, 8, 14, 40]


def measure_sizes(workloads: list[str], sizes: list[int], repeat: int, seed: int, tmp: Path) -> None:
    print(row(HEADER, WIDTHS))
    for workload in workloads:
        for n_ops in sizes:
            store = tmp / f"{workload}-{n_ops}"
            generate(workload, n_ops, seed, store)
            history = store / "history.jsonl"
            with open(history) as f:
                records = sum(1 for _ in f)
            floor = median_run([sys.executable, "-c", READ_ONLY, str(history)], repeat)
            checked = median_run(analyze_argv(store), repeat)
            cells = [workload, n_ops, records, f"{history.stat().st_size / 2**20:.0f}", f"{checked.wall:.2f}",
                     f"{checked.cpu:.2f}", f"{checked.peak_mb:.0f}", VERDICT.get(checked.code, checked.code),
                     f"{floor.wall:.2f}", f"{floor.cpu:.2f}", f"{floor.peak_mb:.0f}",
                     f"{checked.wall / floor.wall:.1f}x", targets(workload, n_ops, checked)]
            print(row(cells, WIDTHS), flush=True)
            if checked.code == 3 or floor.code != 0:
                print(f"    error: {((checked.err or floor.err).splitlines() or ['?'])[-1]}")
            for path in store.iterdir():
                path.unlink()  # a million ops take hundreds of MB of disk: not kept for the next size
            store.rmdir()


def measure_startup(repeat: int, seed: int, tmp: Path) -> None:
    store = tmp / "tiny"
    generate("register", TINY_OPS, seed, store)
    r = median_run(analyze_argv(store), max(repeat, 5))
    heavy, culprit = forbidden_imports(analyze_argv(store))
    print(f"\nanalyze on a tiny history ({TINY_OPS} ops): wall {r.wall:.3f} s, CPU {r.cpu:.3f} s, "
          f"peak {r.peak_mb:.0f} MB, {VERDICT.get(r.code, r.code)}; {_against(r.wall, TINY_S, 's')}")
    print(f"  imported of {', '.join(FORBIDDEN)}: {', '.join(heavy) or 'none'}"
          + (f" (pulled in by `import {culprit}`)" if culprit else ""))


def forbidden_imports(argv: list[str]) -> tuple[list[str], str | None]:
    """Which FORBIDDEN packages the command imports, and the top-level import that brought the
    first one in (from -X importtime: nested imports are indented and listed before their parent)."""
    lines = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=ROOT, capture_output=True,
                           text=True).stderr.splitlines()
    names = [line.rsplit("|", 1)[-1][1:].rstrip() for line in lines if line.startswith("import time:")][1:]
    heavy = [n.strip() for n in names if n.strip() in FORBIDDEN]
    if not heavy:
        return [], None
    first = next(i for i, n in enumerate(names) if n.strip() == heavy[0])
    return heavy, next((n for n in names[first:] if not n.startswith(" ")), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="ops per history, comma-separated")
    parser.add_argument("--workloads", default=",".join(GENERATORS),
                        help=f"comma-separated, of: {', '.join(GENERATORS)}")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement (the median is shown)")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args()
    workloads = [w for w in args.workloads.split(",") if w]
    unknown = [w for w in workloads if w not in GENERATORS]
    if unknown:
        parser.error(f"no generator for {', '.join(unknown)}; choose from {', '.join(GENERATORS)}")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; "
          f"median of {args.repeat} run(s)\n")
    with tempfile.TemporaryDirectory(prefix="zkchaos-checker-bench-") as tmp:
        measure_sizes(workloads, sizes, args.repeat, args.seed, Path(tmp))
        measure_startup(args.repeat, args.seed, Path(tmp))
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
