"""Differential testing against Apache ZooKeeper: operations, their execution through kazoo, and
the comparison of what two servers answered.

One `Runner` per server holds the same named sessions (s0, s1 authenticated as alice, s2) and
executes `Op`s on them. Every op yields an `Outcome`: the normalised return value or exception
class, the reply header's zxid, and the watch events each session received while the op ran.
`drive` feeds the same ops to the reference server and to zkchaos in lockstep, so a failure
points at the exact op where the two first disagree.

Watch events are tapped at the wire (kazoo's connection reader), not through kazoo's watcher
callbacks: kazoo drops events it has no local watcher for and dispatches the rest on another
thread, which would hide server behaviour and make the order racy.
"""

from __future__ import annotations

import os
import pprint
import random
import time
from collections import namedtuple
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.serialization import (
    Create,
    Create2,
    Delete,
    Exists,
    GetACL,
    GetChildren,
    GetChildren2,
    GetData,
    SetACL,
    SetData,
    Sync,
    Watch,
    int_struct,
    long_struct,
    read_string,
    write_string,
)
from kazoo.protocol.states import ZnodeStat
from kazoo.security import ACL, OPEN_ACL_UNSAFE, Id, Permissions, make_digest_acl_credential

CALL_TIMEOUT = 10.0  # seconds; a reply that never comes is recorded as a "timeout" outcome

# ---------------------------------------------------------------------------------------------
# Requests kazoo 2.11 cannot send. They plug into KazooClient._call like kazoo's own records:
# a `type` opcode, `serialize()`, and `deserialize(buffer, offset)` for the success body.


class CreateExt(namedtuple("CreateExt", "path data acl flags ttl opcode")):
    """create (1), create2 (15), createContainer (19) or createTTL (21) with any flags/ttl."""

    @property
    def type(self) -> int:
        return self.opcode

    def serialize(self) -> bytes:
        body = bytes(Create(self.path, self.data, self.acl, self.flags).serialize())
        if self.opcode == 21:
            body += long_struct.pack(self.ttl)
        return body

    def deserialize(self, buffer: bytes, offset: int) -> Any:
        if self.opcode == 1:
            return Create.deserialize(buffer, offset)
        return Create2.deserialize(buffer, offset)


class PathIntRequest(namedtuple("PathIntRequest", "opcode path value")):
    """removeWatches (18), checkWatches (17) and addWatch (106): a path and an int."""

    @property
    def type(self) -> int:
        return self.opcode

    def serialize(self) -> bytes:
        return write_string(self.path) + int_struct.pack(self.value)

    def deserialize(self, buffer: bytes, offset: int) -> Any:
        if self.opcode == 106:  # ErrorResponse{int err}
            return ("addWatch", int_struct.unpack_from(buffer, offset)[0])
        return True


class PathOnlyRequest(namedtuple("PathOnlyRequest", "opcode path")):
    """getEphemerals (103) -> vector<ustring>; getAllChildrenNumber (104) -> int."""

    @property
    def type(self) -> int:
        return self.opcode

    def serialize(self) -> bytes:
        return write_string(self.path)

    def deserialize(self, buffer: bytes, offset: int) -> Any:
        if self.opcode == 104:
            return int_struct.unpack_from(buffer, offset)[0]
        count = int_struct.unpack_from(buffer, offset)[0]
        offset += 4
        out = []
        for _ in range(max(count, 0)):
            s, offset = read_string(buffer, offset)
            out.append(s)
        return out


class WhoAmI(namedtuple("WhoAmI", "")):
    type = 107

    def __bool__(self) -> bool:
        return True  # kazoo only completes requests that are truthy; an empty tuple is not

    def serialize(self) -> bytes:
        return b""

    def deserialize(self, buffer: bytes, offset: int) -> Any:
        count = int_struct.unpack_from(buffer, offset)[0]
        offset += 4
        out = []
        for _ in range(max(count, 0)):
            scheme, offset = read_string(buffer, offset)
            user, offset = read_string(buffer, offset)
            out.append((scheme, user))
        return sorted(out, key=lambda t: (t[0] or "", t[1] or ""))


