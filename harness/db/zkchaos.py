"""zkchaos's own server as the DB under test.

On nodes that share this machine's filesystem (local namespaces) the server runs from this
checkout with this interpreter. On remote hosts a wheel built from the checkout is uploaded and
installed into a virtual environment at /opt/zkchaos/venv.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from .base import Node, ServerDB

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
REMOTE_VENV = "/opt/zkchaos/venv"
_WHEEL_LOCK = threading.Lock()


@dataclass
class ZkChaosDB(ServerDB):
    name: str = "zkchaos"
    remote_venv: str = REMOTE_VENV  # where remote hosts get the wheel installed
    _wheel: Path | None = None

    def _build_wheel(self) -> Path:
        with _WHEEL_LOCK:  # nodes are set up in parallel; build once
            return self._build_wheel_locked()

    def _build_wheel_locked(self) -> Path:
        if self._wheel is None:
            out = Path(tempfile.mkdtemp(prefix="zkchaos-wheel-"))
            done = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                raise RuntimeError(f"building the zkchaos wheel failed: {done.stderr.strip()[-500:]}")
            self._wheel = next(out.glob("zkchaos-*.whl"))
        return self._wheel

    def install(self, node: Node) -> None:
        if node.local:
            return
        wheel = self._build_wheel()
        remote_wheel = f"/tmp/{wheel.name}"
        venv = self.remote_venv
        node.remote.upload(wheel, remote_wheel)
        node.remote.run(
            f"test -x {venv}/bin/python || python3 -m venv {venv}; "
            f"{venv}/bin/pip install -q --force-reinstall --no-deps {remote_wheel} && "
            f"{venv}/bin/pip install -q {remote_wheel}",
            timeout=600,
        )

    def command(self, node: Node) -> str:
        if node.local:
            return f"env PYTHONPATH={REPO} {sys.executable} -m cli server --config {node.dir}/zoo.cfg"
        return f"{self.remote_venv}/bin/zkchaos server --config {node.dir}/zoo.cfg"
