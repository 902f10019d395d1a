"""What both servers under test share, wherever they run (a loopback process or a node):
zoo.cfg, the four-letter words, the command lines of zkchaos and of Apache ZooKeeper.
"""

from __future__ import annotations

import shlex
import shutil
import socket
from pathlib import Path
from typing import Mapping

CLIENT_PORT = 2181
QUORUM_PORT = 2888
ELECTION_PORT = 3888
PORTS = (CLIENT_PORT, QUORUM_PORT, ELECTION_PORT)

ZK_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
DEBIAN_ZK_JAR = "/usr/share/java/zookeeper.jar"
# zookeeper.jar's manifest lists its own dependencies; log4j 1.2 (Debian's binding) logs.
DEBIAN_ZK_JARS = (DEBIAN_ZK_JAR, "/usr/share/java/slf4j-log4j12.jar", "/usr/share/java/log4j-1.2.jar")

# Our own logging configuration, first on the classpath, so a host needs no /etc/zookeeper:
# Debian's ZooKeeper logs through log4j 1.2, the official release through logback.
LOG4J_PROPERTIES = """\
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n
"""
LOGBACK_XML = """\
<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d{ISO8601} - %-5p [%t:%C{1}@%L] - %m%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="CONSOLE"/></root>
</configuration>
"""
LOG_CONFIGS = {"log4j.properties": LOG4J_PROPERTIES, "logback.xml": LOGBACK_XML}

# zoo.cfg keys Apache ZooKeeper reads only as JVM system properties.
JVM_PROPERTIES = {
    "extendedTypesEnabled": "zookeeper.extendedTypesEnabled",
    "superDigest": "zookeeper.DigestAuthenticationProvider.superDigest",
    "znode.container.checkIntervalMs": "znode.container.checkIntervalMs",
}


def apache_zookeeper_available() -> bool:
    return Path(DEBIAN_ZK_JAR).exists() and shutil.which("java") is not None


def base_settings(tick_time: int, data_dir: str, client_port: int, address: str) -> dict[str, str]:
    """The zoo.cfg every server under test starts from (callers add or override keys)."""
    return {
        "tickTime": str(tick_time),
        "initLimit": "10",
        "syncLimit": "5",
        "dataDir": data_dir,
        "clientPort": str(client_port),
        "clientPortAddress": address,
        "maxClientCnxns": "0",
        "4lw.commands.whitelist": "*",
    }


def server_line(server_id: int, address: str, role: str = "participant",
                client: str | None = None) -> str:
    """`server.N=host:quorumPort:electionPort[:observer][;clientAddress:clientPort]`."""
    line = f"server.{server_id}={address}:{QUORUM_PORT}:{ELECTION_PORT}"
    if role != "participant":
        line += f":{role}"
    return line + (f";{client}" if client else "")


def zoo_cfg(settings: Mapping[str, str], servers: list[str] = ()) -> str:
    return "".join(f"{k}={v}\n" for k, v in settings.items()) + "".join(s + "\n" for s in servers)


def four_letter(host: str, port: int, word: str, timeout: float = 2.0) -> str:
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(word.encode())
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks).decode(errors="replace")


def srvr_mode(text: str) -> str | None:
    """The Mode line of a `srvr` answer: leader, follower, observer, standalone, read-only."""
    for line in text.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def server_mode(host: str, port: int = CLIENT_PORT, timeout: float = 1.0) -> str | None:
    """The server's mode, or None if it does not serve (down, electing, paused)."""
    try:
        return srvr_mode(four_letter(host, port, "srvr", timeout=timeout))
    except OSError:
        return None


def zkchaos_argv(python: str, cfg: str, log_level: str = "info") -> list[str]:
    """zkchaos's server needs only the standard library: `python -m zkserver`."""
    return [python, "-m", "zkserver", "--config", cfg, "--log-level", log_level]


def zookeeper_argv(classpath: str, cfg: str, log_dir: str, settings: Mapping[str, str],
                   java: str = "java", heap: str = "512m") -> list[str]:
    # -XX:-UsePerfData: no /tmp/hsperfdata_<user> left behind on the node.
    jvm = [java, f"-Xmx{heap}", "-XX:-UsePerfData", f"-Dzookeeper.log.dir={log_dir}",
           "-Dzookeeper.admin.enableServer=false"]
    for key, prop in JVM_PROPERTIES.items():
        if key in settings:
            jvm.append(f"-D{prop}={settings[key]}")
    return jvm + ["-cp", classpath, ZK_MAIN, cfg]


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
