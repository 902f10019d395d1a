"""A local loopback ensemble of zkchaos or Apache ZooKeeper servers, one process each.

Used by `zkchaos ensemble up|down|status`, by integration tests and by benchmarks. The state
(ports, pids, directories) is saved as JSON so a later command can find the servers again.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .localproc import LocalServer, four_letter, free_port


@dataclass
class LocalEnsemble:
    kind: str  # "zkchaos" or "zookeeper"
    base: Path
    size: int = 3
    observers: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    servers: list[LocalServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.servers:
            self._plan()

    def _plan(self) -> None:
        total = self.size + self.observers
        ports = [(free_port(), free_port(), free_port()) for _ in range(total)]
        lines = []
        for i, (client, quorum, election) in enumerate(ports, 1):
            role = ":observer" if i > self.size else ""
            lines.append(f"server.{i}=127.0.0.1:{quorum}:{election}{role};127.0.0.1:{client}")
        settings = {"tickTime": "200", "initLimit": "10", "syncLimit": "5", **self.settings}
        if self.kind == "zookeeper":
            settings.setdefault("standaloneEnabled", "false")
        for i, (client, _, _) in enumerate(ports, 1):
            s = dict(settings)
            if i > self.size:
                s["peerType"] = "observer"
            self.servers.append(LocalServer(self.kind, self.base / f"server{i}", client, s, server_id=i, peers=lines))

    # --- lifecycle -------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> LocalEnsemble:
        for s in self.servers:
            s.start(wait=False)
        deadline = time.monotonic() + timeout
        for s in self.servers:
            s.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def server(self, sid: int) -> LocalServer:
        return self.servers[sid - 1]

    def connection_string(self, sids: list[int] | None = None) -> str:
        chosen = [self.server(i) for i in sids] if sids else self.servers
        return ",".join(s.address for s in chosen)

    def modes(self) -> dict[int, str | None]:
        return {s.server_id: s.mode() for s in self.servers}

    def leader(self) -> LocalServer | None:
        for s in self.servers:
            if s.mode() == "leader":
                return s
        return None

    def wait_for_leader(self, timeout: float = 30.0, exclude: int | None = None) -> LocalServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.servers:
                if s.server_id != exclude and s.running() and s.mode() == "leader":
                    return s
            time.sleep(0.02)
        raise TimeoutError(f"no leader within {timeout}s: {self.modes()}")

    # --- persistence (for the CLI) -------------------------------------------------------------

    def save(self) -> Path:
        path = self.base / "ensemble.json"
        data = {
            "kind": self.kind,
            "size": self.size,
            "observers": self.observers,
            "settings": self.settings,
            "servers": [
                {
                    "id": s.server_id,
                    "client_port": s.client_port,
                    "workdir": str(s.workdir),
                    "settings": s.settings,
                    "peers": s.peers,
                    "pid": s.proc.pid if s.proc else None,
                }
                for s in self.servers
            ],
        }
        path.write_text(json.dumps(data, indent=2))
        return path

    @classmethod
    def load(cls, base: Path) -> tuple[LocalEnsemble, dict[int, int | None]]:
        data = json.loads((base / "ensemble.json").read_text())
        servers = [
            LocalServer(data["kind"], Path(s["workdir"]), s["client_port"], s["settings"], s["id"], s["peers"])
            for s in data["servers"]
        ]
        ens = cls(data["kind"], base, data["size"], data["observers"], data["settings"], servers)
        return ens, {s["id"]: s["pid"] for s in data["servers"]}


def pid_is_ours(pid: int, workdir: Path) -> bool:
    """The process still runs and is the server we started (its command names our config)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return str(workdir / "zoo.cfg") in cmdline


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def status_rows(ens: LocalEnsemble, pids: dict[int, int | None]) -> list[dict[str, object]]:
    rows = []
    for s in ens.servers:
        pid = pids.get(s.server_id)
        alive = pid is not None and pid_is_ours(pid, s.workdir)
        row: dict[str, object] = {"id": s.server_id, "address": s.address, "pid": pid if alive else None}
        try:
            text = four_letter(s.host, s.client_port, "srvr", timeout=1.0)
            fields = dict(line.split(": ", 1) for line in text.strip().splitlines() if ": " in line)
            if "Mode" in fields:
                row.update(mode=fields["Mode"], zxid=fields.get("Zxid"), connections=fields.get("Connections"), nodes=fields.get("Node count"))
            else:
                row["mode"] = "not serving (electing or syncing)"
        except OSError:
            row["mode"] = "down" if not alive else "unreachable"
        rows.append(row)
    return rows
