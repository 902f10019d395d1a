"""`zkchaos test --nodes ...` against hosts that behave like separate machines.

The hosts are namespace nodes whose sshd runs in a mount namespace of its own: private /tmp,
/opt, /var/lib/zkchaos and home, a non-root login (`zkuser`) with passwordless sudo, and no
route beyond the bridge, so no package index. Single nodes differ the way hosts do: one has no
SFTP subsystem, one has no Apache ZooKeeper package and no apt-get. Every run must end valid and
leave no process, rule, run directory or controller-side temporary file behind.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from harness.cluster import LocalCluster
from harness.cluster import netns as nsutil
from harness.cluster.hostfs import NodeQuirks
from harness.remote import SSHRemote, connect_all
from harness.servers import DEBIAN_ZK_JARS
from harness.workspace import cluster_id
from tests.conftest import require_apache_zookeeper, require_netns

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PREFIX, SUBNET, LOGIN = "zkh", "10.66.74.0/24", "zkuser"
NO_SFTP, NO_ZOOKEEPER = 2, 3
QUIRKS = {NO_SFTP: NodeQuirks(sftp=False),
          NO_ZOOKEEPER: NodeQuirks(hide=("/usr/share/java", "/usr/share/zookeeper", "/usr/bin/apt-get"))}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_netns()
    cluster = LocalCluster(tmp_path_factory.mktemp("hosts"), prefix=PREFIX, subnet=SUBNET,
                           login=LOGIN, separate=True, quirks=QUIRKS)
    cluster.up(3)
    try:
        yield cluster
    finally:
        cluster.down()


@pytest.fixture
def remotes(hosts: LocalCluster) -> Iterator[dict[str, SSHRemote]]:
    conns = connect_all(hosts.up(3))  # a no-op up: the same healthy cluster
    try:
        yield conns
    finally:
        for r in conns.values():
            r.close()


def zkchaos_test(hosts: LocalCluster, store: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    nodes = ",".join(hosts.address(i) for i in (1, 2, 3))
    return subprocess.run(
        [sys.executable, "-m", "cli", "test", "--nodes", nodes, "--ssh-user", LOGIN, "--ssh-key", str(hosts.key_path),
         "--store", str(store), "--concurrency", "6", "--rate", "60", "--nemesis-interval", "3",
         "--recovery-time", "15", "--seed", "11", *args],
        capture_output=True, text=True, timeout=timeout, cwd=REPO,
    )


def controller_leftovers() -> set[str]:
    """What a run makes on this machine for remote hosts: the wheel build, packed jars."""
    return {p.name for pattern in ("zkchaos-wheel-*", "zkchaos-zookeeper-*") for p in Path("/tmp").glob(pattern)}


def assert_hosts_clean(hosts: LocalCluster, remotes: dict[str, SSHRemote], skip: tuple[int, ...] = ()) -> None:
    """No server process, no partition rule, no run directory of ours on any (living) host."""
    for i in (1, 2, 3):
        if i in skip:
            continue
        remote = remotes[f"n{i}"]
        procs = remote.run(f"ps -u {LOGIN} -o args=", sudo=False, check=False).stdout
        assert "zkserver" not in procs and "QuorumPeerMain" not in procs, procs
        assert "zkchaos" not in remote.run("iptables -w -S INPUT").stdout
        ours = [p for p in (hosts.private_root(i) / "tmp").glob("zkchaos-run.*") if p.stat().st_uid != 0]
        assert not ours


def debian_zookeeper_release(where: Path) -> Path:
    """The official binary release's layout (apache-zookeeper-X-bin/lib/*.jar), made from
    Debian's jars: zookeeper.jar, the jars its manifest names, and its log binding."""
    lib = where / "apache-zookeeper-3.8.0-bin" / "lib"
    lib.mkdir(parents=True)
    with zipfile.ZipFile(DEBIAN_ZK_JARS[0]) as jar:
        manifest = jar.read("META-INF/MANIFEST.MF").decode().replace("\r\n ", "").replace("\n ", "")
    class_path = next(line for line in manifest.splitlines() if line.startswith("Class-Path:")).split()[1:]
    for path in [*DEBIAN_ZK_JARS, *class_path]:
        target = Path(path).resolve()
        name = "zookeeper-3.8.0.jar" if path == DEBIAN_ZK_JARS[0] else target.name
        if target.exists():
            (lib / name).symlink_to(target)
    return lib.parent


