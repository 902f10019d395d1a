"""Servers as local subprocesses on loopback: zkchaos's own or Apache ZooKeeper (Debian package).

Used by tests, benchmarks and `zkchaos ensemble up`. Each server gets its own directory with
zoo.cfg, data and a log file; it is stopped by pid, never by name.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .servers import (DEBIAN_ZK_JARS, LOG_CONFIGS, apache_zookeeper_available, base_settings,
                      four_letter, srvr_mode, zkchaos_argv, zoo_cfg, zookeeper_argv)

__all__ = ["LocalServer", "apache_zookeeper_available", "four_letter", "free_port"]


_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on, picked below the kernel's ephemeral range: a port from that
    range can be taken by an outgoing connection between our check and the server's bind."""
    low, high = 20000, 32000
    try:
        low_eph = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, low_eph)
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        if port in _HANDED_OUT:
            continue  # free now, but promised to a server that has not bound it yet
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            if len(_HANDED_OUT) > 4000:
                _HANDED_OUT.clear()
            _HANDED_OUT.add(port)
            return port
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]



@dataclass
class LocalServer:
    """One server process. `kind` is "zkchaos" or "zookeeper"."""

    kind: str
    workdir: Path
    client_port: int
    settings: dict[str, str] = field(default_factory=dict)
    server_id: int = 0
    peers: list[str] = field(default_factory=list)  # server.N=... lines for an ensemble
    host: str = "127.0.0.1"
    proc: subprocess.Popen | None = None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.client_port}"

    def write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        settings = base_settings(2000, str(self.data_dir), self.client_port, self.host)
        if self.kind == "zookeeper":
            settings["admin.enableServer"] = "false"
            for name, text in LOG_CONFIGS.items():
                (self.workdir / name).write_text(text)
        settings.update(self.settings)
        cfg = self.workdir / "zoo.cfg"
        cfg.write_text(zoo_cfg(settings, self.peers))
        if self.peers:
            (self.data_dir / "myid").write_text(f"{self.server_id}\n")
        return cfg

    def command(self, cfg: Path) -> list[str]:
        if self.kind == "zkchaos":
            return zkchaos_argv(sys.executable, str(cfg))
        classpath = ":".join([str(self.workdir), *DEBIAN_ZK_JARS])
        return zookeeper_argv(classpath, str(cfg), str(self.workdir), self.settings)

    def start(self, wait: bool = True, timeout: float = 30.0) -> LocalServer:
        cfg = self.write_config()
        env = dict(os.environ)
        repo = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command(cfg), stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env, start_new_session=True
        )
        log.close()
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until `srvr` answers with a serving mode."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.proc.returncode}:\n{self.tail_log()}")
            try:
                last = four_letter(self.host, self.client_port, "srvr", timeout=1.0)
                if srvr_mode(last) and self._answered_by_us():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} on {self.address} not serving after {timeout}s ({last!r}):\n{self.tail_log()}")

    def _answered_by_us(self) -> bool:
        """The port could belong to someone else's server: ours names our dataDir in `conf`."""
        try:
            text = four_letter(self.host, self.client_port, "conf", timeout=1.0)
        except OSError:
            return False
        if "not in the whitelist" in text:
            return self.proc is not None and self.proc.poll() is None  # cannot tell; trust our pid
        return str(self.data_dir) in text

    def mode(self) -> str | None:
        try:
            return srvr_mode(four_letter(self.host, self.client_port, "srvr"))
        except OSError:
            return None

    def tail_log(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None
