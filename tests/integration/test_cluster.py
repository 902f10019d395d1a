"""The local netns cluster and the SSH remote layer, for real: namespaces, sshd, iptables.

Uses its own prefix and subnet (zkt, 10.66.78.0/24) so it never disturbs a developer's
`zkchaos cluster up` (zkc, 10.66.77.0/24) running on the same machine.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Iterator

import pytest

from harness.cluster import ClusterError, LocalCluster
from harness.cluster import netns as nsutil
from harness.remote import NodeSpec, Remote, RemoteError, RemoteTimeout, connect_all, run_all
from tests.conftest import require_netns

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkt", "10.66.78.0/24"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    require_netns()
    local = LocalCluster(tmp_path_factory.mktemp("cluster"), prefix=PREFIX, subnet=SUBNET)
    try:
        yield local
    finally:
        local.down()


@pytest.fixture
def remotes(cluster: LocalCluster) -> Iterator[dict[str, Remote]]:
    # up() is a no-op on a healthy cluster, so each test finds 3 nodes whatever ran before it.
    conns = connect_all(cluster.up(3))
    try:
        yield conns
    finally:
        for r in conns.values():
            r.close()


def _reaches(src: Remote, ip: str) -> bool:
    probe = f"python3 -c 'import socket; socket.create_connection((\"{ip}\", 22), 1)'"
    return src.run(probe, timeout=10, check=False).exit_code == 0


def test_each_node_answers_ssh_with_its_own_name_and_address(cluster: LocalCluster, remotes) -> None:
    results = run_all(remotes, "hostname; ip -4 -o addr show dev eth0")
    for i, name in enumerate(["n1", "n2", "n3"], start=1):
        out = results[name].stdout
        assert out.splitlines()[0] == name
        assert f"inet {cluster.address(i)}/24" in out
    # iptables works inside a namespace, and starts empty there.
    assert remotes["n1"].run("iptables -w -S INPUT").stdout.strip() == "-P INPUT ACCEPT"


def test_up_again_is_a_no_op(cluster: LocalCluster, remotes) -> None:
    pids = [nsutil.read_pidfile(cluster.pidfile(i)) for i in (1, 2, 3)]
    started = time.monotonic()
    assert [s.host for s in cluster.up(3)] == [cluster.address(i) for i in (1, 2, 3)]
    assert time.monotonic() - started < 2
    assert [nsutil.read_pidfile(cluster.pidfile(i)) for i in (1, 2, 3)] == pids


def test_partition_rule_cuts_one_peer_and_removing_it_heals(cluster: LocalCluster, remotes) -> None:
    n1_ip, n2_ip = cluster.address(1), cluster.address(2)
    assert _reaches(remotes["n1"], n2_ip)
    rule = f"INPUT -s {n1_ip} -j DROP"
    remotes["n2"].run(f"iptables -w -A {rule}")
    try:
        assert not _reaches(remotes["n1"], n2_ip)
        assert _reaches(remotes["n3"], n2_ip)  # only n1 is cut off
    finally:
        remotes["n2"].run(f"iptables -w -D {rule}")
    assert remotes["n2"].run("iptables -w -S INPUT").stdout.strip() == "-P INPUT ACCEPT"
    assert _reaches(remotes["n1"], n2_ip)


def test_upload_download_round_trip(remotes, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    src, back = tmp_path / "src.bin", tmp_path / "back.bin"
    src.write_bytes(data)
    node = remotes["n2"]
    remote_path = f"/tmp/zkt-roundtrip-{os.getpid()}.bin"
    try:
        node.upload(src, remote_path)
        assert node.run(f"wc -c < {remote_path}").stdout.strip() == str(len(data))
        node.download(remote_path, back)
    finally:
        node.run(f"rm -f {remote_path}")
    assert back.read_bytes() == data


def test_run_errors_and_timeouts(remotes) -> None:
    node = remotes["n1"]
    with pytest.raises(RemoteError) as err:
        node.run("echo bad thing >&2; exit 3")
    assert err.value.exit_code == 3 and "n1" in str(err.value) and "bad thing" in str(err.value)
    assert node.run("exit 4", check=False).exit_code == 4
    assert node.run("kill -9 $$", check=False).exit_code == 128 + 9  # death by signal, as shells say

    pidfile = f"/tmp/zkt-timeout-{os.getpid()}"
    started = time.monotonic()
    with pytest.raises(RemoteTimeout):
        node.run(f"echo $$ > {pidfile}; exec sleep 30", timeout=1)
    assert time.monotonic() - started < 2.5
    pid = node.run(f"cat {pidfile}; rm -f {pidfile}").stdout.strip()
    # The remote command is killed too, not just abandoned (state gone or Z = dead).
    deadline = time.monotonic() + 5
    while node.run(f"awk '{{print $3}}' /proc/{pid}/stat 2>/dev/null", check=False).stdout.strip() not in ("", "Z"):
        assert time.monotonic() < deadline, "timed-out remote command still running"
        time.sleep(0.2)

    with pytest.raises(RemoteError) as err:
        run_all(remotes, "test $(hostname) = n1")
    assert "n2" in str(err.value) and "n3" in str(err.value) and "n1 " not in str(err.value)


def test_unreachable_or_refused_gives_one_line(cluster: LocalCluster, remotes) -> None:
    key = str(cluster.key_path)
    with pytest.raises(RemoteError) as err:
        connect_all([NodeSpec("n1", cluster.address(1), key_path=key),
                     NodeSpec("n9", cluster.address(1), port=2222, key_path=key)])
    assert str(err.value) == f"n9 ({cluster.address(1)}:2222): connection refused"
    with pytest.raises(RemoteError) as err:
        connect_all([NodeSpec("n2", cluster.address(2), password="wrong")])
    assert str(err.value) == f"n2 ({cluster.address(2)}:22): authentication failed for root@{cluster.address(2)}"


def test_without_root_the_cli_says_so(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to an unprivileged user and back")
    from click.testing import CliRunner

    import cli

    # Really unprivileged for the call: the effective uid is nobody's (saved uid 0 restores it).
    # In-process because the interpreter's packages live under /root, unreadable to nobody.
    os.setegid(65534)
    os.seteuid(65534)
    try:
        result = CliRunner().invoke(cli.main, ["cluster", "up", "--nodes", "1", "--state-dir", str(tmp_path / "s")])
    finally:
        os.seteuid(0)
        os.setegid(0)
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: zkchaos cluster needs root (network namespaces); "
                                     "run as root or use --nodes with SSH hosts")


def test_down_leaves_nothing_even_after_a_crash(cluster: LocalCluster, remotes) -> None:
    pids = [nsutil.read_pidfile(cluster.pidfile(i)) for i in (1, 2, 3)]
    assert all(pids)
    # A run that crashed and lost its state dir: a fresh instance must still find and remove it all.
    orphan = LocalCluster(cluster.state_dir / "elsewhere", prefix=PREFIX, subnet=SUBNET)
    assert orphan.status() and all(row["netns_exists"] for row in orphan.status())
    orphan.down()
    cluster.down()  # the owner's down after that: fine
    cluster.down()  # and again
    assert not [ns for ns in nsutil.netns_names() if ns.startswith(f"{PREFIX}-")]
    assert not [link for link in nsutil.link_names() if link.startswith(PREFIX)]
    assert not [p for p in pids if nsutil.pid_alive(p)]
    assert cluster.blackholed() and not cluster.bridge_exists()
    assert cluster.status() == []
    with pytest.raises(RemoteError) as err:  # a straggler cannot reach the old address
        connect_all([NodeSpec("n1", cluster.address(1), key_path=str(cluster.key_path))], timeout=3)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"n1 ({cluster.address(1)}:22): ")


def test_bad_arguments_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="private /24"):
        LocalCluster(tmp_path, subnet="8.8.8.0/24")
    with pytest.raises(ClusterError, match="prefix"):
        LocalCluster(tmp_path, prefix="much-too-long")


def test_refuses_a_subnet_this_machine_already_uses(cluster: LocalCluster, tmp_path: Path) -> None:
    import ipaddress

    used = [ipaddress.ip_interface(f"{a['local']}/24").network
            for link in nsutil.ip_json("-4", "addr", "show") if link["ifname"] != "lo"
            for a in link.get("addr_info", [])]
    used = [net for net in used if net.is_private and not net.overlaps(ipaddress.ip_network(SUBNET))]
    if not used:
        pytest.skip("no private IPv4 address on this machine to collide with")
    before = nsutil.ip_json("-4", "route", "show")
    with pytest.raises(ClusterError, match="already in use here"):
        LocalCluster(tmp_path, prefix="zkx", subnet=str(used[0])).up(1)
    assert nsutil.ip_json("-4", "route", "show") == before  # no blackhole over someone's network
    assert not [ns for ns in nsutil.netns_names() if ns.startswith("zkx-")]
