"""What the integration tests of faults share: a namespace cluster's nodes, an ensemble on them
set up and taken down as a run does, and acknowledged writes to look for afterwards."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from kazoo.client import KazooClient

from harness.cluster import LocalCluster
from harness.db import Node, ServerDB
from harness.remote import connect_all
from harness.workspace import Workspace
from tests.conftest import require_netns


@contextmanager
def namespace_nodes(state_dir: Path, prefix: str, subnet: str, n: int = 3) -> Iterator[list[Node]]:
    """`n` local namespace nodes (their own prefix and subnet), connected; removed afterwards."""
    require_netns()
    cluster = LocalCluster(state_dir, prefix=prefix, subnet=subnet)
    specs = cluster.up(n)
    remotes = connect_all(specs)
    try:
        yield [Node(s.name, s.host, remotes[s.name], local=True, id=i) for i, s in enumerate(specs, 1)]
    finally:
        for remote in remotes.values():
            remote.close()
        cluster.down()


@contextmanager
def running(nodes: list[Node], db: ServerDB, before_start: Callable[[], None] | None = None) -> Iterator[None]:
    """`db` serving on `nodes`, each in its own run directory; `before_start` runs once the
    directories exist (a fault family's setup). Stopped and cleaned up afterwards."""
    workspace = Workspace()
    try:
        for n in nodes:
            workspace.create(n)
        if before_start is not None:
            before_start()
        for n in nodes:
            db.setup(n, nodes)
            db.start(n)
        db.wait_ready(nodes, timeout=60)
        yield
    finally:
        for n in nodes:
            try:
                db.teardown(n)
            finally:
                workspace.remove(n)


def write_nodes(node: Node, prefix: str, count: int) -> dict[str, bytes]:
    """`count` acknowledged creates through `node`; path -> value."""
    written = {f"/{prefix}-{i:03d}": f"{prefix}:{i}".encode() for i in range(count)}
    zk = KazooClient(hosts=f"{node.address}:2181", timeout=10)
    zk.start(timeout=30)
    try:
        for path, value in written.items():
            zk.create(path, value)
    finally:
        zk.stop()
        zk.close()
    return written


def missing_writes(node: Node, written: dict[str, bytes]) -> set[str]:
    """The acknowledged writes a read through `node`, after a sync, does not see as written."""
    zk = KazooClient(hosts=f"{node.address}:2181", timeout=10)
    zk.start(timeout=30)
    try:
        zk.sync("/")
        return {p for p, v in written.items() if zk.exists(p) is None or zk.get(p)[0] != v}
    finally:
        zk.stop()
        zk.close()
