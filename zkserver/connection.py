"""A client connection as the core sees it: who it is, what it may do, what to send it.

The asyncio shell gives each socket one Conn with a `send` and a `close` callable; the core only
appends to `out` and the shell flushes once per batch (one transport write for many replies).
"""

from __future__ import annotations

import itertools
from typing import Callable

from .acl import Id

_ids = itertools.count(1)


class Conn:
    __slots__ = (
        "id",
        "host",
        "port",
        "session_id",
        "timeout",
        "ids",
        "out",
        "send",
        "close",
        "closing",
        "closed",
        "old_client",
        "received",
        "sent",
        "established_ms",
        "last_cxid",
        "last_zxid",
        "last_op",
        "dirty",
    )

    def __init__(
        self,
        host: str,
        port: int,
        send: Callable[[bytes], None] | None = None,
        close: Callable[[], None] | None = None,
    ) -> None:
        self.id = next(_ids)
        self.host = host
        self.port = port
        self.session_id: int | None = None
        self.timeout = 0
        self.ids: list[Id] = [Id("ip", host)]
        self.out: list[bytes] = []
        self.send = send or self.out.append
        self.close = close or (lambda: None)
        self.closing = False  # close once what is queued has been sent
        self.closed = False
        self.old_client = False
        self.received = 0
        self.sent = 0
        self.established_ms = 0
        self.last_cxid = 0
        self.last_zxid = 0
        self.last_op = "NA"
        self.dirty = False

    def add_ids(self, ids: list[Id]) -> None:
        for ident in ids:
            if ident not in self.ids:
                self.ids.append(ident)

    def __repr__(self) -> str:
        sid = "-" if self.session_id is None else f"0x{self.session_id & (2**64 - 1):x}"
        return f"<Conn {self.id} {self.host}:{self.port} session={sid}>"
