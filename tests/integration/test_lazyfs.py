"""Lost unfsynced writes on a real ensemble in a local namespace cluster: the lazy filesystem
keeps what was fsynced and drops the rest when a node loses power; zkchaos without fsync
(forceSync=no) loses acknowledged writes when every node loses power at once, while zkchaos and
Apache ZooKeeper with fsync lose none. Mounts, daemons and directories go with the run, and a
crashed run's are swept by the next one."""

from __future__ import annotations

import dataclasses
import random
import shutil
import subprocess
import uuid
from contextlib import contextmanager
from ctypes.util import find_library
from pathlib import Path
from typing import Iterator

import pytest

from harness.db import Node, ServerDB, make_db
from harness.workspace import Workspace
from nemesis import recovery
from nemesis.base import Fault, NemesisContext
from nemesis.lazyfs import LazyfsFamily
from tests.conftest import require, require_apache_zookeeper
from tests.netns import missing_writes, namespace_nodes, write_nodes

pytestmark = pytest.mark.integration

PREFIX, SUBNET = "zkl", "10.66.66.0/24"
WRITES = 40


CRASHED: list[str] = []  # run directories a test leaves mounted, as a crashed run would


def fuse_unusable() -> str | None:
    """Why this machine cannot mount our filesystem (as root), or None when it can."""
    if not Path("/dev/fuse").exists():
        return "no /dev/fuse"
    if find_library("fuse3") is None and find_library("fuse") is None:
        return "libfuse is not installed (apt-get install fuse3)"
    return None


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    require(fuse_unusable(), "ZKCHAOS_REQUIRE_NETNS")  # CI's root machine has FUSE too
    with namespace_nodes(tmp_path_factory.mktemp("lazyfs-cluster"), PREFIX, SUBNET) as created:
        yield created
    # `zkchaos cluster down` takes a crashed run's mounts along: they lived in the nodes' own
    # mount namespaces, gone with the nodes' processes. Its directories are plain ones now.
    mounts = subprocess.run("cat /proc/[0-9]*/mounts", shell=True, capture_output=True, text=True).stdout
    assert CRASHED and not [d for d in CRASHED if d in mounts]
    for d in CRASHED:
        shutil.rmtree(d)


def _ours_left(node: Node, run_dir: str) -> str:
    """Mounts of ours or daemons under `run_dir`, or the directory itself, if any is left."""
    # "[/]": the pattern must not match the shell that runs pgrep.
    return node.remote.run(f"grep -F '{run_dir}' /proc/mounts; pgrep -af '{run_dir}[/]'; ls -d {run_dir}",
                           timeout=20, check=False, sudo=False).stdout.strip()


@contextmanager
def lazy_ensemble(nodes: list[Node], kind: str, **settings: str) -> Iterator[tuple[LazyfsFamily, NemesisContext]]:
    """An ensemble of `kind` on lazy data directories, taken down as a run takes it down:
    the family's teardown first (the servers run on), then the DB's and the workspace's."""
    db = make_db(kind, tick_time=200)
    db.settings.update(settings)
    workspace, family = Workspace(), LazyfsFamily()
    ctx = NemesisContext(nodes, db, random.Random(3))
    run_dirs = []
    try:
        for n in nodes:
            workspace.create(n)
            run_dirs.append(n.dir)
        family.setup(ctx)
        for n in nodes:
            db.setup(n, nodes)
        # The last node joins an established ensemble: for Apache ZooKeeper that is the one node
        # whose start-up snapshot comes by SNAP, the only kind it fsyncs.
        for group in (nodes[:-1], nodes):
            for n in group:
                db.start(n)
            db.wait_ready(group, timeout=60)
        yield family, ctx
    finally:
        family.teardown(ctx)
        for n in nodes:
            db.teardown(n)
            workspace.remove(n)
    assert not family.mounted
    assert all(_ours_left(n, d) == "" for n, d in zip(nodes, run_dirs))


def _write(node: Node, count: int = WRITES) -> dict[str, bytes]:
    """Acknowledged creates through `node`; path -> value."""
    return write_nodes(node, f"lazy-{uuid.uuid4().hex[:6]}", count)


def _missing(nodes: list[Node], db: ServerDB, written: dict[str, bytes]) -> list[str]:
    """The acknowledged writes the ensemble no longer has (read through every node)."""
    db.wait_ready(nodes, timeout=60)
    return sorted(set().union(*(missing_writes(node, written) for node in nodes)))


def _server_log(node: Node) -> str:
    return node.remote.run(f"cat {node.dir}/server.log", timeout=30, sudo=False).stdout


def _power_loss(family: LazyfsFamily, ctx: NemesisContext, nodes: list[Node]) -> dict:
    return family.inject(ctx, Fault("lose-unsynced", tuple(n.name for n in nodes), {"spec": "all"}))


WRITER = """
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, sys.argv[2].encode())
if sys.argv[3] == "fsync":
    os.fsync(fd)
os.close(fd)
"""


