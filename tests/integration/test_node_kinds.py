"""Container and TTL node lifecycles (the test server sweeps every 200 ms). kazoo cannot create
either kind, so a raw client creates them and kazoo observes."""

from __future__ import annotations

import time

import pytest
from tests.rawclient import RawClient
from zkserver.protocol.constants import Err, OpCode
from zkserver.protocol.jute import Writer

pytestmark = pytest.mark.integration


def _create(raw: RawClient, path: str, opcode: int, flags: int, ttl: int | None = None) -> tuple[int, str]:
    w = Writer().ustring(path).buffer(b"").int(1).int(31).ustring("world").ustring("anyone").int(flags)
    if ttl is not None:
        w.long(ttl)
    reply = raw.call(opcode, w.bytes())
    return reply.err, (reply.body.ustring() if reply.err == 0 else "")


@pytest.fixture
def raw(zkserver):
    client = RawClient(zkserver.host, zkserver.client_port)
    client.handshake()
    yield client
    client.close()


def create_container(raw: RawClient, path: str) -> None:
    assert _create(raw, path, OpCode.CREATE_CONTAINER, 4)[0] == Err.OK


def create_ttl(raw: RawClient, path: str, ttl: int, flags: int = 5) -> tuple[int, str]:
    return _create(raw, path, OpCode.CREATE_TTL, flags, ttl)


def _gone_within(zk, path: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if zk.exists(path) is None:
            return True
        time.sleep(0.05)
    return False


def test_container_removed_once_emptied(zk, raw, base):
    create_container(raw, f"{base}/box")
    time.sleep(0.6)  # three sweeps: a never-used container stays
    assert zk.exists(f"{base}/box") is not None
    assert zk.exists(f"{base}/box").ephemeralOwner == 0
    zk.create(f"{base}/box/item")
    time.sleep(0.5)
    assert zk.exists(f"{base}/box") is not None  # not empty
    zk.delete(f"{base}/box/item")
    assert _gone_within(zk, f"{base}/box", 3)


def test_ttl_node_expires_when_childless(zk, raw, base):
    assert create_ttl(raw, f"{base}/ttl", 300)[0] == Err.OK
    assert zk.exists(f"{base}/ttl").ephemeralOwner == 0
    assert _gone_within(zk, f"{base}/ttl", 3)


def test_ttl_node_with_children_stays(zk, raw, base):
    create_ttl(raw, f"{base}/ttlp", 200)
    zk.create(f"{base}/ttlp/child")
    time.sleep(0.8)
    assert zk.exists(f"{base}/ttlp") is not None
    zk.delete(f"{base}/ttlp/child")
    assert _gone_within(zk, f"{base}/ttlp", 3)


def test_ttl_is_refreshed_by_writes(zk, raw, base):
    create_ttl(raw, f"{base}/fresh", 800)
    for _ in range(6):  # 1.2 s of writes, each resets mtime
        time.sleep(0.2)
        zk.set(f"{base}/fresh", b"x")
    assert zk.exists(f"{base}/fresh") is not None
    assert _gone_within(zk, f"{base}/fresh", 3)


def test_sequential_ttl(raw, base):
    assert create_ttl(raw, f"{base}/s-", 60000, flags=6) == (Err.OK, f"{base}/s-0000000000")


@pytest.mark.parametrize("ttl", [0, -5, 0x10000000000])
def test_invalid_ttl(raw, base, ttl):
    assert create_ttl(raw, f"{base}/bad", ttl)[0] == Err.BADARGUMENTS


def test_ttl_opcode_with_non_ttl_mode(raw, base):
    assert create_ttl(raw, f"{base}/bad", 1000, flags=0)[0] == Err.BADARGUMENTS


def test_ttl_needs_extended_types(server_factory):
    server = server_factory(extendedTypesEnabled="false")
    client = RawClient(server.host, server.client_port)
    client.handshake()
    assert create_ttl(client, "/t", 1000)[0] == Err.UNIMPLEMENTED
    client.close()


def test_create_container_opcode_returns_stat(raw, base):
    body = Writer().ustring(f"{base}/c").buffer(b"d").int(1).int(31).ustring("world").ustring("anyone").int(4).bytes()
    reply = raw.call(OpCode.CREATE_CONTAINER, body)
    assert reply.err == Err.OK
    assert reply.body.ustring() == f"{base}/c"
    stat = [reply.body.long() for _ in range(4)] + [reply.body.int() for _ in range(3)]
    assert stat[4:] == [0, 0, 0]  # version, cversion, aversion
