"""Four-letter words: plain-text status answered on a fresh connection, then closed.

Formats follow ZooKeeper 3.8 closely enough for tools that parse them (kazoo's server_version
reads `zookeeper.version=` from envi; monitoring scripts read `Mode:`, `Zxid:` and mntr keys)."""

from __future__ import annotations

import os
import platform
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .config import FOUR_LETTER_WORDS

if TYPE_CHECKING:
    from .core import ServerCore

ZK_COMPAT_VERSION = "3.8.0"
VERSION = f"{ZK_COMPAT_VERSION}-zkchaos-0.1.0"
BUILT = "built on 2026-11-25 00:00 UTC"
WORDS = frozenset(w.encode() for w in FOUR_LETTER_WORDS)


def _hex(v: int) -> str:
    return f"0x{v & (2**64 - 1):x}"


def _dir_size(path: Path) -> int:
    try:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


class FourLetterWords:
    """Answers four-letter words from a core; `mode` and `extra` come from the role (standalone,
    leader, follower, observer) the server plays."""

    def __init__(self, core: "ServerCore", mode: Callable[[], str] = lambda: "standalone") -> None:
        self.core = core
        self.mode = mode
        self.extra_mntr: Callable[[], list[tuple[str, object]]] = lambda: []

    def answer(self, word: str) -> str:
        if word not in self.core.config.four_letter_words:
            return f"{word} is not executed because it is not in the whitelist.\n"
        if not self.core.serving and word not in ("ruok", "isro", "envi", "conf"):
            return "This ZooKeeper instance is not currently serving requests\n"
        return getattr(self, f"_{word}")()

    def _ruok(self) -> str:
        return "imok"

    def _isro(self) -> str:
        if self.core.read_only:
            return "ro"
        return "rw" if self.core.serving else "null"

    def _stats_block(self) -> str:
        s, core = self.core.stats, self.core
        return (
            f"Latency min/avg/max: {s.lat_min}/{round(s.lat_avg, 4)}/{s.lat_max}\n"
            f"Received: {s.packets_received}\n"
            f"Sent: {s.packets_sent}\n"
            f"Connections: {len(core.conns)}\n"
            f"Outstanding: {core.outstanding()}\n"
            f"Zxid: {_hex(core.tree.last_zxid)}\n"
            f"Mode: {self.mode()}\n"
            f"Node count: {core.tree.node_count()}\n"
        )

    def _srvr(self) -> str:
        return f"Zookeeper version: {VERSION}, {BUILT}\n" + self._stats_block()

    def _conn_line(self, conn, detailed: bool) -> str:
        queued = len(self.core.queues.get(conn.session_id, ())) if conn.session_id else 0
        base = f" /{conn.host}:{conn.port}[1](queued={queued},recved={conn.received},sent={conn.sent}"
        if not detailed:
            return base + ")\n"
        sid = conn.session_id or 0
        return (
            base + f",sid={_hex(sid)},lop={conn.last_op},est={conn.established_ms},to={conn.timeout},"
            f"lcxid={_hex(conn.last_cxid)},lzxid={_hex(conn.last_zxid)},lresp=0,llat=0,minlat=0,avglat=0,maxlat=0)\n"
        )

    def _stat(self) -> str:
        clients = "".join(self._conn_line(c, False) for c in self.core.conns)
        return f"Zookeeper version: {VERSION}, {BUILT}\nClients:\n{clients}\n" + self._stats_block()

    def _cons(self) -> str:
        return "".join(self._conn_line(c, True) for c in self.core.conns) + "\n"

    def _conf(self) -> str:
        c = self.core.config
        return (
            f"clientPort={c.client_port}\nsecureClientPort=-1\n"
            f"dataDir={c.data_dir}\ndataDirSize={_dir_size(c.data_dir)}\n"
            f"dataLogDir={c.data_log_dir}\ndataLogSize={_dir_size(c.data_log_dir)}\n"
            f"tickTime={c.tick_time}\nmaxClientCnxns={c.max_client_cnxns}\n"
            f"minSessionTimeout={c.min_session_timeout}\nmaxSessionTimeout={c.max_session_timeout}\n"
            f"clientPortListenBacklog=-1\nserverId={c.server_id}\n"
        ) + self._quorum_conf()

    def _quorum_conf(self) -> str:
        c = self.core.config
        if not c.peers:
            return ""
        lines = [f"initLimit={c.init_limit}", f"syncLimit={c.sync_limit}", "electionAlg=3"]
        me = c.peers[c.server_id]
        lines += [f"electionPort={me.election_port}", f"quorumPort={me.quorum_port}", f"peerType={0 if not me.observer else 1}"]
        for p in sorted(c.peers.values(), key=lambda p: p.id):
            role = "observer" if p.observer else "participant"
            client = f";{p.client_host or c.client_port_address}:{p.client_port or c.client_port}"
            lines.append(f"server.{p.id}={p.host}:{p.quorum_port}:{p.election_port}:{role}{client}")
        return "".join(line + "\n" for line in lines)

    def _envi(self) -> str:
        rows = [
            ("zookeeper.version", f"{VERSION}, {BUILT}"),
            ("host.name", socket.gethostname()),
            ("python.version", sys.version.split()[0]),
            ("python.implementation", platform.python_implementation()),
            ("os.name", platform.system()),
            ("os.arch", platform.machine()),
            ("os.version", platform.release()),
            ("user.dir", os.getcwd()),
            ("process.id", os.getpid()),
        ]
        return "Environment:\n" + "".join(f"{k}={v}\n" for k, v in rows)

    def _wchs(self) -> str:
        w = self.core.watches
        watchers = set(w.data.by_watcher) | set(w.child.by_watcher)
        paths = set(w.data.by_path) | set(w.child.by_path)
        return f"{len(watchers)} connections watching {len(paths)} paths\nTotal watches:{w.count()}\n"

    def _wchc(self) -> str:
        w = self.core.watches
        out = []
        for conn in sorted(set(w.data.by_watcher) | set(w.child.by_watcher), key=lambda c: c.id):
            out.append(f"{_hex(conn.session_id or 0)}\n")
            out.extend(f"\t{p}\n" for p in sorted(w.paths_of(conn)))
        return "".join(out)

    def _wchp(self) -> str:
        out = []
        for path, conns in sorted(self.core.watches.watchers_of().items()):
            out.append(f"{path}\n")
            out.extend(f"\t{_hex(c.session_id or 0)}\n" for c in sorted(conns, key=lambda c: c.id))
        return "".join(out)

    def _dump(self) -> str:
        core = self.core
        sessions = core.tracker.sessions
        out = [f"SessionTracker dump:\nSession Sets ({len(core.tracker.buckets)})/{len(sessions)}:\n"]
        for deadline, sids in sorted(core.tracker.buckets.items()):
            out.append(f"{deadline - core.now_ms}ms expire in {len(sids)} sessions:\n")
            out.extend(f"\t{_hex(s)}\n" for s in sorted(sids))
        eph = core.tree.ephemerals
        out.append(f"ephemeral nodes dump:\nSessions with Ephemerals ({len(eph)}):\n")
        for sid, paths in sorted(eph.items()):
            out.append(f"{_hex(sid)}:\n")
            out.extend(f"\t{p}\n" for p in sorted(paths))
        out.append("Connections dump:\n")
        out.extend(self._conn_line(c, True) for c in core.conns)
        return "".join(out)

    def _mntr(self) -> str:
        core, s = self.core, self.core.stats
        try:
            fds = len(os.listdir("/proc/self/fd"))
        except OSError:
            fds = -1
        try:
            import resource

            max_fds = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except (ImportError, ValueError):
            max_fds = -1
        rows: list[tuple[str, object]] = [
            ("version", f"{VERSION}, {BUILT}"),
            ("server_state", self.mode()),
            ("avg_latency", round(s.lat_avg, 4)),
            ("max_latency", s.lat_max),
            ("min_latency", s.lat_min),
            ("packets_received", s.packets_received),
            ("packets_sent", s.packets_sent),
            ("num_alive_connections", len(core.conns)),
            ("outstanding_requests", core.outstanding()),
            ("uptime", core.now_ms - s.start_ms),
            ("znode_count", core.tree.node_count()),
            ("watch_count", core.watches.count()),
            ("ephemerals_count", sum(len(p) for p in core.tree.ephemerals.values())),
            ("approximate_data_size", core.tree.approximate_data_size()),
            ("global_sessions", len(core.tracker.sessions)),
            ("local_sessions", 0),
            ("open_file_descriptor_count", fds),
            ("max_file_descriptor_count", max_fds),
            ("last_proposal_size", -1),
            ("auth_failed_count", s.auth_failed),
            ("zxid", _hex(core.tree.last_zxid)),
            *self.extra_mntr(),
        ]
        return "".join(f"zk_{k}\t{v}\n" for k, v in rows)

    def _srst(self) -> str:
        self.core.stats.reset()
        return "Server stats reset.\n"

    def _crst(self) -> str:
        for c in self.core.conns:
            c.received = c.sent = 0
        return "Connection stats reset.\n"

    def _dirs(self) -> str:
        c = self.core.config
        return f"datadir_size: {_dir_size(c.data_dir)}\nlogdir_size: {_dir_size(c.data_log_dir)}\n"

    def _gtmk(self) -> str:
        return "0\n"

    def _stmk(self) -> str:
        return "0\n"

    def _hash(self) -> str:
        return "Digest is not enabled\n"
