"""Apache ZooKeeper from the Debian package as the DB under test (installed if missing)."""

from __future__ import annotations

from dataclasses import dataclass

from .base import Node, ServerDB

CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-log4j12.jar:/usr/share/java/log4j-1.2.jar"
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


@dataclass
class ZooKeeperDB(ServerDB):
    name: str = "zookeeper"
    install_path: str | None = None  # a ZooKeeper install (lib/ of jars) to use instead

    def install(self, node: Node) -> None:
        if self.install_path:
            return
        node.remote.run(
            "test -f /usr/share/java/zookeeper.jar || "
            "(apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q zookeeper)",
            timeout=900,
        )

    def classpath(self) -> str:
        if self.install_path:
            return f"/etc/zookeeper/conf:{self.install_path}/*"
        return CLASSPATH

    def command(self, node: Node) -> str:
        props = [
            "-Xmx512m",
            f"-Dzookeeper.log.dir={node.dir}",
            "-Dzookeeper.root.logger=INFO,CONSOLE",
            "-Dzookeeper.admin.enableServer=false",
        ]
        return f"java {' '.join(props)} -cp {self.classpath()} {MAIN} {node.dir}/zoo.cfg"
