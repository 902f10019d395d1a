"""Checking every host before anything is touched: one probe per host (run on all at once),
then one line per host naming what is missing and how to fix it.

What a run needs of a host depends on the DB (python3 >= 3.11 with venv for zkchaos on a
remote host, Java and ZooKeeper's jars for Apache ZooKeeper) and on the faults (root through
sudo and iptables for partitions); space for the run directory is always needed.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from .servers import DEBIAN_ZK_JAR

if TYPE_CHECKING:
    from .db import Node

MIN_PYTHON = (3, 11)
HELPER_PYTHON = (3, 9)  # mfusepy's minimum; the disk helper needs no more
TOOLS = ("timeout", "setsid", "mktemp", "tar", "awk")
# Where Debian (any architecture) and a source install put libfaketime (the clock nemesis).
FAKETIME_LIBS = ("/usr/lib/*/faketime/libfaketime.so.1 /usr/lib/faketime/libfaketime.so.1 "
                 "/usr/local/lib/faketime/libfaketime.so.1")

PROBE = r"""
echo "user=$(id -un)"
if [ "$(id -u)" = 0 ]; then echo sudo=root
elif sudo -n true 2>/dev/null; then echo sudo=ok
elif command -v sudo >/dev/null 2>&1; then echo sudo=password
else echo sudo=missing; fi
echo "python=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null)"
python3 -c 'import venv, ensurepip; ensurepip.version()' >/dev/null 2>&1 && echo venv=ok
[ -c /dev/fuse ] && echo fuse_dev=ok
[ -r /dev/fuse ] && [ -w /dev/fuse ] && echo fuse_rw=ok
{{ command -v fusermount3 || command -v fusermount; }} >/dev/null 2>&1 && echo fusermount=ok
echo "libfuse=$(python3 -c 'from ctypes.util import find_library as f; print(f("fuse") or f("fuse3") or "")' 2>/dev/null)"
java -XX:-UsePerfData -version >/dev/null 2>&1 && echo java=ok
[ -f {zk_jar} ] && echo zookeeper=installed
command -v apt-get >/dev/null 2>&1 && echo apt=ok
base={base}
echo "base=$base"
[ -d "$base" ] && [ -w "$base" ] && echo base_writable=ok
echo "free_kb=$(df -Pk "$base" 2>/dev/null | awk 'NR==2 {{print $4}}')"
for t in {tools}; do command -v $t >/dev/null 2>&1 || echo "missing=$t"; done
for f in {faketime_libs}; do [ -f "$f" ] && echo faketime=ok && break; done
if [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
  if [ "$(id -u)" = 0 ]; then iptables -w -S INPUT >/dev/null 2>&1 && echo iptables=ok
  else sudo -n iptables -w -S INPUT >/dev/null 2>&1 && echo iptables=ok; fi
fi
"""


@dataclass(frozen=True)
class Needs:
    """What one host must offer for this run."""

    python: bool = False  # python3 >= 3.11 with venv (zkchaos on a remote host)
    java: bool = False  # Apache ZooKeeper
    zookeeper: bool = False  # ZooKeeper's jars on the host (Debian's package, or apt to get it)
    helpers: bool = False  # python3 >= 3.9 for the helper programs fault families run on the node
    fuse: bool = False  # FUSE mounts by the login user, with libfuse for python3 (lazyfs)
    root: bool = False  # passwordless sudo, or root (iptables and other faults)
    iptables: bool = False
    faketime: bool = False  # libfaketime (clock faults)
    disk_mb: int = 512

    def __or__(self, other: "Needs") -> "Needs":
        """Both sets of needs at once."""
        return Needs(**{f.name: max(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)})


class PreflightError(RuntimeError):
    """Some hosts lack what the run needs; the message has one line per such host."""


def parse_facts(text: str) -> dict[str, list[str]]:
    facts: dict[str, list[str]] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            facts.setdefault(key.strip(), []).append(value.strip())
    return facts


def _version(text: str) -> tuple[int, ...] | None:
    try:
        return tuple(int(p) for p in text.split("."))
    except ValueError:
        return None


def problems(facts: Mapping[str, list[str]], needs: Needs) -> list[str]:
    """What is missing on one host, each with its fix."""
    one = {k: v[-1] for k, v in facts.items()}
    user = one.get("user", "the login user")
    privileged = one.get("sudo") in ("root", "ok")
    found: list[str] = []
    if needs.root and not privileged:
        if one.get("sudo") == "password":
            found.append(f"sudo asks {user} for a password: allow passwordless sudo (NOPASSWD) or log in as root")
        else:
            found.append(f"{user} is not root and sudo is not installed: install sudo or log in as root")
    if needs.iptables and privileged and one.get("iptables") != "ok":
        found.append("iptables does not work: apt-get install iptables")
    if needs.python:
        version = _version(one.get("python", ""))
        if version is None:
            found.append("python3 not found: install python3 (>= 3.11)")
        elif version < MIN_PYTHON:
            found.append(f"python3 is {one['python']}, zkchaos needs >= 3.11: install a newer python3")
        elif one.get("venv") != "ok":
            found.append("python3 cannot make a venv (no ensurepip): apt-get install python3-venv")
    if needs.faketime and one.get("faketime") != "ok":
        found.append("libfaketime not found: apt-get install libfaketime")
    found += _helper_problems(one, needs)
    if needs.java and one.get("java") != "ok":
        found.append("java not found: install a JRE (apt-get install default-jre-headless)")
    if needs.zookeeper and one.get("zookeeper") != "installed" and not (one.get("apt") == "ok" and privileged):
        found.append("Apache ZooKeeper is not installed and cannot be (no apt-get or no sudo): "
                     "install Debian's zookeeper package, or pass --zookeeper-path")
    base = one.get("base", "the run directory's base")
    if one.get("base_writable") != "ok":
        found.append(f"{base} is not a directory {user} can write: choose another with --node-dir")
    else:
        free_kb = int(one["free_kb"]) if one.get("free_kb", "").isdigit() else None
        if free_kb is not None and free_kb < needs.disk_mb * 1024:
            found.append(f"only {free_kb // 1024} MiB free in {base} (needs {needs.disk_mb} MiB): "
                         "free some space or choose another --node-dir")
    missing = facts.get("missing", [])
    if missing:
        found.append(f"missing {', '.join(missing)}: install coreutils, util-linux, tar and awk")
    return found


def _helper_problems(one: Mapping[str, str], needs: Needs) -> list[str]:
    """What the programs fault families run on the node lack: python3, FUSE."""
    found = []
    version = _version(one.get("python", ""))
    if (needs.helpers or needs.fuse) and not needs.python:  # needs.python asks for more already
        if version is None:
            found.append("python3 not found: install python3 (>= 3.9)")
        elif version < HELPER_PYTHON:
            found.append(f"python3 is {one['python']}, the fault helpers need >= 3.9: install a newer python3")
    if needs.fuse:
        user = one.get("user", "the login user")
        if one.get("fuse_dev") != "ok":
            found.append("no /dev/fuse: load the fuse module (modprobe fuse), or give the container /dev/fuse")
        elif one.get("sudo") != "root" and one.get("fuse_rw") != "ok":  # libfuse opens it before fusermount3
            found.append(f"{user} cannot open /dev/fuse: chmod 0666 /dev/fuse (Debian's default), or log in as root")
        if one.get("sudo") != "root" and one.get("fusermount") != "ok":
            found.append(f"fusermount3 not found ({user} mounts with it): apt-get install fuse3")
        if version is not None and not one.get("libfuse"):
            found.append("python3 cannot find libfuse: apt-get install fuse3")
    return found


def check_hosts(nodes: Iterable[Node], needs_of: Callable[[Node], Needs], base: str | None) -> None:
    """Probe all hosts at once; raise PreflightError (one line per host that falls short).
    `needs_of(node)` says what the run needs of that node."""
    from .remote import RemoteError, run_all  # the SSH libraries load only when hosts are probed

    nodes = list(nodes)
    remotes = {n.name: n.remote for n in nodes}
    probe = PROBE.format(zk_jar=DEBIAN_ZK_JAR, tools=" ".join(TOOLS), faketime_libs=FAKETIME_LIBS,
                         base=shlex.quote(base) if base else '"${TMPDIR:-/tmp}"')
    try:
        results = run_all(remotes, probe, timeout=60, check=False, sudo=False)
    except RemoteError as e:  # a host dropped between connecting and probing
        raise PreflightError(str(e)) from e
    lines = []
    for node in nodes:
        found = problems(parse_facts(results[node.name].stdout), needs_of(node))
        if found:
            label = getattr(getattr(node.remote, "spec", None), "label", node.name)
            lines.append(f"{label}: {'; '.join(found)}")
    if lines:
        raise PreflightError("hosts are not ready:\n" + "\n".join(lines))
