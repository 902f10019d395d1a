"""Low-level helpers for the local cluster: `ip` commands, namespace processes, safe kills.

Everything here is bounded in time and touches only names the caller passes in (which the
cluster derives from its own prefix), so nothing else on the machine is disturbed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import subprocess
import time
from pathlib import Path

NETNS_DIR = Path("/run/netns")


class ClusterError(RuntimeError):
    """Bringing the local cluster up or down failed; the message is one line naming the fix."""


def sh(argv: list[str], check: bool = True, timeout: float = 15.0) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        raise ClusterError(f"{argv[0]} not found; install iproute2/openssh-server") from None
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`{' '.join(argv)}` did not finish within {timeout:g}s") from None
    if check and proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        raise ClusterError(f"`{' '.join(argv)}` failed: {last}")
    return proc


def ip_json(*args: str) -> list[dict]:
    out = sh(["ip", "-j", *args]).stdout.strip()
    return json.loads(out) if out else []


def netns_names() -> list[str]:
    out = sh(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def link_names() -> list[str]:
    return [link["ifname"] for link in ip_json("link", "show")]


def netns_pids(ns: str) -> list[int]:
    proc = sh(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def netns_inode(ns: str) -> int | None:
    try:
        return (NETNS_DIR / ns).stat().st_ino
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    """True while the process exists and is not a zombie (PID 1 here may be slow to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def pid_in_netns(pid: int, ns: str) -> bool:
    inode = netns_inode(ns)
    try:
        return inode is not None and os.stat(f"/proc/{pid}/ns/net").st_ino == inode
    except OSError:
        return False


def is_our_sshd(pid: int, ns: str, pidfile: Path) -> bool:
    """A pid read from a pidfile is ours only if it is the sshd we started with that pidfile,
    inside our namespace (pids get reused; a stale pidfile must not kill a stranger)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return ("sshd" in cmdline and f"PidFile={pidfile}" in cmdline
            and pid_alive(pid) and pid_in_netns(pid, ns))


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def stop_pids(pids: list[int], grace: float = 3.0) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL whatever is left. Pids only, never names."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        live = [p for p in pids if pid_alive(p)]
        for pid in live:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while live and time.monotonic() < deadline:
            live = [p for p in live if pid_alive(p)]
            time.sleep(0.05)
        if not live:
            return


def subnet_conflicts(subnet: ipaddress.IPv4Network, bridge: str) -> list[str]:
    """Who else on this machine uses the subnet (addresses or routes other than ours)."""
    found = []
    for link in ip_json("-4", "addr", "show"):
        for a in link.get("addr_info", []):
            iface = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
            if link["ifname"] != bridge and iface.network.overlaps(subnet):
                found.append(f"address {iface} on {link['ifname']}")
    for route in ip_json("-4", "route", "show", "table", "all"):
        dst = route.get("dst", "default")
        if dst == "default" or route.get("type") in ("local", "broadcast"):
            continue
        net = ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False)
        if not net.overlaps(subnet):
            continue
        if route.get("dev") == bridge or (route.get("type") == "blackhole" and net == subnet):
            continue  # our own connected route, or the blackhole we left last time
        found.append(f"route {dst} {route.get('type', '')} dev {route.get('dev', '-')}".replace("  ", " "))
    return found


def blackhole_present(subnet: ipaddress.IPv4Network) -> bool:
    return bool(blackhole_metrics(subnet))


def blackhole_metrics(subnet: ipaddress.IPv4Network) -> list[int]:
    """Metrics of the blackhole routes that hold exactly this subnet."""
    routes = ip_json("-4", "route", "show", "exact", str(subnet))
    return [int(r.get("metric", 0)) for r in routes if r.get("type") == "blackhole"]


# A blackhole with a high metric stays for good: while the bridge exists its connected route
# (metric 0) wins; the moment the bridge goes, the blackhole takes over. There is never a
# window in which the subnet follows the default route off the machine.
HOLD_METRIC = 4242


def hold_subnet(subnet: ipaddress.IPv4Network) -> None:
    """Make sure the permanent blackhole is there, then drop any metric-0 one an older run
    left (it would clash with the bridge's connected route)."""
    metrics = blackhole_metrics(subnet)
    if HOLD_METRIC not in metrics:
        sh(["ip", "route", "add", "blackhole", str(subnet), "metric", str(HOLD_METRIC)])
    for metric in metrics:
        if metric != HOLD_METRIC:
            sh(["ip", "route", "del", "blackhole", str(subnet), "metric", str(metric)], check=False)


def ssh_answers(host: str, port: int = 22, timeout: float = 1.0) -> bool:
    """Cheap liveness check: the port accepts and sends an SSH banner."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH")
    except OSError:
        return False
