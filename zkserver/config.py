"""zoo.cfg, read the way ZooKeeper reads it.

Known keys are parsed and checked (a bad value stops start-up with a one-line error naming the
key); ZooKeeper keys this server does not act on, and keys nobody knows, are reported as
warnings, never dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A zoo.cfg problem, phrased for the person who wrote the file."""


FOUR_LETTER_WORDS = (
    "conf cons crst dirs dump envi gtmk ruok stmk srst srvr stat wchc wchp wchs mntr isro hash".split()
)

# ZooKeeper keys we accept without acting on them (warned about once at start-up).
_IGNORED = {
    "admin.enableServer",
    "admin.serverPort",
    "admin.serverAddress",
    "admin.idleTimeout",
    "admin.commandURL",
    "serverCnxnFactory",
    "secureClientPort",
    "secureClientPortAddress",
    "metricsProvider.className",
    "metricsProvider.httpPort",
    "metricsProvider.exportJvmInfo",
    "reconfigEnabled",
    "standaloneEnabled",
    "localSessionsEnabled",
    "localSessionsUpgradingEnabled",
    "quorumListenOnAllIPs",
    "clientPortListenBacklog",
    "globalOutstandingLimit",
    "preAllocSize",
    "audit.enable",
    "sslQuorum",
    "portUnification",
    "electionAlg",
    "cnxTimeout",
    "maxCnxns",
}
_IGNORED_PREFIXES = ("authProvider.", "ssl.", "zookeeper.ssl", "jaasLoginRenew", "kerberos", "quorum.auth")


@dataclass
class Peer:
    """One `server.N=host:quorumPort:electionPort[:role][;clientHost:clientPort]` line."""

    id: int
    host: str
    quorum_port: int
    election_port: int
    observer: bool = False
    client_host: str | None = None
    client_port: int | None = None


@dataclass
class ServerConfig:
    data_dir: Path
    data_log_dir: Path
    client_port: int = 2181
    client_port_address: str = "0.0.0.0"
    tick_time: int = 3000
    min_session_timeout: int = -1
    max_session_timeout: int = -1
    max_client_cnxns: int = 60
    snap_count: int = 100000
    snap_retain_count: int = 3
    purge_interval_hours: int = 0
    four_letter_words: frozenset[str] = frozenset({"srvr"})
    extended_types: bool = False
    max_buffer: int = 0xFFFFF
    super_digest: str | None = None
    container_check_interval_ms: int = 60000
    container_max_per_minute: int = 10000
    force_sync: bool = True
    read_only_mode: bool = False
    init_limit: int = 10
    sync_limit: int = 5
    server_id: int = 0
    peer_type: str = "participant"
    peers: dict[int, Peer] = field(default_factory=dict)
    source: str = ""

    def __post_init__(self) -> None:
        if self.min_session_timeout == -1:
            self.min_session_timeout = 2 * self.tick_time
        if self.max_session_timeout == -1:
            self.max_session_timeout = 20 * self.tick_time
        if self.min_session_timeout > self.max_session_timeout:
            raise ConfigError(
                f"minSessionTimeout ({self.min_session_timeout}) must not exceed "
                f"maxSessionTimeout ({self.max_session_timeout})"
            )

    def negotiate_timeout(self, requested: int) -> int:
        return max(self.min_session_timeout, min(self.max_session_timeout, requested))


def _int(key: str, value: str, lo: int | None = None, hi: int | None = None) -> int:
    try:
        v = int(value, 0) if value.lower().startswith("0x") else int(value)
    except ValueError:
        raise ConfigError(f"{key}={value!r}: not an integer") from None
    if lo is not None and v < lo:
        raise ConfigError(f"{key}={value}: must be >= {lo}")
    if hi is not None and v > hi:
        raise ConfigError(f"{key}={value}: must be <= {hi}")
    return v


def _bool(key: str, value: str) -> bool:
    v = value.strip().lower()
    if v in ("true", "yes", "1", "on"):
        return True
    if v in ("false", "no", "0", "off"):
        return False
    raise ConfigError(f"{key}={value!r}: expected true or false")


def _whitelist(value: str) -> frozenset[str]:
    words = {w.strip() for w in value.split(",") if w.strip()}
    if "*" in words:
        return frozenset(FOUR_LETTER_WORDS)
    unknown = sorted(w for w in words if w not in FOUR_LETTER_WORDS)
    if unknown:
        log.warning("4lw.commands.whitelist: unknown four-letter words %s ignored", ", ".join(unknown))
    return frozenset(w for w in words if w in FOUR_LETTER_WORDS)


def _port(key: str, value: str) -> int:
    return _int(key, value, 1, 65535)


def parse_peer(key: str, value: str) -> Peer:
    """server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]"""
    sid = _int(key, key.split(".", 1)[1], 0, 254)
    server_part, _, client_part = value.partition(";")
    parts = server_part.strip().split(":")
    if len(parts) < 3 or len(parts) > 4:
        raise ConfigError(f"{key}={value}: expected host:quorumPort:electionPort[:role][;clientPort]")
    role = parts[3].lower() if len(parts) == 4 else "participant"
    if role not in ("participant", "observer"):
        raise ConfigError(f"{key}={value}: role must be participant or observer")
    peer = Peer(sid, parts[0], _port(key, parts[1]), _port(key, parts[2]), role == "observer")
    if client_part.strip():
        host, sep, port = client_part.strip().rpartition(":")
        peer.client_host = host if sep else None
        peer.client_port = _port(key, port)
    return peer


