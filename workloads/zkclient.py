"""What every kazoo-based workload client shares: a session that starts on one node and fails
over to the others, ops dispatched by name, each bounded by the op timeout, and the outcome rules.

The client connects with every server in its connection string, its own node first: when that
server goes away (killed, paused, cut off), kazoo moves the session to the next one, as
applications do; `--client-failover no` pins each client to its node instead. `move()` moves a
live session to another server on purpose (the session-move fault).

Outcomes: an op's own method returns ok or fail for what the server answered; a timeout,
connection loss or session expiry means the op may or may not have happened (info). The
completion carries the last zxid the server returned, which places the op in the server's order;
the runner records the server each op ran on and the session (with an epoch that grows whenever
this client's session is a new one).
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING, Any, Callable

from harness.history import FAIL, INFO
from harness.servers import CLIENT_PORT
from harness.workload import Completion, Options

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from harness.db import Node

log = logging.getLogger(__name__)


def stat_fields(stat: Any) -> dict[str, int]:
    """What a Stat tells about a node's place in the server's order."""
    return {"version": stat.version, "mzxid": stat.mzxid}


class ZkClient:
    """Subclasses fill `ops` (f -> method taking the op's value and returning a Completion)
    and may override `prepare` (paths every op needs, made once per session)."""

    ops: dict[str, Callable[[Any], Completion]]

    def __init__(self, options: Options) -> None:
        self.op_timeout = float(options.get("op_timeout", 5.0))
        self.session_timeout = float(options.get("session_timeout", 10.0))
        self.failover = options.get("client_failover", "yes") != "no"
        self.zk: KazooClient | None = None
        self.names: dict[str, str] = {}  # address -> node name
        self.sessions: list[int] = []  # every session id this client had, in order

    def open(self, node: Node, nodes: list[Node]) -> None:
        from kazoo.client import KazooClient  # here: checking a history needs no client library

        i = nodes.index(node) if node in nodes else 0
        order = nodes[i:] + nodes[:i] if self.failover else [node]
        self.names = {n.address: n.name for n in nodes}
        self.zk = KazooClient(
            hosts=",".join(f"{n.address}:{CLIENT_PORT}" for n in order), randomize_hosts=False,
            timeout=self.session_timeout, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0},
        )
        self.zk.start(timeout=max(self.op_timeout, 5.0))
        self.prepare()

    def prepare(self) -> None:
        """Paths this workload needs; called once the session is up."""

    def wait(self, async_result: Any) -> Any:
        return async_result.get(timeout=self.op_timeout)

    def invoke(self, f: str, value: Any) -> Completion:
        op = self.ops.get(f)
        if op is None:
            return Completion(FAIL, error=f"unknown op {f!r}")
        try:
            done = op(value)
        except Exception as e:  # noqa: BLE001 - timeout, connection loss, session expiry: unknown outcome
            name = type(e).__name__
            done = Completion(INFO, error="timeout" if name == "KazooTimeoutError" else name)
        return Completion(done.type, done.value, done.error, self.last_zxid())

    def last_zxid(self) -> int | None:
        z = self.zk.last_zxid if self.zk is not None else 0
        return z if z > 0 else None

    def session(self) -> str | None:
        if self.zk is None:
            return None
        # kazoo keeps the id while disconnected (a reconnect may resume the session) and drops
        # it once the session is known to be gone, so a new session shows as a new id.
        sid = self.zk._session_id
        if sid and (not self.sessions or self.sessions[-1] != sid):
            self.sessions.append(sid)
        return f"0x{sid:x}" if sid else None

    def session_epoch(self) -> int:
        """How many sessions this client has had (grows whenever a new session is created)."""
        return len(self.sessions)

    def server(self) -> str | None:
        """The node the session is connected to now, or None while it is not."""
        sock = getattr(getattr(self.zk, "_connection", None), "_socket", None)
        try:
            return self.names.get(sock.getpeername()[0]) if sock is not None else None
        except OSError:
            return None

    def move(self) -> str | None:
        """Drop the connection so kazoo resumes the session on the next server; the server left."""
        left = self.server()
        sock = getattr(getattr(self.zk, "_connection", None), "_socket", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                return None
        return left

    def close(self) -> None:
        if self.zk is None:
            return
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:  # noqa: BLE001 - closing a client of a dead node must not fail a run
            pass
