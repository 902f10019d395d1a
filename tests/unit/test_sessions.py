"""Session ids, passwords and expiry buckets (SessionTrackerImpl / ExpiryQueue semantics)."""

from __future__ import annotations

import pytest

from zkserver.protocol.constants import Err, ZkError
from zkserver.sessions import SessionTracker, first_session_id, session_password

# --- an independent java.util.Random, written from its specification --------------------------
# seed scrambling: (seed ^ 0x5DEECE66D) & ((1 << 48) - 1)
# next(bits): seed = (seed * 0x5DEECE66D + 0xB) & mask; return (int)(seed >>> (48 - bits))
# nextInt() = next(32); nextBytes: for each int, the low byte first, then rnd >>= 8.


def _to_int32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _to_int64(v: int) -> int:
    v &= (1 << 64) - 1
    return v - (1 << 64) if v & (1 << 63) else v


class JavaRandom:
    MULT = 0x5DEECE66D
    MASK = (1 << 48) - 1

    def __init__(self, seed: int) -> None:
        self.seed = (_to_int64(seed) ^ self.MULT) & self.MASK

    def next(self, bits: int) -> int:
        self.seed = (self.seed * self.MULT + 0xB) & self.MASK
        return _to_int32(self.seed >> (48 - bits))

    def next_int(self) -> int:
        return self.next(32)

    def next_bytes(self, n: int) -> bytes:
        out = []
        i = 0
        while i < n:
            rnd = self.next_int()
            for _ in range(min(n - i, 4)):
                out.append(_to_int32(rnd) & 0xFF)  # (byte) rnd
                rnd >>= 8  # arithmetic shift on a signed int
                i += 1
        return bytes(out)


def test_reference_random_matches_known_java_outputs():
    # Widely published values: new Random(0).nextInt() and new Random(42).nextInt().
    assert JavaRandom(0).next_int() == -1155484576
    assert JavaRandom(42).next_int() == -1170105035


def java_passwd(session_id: int) -> bytes:
    return JavaRandom(session_id ^ 0xB3415C00).next_bytes(16)


@pytest.mark.parametrize(
    "sid",
    [1, 0x100000000, 0x0123456789ABCDEF, 0x18C1B3A2F4000000, -1, -(2**63), 2**63 - 1, 0xB3415C00],
)
def test_session_password_is_java_random(sid):
    pw = session_password(sid)
    assert len(pw) == 16
    assert pw == java_passwd(sid)


def test_session_password_first_bytes_are_low_byte_first():
    # sid ^ secret == 0: the first int is new Random(0).nextInt() == -1155484576 == 0xBB20B460
    assert session_password(0xB3415C00)[:4] == bytes([0x60, 0xB4, 0x20, 0xBB])


def test_session_passwords_differ_per_session():
    assert session_password(1) != session_password(2)


# --- first session id ---------------------------------------------------------------------


def _java_first_sid(now: int, server_id: int) -> int:
    shifted = _to_int64(now << 24)  # (now << 24) as a long
    unsigned = (shifted & ((1 << 64) - 1)) >> 8  # >>> 8
    return _to_int64(unsigned | (server_id << 56))


@pytest.mark.parametrize("now", [0, 1, 1_700_000_000_000, 1_234_567_890_123, 2**40 + 12345])
@pytest.mark.parametrize("server_id", [0, 1, 5, 127, 200, 254])
def test_first_session_id_formula(now, server_id):
    assert first_session_id(now, server_id) == _java_first_sid(now, server_id)


def test_first_session_id_concrete_value():
    now = 1_700_000_000_000  # 0x18BCFE56800
    # (now << 24) keeps the low 40 bits of now; >>> 8 puts them at bits 16..55
    assert first_session_id(now, 0) == (now & ((1 << 40) - 1)) << 16
    assert first_session_id(now, 3) == (3 << 56) | ((now & ((1 << 40) - 1)) << 16)
    assert first_session_id(now, 200) < 0  # serverId >= 128 gives a negative long


def test_new_ids_start_at_first_session_id_and_increase():
    t = SessionTracker(2000, 1, now_ms=0, wall_ms=1_700_000_000_000)
    first = first_session_id(1_700_000_000_000, 1)
    a = t.new_id()
    t.add(a, 4000, 0)
    b = t.new_id()
    assert (a, b) == (first, first + 1)


# --- expiry ----------------------------------------------------------------------------------


def tracker(tick=2000, now=0):
    return SessionTracker(tick, 0, now_ms=now, wall_ms=1_700_000_000_000)


def test_deadline_rounds_up_to_next_tick():
    t = tracker()
    t.add(1, 4000, 1000)
    # (1000 + 4000) / 2000 * 2000 + 2000
    assert t.sessions[1].deadline == 6000
    t.add(2, 4000, 2000)
    assert t.sessions[2].deadline == 8000  # exact multiple still moves to the next tick
    t.add(3, 4000, 0)
    assert t.sessions[3].deadline == 6000


def test_expires_exactly_at_deadline():
    t = tracker()
    t.add(1, 4000, 1000)
    assert t.expired(5999) == []
    assert t.expired(6000) == [1]
    assert t.expired(100000) == []  # reported once


def test_touch_moves_the_deadline():
    t = tracker()
    t.add(1, 4000, 0)
    assert t.touch(1, 3000) is True
    assert t.sessions[1].deadline == 8000
    assert t.expired(6000) == []
    assert t.expired(8000) == [1]


def test_touch_with_new_timeout_replaces_it():
    t = tracker()
    t.add(1, 4000, 0)
    t.touch(1, 1000, timeout=10000)
    assert t.sessions[1].timeout == 10000
    assert t.sessions[1].deadline == 12000


def test_expired_sessions_are_marked_closing_and_fail_checks():
    t = tracker()
    t.add(1, 4000, 0)
    t.add(2, 40000, 0)
    assert t.expired(6000) == [1]
    with pytest.raises(ZkError) as e:
        t.check(1)
    assert e.value.code == Err.SESSIONEXPIRED
    t.check(2)  # still alive
    assert t.touch(1, 6000) is False  # a closing session cannot be revived
    assert not t.is_alive(1)


def test_closing_session_fails_check_with_session_expired():
    t = tracker()
    t.add(7, 4000, 0)
    t.check(7)
    t.set_closing(7)
    with pytest.raises(ZkError) as e:
        t.check(7)
    assert e.value.code == Err.SESSIONEXPIRED
    assert t.touch(7, 100) is False


def test_unknown_session_fails_check():
    with pytest.raises(ZkError) as e:
        tracker().check(12345)
    assert e.value.code == Err.SESSIONEXPIRED


def test_removed_session_never_expires():
    t = tracker()
    t.add(1, 4000, 0)
    t.remove(1)
    assert t.expired(10**9) == []
    assert not t.is_alive(1)


def test_sessions_in_one_bucket_expire_together():
    t = tracker()
    t.add(1, 4000, 100)
    t.add(2, 4000, 1900)  # both round to 6000
    assert t.expired(6000) == [1, 2]
