"""The ephemeral workload: sessions create ephemeral nodes under one parent, keep them, and end
(a `close` op, or an expiry the faults cause); every process also reads the parent's children
through the server its session is on, so each server's view of the ephemerals is sampled.

Ops (history values; the completion adds the fields after the invocation's):
  create {"name": "e-7"}     + {"owner": "0x...", "czxid": z}   ephemeral create; the Stat's
                             ephemeralOwner and czxid
  read   {}                  + {"names": [name, ...], "pzxid": z, "cversion": c}   getChildren of
                             the parent with its Stat; the record's zxid places the read
  read   {"final": true}     final phase: sync, then getChildren, again every 0.25 s until no
                             ephemeral is left or `2 x session timeout + 2 s` passed;
                             + {"names", "pzxid", "cversion", "waited_s"}
  close  {}                  + {"session": "0x...", "zxid": z}   closeSession; z is the zxid of
                             the close's reply (at or after the closeSession txn). info when the
                             reply never came (the session then expires on its own)
Any completion may also carry "expired": [{"session": "0x..."}]: sessions of this client that
ended without a close op, as kazoo reported (state LOST) before the op completed. The client
then goes on with a new session.

Outcomes: create fail = the name existed (never: names are unique); info = unknown.
The final phase runs after every client of the run has stopped, so by then every session of the
run has ended or will within its timeout: a settled final read lists nothing.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from typing import Any

import click
from kazoo.protocol.states import KazooState

from harness.checkers.ephemeral import EphemeralChecker
from harness.history import FAIL, INFO, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .zkclient import ZkClient

PARENT = "/zkchaos/ephemeral"
MAX_HELD = 3  # ephemerals a session keeps at most before it closes
SETTLE_POLL_S = 0.25

SESSION_TIMEOUT = Option(
    "coordination-session-timeout", 4.0,
    "Session timeout (s) of the ephemeral, lock and watch clients: short, so faults expire sessions.",
    type=click.FloatRange(1.0, 60.0))


def settle_deadline(session_timeout: float) -> float:
    """How long a final check waits for the run's sessions to end: their timeout, and again for
    a leader elected meanwhile that restarts every session's clock."""
    return 2 * session_timeout + 2.0


class SessionEndingClient(ZkClient):
    """A client whose session endings are in the history: `end_session` closes the session on
    purpose (and the next op opens a new one); an expiry kazoo reports is attached to the next
    completion as value["expired"]."""

    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.session_timeout = float(options.get(SESSION_TIMEOUT.key, SESSION_TIMEOUT.default))
        self.guard = threading.Lock()
        self.current: int | None = None  # the session kazoo last connected with
        self.expired: list[dict] = []  # not yet reported
        self.closing = False
        self.reopen = False

    def open(self, node: Any, nodes: list) -> None:
        super().open(node, nodes)
        self.current = self.zk.client_id[0] if self.zk.client_id else None
        self.zk.add_listener(self._state_changed)

    def _state_changed(self, state: str) -> None:
        """On kazoo's connection thread, before it forgets the session."""
        if state == KazooState.CONNECTED and self.zk.client_id:
            self.current = self.zk.client_id[0]
        elif state == KazooState.LOST and not self.closing and self.current is not None:
            with self.guard:
                self.expired.append({"session": f"0x{self.current:x}"})
            self.current = None

    def invoke(self, f: str, value: Any) -> Completion:
        if self.reopen:
            try:
                self.zk.start(timeout=max(self.op_timeout, 5.0))
                self.reopen = False
            except Exception as e:  # noqa: BLE001 - no session, so the op was never sent
                return Completion(FAIL, error=f"no session: {type(e).__name__}")
        done = super().invoke(f, value)
        with self.guard:
            expired, self.expired = self.expired, []
        if not expired:
            return done
        base = done.value if isinstance(done.value, dict) else dict(value)
        return Completion(done.type, {**base, "expired": expired}, done.error, done.zxid)

    def end_session(self) -> tuple[str | None, int | None]:
        """Close the session: (its id, the zxid of the close's reply, None if none came). kazoo
        forgets the zxid when it reports the session closed, so a listener takes it first."""
        session = f"0x{self.current:x}" if self.current is not None else None
        before = self.zk.last_zxid
        closed_at: list[int] = []

        def take_zxid(state: str) -> bool:
            if state == KazooState.LOST:
                closed_at.append(self.zk.last_zxid)
                return True  # done: kazoo removes the listener
            return False

        self.closing = True
        self.zk.add_listener(take_zxid)
        try:
            self.zk.stop()
        finally:
            self.zk.remove_listener(take_zxid)
            self.closing, self.current, self.reopen = False, None, True
        # Only the close's reply can raise the zxid here: ops are sequential and pings carry none.
        zxid = closed_at[0] if closed_at and closed_at[0] > before else None
        return session, zxid


class EphemeralClient(SessionEndingClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"create": self.create, "read": self.read, "close": self.close_session}

    def prepare(self) -> None:
        self.zk.ensure_path(PARENT)

    def create(self, value: dict) -> Completion:
        _, stat = self.wait(self.zk.create_async(f"{PARENT}/{value['name']}", b"", ephemeral=True,
                                                 include_data=True))
        return Completion(OK, dict(value, owner=f"0x{stat.ephemeralOwner:x}", czxid=stat.czxid))

    def read(self, value: dict) -> Completion:
        if not value.get("final"):
            names, stat = self.wait(self.zk.get_children_async(PARENT, include_data=True))
            return Completion(OK, dict(value, names=sorted(names), pzxid=stat.pzxid, cversion=stat.cversion))
        start = time.monotonic()
        deadline = start + settle_deadline(self.session_timeout)
        while True:
            self.wait(self.zk.sync_async(PARENT))
            names, stat = self.wait(self.zk.get_children_async(PARENT, include_data=True))
            if not names or time.monotonic() >= deadline:
                return Completion(OK, dict(value, names=sorted(names), pzxid=stat.pzxid, cversion=stat.cversion,
                                           waited_s=round(time.monotonic() - start, 3)))
            time.sleep(SETTLE_POLL_S)

    def close_session(self, value: dict) -> Completion:
        session, zxid = self.end_session()
        if zxid is None:
            return Completion(INFO, dict(value, session=session), error="no reply to the close")
        return Completion(OK, dict(value, session=session, zxid=zxid))


class EphemeralGenerator:
    """Per process: create ephemerals (at most MAX_HELD per session), read, and now and then
    close the session once it holds something. Names come from one counter, so none repeats."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.counter = itertools.count(1)
        self.held: dict[int, int] = {}  # process -> ephemerals its current session created
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            held, r = self.held.get(process, 0), self.rng.random()
            if held and r < 0.06 * held:
                return "close", {}
            if held < MAX_HELD and r > 0.55:
                return "create", {"name": f"e-{next(self.counter)}"}
            return "read", {}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        with self.lock:
            if f == "close" or (isinstance(done.value, dict) and done.value.get("expired")):
                self.held[process] = 0
            elif f == "create" and done.type == OK:
                self.held[process] = self.held.get(process, 0) + 1


def _final_read(options: Options, node: Any) -> Once:
    """After healing: the parent's children through every node, once the run's sessions ended."""
    return Once([("read", {"final": True})])


WORKLOAD = Workload(
    name="ephemeral",
    description="ephemeral nodes live exactly as long as their session: never lost while it lives, gone once it ends",
    client=EphemeralClient,
    generator=lambda options, rng: EphemeralGenerator(rng),
    checker=lambda options: EphemeralChecker(),
    final_generator=_final_read,
    options=(SESSION_TIMEOUT,),
)
