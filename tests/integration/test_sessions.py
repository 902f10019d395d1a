"""Session life: negotiation, reconnect with id and password, expiry, close."""

from __future__ import annotations

import queue
import time

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType, KazooState

from tests.conftest import connect
from tests.rawclient import RawClient, path_body
from zkserver.protocol.jute import Writer
from zkserver.protocol.constants import OpCode

pytestmark = pytest.mark.integration


def _raw(server) -> RawClient:
    return RawClient(server.host, server.client_port)


def _wait_until(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


@pytest.mark.parametrize("requested, negotiated", [(1, 400), (3000, 3000), (10**6, 10000)])
def test_timeout_is_clamped_to_configured_bounds(zkserver, requested, negotiated):
    c = _raw(zkserver)
    assert c.handshake(timeout_ms=requested) == negotiated
    c.close()


def test_reconnect_with_id_and_password_keeps_session_and_ephemerals(zkserver, zk, base):
    c = _raw(zkserver)
    c.handshake(timeout_ms=5000)
    sid, pw = c.session_id, c.passwd
    assert len(pw) == 16
    assert c.create(f"{base}/mine", flags=1).err == 0
    c.close()  # dropped without closeSession: the session lives on
    again = _raw(zkserver)
    assert again.handshake(session_id=sid, passwd=pw, timeout_ms=5000) == 5000
    assert again.session_id == sid
    assert zk.exists(f"{base}/mine").ephemeralOwner == sid
    reply = again.call(OpCode.GET_EPHEMERALS, path_body("/"))
    assert reply.body.int() == 1 and reply.body.ustring() == f"{base}/mine"
    again.close()


def test_kazoo_resumes_a_session_by_client_id(zkserver, zk, base):
    c = _raw(zkserver)
    c.handshake(timeout_ms=5000)
    c.create(f"{base}/e", flags=1)
    c.close()
    resumed = connect(zkserver, client_id=(c.session_id, c.passwd))
    try:
        assert resumed.client_id[0] == c.session_id
        assert resumed.exists(f"{base}/e").ephemeralOwner == c.session_id
    finally:
        resumed.stop()
        resumed.close()
    assert zk.exists(f"{base}/e") is None  # kazoo's stop() closed the session


def test_wrong_password_gets_expired_session(zkserver):
    c = _raw(zkserver)
    c.handshake()
    sid = c.session_id
    bad = _raw(zkserver)
    assert bad.handshake(session_id=sid, passwd=b"\x01" * 16) == 0
    assert bad.session_id == 0
    assert bad.closed_by_server()
    c.close()


def test_unknown_session_gets_expired(zkserver):
    c = _raw(zkserver)
    assert c.handshake(session_id=0x1234, passwd=b"\x00" * 16) == 0
    assert c.closed_by_server()


def test_client_ahead_of_server_is_refused_without_reply(zkserver):
    c = _raw(zkserver)

    w = Writer().int(0).long(1 << 60).int(5000).long(0).buffer(b"\x00" * 16).bool(False)
    c.send_frame(w.bytes())
    assert c.closed_by_server()


def test_expiry_deletes_ephemerals_and_fires_watches(zkserver, zk, base):
    c = _raw(zkserver)
    c.handshake(timeout_ms=600)
    sid, pw = c.session_id, c.passwd
    c.create(f"{base}/eph", flags=1)
    deleted: queue.Queue = queue.Queue()
    zk.exists(f"{base}/eph", watch=deleted.put)
    c.sock.close()  # silent: no ping, no closeSession
    start = time.monotonic()
    event = deleted.get(timeout=10)
    elapsed = time.monotonic() - start
    assert (event.type, event.path) == (EventType.DELETED, f"{base}/eph")
    assert elapsed >= 0.4, "expired too early"
    assert zk.exists(f"{base}/eph") is None
    late = _raw(zkserver)
    assert late.handshake(session_id=sid, passwd=pw) == 0


def test_pings_keep_a_session_alive(zkserver, zk, base):
    c = _raw(zkserver)
    c.handshake(timeout_ms=600)
    c.create(f"{base}/kept", flags=1)
    for _ in range(10):  # 2 s, more than three timeouts
        c.send(OpCode.PING, xid=-2)
        assert c.recv().xid == -2
        time.sleep(0.2)
    assert zk.exists(f"{base}/kept") is not None
    c.close()


def test_close_session_removes_ephemerals_at_once(zkserver, zk, base):
    other = connect(zkserver)
    other.create(f"{base}/a", ephemeral=True)
    other.create(f"{base}/b", ephemeral=True, sequence=True)
    other.stop()
    other.close()
    assert zk.get_children(base) == []


def test_close_session_reply_then_connection_closed(zkserver):
    c = _raw(zkserver)
    c.handshake()
    reply = c.call(OpCode.CLOSE_SESSION)
    assert reply.err == 0
    assert c.closed_by_server()


def test_kazoo_sees_session_expired_state(zkserver):
    states: list = []
    client = KazooClient(hosts=zkserver.address, timeout=1.0)
    client.add_listener(states.append)
    client.start(timeout=5)
    sid, pw = client.client_id
    # Take the session over from a raw client and close it there: kazoo, reconnecting with
    # the old id and password, must be told the session is gone.
    thief = _raw(zkserver)
    thief.handshake(session_id=sid, passwd=pw, timeout_ms=400)
    assert thief.call(OpCode.CLOSE_SESSION).err == 0
    thief.close()
    assert _wait_until(lambda: KazooState.LOST in states, timeout=15)
    assert _wait_until(lambda: client.connected, timeout=15)
    assert client.client_id[0] != sid  # kazoo made a new session
    client.stop()
    client.close()
