"""Session ids, passwords and expiry, with no clock of its own: callers pass `now_ms` (a
monotonic clock). Deadlines are rounded up to the next tick so expiry works in buckets, as in
ZooKeeper's ExpiryQueue."""

from __future__ import annotations

from dataclasses import dataclass

from .protocol.constants import Err, ZkError

_PASSWD_SECRET = 0xB3415C00
_MASK48 = (1 << 48) - 1
_MULT = 0x5DEECE66D


def session_password(session_id: int) -> bytes:
    """16 bytes from java.util.Random(sessionId ^ 0xB3415C00).nextBytes, as ZooKeeper makes
    them. Any server derives the same password, which lets a session move between servers."""
    seed = ((session_id ^ _PASSWD_SECRET) ^ _MULT) & _MASK48
    out = bytearray()
    while len(out) < 16:
        seed = (seed * _MULT + 0xB) & _MASK48
        rnd = seed >> 16  # next(32), as an unsigned 32-bit value
        for _ in range(min(4, 16 - len(out))):
            out.append(rnd & 0xFF)
            rnd >>= 8
    return bytes(out)


def first_session_id(now_ms: int, server_id: int) -> int:
    """((now << 24) >>> 8) | (serverId << 56), as a signed long."""
    sid = ((now_ms << 24) & ((1 << 64) - 1)) >> 8
    sid |= (server_id & 0xFF) << 56
    if sid >= 1 << 63:
        sid -= 1 << 64
    if sid == -(1 << 63):
        sid += 1  # never the container marker
    return sid


@dataclass
class Session:
    id: int
    timeout: int
    deadline: int
    closing: bool = False


class SessionTracker:
    def __init__(self, tick_ms: int, server_id: int, now_ms: int, wall_ms: int) -> None:
        self.tick_ms = tick_ms
        self.sessions: dict[int, Session] = {}
        self.buckets: dict[int, set[int]] = {}
        self._next_id = first_session_id(wall_ms, server_id)
        self.now_ms = now_ms

    def _deadline(self, now_ms: int, timeout: int) -> int:
        return (now_ms + timeout) // self.tick_ms * self.tick_ms + self.tick_ms

    def new_id(self) -> int:
        while True:
            sid = self._next_id
            self._next_id += 1
            if sid != 0 and sid not in self.sessions:
                return sid

    def add(self, session_id: int, timeout: int, now_ms: int) -> None:
        if session_id in self.sessions:
            self.touch(session_id, now_ms, timeout)
            return
        s = Session(session_id, timeout, self._deadline(now_ms, timeout))
        self.sessions[session_id] = s
        self.buckets.setdefault(s.deadline, set()).add(session_id)

    def touch(self, session_id: int, now_ms: int, timeout: int | None = None) -> bool:
        """Push the session's deadline out; False if it is gone or closing."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        if timeout is not None:
            s.timeout = timeout
        deadline = self._deadline(now_ms, s.timeout)
        if deadline != s.deadline:
            bucket = self.buckets.get(s.deadline)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self.buckets[s.deadline]
            s.deadline = deadline
            self.buckets.setdefault(deadline, set()).add(session_id)
        return True

    def check(self, session_id: int) -> None:
        """SESSIONEXPIRED unless the session is alive and not closing."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            raise ZkError(Err.SESSIONEXPIRED, f"session 0x{session_id & (2**64 - 1):x}")

    def is_alive(self, session_id: int) -> bool:
        s = self.sessions.get(session_id)
        return s is not None and not s.closing

    def set_closing(self, session_id: int) -> None:
        s = self.sessions.get(session_id)
        if s is not None:
            s.closing = True

    def remove(self, session_id: int) -> None:
        s = self.sessions.pop(session_id, None)
        if s is not None:
            bucket = self.buckets.get(s.deadline)
            if bucket is not None:
                bucket.discard(session_id)
                if not bucket:
                    del self.buckets[s.deadline]

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose deadline has passed; they are marked closing."""
        out: list[int] = []
        for deadline in sorted(d for d in self.buckets if d <= now_ms):
            for sid in sorted(self.buckets.pop(deadline)):
                s = self.sessions.get(sid)
                if s is not None and not s.closing:
                    s.closing = True
                    out.append(sid)
        return out