# ---------------------------------------------------------------------------------------------
# ACLs, referred to by name so an op prints readably.

ALICE = ("alice", "secret")
ALICE_DIGEST = make_digest_acl_credential(*ALICE)
ANYONE = Id("world", "anyone")
ALL = Permissions.ALL

ACLS: dict[str, list[ACL] | None] = {
    "open": None,  # kazoo's default, OPEN_ACL_UNSAFE
    "read_only": [ACL(Permissions.READ, ANYONE)],
    "no_read": [ACL(ALL & ~Permissions.READ, ANYONE)],
    "no_write": [ACL(ALL & ~Permissions.WRITE, ANYONE)],
    "no_create": [ACL(ALL & ~Permissions.CREATE, ANYONE)],
    "no_delete": [ACL(ALL & ~Permissions.DELETE, ANYONE)],
    "no_admin": [ACL(ALL & ~Permissions.ADMIN, ANYONE)],
    "zero_perms": [ACL(0, ANYONE)],
    "creator": [ACL(ALL, Id("auth", ""))],  # INVALIDACL without digest auth
    "alice": [ACL(ALL, Id("digest", ALICE_DIGEST))],
    "alice_world_read": [ACL(ALL, Id("digest", ALICE_DIGEST)), ACL(Permissions.READ, ANYONE)],
    "ip_local": [ACL(ALL, Id("ip", "127.0.0.1"))],
    "ip_net": [ACL(ALL, Id("ip", "127.0.0.0/8"))],
    "ip_other": [ACL(ALL, Id("ip", "10.1.2.3"))],
    "dup": [ACL(ALL, ANYONE), ACL(ALL, ANYONE)],
    "empty": [],
    "bad_scheme": [ACL(ALL, Id("foo", "bar"))],
    "bad_digest": [ACL(ALL, Id("digest", "nocolon"))],
    "bad_ip": [ACL(ALL, Id("ip", "1.2.3.4/99"))],
}


def acl_list(name: str) -> list[ACL]:
    acl = ACLS[name]
    return OPEN_ACL_UNSAFE if acl is None else acl


# ---------------------------------------------------------------------------------------------
# Ops


@dataclass
class Op:
    """One client action. `kind` selects the executor; `args` are its keyword arguments."""

    kind: str
    path: str = ""
    session: str = "s0"
    args: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in self.args.items())
        return f"{self.session}.{self.kind}({self.path!r}{extra})"


def op(kind: str, path: str = "", session: str = "s0", **args: Any) -> Op:
    return Op(kind, path, session, args)


EVENT_NAMES = {1: "NodeCreated", 2: "NodeDeleted", 3: "NodeDataChanged", 4: "NodeChildrenChanged"}

Event = tuple[str, int, str]  # (event type, keeper state, path)


@dataclass
class Outcome:
    """What one server did for one op. `problems` (implausible times) is checked on its own."""

    result: Any
    zxid: int
    events: dict[str, list[Event]]
    problems: list[str] = field(default_factory=list, compare=False)
    raw: Any = field(default=None, compare=False, repr=False)

    def show(self) -> str:
        return pprint.pformat({"result": self.result, "zxid": self.zxid, "events": self.events}, width=110)


def _ignore_event(event: Any) -> None:
    """The kazoo-side watcher: events are recorded at the wire instead."""


SESSION_AUTH: dict[str, tuple[str, str] | None] = {"s0": None, "s1": ALICE, "s2": None}


