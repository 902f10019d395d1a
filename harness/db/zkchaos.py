"""zkchaos's own server as the DB under test.

On nodes that share this machine's filesystem (local namespaces) the server runs from this
checkout with this interpreter. On remote hosts, which may have no package index at all, a
wheel built here is uploaded into the run's directory and installed into a virtual environment
there with `pip --no-index --no-deps`: the server (`python -m zkserver`) needs only the standard
library, and the venv sees the host's own packages, so uvloop is used where the host has it.
`source` names another tree to run instead of this checkout, both ways (`zkchaos selftest`
runs mutated copies of the server so).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..preflight import Needs
from ..remote import RemoteError
from ..servers import shell_line, zkchaos_argv
from .base import Node, ServerDB, SetupError
from .capabilities import DataLayout

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
# What a wheel is built from; copied out first so a build never writes into the checkout.
SOURCES = ("pyproject.toml", "README.md", "cli.py", "zkserver", "harness", "workloads", "nemesis", "reports")
PIP_QUIET = "PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1"


def copy_sources(dest: Path, root: Path = REPO) -> None:
    """The files a wheel is built from (SOURCES) of the checkout at `root`, without caches."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        path = root / name
        if path.is_dir():
            shutil.copytree(path, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif path.exists():
            shutil.copy2(path, dest / name)


def build_wheel(out: Path, root: Path = REPO) -> Path:
    """A wheel of the checkout at `root` (this one, or a copy of it), built without network
    when setuptools is recent enough here."""
    src = out / "src"
    copy_sources(src, root)
    argv = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)]
    try:
        from importlib.metadata import version

        if int(version("setuptools").split(".")[0]) >= 77:
            argv.insert(4, "--no-build-isolation")
    except Exception:  # noqa: BLE001 - no usable setuptools here: pip fetches one to build with
        pass
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise SetupError(f"building the zkchaos wheel failed: {done.stderr.strip()[-500:]}")
    return next(out.glob("zkchaos-*.whl"))


@dataclass
class ZkChaosDB(ServerDB):
    name: str = "zkchaos"
    source: Path | None = None  # another tree to run the server from (a changed copy); None: this checkout
    _build_dir: Path | None = field(default=None, repr=False)
    _wheel: Path | None = field(default=None, repr=False)

    def prepare(self, nodes: list[Node]) -> None:
        if all(n.local for n in nodes) or self._wheel is not None:
            return
        self._build_dir = Path(tempfile.mkdtemp(prefix="zkchaos-wheel-"))
        self._wheel = build_wheel(self._build_dir, self.source or REPO)
        log.info("built %s for the remote hosts", self._wheel.name)

    def close(self) -> None:
        if self._build_dir is not None:
            shutil.rmtree(self._build_dir, ignore_errors=True)
        self._build_dir = self._wheel = None

    def needs(self, node: Node) -> Needs:
        return Needs(python=not node.local)

    def install(self, node: Node) -> None:
        if node.local:
            return
        if self._wheel is None:
            raise SetupError("the zkchaos wheel was not built (prepare() runs before setup)")
        remote_wheel = f"{node.dir}/{self._wheel.name}"
        node.remote.upload(self._wheel, remote_wheel)
        venv = f"{node.dir}/venv"
        try:
            node.remote.run(
                f"python3 -m venv --system-site-packages {venv} && {PIP_QUIET} {venv}/bin/python -m pip "
                f"install -q --no-index --no-deps --no-cache-dir {remote_wheel}",
                timeout=300, sudo=False,
            )
        except RemoteError as e:
            raise SetupError(f"{node.name}: installing zkchaos into {venv} failed: {e.stderr.strip()[-300:] or e}") from e

    def data_layout(self, node: Node) -> DataLayout:
        # Log segments `log.<first zxid, 16 hex digits>` and `snapshot.<zxid>`: zero-padded,
        # so name order is zxid order.
        state = f"{node.dir}/data/zkchaos-v1"
        return DataLayout(f"{node.dir}/data", f"{state}/log.*", f"{state}/snapshot.*")

    def command(self, node: Node) -> str:
        cfg = f"{node.dir}/zoo.cfg"
        if node.local:
            return f"env PYTHONPATH={self.source or REPO} {shell_line(zkchaos_argv(sys.executable, cfg))}"
        return shell_line(zkchaos_argv(f"{node.dir}/venv/bin/python", cfg))
