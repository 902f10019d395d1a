"""The DB protocol, and what both servers under test share: zoo.cfg, daemon control by pid file,
status over the four-letter words.

A server runs as a daemon on its node, started over the node's Remote with a pid file; kill,
pause and resume signal exactly that pid. Everything lives in one directory per node
(`/var/lib/zkchaos/db/<node>`), so nodes that share a filesystem (local namespaces) never
collide.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass, field
from typing import Protocol

from ..localproc import four_letter

log = logging.getLogger(__name__)

CLIENT_PORT = 2181
QUORUM_PORT = 2888
ELECTION_PORT = 3888
BASE_DIR = "/var/lib/zkchaos/db"


@dataclass
class Node:
    """A node under test: its name, the address clients and peers use, and its control link."""

    name: str
    address: str
    remote: object  # harness.remote.Remote
    local: bool = False  # shares this machine's filesystem (local namespaces)
    id: int = 0  # myid, 1-based

    @property
    def dir(self) -> str:
        return f"{BASE_DIR}/{self.name}"


class DB(Protocol):
    name: str

    def setup(self, node: Node, nodes: list[Node]) -> None: ...
    def start(self, node: Node) -> None: ...
    def kill(self, node: Node) -> None: ...
    def pause(self, node: Node) -> None: ...
    def resume(self, node: Node) -> None: ...
    def teardown(self, node: Node) -> None: ...
    def log_files(self, node: Node) -> list[str]: ...


@dataclass
class ServerDB:
    """Shared lifecycle; subclasses say how to install and what command runs the server."""

    name: str = "server"
    tick_time: int = 500
    settings: dict[str, str] = field(default_factory=dict)
    env: dict[str, dict[str, str]] = field(default_factory=dict)  # per node: extra environment

    # --- to be provided ------------------------------------------------------------------------

    def install(self, node: Node) -> None:
        raise NotImplementedError

    def command(self, node: Node) -> str:
        raise NotImplementedError

    # --- configuration -------------------------------------------------------------------------

    def zoo_cfg(self, node: Node, nodes: list[Node]) -> str:
        lines = {
            "tickTime": str(self.tick_time),
            "initLimit": "10",
            "syncLimit": "5",
            "dataDir": f"{node.dir}/data",
            "clientPort": str(CLIENT_PORT),
            "clientPortAddress": node.address,
            "maxClientCnxns": "0",
            "4lw.commands.whitelist": "*",
            "autopurge.purgeInterval": "1",
        }
        lines.update(self.settings)
        text = "".join(f"{k}={v}\n" for k, v in lines.items())
        if len(nodes) > 1:
            text += "".join(f"server.{n.id}={n.address}:{QUORUM_PORT}:{ELECTION_PORT}\n" for n in nodes)
        return text

    def setup(self, node: Node, nodes: list[Node]) -> None:
        self.install(node)
        cfg = self.zoo_cfg(node, nodes)
        script = (
            f"mkdir -p {node.dir}/data && cat > {node.dir}/zoo.cfg <<'EOF'\n{cfg}EOF\n"
            f"echo {node.id} > {node.dir}/data/myid"
        )
        node.remote.run(script, timeout=60)

    # --- process control -----------------------------------------------------------------------

    def _ours(self, node: Node) -> str:
        """Shell that sets $pid to our server's pid, or fails. The pid file alone is not
        trusted: a stale one (a crashed run, a reboot) may name someone else's process, so the
        process must also run our zoo.cfg and not be a zombie."""
        return (
            f"pid=$(cat {node.dir}/server.pid 2>/dev/null) && [ -n \"$pid\" ] && "
            f"grep -qF -- '{node.dir}/zoo.cfg' /proc/$pid/cmdline 2>/dev/null && "
            f"[ \"$(sed 's/.*) //' /proc/$pid/stat | cut -c1)\" != Z ]"
        )

    def is_running(self, node: Node) -> bool:
        out = node.remote.run(f"{self._ours(node)} && echo yes || echo no", timeout=20).stdout.strip()
        return out == "yes"

    def start(self, node: Node) -> None:
        if self.is_running(node):
            return
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.get(node.name, {}).items())
        # The inner shell writes its own pid and execs the server, so the pid file names the
        # server whatever /bin/sh is (bash would report a waiting subshell for `cmd & echo $!`).
        inner = f"echo $$ > {node.dir}/server.pid; cd {node.dir} && exec env {env} {self.command(node)}"
        node.remote.run(
            f"setsid sh -c {shlex.quote(inner)} >> {node.dir}/server.log 2>&1 < /dev/null &",
            timeout=30,
        )
        deadline = time.monotonic() + 10
        while not self.is_running(node) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _signal(self, node: Node, sig: str) -> None:
        node.remote.run(f"{self._ours(node)} && kill -{sig} $pid || true", timeout=20)

    def kill(self, node: Node) -> None:
        self._signal(node, "KILL")
        deadline = time.monotonic() + 10
        while self.is_running(node) and time.monotonic() < deadline:
            time.sleep(0.05)

    def pause(self, node: Node) -> None:
        self._signal(node, "STOP")

    def resume(self, node: Node) -> None:
        self._signal(node, "CONT")

    def stop(self, node: Node) -> None:
        """SIGCONT (a paused server cannot exit), SIGTERM, then SIGKILL if it lingers."""
        self._signal(node, "CONT")
        self._signal(node, "TERM")
        deadline = time.monotonic() + 10
        while self.is_running(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.is_running(node):
            self.kill(node)

    def teardown(self, node: Node) -> None:
        self.stop(node)
        node.remote.run(f"rm -rf {node.dir}", timeout=60)

    def log_files(self, node: Node) -> list[str]:
        return [f"{node.dir}/server.log", f"{node.dir}/zoo.cfg"]

    # --- status --------------------------------------------------------------------------------

    def mode(self, node: Node) -> str | None:
        """The server's Mode from srvr, or None if it does not serve (down, electing, paused)."""
        try:
            text = four_letter(node.address, CLIENT_PORT, "srvr", timeout=1.0)
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("Mode:"):
                return line.split(":", 1)[1].strip()
        return None

    def wait_ready(self, nodes: list[Node], timeout: float = 60.0) -> None:
        """Until every node serves and, for an ensemble, one of them leads."""
        deadline = time.monotonic() + timeout
        modes: dict[str, str | None] = {}
        while time.monotonic() < deadline:
            modes = {n.name: self.mode(n) for n in nodes}
            serving = all(m is not None for m in modes.values())
            if serving and (len(nodes) == 1 or "leader" in modes.values()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not healthy after {timeout:.0f}s: {modes}")

    def leader(self, nodes: list[Node]) -> Node | None:
        for n in nodes:
            if self.mode(n) in ("leader", "standalone"):
                return n
        return None
