"""Shared fixtures: real server processes on loopback and kazoo clients connected to them."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import uuid
from pathlib import Path
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


def require(missing: str | None, promised_by: str) -> None:
    """Skip when something a test needs is `missing` (why, in words), except where CI
    promises it (environment variable `promised_by` = 1): there a skip would hide a broken
    install, so the test fails."""
    if missing is None:
        return
    if os.environ.get(promised_by) == "1":
        pytest.fail(f"required here ({promised_by}=1) but {missing}")
    pytest.skip(missing)


def require_apache_zookeeper() -> None:
    missing = None if apache_zookeeper_available() else "Apache ZooKeeper (Debian package 'zookeeper') is not installed"
    require(missing, "ZKCHAOS_REQUIRE_REFERENCE")


def netns_unusable() -> str | None:
    """Why this machine cannot run a local namespace cluster, or None when it can."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None or subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        return "`ip netns` is unavailable"
    if not Path("/usr/sbin/sshd").exists():
        return "/usr/sbin/sshd is not installed (openssh-server)"
    return None


def require_netns() -> None:
    require(netns_unusable(), "ZKCHAOS_REQUIRE_NETNS")


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