def test_a_write_without_fsync_is_lost_on_power_off_and_one_with_it_kept(nodes):
    with lazy_ensemble(nodes, "zkchaos") as (family, ctx):
        node = nodes[0]
        data = f"{node.dir}/data"
        for name, how in (("lazy.txt", "no-fsync"), ("durable.txt", "fsync")):
            node.remote.run(f"python3 -c '{WRITER}' {data}/{name} {name}-content {how}", timeout=20, sudo=False)
        # Before the loss a reader sees both (the page cache serves them).
        assert node.remote.run(f"cat {data}/lazy.txt", timeout=20, sudo=False).stdout == "lazy.txt-content"
        done = family.inject(ctx, Fault("lose-unsynced", (node.name,), {"spec": "one"}))[node.name]
        assert done["lost_files"] >= 1 and recovery.serving(done["restart"]), done
        # The file's creation was metadata, so it stays; its unsynced bytes are gone.
        assert node.remote.run(f"stat -c %s {data}/lazy.txt", timeout=20, sudo=False).stdout.strip() == "0"
        assert node.remote.run(f"cat {data}/durable.txt", timeout=20, sudo=False).stdout == "durable.txt-content"
        assert family.heal(ctx) == {} and not family.active()


def test_zkchaos_without_fsync_loses_acknowledged_writes_when_all_nodes_lose_power(nodes):
    with lazy_ensemble(nodes, "zkchaos", forceSync="no") as (family, ctx):
        written = _write(nodes[0])
        done = _power_loss(family, ctx, nodes)
        print(f"\nzkchaos forceSync=no, power loss on all: {done}")
        assert all(d["lost_files"] > 0 for d in done.values())
        report = family.heal(ctx)
        print(f"heal: {report}")
        missing = _missing(nodes, ctx.db, written)
        print(f"acknowledged writes missing afterwards: {len(missing)} of {len(written)}")
        assert missing


def test_zkchaos_with_fsync_loses_nothing_when_all_nodes_lose_power(nodes):
    with lazy_ensemble(nodes, "zkchaos") as (family, ctx):
        written = _write(nodes[0])
        done = _power_loss(family, ctx, nodes)
        print(f"\nzkchaos (fsync on), power loss on all: {done}")
        assert all(d["lost_files"] == 0 and recovery.serving(d["restart"]) for d in done.values())
        assert family.heal(ctx) == {}
        assert _missing(nodes, ctx.db, written) == []
        # Teardown puts the data on plain directories under servers that serve it again.
        family.teardown(ctx)
        assert not any(n.remote.run(f"grep -F ' {n.dir}/data ' /proc/mounts", timeout=20, check=False,
                                    sudo=False).ok for n in nodes)
        assert _missing(nodes, ctx.db, written) == []


def test_zookeeper_loses_no_acknowledged_write_but_refuses_its_unsynced_snapshot(nodes):
    """Apache ZooKeeper fsyncs its log, so no acknowledged txn is lost; but the snapshot it
    takes at start-up is not fsynced (only one received by SNAP is), so after the power loss
    the leader and the follower synced by DIFF find it empty and refuse to start until they
    are re-seeded from the third node."""
    require_apache_zookeeper()
    with lazy_ensemble(nodes, "zookeeper") as (family, ctx):
        written = _write(nodes[0])
        done = _power_loss(family, ctx, nodes)
        print(f"\nzookeeper (fsync on), power loss on all: {done}")
        # One file had unsynced data on each node: the start-up snapshot.0 (the third node's
        # purge removes it, empty, as it starts from the snapshot it got by SNAP).
        assert all(d["lost_files"] == 1 for d in done.values())
        refused = [n for n in nodes if done[n.name]["restart"] == "exited"]
        assert refused == nodes[:-1]
        for n in refused:
            snapshot = f"{ctx.db.data_layout(n).data_dir}/version-2/snapshot.0"
            assert n.remote.run(f"stat -c %s {snapshot}", timeout=20, sudo=False).stdout.strip() == "0"
            assert "No snapshot found, but there are log entries" in _server_log(n)
        report = family.heal(ctx)
        print(f"heal: {report}")
        assert all(report[n.name].startswith(recovery.RESEEDED) for n in refused)
        assert _missing(nodes, ctx.db, written) == []


def test_a_crashed_runs_mount_is_swept_by_the_next_run(nodes):
    """The workspace sweep of the next run SIGKILLs a crashed run's daemon: its mount is dead
    and its directory half removed. The family's setup unmounts it and removes what is left,
    and leaves alone a mount whose daemon lives (another run's). The mounts still there at the
    end are left for `zkchaos cluster down` (the module's cluster teardown) to take away."""
    node, other_run = nodes[0], dataclasses.replace(nodes[0])
    crashed = Workspace(cluster=f"lazyfs-test-{uuid.uuid4().hex[:8]}")
    for n in (node, other_run):
        crashed.create(n)
        LazyfsFamily().setup(NemesisContext([n], make_db("zkchaos"), random.Random(1)))
    dead, alive = node.dir, other_run.dir
    # What the workspace sweep does: kill by pid file, then remove as much as it can.
    node.remote.run(f"kill -KILL $(cat {dead}/lazyfs.pid); sleep 0.5; rm -rf {dead}", timeout=20, check=False,
                    sudo=False)
    assert f"{dead}/data" in node.remote.run("cat /proc/mounts", timeout=20, sudo=False).stdout
    Workspace().create(node)
    LazyfsFamily().setup(NemesisContext([node], make_db("zkchaos"), random.Random(2)))
    assert _ours_left(node, dead) == ""
    assert f"{alive}/data" in node.remote.run("cat /proc/mounts", timeout=20, sudo=False).stdout
    CRASHED.extend([node.dir, alive])
