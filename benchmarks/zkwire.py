"""Just enough of the ZooKeeper client wire protocol for the benchmarks: request bodies, the
session handshake, and a small blocking client used to set up and check the benchmark tree.

Encoding goes through zkserver's jute helpers so the benchmark and the server agree on the
format by construction; everything else (framing, xid bookkeeping) is written here because a
benchmark client must not share the server's code paths it is measuring.
"""

from __future__ import annotations

import socket
import struct
import time

from zkserver.protocol.constants import Err, OpCode
from zkserver.protocol.jute import INT, encode_buffer, encode_ustring

REQ_HEADER = struct.Struct(">iii")  # frame length, xid, opcode
REPLY_HEADER = struct.Struct(">iiqi")  # frame length, xid, zxid, err
CONNECT_REPLY = struct.Struct(">iiqi")  # protocolVersion, timeOut, sessionId, passwd length

# One ACL entry: all permissions for world:anyone (ZooDefs.Ids.OPEN_ACL_UNSAFE).
OPEN_ACL = INT.pack(1) + INT.pack(31) + encode_ustring("world") + encode_ustring("anyone")
PERSISTENT, PERSISTENT_SEQUENTIAL = 0, 2


class WireError(RuntimeError):
    """The server broke the protocol, refused the session or went away."""


def parse_address(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host or "127.0.0.1", int(port)


def get_data_body(path: str) -> bytes:
    return encode_ustring(path) + b"\x00"  # watch = false


def set_data_body(path: str, data: bytes) -> bytes:
    return encode_ustring(path) + encode_buffer(data) + INT.pack(-1)  # version -1: any version


def create_body(path: str, data: bytes, flags: int = PERSISTENT) -> bytes:
    return encode_ustring(path) + encode_buffer(data) + OPEN_ACL + INT.pack(flags)


def sync_body(path: str) -> bytes:
    return encode_ustring(path)


def connect_request(timeout_ms: int = 30000) -> bytes:
    """ConnectRequest for a new session: version 0, lastZxidSeen 0, sessionId 0, 16 zero bytes
    of password, readOnly false; sent without a RequestHeader."""
    body = struct.pack(">iqiq", 0, 0, timeout_ms, 0) + encode_buffer(bytes(16)) + b"\x00"
    return INT.pack(len(body)) + body


def recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        b = sock.recv(n - got)
        if not b:
            raise WireError(f"connection closed after {got} of {n} bytes")
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def close_session(sock: socket.socket, xid: int) -> bool:
    """Send closeSession; False when the socket is already gone."""
    try:
        sock.sendall(REQ_HEADER.pack(8, xid, OpCode.CLOSE_SESSION))
        return True
    except OSError:
        return False


def wait_closed(sock: socket.socket, deadline: float) -> None:
    """Discard replies until the server closes the socket (or the deadline passes), then
    close our end: a client that hangs up first leaves the server a reset to log and a
    session to expire."""
    try:
        sock.setblocking(True)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            if not sock.recv(1 << 16):
                break
    except OSError:
        pass
    sock.close()


def open_session(addr: str, timeout_ms: int = 30000, io_timeout: float = 10.0) -> tuple[socket.socket, int]:
    """Connect and complete the handshake; returns the socket and the session id."""
    sock = socket.create_connection(parse_address(addr), timeout=io_timeout)
    # Batches are assembled by the caller; Nagle would only add delay to the last one.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.sendall(connect_request(timeout_ms))
        (n,) = INT.unpack(recv_exact(sock, 4))
        body = recv_exact(sock, n)
        if n < CONNECT_REPLY.size + 16:
            raise WireError(f"{addr}: short ConnectResponse ({n} bytes)")
        _, negotiated, session_id, pw_len = CONNECT_REPLY.unpack_from(body)
        if negotiated <= 0 or pw_len != 16:
            raise WireError(f"{addr}: session refused (timeout {negotiated}, passwd length {pw_len})")
    except BaseException:
        sock.close()
        raise
    return sock, session_id


class SyncClient:
    """A blocking, pipelining client for set-up work (not for measurement)."""

    def __init__(self, addr: str, io_timeout: float = 30.0) -> None:
        self.addr = addr
        self.sock, self.session_id = open_session(addr, io_timeout=io_timeout)
        self.xid = 1
        self.buf = bytearray()

    def _read_reply(self) -> tuple[int, int, bytes]:
        while True:
            if len(self.buf) >= 4:
                (n,) = INT.unpack_from(self.buf)
                if len(self.buf) >= 4 + n:
                    _, xid, _zxid, err = REPLY_HEADER.unpack_from(self.buf)
                    body = bytes(self.buf[20 : 4 + n])
                    del self.buf[: 4 + n]
                    if xid < 0:  # watch notification or ping reply: not ours to match
                        continue
                    return xid, err, body
            b = self.sock.recv(1 << 16)
            if not b:
                raise WireError(f"{self.addr} closed the connection")
            self.buf += b

    def pipeline(self, requests: list[tuple[int, bytes]], chunk: int = 500) -> list[tuple[int, bytes]]:
        """Send (opcode, body) requests `chunk` at a time; return (err, body) in order."""
        out: list[tuple[int, bytes]] = []
        for i in range(0, len(requests), chunk):
            part = requests[i : i + chunk]
            first = self.xid
            frames = []
            for op, body in part:
                frames.append(REQ_HEADER.pack(8 + len(body), self.xid, op) + body)
                self.xid += 1
            self.sock.sendall(b"".join(frames))
            for k in range(len(part)):
                xid, err, body = self._read_reply()
                if xid != first + k:
                    raise WireError(f"{self.addr}: reply xid {xid}, expected {first + k}")
                out.append((err, body))
        return out

    def call(self, op: int, body: bytes) -> tuple[int, bytes]:
        return self.pipeline([(op, body)])[0]

    def close(self) -> None:
        """closeSession, so the benchmark leaves no sessions waiting to expire."""
        try:
            self.sock.sendall(REQ_HEADER.pack(8, self.xid, OpCode.CLOSE_SESSION))
            self._read_reply()
        except (OSError, WireError):
            pass
        finally:
            self.sock.close()


def create_tree(client: SyncClient, paths: list[str], data: bytes) -> int:
    """Create persistent nodes in order; an existing node is fine (a re-run). Returns how many
    were new; any other error is raised."""
    results = client.pipeline([(OpCode.CREATE, create_body(p, data)) for p in paths])
    created = 0
    for path, (err, _) in zip(paths, results):
        if err == Err.OK:
            created += 1
        elif err != Err.NODEEXISTS:
            raise WireError(f"create {path}: error {err}")
    return created
