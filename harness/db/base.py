"""The DB protocol, and the lifecycle both servers under test share: zoo.cfg, daemon control by
pid file, status over the four-letter words.

A server runs as a daemon on its node, as the login user, inside this run's private directory
on that node (`node.dir`, made by the workspace): zoo.cfg, data/, server.log and server.pid live
there, so runs never collide and nothing has a fixed name. Kill, pause and resume signal exactly
the pid in server.pid, after checking that the process really is ours.
"""

from __future__ import annotations

import logging
import shlex
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from ..preflight import Needs
from ..servers import CLIENT_PORT, base_settings, server_line, server_mode, zoo_cfg

if TYPE_CHECKING:
    from ..remote import Remote

log = logging.getLogger(__name__)


@dataclass
class Node:
    """A node under test: its name, the address clients and peers use, and its control link."""

    name: str
    address: str
    remote: Remote
    local: bool = False  # shares this machine's filesystem (local namespaces)
    id: int = 0  # myid, 1-based
    dir: str = ""  # this run's private directory on the node (see harness.workspace)


class DB(Protocol):
    name: str

    def prepare(self, nodes: list[Node]) -> None: ...
    def setup(self, node: Node, nodes: list[Node]) -> None: ...
    def start(self, node: Node) -> None: ...
    def kill(self, node: Node) -> None: ...
    def pause(self, node: Node) -> None: ...
    def resume(self, node: Node) -> None: ...
    def teardown(self, node: Node) -> None: ...
    def log_files(self, node: Node) -> list[str]: ...
    def close(self) -> None: ...


class SetupError(RuntimeError):
    """Installing or configuring the DB on a node failed; one line naming the node and the fix."""


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

    def set_env(self, node: Node, env: dict[str, str]) -> None:
        self.env[node.name] = {**self.env.get(node.name, {}), **env}

    def needs(self, node: Node) -> Needs:
        """What the server needs of a host (checked before anything is touched)."""
        return Needs()

    def config_files(self, node: Node) -> dict[str, str]:
        """Extra files (name -> text) the server needs beside zoo.cfg."""
        return {}

    # --- configuration -------------------------------------------------------------------------

    def prepare(self, nodes: list[Node]) -> None:
        """Work done once on the control machine before any node is set up."""

    def close(self) -> None:
        """Remove what `prepare` left on the control machine."""

    def zoo_settings(self, node: Node) -> dict[str, str]:
        settings = base_settings(self.tick_time, f"{node.dir}/data", CLIENT_PORT, node.address)
        settings["autopurge.purgeInterval"] = "1"
        settings.update(self.settings)
        return settings

    def zoo_cfg(self, node: Node, nodes: list[Node]) -> str:
        servers = [server_line(n.id, n.address) for n in nodes] if len(nodes) > 1 else []
        return zoo_cfg(self.zoo_settings(node), servers)

    def setup(self, node: Node, nodes: list[Node]) -> None:
        if not node.dir:
            raise SetupError(f"{node.name}: no run directory (the workspace makes one before setup)")
        self.install(node)
        files = {"zoo.cfg": self.zoo_cfg(node, nodes), **self.config_files(node)}
        script = [f"mkdir -p {node.dir}/data", f"echo {node.id} > {node.dir}/data/myid"]
        for name, text in files.items():
            script.append(f"cat > {node.dir}/{name} <<'ZKCHAOS_EOF'\n{text}ZKCHAOS_EOF")
        node.remote.run("\n".join(script), timeout=60, sudo=False)

    # --- process control -----------------------------------------------------------------------

    def _ours(self, node: Node) -> str:
        """Shell that sets $pid to our server's pid, or fails. The pid file alone is not
        trusted: a stale one may name someone else's process, so the process must also run
        our zoo.cfg and not be a zombie."""
        return (
            f"pid=$(cat {node.dir}/server.pid 2>/dev/null) && [ -n \"$pid\" ] && "
            f"grep -qF -- '{node.dir}/zoo.cfg' /proc/$pid/cmdline 2>/dev/null && "
            f"[ \"$(sed 's/.*) //' /proc/$pid/stat | cut -c1)\" != Z ]"
        )

    def is_running(self, node: Node) -> bool:
        out = node.remote.run(f"{self._ours(node)} && echo yes || echo no", timeout=20, sudo=False)
        return out.stdout.strip() == "yes"

    def start(self, node: Node) -> None:
        if self.is_running(node):
            return
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in self.env.get(node.name, {}).items())
        # The inner shell writes its own pid and execs the server, so the pid file names the
        # server whatever /bin/sh is (bash would report a waiting subshell for `cmd & echo $!`).
        inner = f"echo $$ > {node.dir}/server.pid; cd {node.dir} && exec env {env} {self.command(node)}"
        node.remote.run(
            f"setsid sh -c {shlex.quote(inner)} >> {node.dir}/server.log 2>&1 < /dev/null &",
            timeout=30, sudo=False,
        )
        deadline = time.monotonic() + 10
        while not self.is_running(node) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _signal(self, node: Node, sig: str) -> None:
        node.remote.run(f"{self._ours(node)} && kill -{sig} $pid || true", timeout=20, sudo=False)

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
        """Stop the server; the run directory itself goes with the workspace."""
        if node.dir:
            self.stop(node)

    def log_files(self, node: Node) -> list[str]:
        return [f"{node.dir}/server.log", f"{node.dir}/zoo.cfg"]

    # --- status --------------------------------------------------------------------------------

    def mode(self, node: Node) -> str | None:
        """The server's Mode from srvr, or None if it does not serve (down, electing, paused)."""
        return server_mode(node.address, CLIENT_PORT)

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
