"""What every kazoo-based workload client shares: a session against one node, ops dispatched by
name, each bounded by the op timeout, and the outcome rules.

Outcomes: an op's own method returns ok or fail for what the server answered; a timeout,
connection loss or session expiry means the op may or may not have happened (info). The
completion carries the last zxid the server returned, which places the op in the server's order.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

from kazoo.client import KazooClient
from kazoo.handlers.threading import KazooTimeoutError

from harness.history import FAIL, INFO
from harness.servers import CLIENT_PORT
from harness.workload import Completion, Options

if TYPE_CHECKING:
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
        self.zk: KazooClient | None = None

    def open(self, node: Node, nodes: list[Node]) -> None:
        self.zk = KazooClient(
            hosts=f"{node.address}:{CLIENT_PORT}", timeout=self.session_timeout,
            connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0},
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
        except KazooTimeoutError:
            done = Completion(INFO, error="timeout")
        except Exception as e:  # noqa: BLE001 - connection loss, session expiry, ...: unknown outcome
            done = Completion(INFO, error=type(e).__name__)
        return Completion(done.type, done.value, done.error, self.last_zxid())

    def last_zxid(self) -> int | None:
        z = self.zk.last_zxid if self.zk is not None else 0
        return z if z > 0 else None

    def session(self) -> str | None:
        if self.zk is None:
            return None
        # kazoo's client_id is None while it is disconnected, but the session lives on (and a
        # reconnect resumes it): its last id is the right one to record.
        sid = self.zk._session_id or (self.zk.client_id[0] if self.zk.client_id else None)
        return f"0x{sid:x}" if sid else None

    def close(self) -> None:
        if self.zk is None:
            return
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:  # noqa: BLE001 - closing a client of a dead node must not fail a run
            pass