class Runner:
    """The sessions of one server and the execution of ops on them."""

    def __init__(self, name: str, address: str, sessions: Sequence[str] = ("s0", "s1", "s2")) -> None:
        self.name = name
        self.address = address
        self.clients: dict[str, KazooClient] = {}
        self.events: dict[str, list[Event]] = {}
        self.labels: dict[int, str] = {}  # session id -> "s2#1", so ephemeralOwner compares across servers
        self.generation: dict[str, int] = {}
        self.seen: dict[str, int] = {}  # per session: events already attributed to an op
        self.start_wall_ms = int(time.time() * 1000)
        for s in sessions:
            self.open_session(s)

    # --- sessions ------------------------------------------------------------------------

    def open_session(self, name: str) -> str:
        client = KazooClient(hosts=self.address, timeout=10)
        sink: list[Event] = []
        conn = client._connection
        original = conn._read_watch_event

        def tapped(buffer: bytes, offset: int) -> Any:
            ev, _ = Watch.deserialize(buffer, offset)
            sink.append((EVENT_NAMES.get(ev.type, str(ev.type)), ev.state, ev.path))
            return original(buffer, offset)

        conn._read_watch_event = tapped  # runs in the connection thread, before later replies
        client.start(timeout=10)
        auth = SESSION_AUTH.get(name)
        if auth is not None:
            client.add_auth("digest", f"{auth[0]}:{auth[1]}")
        gen = self.generation.get(name, 0) + 1
        self.generation[name] = gen
        label = f"{name}#{gen}"
        self.labels[client.client_id[0]] = label
        self.clients[name] = client
        self.events[name] = sink
        self.seen[name] = 0
        return label

    def close_session(self, name: str) -> None:
        client = self.clients.pop(name)
        self.events.pop(name, None)
        self.seen.pop(name, None)
        client.stop()
        client.close()

    def close_all(self) -> None:
        for name in list(self.clients):
            try:
                self.close_session(name)
            except Exception:  # teardown must not hide the real failure
                pass

    # --- normalisation -------------------------------------------------------------------

    def owner_label(self, owner: int) -> Any:
        if owner == 0:
            return 0
        return self.labels.get(owner, "nonzero-unknown-session")

    def stat(self, st: ZnodeStat, problems: list[str]) -> dict[str, Any]:
        now = int(time.time() * 1000) + 2000
        lo = self.start_wall_ms - 2000
        # The initial nodes (zxid 0) carry time 0 until a write gives them a real one.
        for name, zxid in (("ctime", st.czxid), ("mtime", st.mzxid)):
            t = getattr(st, name)
            if zxid == 0 and t != 0:
                problems.append(f"{self.name}: {name}={t} on a node whose zxid is 0 (expected 0)")
            elif zxid != 0 and not lo <= t <= now:
                problems.append(f"{self.name}: {name}={t} outside [{lo}, {now}]")
        if st.mtime < st.ctime:
            problems.append(f"{self.name}: mtime {st.mtime} < ctime {st.ctime}")
        return {
            "czxid": st.czxid,
            "mzxid": st.mzxid,
            "pzxid": st.pzxid,
            "version": st.version,
            "cversion": st.cversion,
            "aversion": st.aversion,
            "owner": self.owner_label(st.ephemeralOwner),
            "dataLength": st.dataLength,
            "numChildren": st.numChildren,
        }

    def normalize(self, value: Any, problems: list[str], sort_strings: bool = False) -> Any:
        if isinstance(value, BaseException):
            return ("error", type(value).__name__)
        if isinstance(value, ZnodeStat):
            return self.stat(value, problems)
        if isinstance(value, ACL):
            return (value.perms, value.id.scheme, value.id.id)
        if isinstance(value, (list, tuple)):
            items = [self.normalize(v, problems, sort_strings) for v in value]
            if sort_strings and all(isinstance(v, str) for v in items):
                items.sort()  # children order is a Java HashSet's; clients must not rely on it
            return tuple(items)
        return value

    # --- execution -----------------------------------------------------------------------

    def run(self, o: Op) -> Outcome:
        client = self.clients.get(o.session)
        try:
            raw = self._execute(o, client)
        except KazooTimeoutError:
            raw = ("timeout",)
        except Exception as e:  # kazoo raises the server's error as an exception
            raw = e
        # The executing session's last reply header zxid (after a restart: the new session's).
        current = self.clients.get(o.session)
        zxid = current.last_zxid if current is not None else 0
        self.barrier()
        problems: list[str] = []
        result = self.normalize(raw, problems, sort_strings=o.kind in ("children", "ephemerals"))
        # Everything since the previous op: an event the server sent on its own between two ops
        # (container reaping) counts for the next op rather than getting lost.
        events: dict[str, list[Event]] = {}
        for s, ev in sorted(self.events.items()):
            new = list(ev[self.seen.get(s, 0):])
            self.seen[s] = self.seen.get(s, 0) + len(new)
            if new:
                events[s] = new
        return Outcome(result, zxid, events, problems, raw)

    def barrier(self) -> None:
        """A round trip on every session. Notifications caused by a write are queued to each
        watcher before any later reply, so after this every event is recorded."""
        for client in self.clients.values():
            client.exists_async("/").get(timeout=CALL_TIMEOUT)

    def _execute(self, o: Op, client: KazooClient | None) -> Any:
        a, p, T = o.args, o.path, CALL_TIMEOUT
        if o.kind == "restart":
            self.close_session(o.session)
            return ("restarted", self.open_session(o.session))
        assert client is not None, f"no session {o.session}"
        watch = _ignore_event if a.get("watch") else None
        if o.kind == "create":
            return client.create_async(
                p,
                a.get("value", b""),
                acl=ACLS[a.get("acl", "open")],
                ephemeral=a.get("ephemeral", False),
                sequence=a.get("sequence", False),
                makepath=a.get("makepath", False),
                include_data=a.get("include_data", False),
            ).get(timeout=T)
        if o.kind == "create_ext":
            req = CreateExt(p, a.get("value", b""), acl_list(a.get("acl", "open")), a["flags"], a.get("ttl", -1), a["opcode"])
            return self._call(client, req)
        if o.kind == "set":
            return client.set_async(p, a.get("value", b""), a.get("version", -1)).get(timeout=T)
        if o.kind == "delete":
            return client.delete_async(p, a.get("version", -1)).get(timeout=T)
        if o.kind == "exists":
            return client.exists_async(p, watch).get(timeout=T)
        if o.kind == "get":
            return client.get_async(p, watch).get(timeout=T)
        if o.kind == "children":
            return client.get_children_async(p, watch, a.get("include_data", False)).get(timeout=T)
        if o.kind == "get_acls":
            return client.get_acls_async(p).get(timeout=T)
        if o.kind == "set_acls":
            return client.set_acls_async(p, acl_list(a["acl"]), a.get("version", -1)).get(timeout=T)
        if o.kind == "sync":
            return client.sync_async(p).get(timeout=T)
        if o.kind == "txn":
            t = client.transaction()
            for kind, path, kw in a["ops"]:
                if kind == "create":
                    kw = dict(kw)
                    t.create(path, kw.pop("value", b""), acl=ACLS[kw.pop("acl", "open")], **kw)
                elif kind == "delete":
                    t.delete(path, kw.get("version", -1))
                elif kind == "set_data":
                    t.set_data(path, kw.get("value", b""), kw.get("version", -1))
                elif kind == "check":
                    t.check(path, kw["version"])
                else:
                    raise ValueError(kind)
            return t.commit_async().get(timeout=T)
        if o.kind == "raw":
            return self._call(client, _raw_request(a["request"], p))
        if o.kind == "add_watch":
            return self._call(client, PathIntRequest(106, p, a["mode"]))
        if o.kind == "remove_watches":
            return self._call(client, PathIntRequest(18, p, a["type"]))
        if o.kind == "check_watches":
            return self._call(client, PathIntRequest(17, p, a["type"]))
        if o.kind == "ephemerals":
            return self._call(client, PathOnlyRequest(103, p))
        if o.kind == "all_children_number":
            return self._call(client, PathOnlyRequest(104, p))
        if o.kind == "add_auth":
            return client.add_auth_async(a["scheme"], a["credential"]).get(timeout=T)
        if o.kind == "whoami":
            return self._call(client, WhoAmI())
        if o.kind == "wait_gone":
            # Optionally delete a node, then poll until the server has reaped every path given
            # (containers, TTL nodes): one op, so its events and zxid do not depend on timing.
            first = a.get("delete_first")
            if first is not None:
                client.delete_async(first).get(timeout=T)
            paths = [p, *a.get("also", ())]
            deadline = time.monotonic() + a.get("timeout", 8.0)
            while time.monotonic() < deadline:
                if all(client.exists_async(q).get(timeout=T) is None for q in paths):
                    break
                time.sleep(0.05)
            return tuple(client.exists_async(q).get(timeout=T) for q in paths)
        raise ValueError(f"unknown op kind {o.kind}")

    @staticmethod
    def _call(client: KazooClient, request: Any) -> Any:
        """Send a request record as is: no client-side path normalisation or validation."""
        result = client.handler.async_result()
        client._call(request, result)
        return result.get(timeout=CALL_TIMEOUT)