def parse(text: str, source: str = "zoo.cfg", base_dir: Path | None = None) -> ServerConfig:
    raw: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{source}:{lineno}: expected key=value, got {line!r}")
        raw[key.strip()] = value.strip()
    return from_mapping(raw, source, base_dir)


def from_mapping(raw: dict[str, str], source: str = "zoo.cfg", base_dir: Path | None = None) -> ServerConfig:
    base = base_dir or Path.cwd()
    if "dataDir" not in raw:
        raise ConfigError(f"{source}: dataDir is required")
    data_dir = (base / raw["dataDir"]).resolve()
    kw: dict = {"data_dir": data_dir, "data_log_dir": data_dir, "source": source}
    peers: dict[int, Peer] = {}
    for key, value in raw.items():
        if key == "dataDir":
            continue
        if key == "dataLogDir":
            kw["data_log_dir"] = (base / value).resolve()
        elif key == "clientPort":
            kw["client_port"] = _port(key, value)
        elif key == "clientPortAddress":
            kw["client_port_address"] = value
        elif key == "tickTime":
            kw["tick_time"] = _int(key, value, 1)
        elif key == "minSessionTimeout":
            kw["min_session_timeout"] = _int(key, value, -1)
        elif key == "maxSessionTimeout":
            kw["max_session_timeout"] = _int(key, value, -1)
        elif key == "maxClientCnxns":
            kw["max_client_cnxns"] = _int(key, value, 0)
        elif key == "snapCount":
            kw["snap_count"] = _int(key, value, 2)
        elif key == "autopurge.snapRetainCount":
            kw["snap_retain_count"] = max(3, _int(key, value, 0))
        elif key == "autopurge.purgeInterval":
            kw["purge_interval_hours"] = _int(key, value, 0)
        elif key == "4lw.commands.whitelist":
            kw["four_letter_words"] = _whitelist(value)
        elif key in ("extendedTypesEnabled", "zookeeper.extendedTypesEnabled"):
            kw["extended_types"] = _bool(key, value)
        elif key == "jute.maxbuffer":
            kw["max_buffer"] = _int(key, value, 1024)
        elif key in ("superDigest", "zookeeper.DigestAuthenticationProvider.superDigest"):
            if value.count(":") != 1:
                raise ConfigError(f"{key}={value}: expected user:base64(sha1(user:password))")
            kw["super_digest"] = value
        elif key == "znode.container.checkIntervalMs":
            kw["container_check_interval_ms"] = _int(key, value, 1)
        elif key == "znode.container.maxPerMinute":
            kw["container_max_per_minute"] = _int(key, value, 1)
        elif key in ("forceSync", "zookeeper.forceSync"):
            kw["force_sync"] = _bool(key, value)
        elif key == "readonlymode.enabled":  # a JVM property in ZooKeeper; a zoo.cfg key here
            kw["read_only_mode"] = _bool(key, value)
        elif key == "initLimit":
            kw["init_limit"] = _int(key, value, 1)
        elif key == "syncLimit":
            kw["sync_limit"] = _int(key, value, 1)
        elif key == "peerType":
            if value not in ("participant", "observer"):
                raise ConfigError(f"peerType={value}: must be participant or observer")
            kw["peer_type"] = value
        elif key.startswith("server."):
            peer = parse_peer(key, value)
            peers[peer.id] = peer
        elif key == "dynamicConfigFile":
            # ZooKeeper 3.5+ may keep the membership in a separate file of server.N lines.
            dyn = base / value
            try:
                lines = dyn.read_text().splitlines()
            except OSError as e:
                raise ConfigError(f"dynamicConfigFile={value}: cannot read ({e.strerror})") from None
            for line in lines:
                k, sep, v = line.strip().partition("=")
                if sep and k.startswith("server."):
                    peer = parse_peer(k, v)
                    peers[peer.id] = peer
        elif key.startswith("group.") or key.startswith("weight."):
            log.warning("%s: %s is not supported (hierarchical quorums); ignored", source, key)
        elif key in _IGNORED or key.startswith(_IGNORED_PREFIXES):
            log.warning("%s: %s is a ZooKeeper setting this server does not use; ignored", source, key)
        else:
            log.warning("%s: unknown key %s ignored", source, key)
    kw["peers"] = peers
    if peers:
        myid = data_dir / "myid"
        try:
            kw["server_id"] = _int("myid", myid.read_text().strip(), 0, 254)
        except FileNotFoundError:
            raise ConfigError(f"{myid}: missing; an ensemble member needs its id in dataDir/myid") from None
        if kw["server_id"] not in peers:
            raise ConfigError(f"{myid}: id {kw['server_id']} has no server.{kw['server_id']} line")
        me = peers[kw["server_id"]]
        if me.client_port is not None and "client_port" not in kw:
            kw["client_port"] = me.client_port
            if me.client_host and "client_port_address" not in kw:
                kw["client_port_address"] = me.client_host
    return ServerConfig(**kw)


def load(path: str | Path) -> ServerConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{p}: cannot read ({e.strerror})") from None
    return parse(text, str(p))
