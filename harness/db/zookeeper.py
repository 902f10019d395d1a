"""Apache ZooKeeper as the DB under test.

Where the jars come from, in order: `--zookeeper-path` on the control machine (a directory of
jars, a release's directory with lib/, or the release tarball itself), packed here and uploaded
into every node's run directory, so offline hosts need nothing but Java; else Debian's
`zookeeper` package on the node; else that package installed with apt, failing with a clear
line when the host cannot reach a mirror. Logging is configured by files in the run directory
(log4j for Debian's build, logback for the official release), so no /etc/zookeeper is needed.
"""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..preflight import Needs
from ..remote import RemoteError
from ..servers import DEBIAN_ZK_JAR, DEBIAN_ZK_JARS, LOG_CONFIGS, shell_line, zookeeper_argv
from .base import Node, ServerDB, SetupError
from .capabilities import DataLayout

BUNDLE = "zookeeper-lib.tar"
APT_INSTALL = ("apt-get update -q && DEBIAN_FRONTEND=noninteractive "
               "apt-get install -y -q --no-install-recommends zookeeper")


def find_jars(path: str | Path, scratch: Path) -> list[Path]:
    """The jars of a ZooKeeper install: `path` itself, its lib/, or a release tarball
    (unpacked into `scratch`). Raises SetupError naming the path when there is no ZooKeeper."""
    root = Path(path).expanduser()
    if root.is_file():
        if not tarfile.is_tarfile(root):
            raise SetupError(f"--zookeeper-path {path}: not a directory or a tar archive")
        with tarfile.open(root) as tar:
            tar.extractall(scratch / "unpacked", filter="data")
        candidates = sorted(scratch.glob("unpacked/*/lib")) + sorted(scratch.glob("unpacked/lib")) + [scratch / "unpacked"]
    elif root.is_dir():
        candidates = [root / "lib", root]
    else:
        raise SetupError(f"--zookeeper-path {path}: no such file or directory")
    for lib in candidates:
        jars = sorted(lib.glob("*.jar")) if lib.is_dir() else []
        if any(j.name == "zookeeper.jar" or (j.name.startswith("zookeeper-3") and j.suffix == ".jar") for j in jars):
            return jars
    raise SetupError(f"--zookeeper-path {path}: no zookeeper-3.*.jar in it or in its lib/")


@dataclass
class ZooKeeperDB(ServerDB):
    name: str = "zookeeper"
    install_path: str | None = None  # on the control machine; see find_jars
    _scratch: Path | None = field(default=None, repr=False)
    _bundle: Path | None = field(default=None, repr=False)

    def prepare(self, nodes: list[Node]) -> None:
        if not self.install_path or self._bundle is not None:
            return
        self._scratch = Path(tempfile.mkdtemp(prefix="zkchaos-zookeeper-"))
        jars = find_jars(self.install_path, self._scratch)
        self._bundle = self._scratch / BUNDLE
        with tarfile.open(self._bundle, "w") as tar:
            for jar in jars:  # symlinked jars (Debian's layout) travel as the files they name
                tar.add(jar.resolve(), arcname=jar.name)

    def close(self) -> None:
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._scratch = self._bundle = None

    def needs(self, node: Node) -> Needs:
        return Needs(java=True, zookeeper=self.install_path is None)

    def install(self, node: Node) -> None:
        if self._bundle is not None:
            node.remote.upload(self._bundle, f"{node.dir}/{BUNDLE}")
            node.remote.run(f"mkdir -p {node.dir}/lib && tar -xf {node.dir}/{BUNDLE} -C {node.dir}/lib "
                            f"&& rm {node.dir}/{BUNDLE}", timeout=120, sudo=False)
            return
        if node.remote.run(f"test -f {DEBIAN_ZK_JAR}", timeout=20, check=False, sudo=False).ok:
            return
        try:
            node.remote.run(APT_INSTALL, timeout=900)
        except RemoteError as e:
            raise SetupError(
                f"{node.name}: Apache ZooKeeper is not installed and `apt-get install zookeeper` failed "
                f"({(e.stderr.strip().splitlines() or [str(e)])[-1][:200]}): install Debian's `zookeeper` "
                "package on the host, or pass --zookeeper-path with a ZooKeeper lib directory or release tarball"
            ) from e

    def data_layout(self, node: Node) -> DataLayout:
        # ZooKeeper's own layout: version-2/log.<zxid hex> and snapshot.<zxid hex>, not zero
        # padded, so callers order them by the hex number, not the name.
        state = f"{node.dir}/data/version-2"
        return DataLayout(f"{node.dir}/data", f"{state}/log.*", f"{state}/snapshot.*")

    def zoo_settings(self, node: Node) -> dict[str, str]:
        return {"admin.enableServer": "false", **super().zoo_settings(node)}

    def config_files(self, node: Node) -> dict[str, str]:
        return dict(LOG_CONFIGS)

    def classpath(self, node: Node) -> str:
        jars = f"{node.dir}/lib/*" if self._bundle is not None else ":".join(DEBIAN_ZK_JARS)
        return f"{node.dir}:{jars}"  # the run directory first: our log configuration

    def command(self, node: Node) -> str:
        return shell_line(zookeeper_argv(self.classpath(node), f"{node.dir}/zoo.cfg", node.dir, self.settings))