def _raw_request(kind: str, path: str) -> Any:
    if kind == "create":
        return Create(path, b"v", OPEN_ACL_UNSAFE, 0)
    if kind == "create_seq":
        return Create(path, b"v", OPEN_ACL_UNSAFE, 2)
    if kind == "delete":
        return Delete(path, -1)
    if kind == "set":
        return SetData(path, b"v", -1)
    if kind == "exists":
        return Exists(path, None)
    if kind == "get":
        return GetData(path, None)
    if kind == "children":
        return GetChildren(path, None)
    if kind == "children2":
        return GetChildren2(path, None)
    if kind == "get_acl":
        return GetACL(path)
    if kind == "set_acl":
        return SetACL(path, OPEN_ACL_UNSAFE, -1)
    if kind == "sync":
        return Sync(path)
    raise ValueError(kind)


RAW_KINDS = ("create", "create_seq", "delete", "set", "exists", "get", "children", "children2", "get_acl", "set_acl", "sync")

# ---------------------------------------------------------------------------------------------
# Lockstep driving and comparison


@dataclass
class Mismatch:
    index: int
    op: Op
    ref: Outcome
    got: Outcome
    why: str

    def describe(self, context: str, history: Sequence[str]) -> str:
        lines = [
            f"DIFFERENTIAL MISMATCH ({context}, op #{self.index}): {self.why}",
            f"  op:        {self.op}",
            "  zookeeper: " + self.ref.show().replace("\n", "\n             "),
            "  zkchaos:   " + self.got.show().replace("\n", "\n             "),
        ]
        if self.got.problems or self.ref.problems:
            lines.append(f"  problems:  {self.ref.problems + self.got.problems}")
        if history:
            lines.append("  preceding ops:")
            lines.extend(f"    {h}" for h in history)
        return "\n".join(lines)


