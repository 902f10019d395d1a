"""The remote-host path of `--db zkchaos`: a wheel built from this checkout, uploaded over SSH,
installed into a virtual environment on the node, and run from there through the DB protocol.

The node is a local namespace treated as remote (local=False), so everything goes through
paramiko exactly as for a real host. Namespaces have no route to a package index, so the
venv is prepared to see this environment's packages: the dependencies are then already
satisfied and pip stays offline, while zkchaos itself comes only from the uploaded wheel.
"""

from __future__ import annotations

import site
import subprocess
import sys
from pathlib import Path

import pytest

from harness.cluster import LocalCluster
from harness.db import Node, ZkChaosDB
from harness.localproc import four_letter
from harness.remote import connect_all
from tests.conftest import require_netns

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkr", "10.66.76.0/24"


def _venv_seeing_our_dependencies(path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, capture_output=True)
    purelib = subprocess.run(
        [str(path / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    # A plain path line: our site-packages join sys.path, but their .pth files (the editable
    # zkchaos of this checkout) are not run, so `import cli` can only find the wheel's copy.
    Path(purelib, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")


def test_wheel_installed_over_ssh_runs_the_server(tmp_path: Path) -> None:
    require_netns()
    venv = tmp_path / "venv"
    _venv_seeing_our_dependencies(venv)
    cluster = LocalCluster(tmp_path / "cluster", prefix=PREFIX, subnet=SUBNET)
    specs = cluster.up(1)
    remote = connect_all(specs)[specs[0].name]
    node = Node(specs[0].name, specs[0].host, remote, local=False, id=1)
    db = ZkChaosDB(tick_time=200, remote_venv=str(venv))
    try:
        db.teardown(node)
        db.setup(node, [node])  # builds, uploads and installs the wheel
        assert (venv / "bin" / "zkchaos").exists(), "the console script was not installed"
        where = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import cli, zkserver; print(cli.__file__, zkserver.__file__)"],
            check=True, capture_output=True, text=True, cwd="/",
        ).stdout
        assert str(Path(__file__).resolve().parents[2]) not in where and str(venv) in where, where
        db.start(node)
        db.wait_ready([node], timeout=60)
        assert db.mode(node) == "standalone"
        assert four_letter(node.address, 2181, "ruok") == "imok"
        pid = remote.run(f"cat {node.dir}/server.pid").stdout.strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert f"{venv}/bin/zkchaos server" in cmdline, cmdline
    finally:
        try:
            db.teardown(node)
        finally:
            remote.close()
            cluster.down()
