"""Host handling without hosts: preflight verdicts from probe output, listening-port parsing,
the command line sent over SSH, and where ZooKeeper's jars are found."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from harness.db.base import SetupError
from harness.db.zookeeper import find_jars
from harness.preflight import Needs, parse_facts, problems
from harness.remote import wrap_command
from harness.workspace import listening_ports

GOOD = """user=admin
sudo=ok
python=3.11.2
venv=ok
java=ok
zookeeper=installed
apt=ok
base=/tmp
base_writable=ok
free_kb=10485760
iptables=ok
"""
EVERYTHING = Needs(python=True, java=True, zookeeper=True, root=True, iptables=True)


def facts(text: str = GOOD, **changes: str | None) -> dict:
    found = parse_facts(text)
    for key, value in changes.items():
        if value is None:
            found.pop(key, None)
        else:
            found[key] = [value]
    return found


def test_a_host_with_everything_has_no_problems() -> None:
    assert problems(facts(), EVERYTHING) == []


@pytest.mark.parametrize("changes, needs, expected", [
    ({"sudo": "password"}, Needs(root=True), "sudo asks admin for a password: allow passwordless sudo"),
    ({"sudo": "missing"}, Needs(root=True), "admin is not root and sudo is not installed"),
    ({"python": "3.9.2"}, Needs(python=True), "python3 is 3.9.2, zkchaos needs >= 3.11"),
    ({"python": ""}, Needs(python=True), "python3 not found"),
    ({"venv": None}, Needs(python=True), "apt-get install python3-venv"),
    ({"java": None}, Needs(java=True), "java not found"),
    ({"zookeeper": None, "apt": None}, Needs(zookeeper=True), "pass --zookeeper-path"),
    ({"iptables": None}, Needs(root=True, iptables=True), "iptables does not work"),
    ({"free_kb": "1024"}, Needs(), "only 1 MiB free in /tmp (needs 512 MiB)"),
    ({"base_writable": None}, Needs(), "/tmp is not a directory admin can write: choose another with --node-dir"),
])
def test_each_shortfall_is_named_with_its_fix(changes, needs, expected) -> None:
    found = problems(facts(**changes), needs)
    assert len(found) == 1 and expected in found[0], found


def test_what_is_not_needed_is_not_asked_for() -> None:
    bare = facts(sudo="password", python="", venv=None, java=None, zookeeper=None, iptables=None)
    assert problems(bare, Needs()) == []
    # ZooKeeper can still be installed with apt by a sudoer: not a problem yet.
    assert problems(facts(zookeeper=None), Needs(zookeeper=True)) == []


def test_missing_tools_are_listed_together() -> None:
    found = problems(parse_facts(GOOD + "missing=setsid\nmissing=tar\n"), Needs())
    assert found == ["missing setsid, tar: install coreutils, util-linux, tar and awk"]


def test_needs_combine() -> None:
    assert Needs(python=True, disk_mb=100) | Needs(root=True, disk_mb=700) == Needs(python=True, root=True, disk_mb=700)


def test_listening_ports_clash_on_our_address_or_any() -> None:
    text = "\n".join([
        "0100007F:0885",  # 127.0.0.1:2181 - someone else's loopback server: no clash
        "0B4D420A:0B48",  # 10.66.77.11:2888 - ours
        "00000000:0F30",  # 0.0.0.0:3888 - any address
        "00000000000000000000000000000000:0016",  # [::]:22
        "0000000000000000FFFF00000C4D420A:0885",  # ::ffff:10.66.77.12:2181 - another node
        "garbage",
    ])
    assert listening_ports(text, "10.66.77.11") == {2888, 3888, 22}


def test_commands_run_under_sh_bounded_and_with_sudo_for_non_root() -> None:
    assert wrap_command("echo 'hi'", "root", None, sudo=True) == "sh -c 'echo '\"'\"'hi'\"'\"''; exit $?"
    line = wrap_command("iptables -S", "admin", 5.0, sudo=True)
    assert line.startswith("sudo -n sh -c ") and "timeout -k 2 5.500 sh -c" in line
    assert not wrap_command("id", "admin", 5.0, sudo=False).startswith("sudo")


def _jars(d: Path, *names: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_bytes(b"PK")
    return d


def test_zookeeper_jars_from_a_lib_dir_a_release_dir_or_a_tarball(tmp_path: Path) -> None:
    lib = _jars(tmp_path / "lib-only", "zookeeper-3.8.4.jar", "zookeeper-jute-3.8.4.jar", "netty.jar")
    assert [j.name for j in find_jars(lib, tmp_path)] == ["netty.jar", "zookeeper-3.8.4.jar", "zookeeper-jute-3.8.4.jar"]
    release = tmp_path / "apache-zookeeper-3.8.4-bin"
    _jars(release / "lib", "zookeeper-3.8.4.jar", "logback-core.jar")
    assert len(find_jars(release, tmp_path)) == 2
    tarball = tmp_path / "apache-zookeeper-3.8.4-bin.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(release, arcname=release.name)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert sorted(j.name for j in find_jars(tarball, scratch)) == ["logback-core.jar", "zookeeper-3.8.4.jar"]


@pytest.mark.parametrize("what, message", [
    ("missing", "no such file or directory"),
    ("empty", "no zookeeper-3.*.jar"),
    ("file", "not a directory or a tar archive"),
])
def test_a_wrong_zookeeper_path_is_one_clear_error(tmp_path: Path, what: str, message: str) -> None:
    path = tmp_path / what
    if what == "empty":
        _jars(path, "netty.jar")
    elif what == "file":
        path.write_text("hello")
    with pytest.raises(SetupError, match=message):
        find_jars(path, tmp_path)