def compare(index: int, o: Op, ref: Outcome, got: Outcome) -> Mismatch | None:
    if ref.problems:
        # The reference is right by definition; an implausible time there is a bug in this test.
        raise AssertionError(f"op #{index} {o}: reference outcome fails plausibility: {ref.problems}")
    if ref.result == ("timeout",):
        raise AssertionError(f"op #{index} {o}: the reference never answered (a bug in this test?)")
    whys = []
    if ref.result != got.result:
        whys.append("result differs")
    if ref.zxid != got.zxid:
        whys.append("reply header zxid differs")
    if ref.events != got.events:
        whys.append("watch events differ")
    if got.problems:
        whys.append("implausible times")
    if not whys:
        return None
    return Mismatch(index, o, ref, got, ", ".join(whys))


Observer = Callable[[Op, Outcome], None]


def drive(
    ref: Runner,
    sut: Runner,
    ops: Iterable[Op],
    context: str,
    observe: Observer | None = None,
    keep_going: bool | None = None,
) -> list[Mismatch]:
    """Run ops on both servers in lockstep and fail at the first mismatch (states diverge after
    it). With ZKCHAOS_DIFF_KEEP_GOING=1 it goes on and reports every mismatch at the end."""
    if keep_going is None:
        keep_going = os.environ.get("ZKCHAOS_DIFF_KEEP_GOING") == "1"
    mismatches: list[Mismatch] = []
    history: list[str] = []
    messages: list[str] = []
    for i, o in enumerate(ops):
        r = ref.run(o)
        g = sut.run(o)
        if observe is not None:
            observe(o, r)
        m = compare(i, o, r, g)
        if m is not None:
            mismatches.append(m)
            messages.append(m.describe(context, history[-8:]))
            if not keep_going:
                break
        history.append(f"#{i} {o} -> {r.result!r}")
    if messages:
        raise AssertionError("\n\n".join(messages))
    return mismatches


