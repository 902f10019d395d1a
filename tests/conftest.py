"""Shared fixtures: real server processes on loopback and kazoo clients connected to them."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from harness.localproc import LocalServer, apache_zookeeper_available, free_port

# The settings every test server runs with: short ticks so session expiry tests are quick,
# TTL nodes on, a fast container sweep, and a super user ("super:test").
TEST_SETTINGS = {
    "tickTime": "200",
    "minSessionTimeout": "400",
    "maxSessionTimeout": "10000",
    "extendedTypesEnabled": "true",
    "znode.container.checkIntervalMs": "200",
    "superDigest": "super:D/InIHSb7yEEbrWz8b9l71RjZJU=",
}

logging.getLogger("kazoo").setLevel(logging.WARNING)


def require_apache_zookeeper() -> None:
    """Skip without the reference server, except where CI promises it is installed."""
    if apache_zookeeper_available():
        return
    if os.environ.get("ZKCHAOS_REQUIRE_REFERENCE") == "1":
        pytest.fail("Apache ZooKeeper (Debian package 'zookeeper') is required here but not installed")
    pytest.skip("Apache ZooKeeper (Debian package 'zookeeper') is not installed")


ServerFactory = Callable[..., LocalServer]


@pytest.fixture
def server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerFactory]:
    """make(kind="zkchaos"|"zookeeper", **zoo.cfg settings) -> a started LocalServer."""
    started: list[LocalServer] = []

    def make(kind: str = "zkchaos", start: bool = True, **settings: str) -> LocalServer:
        if kind == "zookeeper":
            require_apache_zookeeper()
        merged = dict(TEST_SETTINGS)
        merged.update({k.replace("__", "."): str(v) for k, v in settings.items()})
        server = LocalServer(kind, tmp_path_factory.mktemp(kind), free_port(), merged)
        started.append(server)
        return server.start() if start else server

    yield make
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def zkserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One zkchaos server shared by a test module (tests use their own paths)."""
    server = LocalServer("zkchaos", tmp_path_factory.mktemp("zkchaos"), free_port(), dict(TEST_SETTINGS))
    server.start()
    yield server
    server.stop()


def connect(server: LocalServer, **kw) -> KazooClient:
    kw.setdefault("timeout", 10)
    client = KazooClient(hosts=server.address, **kw)
    client.start(timeout=10)
    return client


@pytest.fixture
def zk(zkserver: LocalServer) -> Iterator[KazooClient]:
    client = connect(zkserver)
    yield client
    client.stop()
    client.close()


@pytest.fixture
def base(zk: KazooClient) -> str:
    """A fresh, empty path for this test."""
    path = f"/t-{uuid.uuid4().hex[:12]}"
    zk.create(path)
    return path
