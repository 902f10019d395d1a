"""The lock workload: kazoo's Lock recipe (ephemeral sequential contenders, each watching its
predecessor) as a mutex. A holder's critical section writes a fencing record: the lock node's
czxid, its token, as a persistent child /zkchaos/lock-fence/<token>-<process>, so the order in
which holders wrote (the records' own czxids) can be compared with the order of their tokens.

Ops (history values; the completion adds the fields after the invocation's):
  acquire {}                          + {"node": "<uuid>__lock__0000000042", "seq": 42, "czxid": z,
                                      "owner": "0x..."}   the lock node, read back (czxid is the token)
  fence   {"token": z, "process": p, "node": name}   + {"name": "<z>-<p>", "fence_czxid": f}
                                      sleeps HOLD_S (the critical section), then creates the
                                      record; its data is JSON
                                      {"token", "process", "session", "begin_ns", "end_ns"}
                                      (monotonic clock of the harness host)
  release {"node": name}              delete of the lock node; fail "lock node gone": it had already
                                      vanished (its session ended, so the lock was lost before)
  inspect {"final": true}             final phase: sync, then the lock's children again every 0.25 s
                                      until none is left or `2 x session timeout + 2 s` passed, then
                                      every fencing record: + {"holders": [name, ...], "waited_s",
                                      "fences": [{"name", "czxid", ...the record's data}]}
Completions may carry "expired": [{"session"}] (workloads/ephemeral.py). When acquire, fence or
release ends with an unknown outcome the client closes its session, so that no lock node it
cannot account for outlives it, and the info completion says so: "dropped": {"session", "zxid"}
(zxid of the close's reply, null if none came). The next op runs in a new session.

Outcomes: acquire fail = not acquired within --lock-acquire-timeout (and no contender node of
ours left); info = unknown, also when the recipe has not returned after that timeout plus the op
timeout (its calls wait while the connection is down); fence fail = the record existed.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import click
from kazoo.exceptions import LockTimeout, NodeExistsError, NoNodeError

import nemesis
from harness.checkers.lock import LockChecker
from harness.history import FAIL, INFO, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .ephemeral import SESSION_TIMEOUT, SessionEndingClient, settle_deadline

LOCK_PATH = "/zkchaos/lock"
FENCE_PATH = "/zkchaos/lock-fence"
HOLD_S = 0.02
SETTLE_POLL_S = 0.25
CHAINED = ("acquire", "fence", "release")  # the ops of one hold


class LockClient(SessionEndingClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.acquire_timeout = float(options.get("lock_acquire_timeout", 2.0))
        self.ops = {"acquire": self.acquire, "fence": self.fence, "release": self.release, "inspect": self.inspect}

    def prepare(self) -> None:
        self.zk.ensure_path(LOCK_PATH)
        self.zk.ensure_path(FENCE_PATH)

    def invoke(self, f: str, value: Any) -> Completion:
        done = super().invoke(f, value)
        if done.type != INFO or f not in CHAINED:
            return done
        session, zxid = self.end_session()
        base = done.value if isinstance(done.value, dict) else dict(value)
        return Completion(INFO, {**base, "dropped": {"session": session, "zxid": zxid}}, done.error, done.zxid)

    def acquire(self, value: dict) -> Completion:
        lock = self.zk.Lock(LOCK_PATH)  # a fresh recipe object: one per hold
        got = self._within_bounds(lock)
        if not got:
            # kazoo removes its contender node on the way out, on a best-effort basis; one left
            # behind would hold the lock for a live session that never uses it.
            children = self.wait(self.zk.get_children_async(LOCK_PATH))
            if any(c.startswith(lock.prefix) for c in children):
                raise RuntimeError("contender node left behind")
            return Completion(FAIL, error="not acquired in time")
        stat = self.wait(self.zk.exists_async(f"{LOCK_PATH}/{lock.node}"))
        if stat is None:
            raise RuntimeError("lock node gone right after acquiring")  # the session ended: unknown
        return Completion(OK, dict(value, node=lock.node, seq=int(lock.node[-10:]), czxid=stat.czxid,
                                   owner=f"0x{stat.ephemeralOwner:x}"))

    def _within_bounds(self, lock: Any) -> bool:
        """The recipe's timeout does not bound it: its calls wait, queued, while the connection is
        down. So it runs aside; if it has not returned in time the op is unknown, and dropping the
        session (see invoke) fails its queued calls and frees any node it holds."""
        outcome: list = []

        def attempt() -> None:
            try:
                outcome.append(lock.acquire(timeout=self.acquire_timeout))
            except LockTimeout:
                outcome.append(False)
            except Exception as e:  # noqa: BLE001 - handed to the op, which makes it unknown
                outcome.append(e)

        helper = threading.Thread(target=attempt, name="lock-acquire", daemon=True)
        helper.start()
        helper.join(self.acquire_timeout + self.op_timeout)
        if not outcome:
            raise TimeoutError("the lock recipe did not return in time")
        if isinstance(outcome[0], Exception):
            raise outcome[0]
        return outcome[0]

    def fence(self, value: dict) -> Completion:
        begin = time.monotonic_ns()
        time.sleep(HOLD_S)
        name = f"{value['token']}-{value['process']}"
        record = {"token": value["token"], "process": value["process"], "begin_ns": begin,
                  "session": f"0x{self.current:x}" if self.current is not None else None,
                  "end_ns": time.monotonic_ns()}
        try:
            _, stat = self.wait(self.zk.create_async(f"{FENCE_PATH}/{name}", json.dumps(record).encode(),
                                                     include_data=True))
        except NodeExistsError:
            return Completion(FAIL, error="fencing record exists")
        return Completion(OK, dict(value, name=name, fence_czxid=stat.czxid))

    def release(self, value: dict) -> Completion:
        try:
            self.wait(self.zk.delete_async(f"{LOCK_PATH}/{value['node']}"))
        except NoNodeError:
            return Completion(FAIL, error="lock node gone")
        return Completion(OK, value)

    def inspect(self, value: dict) -> Completion:
        start = time.monotonic()
        deadline = start + settle_deadline(self.session_timeout)
        while True:
            self.wait(self.zk.sync_async(LOCK_PATH))
            holders = self.wait(self.zk.get_children_async(LOCK_PATH))
            if not holders or time.monotonic() >= deadline:
                break
            time.sleep(SETTLE_POLL_S)
        self.wait(self.zk.sync_async(FENCE_PATH))
        names = self.wait(self.zk.get_children_async(FENCE_PATH))
        pending = [(n, self.zk.get_async(f"{FENCE_PATH}/{n}")) for n in names]  # pipelined
        fences = []
        for name, result in pending:
            data, stat = self.wait(result)
            fences.append({**json.loads(data), "name": name, "czxid": stat.czxid})
        return Completion(OK, dict(value, holders=sorted(holders), waited_s=round(time.monotonic() - start, 3),
                                   fences=sorted(fences, key=lambda r: r["czxid"])))


class LockGenerator:
    """Each process in a loop: acquire; when it got the lock, fence with its token, then release."""

    def __init__(self) -> None:
        self.next_op: dict[int, tuple[str, dict]] = {}  # process -> what follows in its hold
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            return self.next_op.pop(process, None) or ("acquire", {})

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        with self.lock:
            if f == "acquire" and done.type == OK:
                self.next_op[process] = ("fence", {"token": done.value["czxid"], "process": process,
                                                   "node": done.value["node"]})
            elif f == "fence" and done.type != INFO:
                self.next_op[process] = ("release", {"node": value["node"]})


def _final_inspect(options: Options, node: Any) -> Once:
    """After healing, through every node: nobody holds the lock; the fencing records."""
    return Once([("inspect", {"final": True})])


WORKLOAD = Workload(
    name="lock",
    description="kazoo's Lock recipe as a mutex: no two live holders at once, fencing tokens in order",
    client=LockClient,
    generator=lambda options, rng: LockGenerator(),
    checker=lambda options: LockChecker(nemesis.fault_fs(), nemesis.heal_fs()),
    final_generator=_final_inspect,
    options=(
        SESSION_TIMEOUT,
        Option("lock-acquire-timeout", 2.0, "Seconds an acquire waits for the lock before it fails.",
               type=click.FloatRange(0.1, 60.0)),
    ),
)
