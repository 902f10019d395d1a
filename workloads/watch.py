"""The watch workload: writers create, change and delete the keys of one subtree while watchers
hold one kind of watch each on it and record every notification they receive, in the order their
connection received it among the replies.

Roles (one per client, for its whole life; handed out in turn: writer, data, child, persistent,
recursive, so --concurrency 5 has one of each):
  writer      create / set / delete of random keys /zkchaos/watch/k<i>
  data        a one-shot data watch on every key (exists), re-armed after it fires
  child       a one-shot child watch on the subtree's root (getChildren), re-armed after it fires
  persistent  persistent watches (addWatch, mode 0) on the root and on every key
  recursive   one persistent recursive watch (addWatch, mode 1) on the root
Watches die with their connection (kazoo 2.11 does not set them again), so after a disconnection
the watcher arms them all again on its next op.

Ops (history values; the completion adds the fields after the invocation's):
  create {"key": k}                      + {"czxid": z}          fail: the key existed
  set    {"key": k, "value": n}          + {"mzxid": z, "version": v}   fail: no such key
  delete {"key": k}                      the record's zxid is the delete's   fail: no such key
  events {"role": r}                     + {"role": actual, "watcher": id, "journal": [entry, ...]}
    A client takes the role its first op suggests and keeps it; for a watcher the op arms what is
    not armed, waits up to EVENT_WAIT_S for a notification, arms again what fired, reads the node
    of the last notification (or the root) without a watch, and returns everything its connection
    saw since the last `events`, in the order received. Entries (all with "conn": how many times
    this client's connection had dropped, "seq": the frame's position among those received):
      {"kind": "watch", "mode", "path", "zxid": reply zxid, + data: "exists", "mzxid";
       child: "children", "pzxid"}                            a watch set (its reply)
      {"kind": "event", "type": created|deleted|changed|child, "path", "zxid": the zxid of the
       last reply received before it, "server_zxid": the notification's own (null: the server
       sends -1, as ZooKeeper 3.8 and zkchaos do)}
      {"kind": "read", "path", "zxid", "exists", "mzxid"}    the read after notifications
      {"kind": "disconnected", "state": suspended|lost}      kazoo told the client; "conn" is
                                                            the connection that ended
Outcomes: fail = certainly no change; info = unknown.
"""

from __future__ import annotations

import itertools
import random
import threading
import uuid
from collections import namedtuple
from typing import Any, Callable

from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.serialization import Exists, GetChildren2, Watch, int_struct, write_string
from kazoo.protocol.states import KazooState

from harness.checkers.watch import WatchChecker
from harness.history import FAIL, INFO, OK
from harness.workload import Completion, Options, Workload

from .ephemeral import SESSION_TIMEOUT
from .zkclient import ZkClient

ROOT = "/zkchaos/watch"
KEYS = 3
EVENT_WAIT_S = 0.5
ROLES = ("writer", "data", "child", "persistent", "recursive")
EVENT_TYPES = {1: "created", 2: "deleted", 3: "changed", 4: "child"}
ADD_WATCH_MODES = {"persistent": 0, "recursive": 1}


def key_path(key: int) -> str:
    return f"{ROOT}/k{key}"


def watches_of(role: str) -> list[tuple[str, str]]:
    """(mode, path) of every watch a role holds."""
    keys = [key_path(k) for k in range(KEYS)]
    return {"data": [("data", k) for k in keys], "child": [("child", ROOT)],
            "persistent": [("persistent", ROOT)] + [("persistent", k) for k in keys],
            "recursive": [("recursive", ROOT)]}.get(role, [])


class AddWatch(namedtuple("AddWatch", "path mode")):
    """addWatch (opcode 106, ZooKeeper 3.6+), which kazoo 2.11 lacks; the reply has no body
    worth reading (an error code, which the reply header repeats)."""

    type = 106

    def serialize(self) -> bytearray:
        return bytearray(write_string(self.path) + int_struct.pack(self.mode))

    @classmethod
    def deserialize(cls, buffer: bytes, offset: int) -> None:
        return None


