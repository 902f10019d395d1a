"""This run's private directory on every node.

Each run makes a fresh directory with a unique name (`mktemp -d`, mode 0700, owned by the login
user) under the login user's $TMPDIR (or /tmp, or `--node-dir`), and everything of the run lives
in it: the server's install, config, data, logs and pid file. Nothing has a fixed name, so a file
another user or an earlier run left never gets in the way. Before making its own, a run sweeps
what an earlier, crashed run of the same user on the same set of nodes left (stopping its
processes by pid file, after checking each really belongs to that directory), and at the end it
removes its own. "The same set of nodes" is a mark in each directory: nodes that share a
filesystem (local namespaces) or runs against other hosts never sweep each other's directories.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import shlex
from dataclasses import dataclass

from .db import Node
from .servers import PORTS

log = logging.getLogger(__name__)

PREFIX = "zkchaos-run."
_NAME = re.compile(rf"/{re.escape(PREFIX)}[A-Za-z0-9]{{10}}$")

# Stale directories of this login user: stop every process a pid file in it names (if that
# process's command line mentions the directory), wait for it to go, then remove the directory.
SWEEP = r"""
me=$(id -u)
for d in {base}/{prefix}*; do
  [ -d "$d" ] && [ ! -L "$d" ] && [ "$(stat -c %u "$d")" = "$me" ] || continue
  [ "$(cat "$d/{mark}" 2>/dev/null)" = "{cluster}" ] || continue
  for f in "$d"/*.pid; do
    pid=$(cat "$f" 2>/dev/null) || continue
    case "$pid" in ''|*[!0-9]*) continue;; esac
    grep -qF -- "$d/" /proc/$pid/cmdline 2>/dev/null || continue
    kill -CONT $pid 2>/dev/null; kill -KILL $pid 2>/dev/null && echo "stopped pid $pid of $d"
    i=0; while [ -e /proc/$pid ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
  done
  if rm -rf "$d" 2>/dev/null; then echo "removed $d"; else echo "could not remove $d"; fi
done
"""
MARK = "cluster-id"
LISTENERS = r"awk 'FNR>1 && $4==\"0A\" {print $2}' /proc/net/tcp /proc/net/tcp6 2>/dev/null"


class WorkspaceError(RuntimeError):
    """A node's run directory cannot be made or its ports are taken; one line per node."""


def cluster_id(addresses: list[str]) -> str:
    """The mark of a set of nodes: runs on the same nodes have it, others do not."""
    return hashlib.sha256(",".join(sorted(addresses)).encode()).hexdigest()[:16]


@dataclass
class Workspace:
    base: str | None = None  # where run directories go on the nodes; None: $TMPDIR or /tmp
    cluster: str = ""  # cluster_id() of the run's nodes; "" marks nothing and sweeps nothing

    def _base(self) -> str:
        return shlex.quote(self.base) if self.base else '"${TMPDIR:-/tmp}"'

    def sweep(self, node: Node) -> list[str]:
        """Remove what earlier runs of this login user left on the node; what went."""
        if not self.cluster:
            return []
        out = node.remote.run(SWEEP.format(base=self._base(), prefix=PREFIX, mark=MARK, cluster=self.cluster),
                              timeout=120, sudo=False)
        done = [line for line in out.stdout.splitlines() if line.strip()]
        for line in done:
            log.info("%s: %s (left by an earlier run)", node.name, line)
        return done

    def ports_in_use(self, node: Node) -> list[int]:
        """Which of the server ports something already listens on, on the node's address."""
        out = node.remote.run(LISTENERS, timeout=20, check=False, sudo=False).stdout
        return sorted(port for port in listening_ports(out, node.address) if port in PORTS)

    def create(self, node: Node) -> None:
        out = node.remote.run(f"mkdir -p {self._base()} && mktemp -d {self._base()}/{PREFIX}XXXXXXXXXX",
                              timeout=20, sudo=False)
        path = out.stdout.strip()
        if not _NAME.search(path):
            raise WorkspaceError(f"{node.name}: mktemp gave {path!r}, not a run directory")
        node.dir = path
        if self.cluster:
            node.remote.run(f"echo {self.cluster} > {path}/{MARK}", timeout=20, sudo=False)

    def remove(self, node: Node) -> None:
        if node.dir and _NAME.search(node.dir):  # never anything but a directory we made
            node.remote.run(f"rm -rf {shlex.quote(node.dir)}", timeout=120, sudo=False)
        node.dir = ""


def listening_ports(proc_net_tcp: str, address: str) -> set[int]:
    """Ports from /proc/net/tcp{,6} local addresses in LISTEN state that would clash with a
    server binding `address`: listeners on that address or on any address."""
    ours = ipaddress.ip_address(address)
    ports = set()
    for field in proc_net_tcp.split():
        hex_addr, _, hex_port = field.partition(":")
        if not hex_port:
            continue
        ip = _proc_address(hex_addr)
        if ip is None:
            continue
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if ip.is_unspecified or ip == ours:
            ports.add(int(hex_port, 16))
    return ports


def _proc_address(hex_addr: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The kernel prints addresses as host-order 32-bit words in hex (little-endian here)."""
    try:
        raw = bytes.fromhex(hex_addr)
    except ValueError:
        return None
    if len(raw) not in (4, 16):
        return None
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)
