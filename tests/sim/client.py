"""A ZooKeeper client as the server sees one: raw frames into a server's ServerCore.

Sends ConnectRequest / RequestHeader+record frames through `ServerCore.receive` at the
simulation's current time and splits what the server writes back into replies. A connection
ends when the server closes it (it stopped serving, the session closed) or crashes; the client
may then reconnect elsewhere with its session id, password and last zxid seen, as real clients
do. Every successful write reply is kept, in the order it arrived, in `acked`.
"""

from __future__ import annotations

import itertools
import struct
from typing import TYPE_CHECKING, NamedTuple

from zkserver.connection import Conn
from zkserver.protocol.constants import Err, OpCode
from zkserver.protocol.jute import Reader, Writer
from zkserver.protocol.records import STAT

from tests.unit.helpers import create_body, delete_body, path_body, path_watch_body, set_data_body

if TYPE_CHECKING:
    from .ensemble import SimEnsemble

PING_XID = -2
WRITES = {OpCode.CREATE, OpCode.CREATE2, OpCode.DELETE, OpCode.SET_DATA, OpCode.CLOSE_SESSION}


class Reply(NamedTuple):
    xid: int
    zxid: int
    err: int
    body: bytes

    def data(self) -> bytes | None:
        return Reader(self.body).buffer()

    def stat(self) -> tuple:
        """Stat after getData's data, or of setData."""
        r = Reader(self.body)
        if len(self.body) != STAT.size:
            r.buffer()
        return STAT.unpack_from(self.body, r.pos)


class Ack(NamedTuple):
    session: int
    xid: int
    op: int
    path: str
    data: bytes | None
    zxid: int