class ConnectionTap:
    """Taps kazoo's connection thread, where frames arrive in order. It counts frames and the
    connection's drops (`conn`), keeps the zxid of the last reply, hands every notification to
    `on_event` (kazoo itself delivers only those it holds a watcher for, which persistent watches
    never have) and the reply to every request in `awaiting` to `on_reply`, there and then: a
    watch is set when its reply arrives, even if the op waiting for it has given up."""

    def __init__(self, connection: Any, on_event: Callable[[int, str, int, int], None],
                 on_reply: Callable[[tuple, Any, int, int, int], None]) -> None:
        self.frames = 0
        self.conn = 0
        self.header_zxid = -1
        self.reply_zxid = 0  # of the last reply
        self.awaiting: dict[int, tuple[Any, tuple]] = {}  # id(request) -> (request, what it is)
        read_header, read_response, read_event = (connection._read_header, connection._read_response,
                                                  connection._read_watch_event)
        client = connection.client

        def header(timeout: float) -> tuple:
            h, buffer, offset = read_header(timeout)
            self.frames += 1
            self.header_zxid = h.zxid
            return h, buffer, offset

        def response(h: Any, buffer: bytes, offset: int) -> Any:
            pending = client._pending  # looked up each time: kazoo replaces it when a session is lost
            request, result, _ = pending[0] if pending else (None, None, None)  # kazoo pops it next
            out = read_response(h, buffer, offset)
            self.reply_zxid = max(h.zxid, 0) or self.reply_zxid
            waiting = self.awaiting.pop(id(request), None)
            if waiting is not None and result is not None and result.successful():
                on_reply(waiting[1], result.value, self.frames, self.conn, h.zxid)
            return out

        def event(buffer: bytes, offset: int) -> None:
            watch, _ = Watch.deserialize(buffer, offset)
            on_event(watch.type, watch.path, self.frames, self.header_zxid)
            read_event(buffer, offset)

        connection._read_header, connection._read_response, connection._read_watch_event = header, response, event


class WatchClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.session_timeout = float(options.get(SESSION_TIMEOUT.key, SESSION_TIMEOUT.default))
        self.role: str | None = None
        self.watcher = uuid.uuid4().hex[:8]
        self.tap: ConnectionTap | None = None
        self.guard = threading.Lock()
        self.journal: list[dict] = []
        self.armed: dict[str, tuple[int, int]] = {}  # path -> (conn, frame) of the watch's reply
        self.fired: dict[str, int] = {}  # path -> frame of its last notification
        self.last_event_path = ROOT
        self.arrived = threading.Event()
        self.ops = {"create": self.create, "set": self.set, "delete": self.delete, "events": self.events}

    def prepare(self) -> None:
        self.zk.ensure_path(ROOT)

    # --- writers ---

    def create(self, value: dict) -> Completion:
        try:
            _, stat = self.wait(self.zk.create_async(key_path(value["key"]), b"", include_data=True))
        except NodeExistsError:
            return Completion(FAIL, error="node exists")
        return Completion(OK, dict(value, czxid=stat.czxid))

    def set(self, value: dict) -> Completion:
        try:
            stat = self.wait(self.zk.set_async(key_path(value["key"]), str(value["value"]).encode()))
        except NoNodeError:
            return Completion(FAIL, error="no node")
        return Completion(OK, dict(value, mzxid=stat.mzxid, version=stat.version))

    def delete(self, value: dict) -> Completion:
        try:
            self.wait(self.zk.delete_async(key_path(value["key"])))
        except NoNodeError:
            return Completion(FAIL, error="no node")
        return Completion(OK, value)

    # --- watchers ---

    def events(self, value: dict) -> Completion:
        if self.role is None:
            self._adopt(value.get("role") or "writer")
        if self.role == "writer":
            return Completion(OK, dict(value, role=self.role))
        self._arm()
        if not self.arrived.is_set():
            self.arrived.wait(EVENT_WAIT_S)
        self.arrived.clear()
        self._arm()
        self._send(Exists(self.last_event_path, None), ("read", None, self.last_event_path))
        with self.guard:
            journal, self.journal = sorted(self.journal, key=lambda e: e["seq"]), []
        return Completion(OK, dict(value, role=self.role, watcher=self.watcher, journal=journal))

    def _adopt(self, role: str) -> None:
        self.role = role
        if role in ROLES[1:]:
            self.tap = ConnectionTap(self.zk._connection, self._notified, self._replied)
            self.zk.add_listener(self._state_changed)

    def _state_changed(self, state: str) -> None:
        """On the connection thread: the connection ended, and every watch with it. (Requests
        kazoo fails stay in `awaiting`: few, and one sent after the drop must not be forgotten.)"""
        if state in (KazooState.SUSPENDED, KazooState.LOST):
            with self.guard:
                self.journal.append({"kind": "disconnected", "state": state.lower(), "conn": self.tap.conn,
                                     "seq": self.tap.frames})
                self.tap.conn += 1

    def _notified(self, kind: int, path: str, frame: int, server_zxid: int) -> None:
        with self.guard:
            self.journal.append({"kind": "event", "type": EVENT_TYPES.get(kind, str(kind)), "path": path,
                                 "seq": frame, "conn": self.tap.conn, "zxid": self.tap.reply_zxid,
                                 "server_zxid": server_zxid if server_zxid > 0 else None})
            self.fired[path] = frame
            self.last_event_path = path
        self.arrived.set()

    def _replied(self, what: tuple, result: Any, frame: int, conn: int, zxid: int) -> None:
        """On the connection thread: journal a reply where it arrived; a watch stands from then."""
        kind, mode, path = what
        entry = {"kind": kind, "path": path, "seq": frame, "conn": conn, "zxid": zxid}
        if mode == "child":
            children, stat = result
            entry.update(mode=mode, children=sorted(children), pzxid=stat.pzxid)
        elif mode in ADD_WATCH_MODES:
            entry["mode"] = mode
        else:  # an exists: with a watch (data) or without (read)
            entry.update(exists=result is not None, mzxid=result.mzxid if result is not None else None)
            if mode is not None:
                entry["mode"] = mode
        with self.guard:
            self.journal.append(entry)
            if kind == "watch":
                self.armed[path] = (conn, frame)

    def _arm(self) -> None:
        """Set every watch of the role not standing on the current connection (one-shot ones
        stand until they fire)."""
        for mode, path in watches_of(self.role):
            with self.guard:
                conn, frame = self.armed.get(path, (-1, -1))
                standing = conn == self.tap.conn and (mode in ADD_WATCH_MODES or self.fired.get(path, -1) < frame)
            if not standing:
                self._send(self._watch_request(mode, path), ("watch", mode, path))

    @staticmethod
    def _watch_request(mode: str, path: str) -> Any:
        noop = lambda event: None  # noqa: E731 - the tap records notifications; kazoo needs a watcher to ask for one
        if mode == "data":
            return Exists(path, noop)
        if mode == "child":
            return GetChildren2(path, noop)
        return AddWatch(path, ADD_WATCH_MODES[mode])

    def _send(self, request: Any, what: tuple) -> None:
        """Send a request whose reply the tap journals; wait for it (the reply counts even if
        it comes after the op timeout)."""
        result = self.zk.handler.async_result()
        self.tap.awaiting[id(request)] = (request, what)
        self.zk._call(request, result)
        self.wait(result)


class WatchGenerator:
    """Roles handed out in turn to processes not seen before (their client keeps the role it had,
    and `events` says which); writers write, watchers collect."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.suggested = itertools.cycle(ROLES)
        self.roles: dict[int, str] = {}
        self.exists: dict[int, bool] = {}  # key -> whether it exists, as the last write on it left it
        self.values = itertools.count(1)
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            role = self.roles.get(process)
            if role != "writer":
                return "events", {"role": role or next(self.suggested)}
            key = self.rng.randrange(KEYS)
            if not self.exists.get(key):
                return "create", {"key": key}
            if self.rng.random() < 0.6:
                return "set", {"key": key, "value": next(self.values)}
            return "delete", {"key": key}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        with self.lock:
            if f == "events" and done.type == OK:
                self.roles[process] = done.value["role"]
            elif f in ("create", "set", "delete") and done.type != INFO:
                # ok, or fail because the key was (create) or was not (set, delete) there
                self.exists[value["key"]] = (f != "delete") if done.type == OK else (f == "create")


WORKLOAD = Workload(
    name="watch",
    description="one-shot, persistent and recursive watches: every change notified, in order, before a reply shows it",
    client=WatchClient,
    generator=lambda options, rng: WatchGenerator(rng),
    checker=lambda options: WatchChecker(key_path),
    options=(SESSION_TIMEOUT,),
)
