"""A write probe for measuring failover: one raw-protocol session per server, a create every
few milliseconds on each, all driven from one non-blocking selector loop in a thread.

Why not a ZooKeeper client library: their reconnect logic sleeps (kazoo backs off, the Java
client waits up to a second between hosts), which would put seconds of client-side delay into a
figure meant to describe the server. Here every server is probed independently and at once; a
session the server drops is replaced by a fresh one `retry_s` later, and a session that holds a
request for longer than `stuck_s` is abandoned for a new one, so no server can stall the probe.

The caller marks an instant (just after the kill) and waits for the first create *sent after*
the mark to be acknowledged with err == 0: a reply to a request sent earlier could have been
decided by the old leader, so it would not show that a new one is serving.
"""

from __future__ import annotations

import errno
import selectors
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from benchmarks.zkwire import (
    CONNECT_REPLY,
    PERSISTENT_SEQUENTIAL,
    REPLY_HEADER,
    REQ_HEADER,
    close_session,
    connect_request,
    create_body,
    parse_address,
    wait_closed,
)
from zkserver.protocol.constants import OpCode
from zkserver.protocol.jute import INT

CONNECTING, HANDSHAKE, READY = range(3)


@dataclass
class Ack:
    sid: int
    sent_ns: int
    acked_ns: int
    err: int


@dataclass
class _Slot:
    sid: int
    addr: tuple[str, int]
    sock: socket.socket | None = None
    state: int = CONNECTING
    buf: bytearray = field(default_factory=bytearray)
    outstanding: deque = field(default_factory=deque)  # (xid, sent_ns), in xid order
    next_xid: int = 1
    since_ns: int = 0  # when the current connect began (for the stuck check before READY)
    next_try_ns: int = 0
    next_send_ns: int = 0
    excluded: bool = False