# ---------------------------------------------------------------------------------------------
# The seeded random script


BASE = "/d"
FIXED_PATHS = [
    "/d",
    "/d/a",
    "/d/b",
    "/d/c",
    "/d/a/x",
    "/d/a/y",
    "/d/b/x",
    "/d/c/y",
    "/d/a/x/z",
    "/d/b/x/z",
]
SPECIAL_PATHS = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/missing/child", "/d/nope/x"]
INVALID_PATHS = [
    "/d/a/",
    "/d//a",
    "/d/./a",
    "/d/../a",
    "/d/a/.",
    "/d/a/..",
    "/d/\x01",
    "/d/a\x00",
    "/d/\x1e",
    "d/a",
    "/d/\x7f",
    "/d/\u0085",
    "/d/\ue000",
    "/d/\ufff0",
    "//",
    "/.",
    "/d/\u00e9t\u00e9",  # valid: non-ASCII is fine outside the forbidden ranges
    "/d/\U0001f600",  # UTF-16 surrogates to Java: forbidden
]
CREATE_ACL_WEIGHTS = {
    "open": 60,
    "read_only": 3,
    "no_read": 3,
    "no_write": 2,
    "no_create": 3,
    "no_delete": 3,
    "no_admin": 2,
    "zero_perms": 1,
    "creator": 3,
    "alice": 3,
    "alice_world_read": 3,
    "ip_local": 2,
    "ip_net": 1,
    "ip_other": 1,
    "dup": 2,
    "empty": 2,
    "bad_scheme": 1,
    "bad_digest": 1,
    "bad_ip": 1,
}
VALUES: list[bytes | None] = [b"", b"x", b"hello", b"\x00\xff", None, b"0123456789" * 5]