def plant_leftovers(hosts: LocalCluster, remote: SSHRemote, i: int) -> str:
    """What other users and a crashed earlier run leave on a host: a root-owned wheel at the
    name old versions used, a root-owned directory with our prefix, and a run directory of our
    own login whose "server" still listens on the client port."""
    tmp = hosts.private_root(i) / "tmp"
    (tmp / "zkchaos-0.1.0-py3-none-any.whl").write_bytes(b"not yours")
    (tmp / "zkchaos-run.rootowned0").mkdir(mode=0o700)
    stale = remote.run("mktemp -d /tmp/zkchaos-run.XXXXXXXXXX", sudo=False).stdout.strip()
    mark = cluster_id([hosts.address(n) for n in (1, 2, 3)])  # an earlier run on these very hosts
    remote.run(f"echo {mark} > {stale}/cluster-id", sudo=False)
    remote.run(f"cat > {stale}/server.py <<'EOF'\nimport socket, time\ns = socket.socket()\n"
               f"s.bind(('{hosts.address(i)}', 2181))\ns.listen()\ntime.sleep(600)\nEOF", sudo=False)
    inner = f"echo $$ > {stale}/server.pid; exec python3 {stale}/server.py {stale}/zoo.cfg"
    remote.run(f"setsid sh -c '{inner}' > /dev/null 2>&1 < /dev/null &", sudo=False)
    deadline = time.monotonic() + 10
    while "2181" not in remote.run("ss -Hltn", sudo=False, check=False).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    return stale


def test_zkchaos_installs_offline_and_runs_past_what_others_left(hosts, remotes, tmp_path) -> None:
    before = controller_leftovers()
    stale = plant_leftovers(hosts, remotes["n1"], 1)
    done = zkchaos_test(hosts, tmp_path / "store", "--db", "zkchaos", "--nemesis", "partition,kill",
                        "--time-limit", "10")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = (tmp_path / "store" / "latest").resolve()
    assert json.loads((run / "results.json").read_text())["valid"] is True
    log = (run / "harness.log").read_text()
    assert "stopped pid" in log and f"removed {stale}" in log
    assert "no SFTP subsystem" in log  # n2 got its files over the exec channel
    # Each server ran from its own venv in the run directory, as the login user.
    zoo_cfg = (run / "nodes" / hosts.address(1) / "zoo.cfg").read_text()
    assert "dataDir=/tmp/zkchaos-run." in zoo_cfg
    assert_hosts_clean(hosts, remotes)
    tmp1 = hosts.private_root(1) / "tmp"
    assert sorted(p.name for p in tmp1.iterdir()) == ["zkchaos-0.1.0-py3-none-any.whl", "zkchaos-run.rootowned0"]
    assert controller_leftovers() == before
    (tmp1 / "zkchaos-0.1.0-py3-none-any.whl").unlink()
    (tmp1 / "zkchaos-run.rootowned0").rmdir()


def test_the_server_on_a_host_needs_only_the_standard_library(hosts, remotes, tmp_path) -> None:
    from harness.db import Node, ZkChaosDB
    from harness.workspace import Workspace

    node = Node("n2", hosts.address(NO_SFTP), remotes["n2"], local=False, id=1)
    db, workspace = ZkChaosDB(tick_time=200), Workspace()
    workspace.create(node)
    try:
        db.prepare([node])
        db.setup(node, [node])
        db.start(node)
        db.wait_ready([node], timeout=60)
        remote = remotes["n2"]
        owner = remote.run(f"stat -c '%U %a' {node.dir}", sudo=False).stdout.split()
        assert owner == [LOGIN, "700"]
        pid = remote.run(f"cat {node.dir}/server.pid", sudo=False).stdout.strip()
        assert remote.run(f"ps -o user= -p {pid}", sudo=False).stdout.strip() == LOGIN
        assert f"{node.dir}/venv/bin/python -m zkserver" in remote.run(f"tr '\\0' ' ' < /proc/{pid}/cmdline", sudo=False).stdout
        heavy = remote.run(f"{node.dir}/venv/bin/python -c \"import sys, zkserver.main, zkserver.server, "
                           "zkserver.quorum.shell; print(sorted({m.split('.')[0] for m in sys.modules} & "
                           "{'pandas', 'matplotlib', 'rich', 'click', 'kazoo', 'paramiko', 'fabric', 'jinja2'}))\"",
                           sudo=False).stdout.strip()
        assert heavy == "[]"
    finally:
        db.teardown(node)
        workspace.remove(node)
        db.close()
    assert not list((hosts.private_root(NO_SFTP) / "tmp").iterdir())


