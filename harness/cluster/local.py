"""Local nodes: one network namespace per node on a private bridge, each with its own sshd.

The harness reaches these nodes over SSH exactly as it reaches remote hosts. Each node has its
own address, iptables and hostname (a UTS namespace for sshd), so partitions are real iptables
rules. The /24 exists only on this machine: the bridge owns it while nodes exist, and a
blackhole route holds it afterwards so a straggling client's packets never leave the machine.
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from harness.cluster import hostfs, netns
from harness.cluster.hostfs import NodeQuirks
from harness.cluster.netns import ClusterError, sh
from harness.remote import NodeSpec, RemoteError, SSHRemote

DEFAULT_STATE_DIR = Path("/var/lib/zkchaos/cluster")
RUN_DIR = Path("/run/zkchaos")  # sshd's own files: never under a node's private directories
DEFAULT_SUBNET = "10.66.77.0/24"
SSHD = "/usr/sbin/sshd"
MAX_NODES = 50  # node i gets host number 10+i; the limit keeps names and addresses short
NEED_ROOT = "zkchaos cluster needs root (network namespaces); run as root or use --nodes with SSH hosts"


class LocalCluster:
    """`separate` nodes get a filesystem of their own and `login` as their SSH user (see
    hostfs); `quirks` (node number -> NodeQuirks) make single nodes differ."""

    def __init__(self, state_dir: str | Path | None = None, prefix: str = "zkc",
                 subnet: str = DEFAULT_SUBNET, login: str = "root", separate: bool = False,
                 quirks: dict[int, NodeQuirks] | None = None) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9]{0,5}", prefix):
            raise ClusterError(f"prefix {prefix!r}: use 1-6 lowercase letters/digits (interface names are short)")
        # One state directory per prefix by default: clusters of different prefixes live side by
        # side (two campaigns at once), and one's `down` must not take the other's keys.
        self.state_dir = Path(state_dir) if state_dir is not None else DEFAULT_STATE_DIR / prefix
        self.prefix = prefix
        self.subnet = ipaddress.ip_network(subnet)
        if self.subnet.prefixlen != 24 or not self.subnet.is_private:
            raise ClusterError(f"subnet {subnet}: need a private /24")
        if login != "root" and not separate:
            raise ClusterError(f"login {login!r}: a user other than root needs separate nodes")
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,30}", login):
            raise ClusterError(f"login {login!r}: use a short lowercase user name")
        self.login = login
        self.separate = separate
        self.quirks = dict(quirks or {})
        self.bridge = f"{prefix}br0"
        self.key_path = self.state_dir / "id_ed25519"
        self.run_dir = RUN_DIR / prefix
        self._ns_re = re.compile(rf"{re.escape(prefix)}-n(\d+)")
        self._veth_re = re.compile(rf"{re.escape(prefix)}v(\d+)")

    # --- naming -------------------------------------------------------------------------------
    def netns_name(self, i: int) -> str:
        return f"{self.prefix}-n{i}"

    def address(self, i: int) -> str:
        return str(self.subnet.network_address + 10 + i)

    def _node_dir(self, i: int) -> Path:
        return self.state_dir / f"n{i}"

    def _sshd_dir(self, i: int) -> Path:
        return self.run_dir / f"n{i}"

    def private_root(self, i: int) -> Path:
        """Where a separate node's private directories live, seen from this machine."""
        return self._node_dir(i) / "root"

    def pidfile(self, i: int) -> Path:
        return self._sshd_dir(i) / "sshd.pid"

    def _quirks(self, i: int) -> NodeQuirks:
        return self.quirks.get(i, NodeQuirks())

    def specs(self, n: int) -> list[NodeSpec]:
        return [NodeSpec(f"n{i}", self.address(i), 22, self.login, str(self.key_path), ssh_config=False)
                for i in range(1, n + 1)]

    # --- state --------------------------------------------------------------------------------
    def _state_file(self) -> Path:
        return self.state_dir / "cluster.json"

    def _load_state(self) -> dict | None:
        try:
            return json.loads(self._state_file().read_text())
        except (OSError, ValueError):
            return None

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `up`/`down` at once would fight over the same namespaces; serialise them.
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / ".lock", "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    @staticmethod
    def _preflight() -> None:
        if os.geteuid() != 0:
            raise ClusterError(NEED_ROOT)
        if shutil.which("ip") is None:
            raise ClusterError("`ip` not found; install iproute2")

    # --- up -----------------------------------------------------------------------------------
    def up(self, n: int, timeout: float = 30.0) -> list[NodeSpec]:
        """Bring up n nodes; a no-op when the same healthy cluster already exists."""
        self._preflight()
        if not 1 <= n <= MAX_NODES:
            raise ClusterError(f"--nodes {n}: choose 1..{MAX_NODES}")
        if not Path(SSHD).exists():
            raise ClusterError(f"{SSHD} not found; apt-get install openssh-server")
        with self._locked():
            if self._healthy(n):
                return self.specs(n)
            self._down_locked()
            try:
                self._build(n, time.monotonic() + timeout)
            except BaseException:
                self._down_locked()  # never leave half a cluster (or an unheld subnet) behind
                raise
        return self.specs(n)

    def _healthy(self, n: int) -> bool:
        state = self._load_state()
        if not state or state.get("n") != n or state.get("shape") != self._shape():
            return False
        if self.bridge not in netns.link_names() or not self.key_path.exists():
            return False
        for i in range(1, n + 1):
            ns, pid = self.netns_name(i), netns.read_pidfile(self.pidfile(i))
            if pid is None or not netns.is_our_sshd(pid, ns, self.pidfile(i)) or not netns.ssh_answers(self.address(i)):
                return False
        return True

    def _build(self, n: int, deadline: float) -> None:
        conflicts = netns.subnet_conflicts(self.subnet, self.bridge)
        if conflicts:
            raise ClusterError(f"{self.subnet} is already in use here ({conflicts[0]}); pick another subnet")
        self._make_keys(n)
        netns.hold_subnet(self.subnet)
        bridge_ip = f"{self.subnet.network_address + 1}/{self.subnet.prefixlen}"
        sh(["ip", "link", "add", self.bridge, "type", "bridge"])
        sh(["ip", "addr", "add", bridge_ip, "dev", self.bridge])
        sh(["ip", "link", "set", self.bridge, "up"])
        hosts = "127.0.0.1 localhost\n::1 localhost\n" + "".join(
            f"{self.address(i)} n{i}\n" for i in range(1, n + 1))
        for i in range(1, n + 1):
            ns, veth, addr = self.netns_name(i), f"{self.prefix}v{i}", self.address(i)
            sh(["ip", "netns", "add", ns])
            # `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts: nodes resolve n1..nN.
            etc = Path("/etc/netns") / ns
            etc.mkdir(parents=True, exist_ok=True)
            (etc / "hosts").write_text(hosts)
            sh(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
            sh(["ip", "link", "set", veth, "master", self.bridge, "up"])
            sh(["ip", "-n", ns, "addr", "add", f"{addr}/{self.subnet.prefixlen}", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            # No default route inside: a node can reach only the /24, never the outside.
            self._start_sshd(i)
        self._state_file().write_text(json.dumps(
            {"n": n, "shape": self._shape(), "prefix": self.prefix, "subnet": str(self.subnet), "bridge": self.bridge,
             "key_path": str(self.key_path), "created": time.time(),
             "nodes": [{"name": f"n{i}", "netns": self.netns_name(i), "address": self.address(i),
                        "pidfile": str(self.pidfile(i))} for i in range(1, n + 1)]}, indent=2))
        self._wait_for_ssh(n, deadline)

    def _shape(self) -> dict:
        """What makes two clusters with the same prefix different (an `up` rebuilds on change)."""
        return {"subnet": str(self.subnet), "login": self.login, "separate": self.separate,
                "quirks": {str(i): q.as_dict() for i, q in sorted(self.quirks.items())}}

    def _make_keys(self, n: int) -> None:
        for p in (self.key_path, self.key_path.with_suffix(".pub")):
            p.unlink(missing_ok=True)
        sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "zkchaos-cluster", "-f", str(self.key_path)])
        (self.state_dir / "authorized_keys").write_text(self.key_path.with_suffix(".pub").read_text())
        uid = hostfs.free_uid() if self.login != "root" else 0
        for i in range(1, n + 1):
            d = self._sshd_dir(i)
            d.mkdir(parents=True, exist_ok=True)
            if self.separate:
                (d / "stage").mkdir(exist_ok=True)
                hostfs.build_root(self.private_root(i), self.login, uid,
                                  self.key_path.with_suffix(".pub").read_text(), self._quirks(i))
            hostkey = d / "ssh_host_ed25519_key"
            for p in (hostkey, hostkey.with_suffix(".pub")):
                p.unlink(missing_ok=True)
            sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"n{i}", "-f", str(hostkey)])

    def _start_sshd(self, i: int) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation chroot
        d = self._sshd_dir(i)
        opts = {
            "ListenAddress": f"{self.address(i)}:22",
            "PidFile": str(self.pidfile(i)),
            # A separate node keeps keys where real hosts do: in the login user's home.
            "AuthorizedKeysFile": ".ssh/authorized_keys" if self.separate else str(self.state_dir / "authorized_keys"),
            "PermitRootLogin": "prohibit-password",
            "AllowUsers": self.login,  # the one account the harness uses
            "PasswordAuthentication": "no",
            "KbdInteractiveAuthentication": "no",
            "StrictModes": "no",
            "UsePAM": "no",
            "UseDNS": "no",
            "MaxSessions": "64",  # the harness runs many commands per node at once
            "MaxStartups": "64:30:128",
        }
        if self._quirks(i).sftp:
            opts["Subsystem"] = "sftp internal-sftp"  # no sshd_config, so SFTP must be named here
        argv = [SSHD, "-f", "/dev/null", "-h", str(d / "ssh_host_ed25519_key"), "-E", str(d / "sshd.log")]
        for k, v in opts.items():
            argv += ["-o", f"{k}={v}"]
        # A UTS namespace gives the node its own hostname without touching the machine's, and a
        # mount namespace its own view: a separate node's private directories bound in, or just
        # an /etc/passwd whose root logs in to /bin/sh (see hostfs.plain_shell).
        namespaces, prepare = ["--uts", "--mount"], 'hostname "$0"'
        if self.separate:
            prepare += " && " + hostfs.mount_script(self.private_root(i), d / "stage", self._quirks(i))
        else:
            (d / "passwd").write_text(hostfs.plain_shell(Path("/etc/passwd").read_text(), self.login))
            prepare += f" && mount --bind {d / 'passwd'} /etc/passwd"
        try:
            sh(["ip", "netns", "exec", self.netns_name(i), "unshare", *namespaces, "--",
                "sh", "-c", f'{prepare} && exec "$@"', f"n{i}", *argv])
        except ClusterError as e:
            # sshd reports to its -E log, not stderr; surface the last line of it.
            log = (d / "sshd.log").read_text().strip().splitlines() if (d / "sshd.log").exists() else []
            raise ClusterError(f"n{i}: sshd did not start: {log[-1] if log else e}") from None

    def _wait_for_ssh(self, n: int, deadline: float) -> None:
        for spec in self.specs(n):
            last = "no answer"
            while True:
                if netns.ssh_answers(spec.host):
                    try:
                        SSHRemote.connect(spec, timeout=5).close()
                        break
                    except RemoteError as e:
                        last = str(e)
                if time.monotonic() > deadline:
                    log = self._sshd_dir(int(spec.name[1:])) / "sshd.log"
                    raise ClusterError(f"{spec.label}: sshd not answering ({last}); see {log}")
                time.sleep(0.05)

    # --- status -------------------------------------------------------------------------------
    def _known_indexes(self) -> list[int]:
        """Nodes from the state file plus any namespace a crashed run left with our prefix."""
        state = self._load_state() or {}
        found = set(range(1, int(state.get("n", 0)) + 1))
        for ns in netns.netns_names():
            m = self._ns_re.fullmatch(ns)
            if m:
                found.add(int(m.group(1)))
        return sorted(found)

    def status(self) -> list[dict]:
        self._preflight()
        rows = []
        namespaces = set(netns.netns_names())
        for i in self._known_indexes():
            ns, pid = self.netns_name(i), netns.read_pidfile(self.pidfile(i))
            running = pid is not None and netns.is_our_sshd(pid, ns, self.pidfile(i))
            rows.append({"name": f"n{i}", "netns": ns, "address": self.address(i),
                         "netns_exists": ns in namespaces, "sshd_pid": pid if running else None,
                         "ssh": running and netns.ssh_answers(self.address(i))})
        return rows

    def bridge_exists(self) -> bool:
        return self.bridge in netns.link_names()

    def blackholed(self) -> bool:
        return netns.blackhole_present(self.subnet)

    # --- down ---------------------------------------------------------------------------------
    def down(self) -> list[str]:
        """Remove everything this cluster (or a crashed run with our prefix) left. Returns what went."""
        self._preflight()
        with self._locked():
            return self._down_locked()

    def _down_locked(self) -> list[str]:
        removed: list[str] = []
        namespaces = set(netns.netns_names())
        for i in self._known_indexes():
            ns = self.netns_name(i)
            pid = netns.read_pidfile(self.pidfile(i))
            if pid is not None and netns.is_our_sshd(pid, ns, self.pidfile(i)):
                netns.stop_pids([pid])
                removed.append(f"sshd pid {pid}")
            if ns in namespaces:
                # Anything still inside was started through our sshd (servers, clients); it must
                # not outlive the namespace, or the namespace and its iptables would linger.
                leftovers = netns.netns_pids(ns)
                if leftovers:
                    netns.stop_pids(leftovers)
                    removed.append(f"{len(leftovers)} process(es) in {ns}")
                sh(["ip", "netns", "del", ns])
                removed.append(f"netns {ns}")
            etc = Path("/etc/netns") / ns
            if etc.is_dir():
                shutil.rmtree(etc, ignore_errors=True)
        try:
            Path("/etc/netns").rmdir()  # only if empty: other tools may keep files there
        except OSError:
            pass
        for link in netns.link_names():
            if self._veth_re.fullmatch(link) or link == self.bridge:
                sh(["ip", "link", "del", link], check=False)
                removed.append(f"link {link}")
        # Hold the subnet with the permanent blackhole, unless someone else's route owns it.
        if not netns.subnet_conflicts(self.subnet, self.bridge):
            if netns.HOLD_METRIC not in netns.blackhole_metrics(self.subnet):
                removed.append(f"(added blackhole route {self.subnet})")
            netns.hold_subnet(self.subnet)
        self._state_file().unlink(missing_ok=True)
        for parent in (self.state_dir, self.run_dir):
            for p in parent.glob("n*"):
                if p.is_dir() and re.fullmatch(r"n\d+", p.name):
                    shutil.rmtree(p, ignore_errors=True)
        for p in (self.run_dir, RUN_DIR):
            try:
                p.rmdir()  # only if empty: other clusters may keep theirs there
            except OSError:
                pass
        for name in ("id_ed25519", "id_ed25519.pub", "authorized_keys"):
            (self.state_dir / name).unlink(missing_ok=True)
        return removed