class WriteProbe(threading.Thread):
    def __init__(
        self,
        servers: dict[int, str],
        path_prefix: str,
        interval_s: float = 0.005,
        stuck_s: float = 1.0,
        retry_s: float = 0.005,
        max_outstanding: int = 16,
        session_timeout_ms: int = 6000,
    ) -> None:
        super().__init__(daemon=True, name="failover-probe")
        self.slots = {sid: _Slot(sid, parse_address(a)) for sid, a in servers.items()}
        self.body = create_body(path_prefix, b"probe", PERSISTENT_SEQUENTIAL)
        self.interval_ns = int(interval_s * 1e9)
        self.stuck_ns = int(stuck_s * 1e9)
        self.retry_ns = int(retry_s * 1e9)
        self.max_outstanding = max_outstanding
        self.session_timeout_ms = session_timeout_ms
        self.acks: list[Ack] = []
        self.counters = {"sessions": 0, "connect_failures": 0, "dropped_by_server": 0, "stuck_resets": 0, "lost": 0}
        self._mark_ns: int | None = None
        self._ok_after_mark = threading.Event()
        self._halt = threading.Event()
        self._lock = threading.Lock()  # guards slot exclusion and the mark against the loop
        self.sel = selectors.DefaultSelector()

    # --- control, from the caller's thread -----------------------------------------------------

    def exclude(self, sid: int) -> None:
        """Stop probing this server (about to be killed): no point dialling a dead port."""
        with self._lock:
            self.slots[sid].excluded = True

    def mark(self, t_ns: int) -> None:
        with self._lock:
            self._mark_ns = t_ns
            self._ok_after_mark.clear()

    def wait_ok_after_mark(self, timeout: float) -> Ack | None:
        """The first create sent after the mark and acknowledged OK, or None on timeout."""
        if not self._ok_after_mark.wait(timeout):
            return None
        return self.first_ok_after(self._mark_ns or 0)

    def first_ok_after(self, t_ns: int, sid: int | None = None) -> Ack | None:
        ok = [a for a in list(self.acks) if a.err == 0 and a.sent_ns >= t_ns and (sid is None or a.sid == sid)]
        return min(ok, key=lambda a: a.acked_ns) if ok else None

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    # --- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                now = time.monotonic_ns()
                wake = now + self.interval_ns
                for s in self.slots.values():
                    wake = min(wake, self._step(s, now))
                for key, mask in self.sel.select(max(0.0, (wake - time.monotonic_ns()) / 1e9)):
                    self._io(key.data, mask)
        finally:
            self._close_all()

    def _step(self, s: _Slot, now: int) -> int:
        """Timers of one slot; returns when it next needs attention."""
        if s.excluded:
            if s.sock is not None:
                self._reset(s, now, count=None)
            return now + self.interval_ns
        if s.sock is None:
            if now >= s.next_try_ns:
                self._connect(s, now)
            return max(s.next_try_ns, now + self.retry_ns) if s.sock is None else now + self.interval_ns
        if s.state != READY:
            if now - s.since_ns > self.stuck_ns:
                self._reset(s, now, count="stuck_resets")
            return now + self.interval_ns
        if s.outstanding and now - s.outstanding[0][1] > self.stuck_ns:
            self._reset(s, now, count="stuck_resets")
            return now + self.retry_ns
        if now >= s.next_send_ns and len(s.outstanding) < self.max_outstanding:
            try:
                s.sock.send(REQ_HEADER.pack(8 + len(self.body), s.next_xid, OpCode.CREATE) + self.body)
            except OSError:
                self._reset(s, now, count="dropped_by_server")
                return now + self.retry_ns
            s.outstanding.append((s.next_xid, now))
            s.next_xid += 1
            s.next_send_ns = now + self.interval_ns
        return s.next_send_ns

    def _connect(self, s: _Slot, now: int) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = sock.connect_ex(s.addr)
        if err not in (0, errno.EINPROGRESS):
            sock.close()
            self.counters["connect_failures"] += 1
            s.next_try_ns = now + self.retry_ns
            return
        s.sock, s.state, s.since_ns, s.next_xid = sock, CONNECTING, now, 1
        self.sel.register(sock, selectors.EVENT_WRITE, s)

    def _reset(self, s: _Slot, now: int, count: str | None) -> None:
        if count:
            self.counters[count] += 1
        self.counters["lost"] += len(s.outstanding)
        if s.sock is not None:
            self.sel.unregister(s.sock)
            s.sock.close()
        s.sock, s.state = None, CONNECTING
        s.buf.clear()
        s.outstanding.clear()
        s.next_try_ns = now + self.retry_ns

    def _io(self, s: _Slot, mask: int) -> None:
        now = time.monotonic_ns()
        if s.sock is None:
            return
        if s.state == CONNECTING:
            if s.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.counters["connect_failures"] += 1
                self._reset(s, now, count=None)
                return
            try:
                s.sock.send(connect_request(self.session_timeout_ms))  # ~50 bytes: one send
            except OSError:
                self._reset(s, now, count="connect_failures")
                return
            s.state = HANDSHAKE
            self.sel.modify(s.sock, selectors.EVENT_READ, s)
            return
        try:
            data = s.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:  # a server that stops serving drops its clients; so does a dying one
            self._reset(s, now, count="dropped_by_server" if s.state == READY else "connect_failures")
            return
        s.buf += data
        self._parse(s, now)

    def _parse(self, s: _Slot, now: int) -> None:
        buf, pos = s.buf, 0
        while len(buf) - pos >= 4:
            (n,) = INT.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            frame_at, pos = pos + 4, pos + 4 + n
            if s.state == HANDSHAKE:
                if n < CONNECT_REPLY.size:
                    self._reset(s, now, count="connect_failures")
                    return
                _, negotiated, _, _ = CONNECT_REPLY.unpack_from(buf, frame_at)
                if negotiated <= 0:
                    self._reset(s, now, count="connect_failures")
                    return
                s.state, s.next_send_ns = READY, now
                self.counters["sessions"] += 1
                continue
            if n < 16:  # shorter than a ReplyHeader; the server loadgen checks catch this
                continue
            _, xid, _, err = REPLY_HEADER.unpack_from(buf, frame_at - 4)
            if xid < 0 or not s.outstanding:  # ping reply or notification
                continue
            _, sent = s.outstanding.popleft()
            ack = Ack(s.sid, sent, now, err)
            self.acks.append(ack)
            with self._lock:
                if err == 0 and self._mark_ns is not None and sent >= self._mark_ns:
                    self._ok_after_mark.set()
        del buf[:pos]

    def _close_all(self) -> None:
        """closeSession on each live session so the servers do not keep them until expiry."""
        live = [s for s in self.slots.values() if s.sock is not None]
        closing = {id(s) for s in live if s.state == READY and close_session(s.sock, s.next_xid)}
        deadline = time.monotonic() + 1.0
        for s in live:
            if id(s) in closing:
                wait_closed(s.sock, deadline)
            else:
                s.sock.close()
        self.sel.close()