class SimClient:
    _hosts = itertools.count(1)

    def __init__(self, ens: "SimEnsemble", sid: int, timeout: int = 4000, connect: bool = True) -> None:
        self.ens = ens
        self.n = next(self._hosts)
        self.host = f"192.168.{self.n // 250}.{self.n % 250 + 1}"
        self.ports = itertools.count(30000)
        self.timeout = timeout
        self.session_id = 0
        self.passwd = bytes(16)
        self.last_zxid = 0
        self.xid = 0
        self.server: int | None = None
        self.server_inc = 0
        self.conn: Conn | None = None
        self.buf = bytearray()
        self.awaiting_connect = False
        self.connected = False
        self.expired = False
        self.replies: dict[int, Reply] = {}
        self.pending: dict[int, tuple[int, str, bytes | None]] = {}
        self.unknown: list[tuple[int, int, str, bytes | None]] = []  # (session, op, path, data) cut off
        self.acked: list[Ack] = []
        self.events: list[Reply] = []
        self.negotiated = 0
        self.protocol_errors: list[str] = []  # server behaviour no ZooKeeper client accepts
        self.last_xid_answered = 0
        self.pinging = True  # False: the client process hangs (its session can expire)
        if connect:
            self.connect(sid)

    # --- the connection --------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self.conn is None

    def connect(self, sid: int, session_id: int | None = None, passwd: bytes | None = None) -> bool:
        """Open a connection to server `sid` and send ConnectRequest (a new session unless
        this client already has one). False if the server is down."""
        self.drop()
        s = self.ens.servers[sid]
        if session_id is not None:
            self.session_id, self.passwd = session_id, passwd or bytes(16)
        if not s.alive:
            return False
        self.server, self.server_inc = sid, s.inc
        self.buf = bytearray()
        conn = Conn(self.host, next(self.ports))
        conn.send = lambda data: self._data(conn, data)  # each socket is its own: a late
        conn.close = lambda: self._closed_by_server(conn)  # event of an old one is ignored
        self.conn = conn
        if not s.core.connection_made(conn):
            self.conn = None
            return False
        s.clients.append(self)
        self.awaiting_connect = True
        self.connected = False
        w = Writer().int(0).long(self.last_zxid).int(self.timeout).long(self.session_id).buffer(self.passwd).bool(False)
        self._send(w.bytes())
        return True

    def drop(self) -> None:
        """The client closes its socket."""
        conn = self.conn
        if conn is None:
            return
        s = self._live_server()
        self._lost()
        if s is not None:
            self.ens._enter(s, lambda: s.core.connection_lost(conn))

    def _live_server(self):
        s = self.ens.servers.get(self.server) if self.server is not None else None
        return s if s is not None and s.alive and s.inc == self.server_inc else None

    def _send(self, payload: bytes) -> None:
        s = self._live_server()
        conn = self.conn
        if s is None or conn is None:
            self._lost()
            return
        self.ens._enter(s, lambda: s.core.receive(conn, payload, self.ens.now, self.ens.wall()))

    def _ping(self, conn: Conn) -> None:
        """An idle client pings every third of its session timeout, as real clients do."""
        if self.conn is not conn or not self.pinging:
            return
        self._send(struct.pack(">ii", PING_XID, OpCode.PING))
        self.ens.after(self.negotiated // 3, self._ping, conn)

    def _closed_by_server(self, conn: Conn) -> None:
        if conn is self.conn:
            self._lost()

    def _cut(self) -> None:
        """The server crashed."""
        self._lost()

    def _lost(self) -> None:
        if self.conn is None:
            return
        self.conn = None
        self.connected = False
        self.awaiting_connect = False
        for xid in sorted(self.pending):
            op, path, data = self.pending[xid]
            self.unknown.append((self.session_id, op, path, data))
        self.pending.clear()

    def _data(self, conn: Conn, data: bytes) -> None:
        if conn is not self.conn:
            return
        self.buf += data
        while len(self.buf) >= 4:
            (n,) = struct.unpack_from(">i", self.buf)
            if len(self.buf) < 4 + n:
                break
            frame = bytes(self.buf[4 : 4 + n])
            del self.buf[: 4 + n]
            self._frame(frame)

    def _frame(self, frame: bytes) -> None:
        if self.awaiting_connect and len(frame) < 36:
            # Not a ConnectResponse (4+4+8+4+16 bytes at least): the server skipped it.
            self.awaiting_connect = False
            self.protocol_errors.append(f"expected a ConnectResponse, got a {len(frame)}-byte frame {frame[:16].hex()}")
        if self.awaiting_connect:
            self.awaiting_connect = False
            r = Reader(frame)
            _, timeout, session_id = r.int(), r.int(), r.long()
            passwd = r.buffer() or bytes(16)
            if timeout <= 0 or session_id == 0:
                self.expired = True
                return
            self.session_id, self.passwd, self.connected = session_id, passwd, True
            self.negotiated = timeout
            self.ens.after(timeout // 3, self._ping, self.conn)
            return
        xid, zxid, err = struct.unpack_from(">iqi", frame)
        reply = Reply(xid, zxid, err, frame[16:])
        if xid == -1:
            self.events.append(reply)
            return
        if xid == PING_XID:
            return  # clients ignore a ping reply's zxid (Java ClientCnxn, kazoo, go-zookeeper)
        if 0 < zxid < self.last_zxid:
            self.protocol_errors.append(f"reply to xid {xid} at zxid 0x{zxid:x}, after 0x{self.last_zxid:x} was seen")
        if xid <= self.last_xid_answered:
            self.protocol_errors.append(
                f"reply to xid {xid} after a reply to xid {self.last_xid_answered} (err {err}, {len(frame)} bytes)"
            )
        self.last_xid_answered = xid
        if zxid > self.last_zxid:
            self.last_zxid = zxid
        self.replies[xid] = reply
        sent = self.pending.pop(xid, None)
        if sent is not None and err == Err.OK and sent[0] in WRITES:
            op, path, data = sent
            self.acked.append(Ack(self.session_id, xid, op, path, data, zxid))

    # --- requests --------------------------------------------------------------------------------

    def request(self, op: int, body: bytes = b"", path: str = "", data: bytes | None = None) -> int | None:
        if self.conn is None:
            return None
        self.xid += 1
        xid = self.xid
        self.pending[xid] = (op, path, data)
        self._send(struct.pack(">ii", xid, op) + body)
        return xid

    def create(self, path: str, data: bytes | None = b"", ephemeral: bool = False, sequential: bool = False) -> int | None:
        flags = (1 if ephemeral else 0) | (2 if sequential else 0)
        return self.request(OpCode.CREATE, create_body(path, data, flags=flags), path, data)

    def set_data(self, path: str, data: bytes | None, version: int = -1) -> int | None:
        return self.request(OpCode.SET_DATA, set_data_body(path, data, version), path, data)

    def delete(self, path: str, version: int = -1) -> int | None:
        return self.request(OpCode.DELETE, delete_body(path, version), path)

    def get_data(self, path: str) -> int | None:
        return self.request(OpCode.GET_DATA, path_watch_body(path), path)

    def exists(self, path: str) -> int | None:
        return self.request(OpCode.EXISTS, path_watch_body(path), path)

    def sync(self, path: str = "/") -> int | None:
        return self.request(OpCode.SYNC, path_body(path), path)

    def close_session(self) -> int | None:
        return self.request(OpCode.CLOSE_SESSION)

    # --- waiting ---------------------------------------------------------------------------------

    def wait_connected(self, timeout: int = 5000) -> bool:
        return self.ens.run_until(lambda: self.connected or self.expired or self.conn is None, timeout) and self.connected

    def wait(self, xid: int | None, timeout: int = 5000) -> Reply | None:
        """Run the simulation until `xid` is answered (its Reply) or cannot be (None)."""
        if xid is None:
            return None
        self.ens.run_until(lambda: xid in self.replies or xid not in self.pending, timeout)
        return self.replies.get(xid)

    def call(self, xid: int | None, timeout: int = 5000) -> Reply:
        reply = self.wait(xid, timeout)
        assert reply is not None, f"no reply to xid {xid} from server {self.server}\n{self.ens.dump()}"
        return reply
