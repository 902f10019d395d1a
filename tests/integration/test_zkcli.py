"""`zkCli.sh`, Apache ZooKeeper's own Java client, against zkserver: a second, independent client."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from tests.conftest import require

pytestmark = pytest.mark.integration

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"


def _zkcli(server, script: str) -> str:
    if not os.path.exists(ZKCLI) or shutil.which("java") is None:
        require("zkCli.sh (Debian package 'zookeeper') is not installed", "ZKCHAOS_REQUIRE_REFERENCE")
    done = subprocess.run(
        [ZKCLI, "-server", server.address],
        input=script + "\nquit\n",
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # zkCli prints "Created ..." and errors on stderr
        text=True,
        timeout=60,
    )
    return done.stdout


def test_zkcli_smoke(zkserver, zk):
    out = _zkcli(
        zkserver,
        "\n".join(
            [
                "create /cli hello",
                "get /cli",
                "set /cli world",
                "stat /cli",
                "create -e /cli/eph",
                "create -s /cli/seq- x",
                "ls /cli",
                "delete /cli/eph",
                "ls /cli",
                "deleteall /cli",
                "ls /",
            ]
        ),
    )
    lines = out.splitlines()
    assert "Created /cli" in lines
    assert "hello" in lines
    assert "dataVersion = 1" in lines
    assert "dataLength = 5" in lines
    assert "Created /cli/eph" in lines
    assert "Created /cli/seq-0000000001" in lines
    assert "[eph, seq-0000000001]" in lines
    assert "[seq-0000000001]" in lines
    assert lines.count("[zookeeper]") >= 1 or any("zookeeper" in ln and "cli" not in ln for ln in lines)
    assert zk.exists("/cli") is None


def test_zkcli_sees_kazoo_writes_and_errors(zkserver, zk):
    zk.create("/from-kazoo", b"k-data")
    out = _zkcli(zkserver, "get /from-kazoo\nget /missing\ncreate /from-kazoo again\ndelete /zookeeper")
    assert "k-data" in out
    assert "Node does not exist: /missing" in out
    assert "Node already exists: /from-kazoo" in out
    zk.delete("/from-kazoo")