class ScriptGen:
    """A seeded stream of ops. It follows the reference server's answers (which paths exist,
    their current versions) only to aim ops: at live nodes, at right and wrong versions alike."""

    def __init__(self, rng: random.Random, sessions: Sequence[str] = ("s0", "s1", "s2")) -> None:
        self.rng = rng
        self.sessions = list(sessions)
        self.live: set[str] = set()  # paths the reference last showed as existing
        self.stats: dict[str, ZnodeStat] = {}

    # --- learning from the reference ------------------------------------------------------

    def observe(self, o: Op, out: Outcome) -> None:
        raw = out.raw
        if o.kind == "txn":
            if isinstance(raw, list) and not any(isinstance(r, BaseException) for r in raw):
                for (kind, path, _), res in zip(o.args["ops"], raw):
                    if kind == "delete":
                        self._mark_gone(path)
                    else:
                        self._learn(path, res)
            return
        if type(raw).__name__ == "NoNodeError" and o.kind in ("exists", "get", "children", "set", "delete"):
            self._mark_gone(o.path)
        elif o.kind == "delete" and raw is True:
            self._mark_gone(o.path)
        elif o.kind == "children" and isinstance(raw, (list, tuple)):
            names = raw[0] if raw and isinstance(raw[-1], ZnodeStat) else raw
            self._mark_live(o.path)
            for name in names:
                self._mark_live(o.path.rstrip("/") + "/" + name)
            if raw and isinstance(raw[-1], ZnodeStat):
                self.stats[o.path] = raw[-1]
        elif o.kind == "exists" and raw is None:
            self._mark_gone(o.path)
        else:
            self._learn(o.path, raw)

    def _learn(self, path: str, raw: Any) -> None:
        if isinstance(raw, ZnodeStat):
            self.stats[path] = raw
            self._mark_live(path)
        elif isinstance(raw, str) and raw.startswith("/"):
            self._mark_live(raw)
        elif isinstance(raw, tuple) and len(raw) == 2 and isinstance(raw[1], ZnodeStat):
            first, st = raw
            created = first if isinstance(first, str) else path  # create2 -> (path, stat)
            self.stats[created] = st
            self._mark_live(created)

    def _mark_live(self, path: str) -> None:
        if path.startswith(BASE + "/") or path == BASE:
            p = path
            while p.startswith(BASE):  # its ancestors exist too
                self.live.add(p)
                p = p.rsplit("/", 1)[0]

    def _mark_gone(self, path: str) -> None:
        self.live = {p for p in self.live if p != path and not p.startswith(path.rstrip("/") + "/")}

    # --- choices -------------------------------------------------------------------------

    def path(self) -> str:
        r = self.rng.random()
        if r < 0.5 and self.live:
            return self.rng.choice(sorted(self.live))
        if r < 0.9:
            return self.rng.choice(FIXED_PATHS)
        return self.rng.choice(SPECIAL_PATHS)

    def parent(self) -> str:
        if self.live and self.rng.random() < 0.7:
            return self.rng.choice(sorted(self.live))
        return self.rng.choice(FIXED_PATHS[:8])

    def delete_target(self) -> str:
        """Mostly leaves: emptying the tree early would leave little to test."""
        live = sorted(self.live)
        leaves = [p for p in live if not any(q.startswith(p + "/") for q in live)]
        if leaves and self.rng.random() < 0.6:
            return self.rng.choice(leaves)
        p = self.path()
        return p if p != BASE or self.rng.random() < 0.2 else self.rng.choice(FIXED_PATHS)

    def version(self, path: str, field_name: str = "version") -> int:
        st = self.stats.get(path)
        v = getattr(st, field_name) if st is not None else 0
        return self.rng.choice([-1, -1, v, v, v, v + 1, v - 1, 0, 7])

    def value(self) -> bytes | None:
        return self.rng.choice(VALUES)

    def acl_name(self) -> str:
        names = list(CREATE_ACL_WEIGHTS)
        return self.rng.choices(names, weights=[CREATE_ACL_WEIGHTS[n] for n in names])[0]

    def session(self) -> str:
        return self.rng.choices(self.sessions, weights=[6, 2, 2][: len(self.sessions)])[0]

    # --- ops -----------------------------------------------------------------------------

    def ops(self, count: int) -> Iterator[Op]:
        yield op("create", BASE)
        kinds = {
            "create": 20,
            "create_ext": 4,
            "set": 10,
            "delete": 12,
            "exists": 8,
            "get": 8,
            "children": 8,
            "get_acls": 3,
            "set_acls": 4,
            "txn": 8,
            "sync": 2,
            "raw": 6,
            "add_watch": 2,
            "remove_watches": 2,
            "ephemerals": 1,
            "all_children_number": 1,
            "restart": 1,
        }
        names = list(kinds)
        weights = [kinds[k] for k in names]
        for _ in range(count - 1):
            yield getattr(self, "_" + self.rng.choices(names, weights=weights)[0])()

    def _create(self) -> Op:
        rng = self.rng
        sequence = rng.random() < 0.3
        if sequence:
            path = self.parent() + rng.choice(["/s-", "/", "/q"])
        else:
            path = rng.choice(FIXED_PATHS) if rng.random() < 0.5 else self.parent() + "/" + rng.choice("abcxyz")
        args: dict[str, Any] = {"value": self.value()}
        if rng.random() < 0.25:
            args["ephemeral"] = True
        if sequence:
            args["sequence"] = True
        if rng.random() < 0.25:
            args["makepath"] = True
        if rng.random() < 0.3:
            args["include_data"] = True
        if rng.random() < 0.3:
            args["acl"] = self.acl_name()
        return Op("create", path, self.session(), args)

    def _create_ext(self) -> Op:
        rng = self.rng
        parent = self.parent()
        kind = rng.choice(["container", "container", "ttl", "ttl_seq", "ttl_bad", "flags_bad", "ttl_on_plain"])
        if kind == "container":
            return op("create_ext", parent + "/k" + rng.choice("12"), self.session(), opcode=19, flags=4)
        if kind == "ttl":
            # An hour: the container manager never reaps it within the test.
            return op("create_ext", parent + "/t" + rng.choice("12"), self.session(), opcode=21, flags=5, ttl=3_600_000)
        if kind == "ttl_seq":
            return op("create_ext", parent + "/ts-", self.session(), opcode=21, flags=6, ttl=3_600_000)
        if kind == "ttl_bad":
            return op("create_ext", parent + "/tb", self.session(), opcode=21, flags=5, ttl=rng.choice([0, -5, 1 << 41]))
        if kind == "flags_bad":
            return op("create_ext", parent + "/fb", self.session(), opcode=rng.choice([1, 15]), flags=rng.choice([7, -1, 99]))
        return op("create_ext", parent + "/tp", self.session(), opcode=21, flags=rng.choice([0, 1, 2, 4]), ttl=1000)

    def _set(self) -> Op:
        p = self.path()
        return op("set", p, self.session(), value=self.value(), version=self.version(p))

    def _delete(self) -> Op:
        p = self.delete_target()
        return op("delete", p, self.session(), version=self.version(p))

    def _exists(self) -> Op:
        return op("exists", self.path() if self.rng.random() < 0.8 else self.parent() + "/w", self.session(), watch=self.rng.random() < 0.5)

    def _get(self) -> Op:
        return op("get", self.path(), self.session(), watch=self.rng.random() < 0.5)

    def _children(self) -> Op:
        return op(
            "children", self.path(), self.session(), watch=self.rng.random() < 0.5, include_data=self.rng.random() < 0.5
        )

    def _get_acls(self) -> Op:
        return op("get_acls", self.path(), self.session())

    def _set_acls(self) -> Op:
        p = self.path()
        return op("set_acls", p, self.session(), acl=self.acl_name(), version=self.version(p, "aversion"))

    def _txn(self) -> Op:
        rng = self.rng
        subs: list[tuple[str, str, dict[str, Any]]] = []
        for _ in range(rng.randint(1, 5)):
            kind = rng.choice(["create", "create", "delete", "set_data", "check"])
            if kind == "create":
                kw: dict[str, Any] = {"value": rng.choice([b"", b"t", b"txn"])}
                if rng.random() < 0.3:
                    kw["sequence"] = True
                    path = self.parent() + "/m-"
                else:
                    path = self.parent() + "/" + rng.choice("mnx")
                if rng.random() < 0.2:
                    kw["ephemeral"] = True
                if rng.random() < 0.1:
                    kw["acl"] = self.acl_name()
                subs.append(("create", path, kw))
            else:
                path = self.path()
                kw = {"version": self.version(path)}
                if kind == "set_data":
                    kw["value"] = rng.choice([b"", b"u"])
                subs.append((kind, path, kw))
        return op("txn", "", self.session(), ops=subs)

    def _sync(self) -> Op:
        return op("sync", self.path(), self.session())

    def _raw(self) -> Op:
        return op("raw", self.rng.choice(INVALID_PATHS), self.session(), request=self.rng.choice(RAW_KINDS))

    def _add_watch(self) -> Op:
        return op("add_watch", self.path(), self.session(), mode=self.rng.choice([0, 1]))

    def _remove_watches(self) -> Op:
        return op("remove_watches", self.path(), self.session(), type=self.rng.choice([1, 2, 3]))

    def _ephemerals(self) -> Op:
        return op("ephemerals", self.rng.choice(["/", "/d", "/d/a"]), self.session())

    def _all_children_number(self) -> Op:
        return op("all_children_number", self.rng.choice(["/d", "/d/a", "/zookeeper", self.path()]), self.session())

    def _restart(self) -> Op:
        return op("restart", "", self.rng.choice(["s1", "s2", "s2"]))


def final_state_ops(ref: Runner, roots: Sequence[str] = ("/",)) -> list[Op]:
    """Reads of every node the reference holds under `roots` (as s1, which may read alice's
    nodes), to catch state differences no earlier op happened to look at."""
    client = ref.clients["s1"]
    out: list[Op] = []
    todo = list(reversed(roots))
    while todo:
        path = todo.pop()
        out += [op("get", path, "s1"), op("children", path, "s1", include_data=True), op("get_acls", path, "s1")]
        try:
            children = client.get_children_async(path).get(timeout=CALL_TIMEOUT)
        except Exception:  # missing or unreadable: the reads above record the error
            continue
        for name in sorted(children, reverse=True):
            todo.append(path.rstrip("/") + "/" + name)
    return out
