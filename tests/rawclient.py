"""A tiny blocking ZooKeeper wire client for tests that need what kazoo will not send:
malformed frames, unknown opcodes, paths kazoo normalises, setWatches, addWatch, whoAmI."""

from __future__ import annotations

import socket
import struct
from typing import NamedTuple

from zkserver.protocol.constants import OpCode
from zkserver.protocol.jute import Reader, Writer

REPLY_HEADER = struct.Struct(">iqi")


class Reply(NamedTuple):
    xid: int
    zxid: int
    err: int
    body: Reader


class RawClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.xid = 0
        self.session_id = 0
        self.passwd = b""
        self.timeout = 0

    # --- framing -----------------------------------------------------------------------------

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def _recv_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("connection closed by server")
            out += chunk
        return bytes(out)

    def recv_frame(self) -> bytes:
        (n,) = struct.unpack(">i", self._recv_exact(4))
        return self._recv_exact(n)

    def closed_by_server(self, timeout: float = 3.0) -> bool:
        """True if the server closes the socket (reading EOF) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    # --- the protocol ------------------------------------------------------------------------

    def handshake(
        self, session_id: int = 0, passwd: bytes = b"\x00" * 16, timeout_ms: int = 10000, last_zxid: int = 0
    ) -> int:
        """Returns the negotiated timeout (0 means the session is expired/invalid)."""
        w = Writer().int(0).long(last_zxid).int(timeout_ms).long(session_id).buffer(passwd).bool(False)
        self.send_frame(w.bytes())
        r = Reader(self.recv_frame())
        r.int()
        self.timeout = r.int()
        self.session_id = r.long()
        self.passwd = r.buffer() or b""
        return self.timeout

    def send(self, opcode: int, body: bytes = b"", xid: int | None = None) -> int:
        if xid is None:
            self.xid += 1
            xid = self.xid
        self.send_frame(struct.pack(">ii", xid, opcode) + body)
        return xid

    def recv(self) -> Reply:
        frame = self.recv_frame()
        xid, zxid, err = REPLY_HEADER.unpack_from(frame)
        return Reply(xid, zxid, err, Reader(frame, REPLY_HEADER.size))

    def recv_reply(self) -> Reply:
        """The next reply that is not a watch notification (xid -1)."""
        while True:
            reply = self.recv()
            if reply.xid != -1:
                return reply

    def call(self, opcode: int, body: bytes = b"") -> Reply:
        xid = self.send(opcode, body)
        reply = self.recv_reply()
        assert reply.xid == xid, (reply.xid, xid)
        return reply

    def create(self, path: str, data: bytes = b"", flags: int = 0) -> Reply:
        w = Writer().ustring(path).buffer(data).int(1).int(31).ustring("world").ustring("anyone").int(flags)
        return self.call(OpCode.CREATE, w.bytes())

    def close(self) -> None:
        self.sock.close()


def path_body(path: str, watch: bool | None = None) -> bytes:
    w = Writer().ustring(path)
    if watch is not None:
        w.bool(watch)
    return w.bytes()