def test_apache_zookeeper_uploaded_to_hosts_without_the_package(hosts, remotes, tmp_path) -> None:
    require_apache_zookeeper()
    before = controller_leftovers()
    # Without --zookeeper-path, the host lacking the package (and apt) is named before anything starts.
    done = zkchaos_test(hosts, tmp_path / "refused", "--db", "zookeeper", "--time-limit", "5")
    assert done.returncode == 3
    lines = [ln for ln in done.stdout.splitlines() if "Apache ZooKeeper is not installed" in ln]
    assert len(lines) == 1 and hosts.address(NO_ZOOKEEPER) in lines[0] and "--zookeeper-path" in lines[0]
    assert not [p for p in (hosts.private_root(1) / "tmp").glob("zkchaos-run.*") if p.stat().st_uid != 0]
    release = debian_zookeeper_release(tmp_path / "dist")
    done = zkchaos_test(hosts, tmp_path / "store", "--db", "zookeeper", "--zookeeper-path", str(release),
                        "--nemesis", "partition,kill", "--time-limit", "10")
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    run = (tmp_path / "store" / "latest").resolve()
    assert json.loads((run / "results.json").read_text())["valid"] is True
    server_log = (run / "nodes" / hosts.address(NO_ZOOKEEPER) / "server.log").read_text()
    assert "QuorumPeer" in server_log and "zookeeper-3.8.0.jar" in server_log
    assert_hosts_clean(hosts, remotes)
    assert controller_leftovers() == before


def test_a_host_that_dies_mid_run_gives_an_honest_verdict(hosts, remotes, tmp_path) -> None:
    store = tmp_path / "store"
    nodes = ",".join(hosts.address(i) for i in (1, 2, 3))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "test", "--nodes", nodes, "--ssh-user", LOGIN, "--ssh-key",
         str(hosts.key_path), "--store", str(store), "--concurrency", "6", "--rate", "60", "--nemesis",
         "partition", "--nemesis-interval", "2", "--time-limit", "8", "--recovery-time", "5", "--seed", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        history = store / "latest" / "history.jsonl"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if history.exists() and history.read_text().count('"ok"') > 100:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run never got going")
        nsutil.stop_pids(nsutil.netns_pids(hosts.netns_name(3)))  # power off: sshd, server, all
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode in (0, 2), f"exit {proc.returncode}\n{out[-3000:]}\n{err[-3000:]}"
    assert hosts.address(3) in out
    results = json.loads((store / "latest" / "results.json").read_text())
    assert results["valid"] in (True, "unknown")
    assert_hosts_clean(hosts, remotes, skip=(3,))
    hosts.down()  # the dead host is rebuilt for whatever runs next
    hosts.up(3)


def test_hosts_that_fall_short_are_named_before_anything_starts(tmp_path) -> None:
    require_netns()
    quirks = {1: NodeQuirks(hide=("/usr/lib/python3.11/ensurepip",)), 2: NodeQuirks(sudo_password=True)}
    cluster = LocalCluster(tmp_path / "cluster", prefix="zkp", subnet="10.66.73.0/24", login=LOGIN,
                           separate=True, quirks=quirks)
    try:
        specs = cluster.up(3)
        done = subprocess.run(
            [sys.executable, "-m", "cli", "test", "--nodes", ",".join(s.host for s in specs), "--ssh-user", LOGIN,
             "--ssh-key", str(cluster.key_path), "--store", str(tmp_path / "store"), "--time-limit", "5"],
            capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 3, done.stdout + done.stderr
        out = done.stdout
        venv = [ln for ln in out.splitlines() if "python3-venv" in ln]
        sudo = [ln for ln in out.splitlines() if "passwordless sudo" in ln]
        assert len(venv) == 1 and cluster.address(1) in venv[0]
        assert len(sudo) == 1 and cluster.address(2) in sudo[0]
        assert cluster.address(3) not in out.split("hosts are not ready", 1)[1]
        for i in (1, 2, 3):  # nothing was touched
            assert not list((cluster.private_root(i) / "tmp").iterdir())
    finally:
        cluster.down()


def test_host_keys_are_checked_when_asked(hosts, tmp_path) -> None:
    from harness.remote import NodeSpec, RemoteError

    address = hosts.address(1)
    real = (hosts.pidfile(1).parent / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    other = (hosts.pidfile(2).parent / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"

    def connect() -> None:
        spec = NodeSpec("n1", address, user=LOGIN, key_path=str(hosts.key_path), strict_host_keys=True,
                        known_hosts=str(known), ssh_config=False)
        connect_all([spec])["n1"].close()

    known.write_text("")
    with pytest.raises(RemoteError, match="not in known_hosts and --strict-host-keys is on: add it"):
        connect()
    known.write_text(f"{address} {' '.join(other)}\n")  # the host was reinstalled, or is not n1
    with pytest.raises(RemoteError) as err:
        connect()
    assert str(err.value).startswith(f"n1 ({address}:22): host key does not match") and "\n" not in str(err.value)
    known.write_text(f"{address} {' '.join(real)}\n")
    connect()
