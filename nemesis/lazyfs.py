"""Lost unfsynced writes (after Jepsen's LazyFS): every node's data directory is a FUSE mount of
ours (`lazyfs_daemon`) that keeps written-but-not-fsynced data in memory only, and a fault powers
nodes off: their servers are killed, the daemon drops what was never fsynced, and they start
again on what a real disk would have kept.

The daemon runs on the node as the login user (a FUSE mount needs no root where fusermount3
is installed), with the host's python3 and what we upload into the run directory: itself, its
page cache and mfusepy (pure Python over libfuse 2 or 3). It passes everything through to
`<run dir>/lazyfs-backing` and mounts at `<run dir>/data` in `setup`, before the DB is set up.

Fault `lose-unsynced` (targets: any spec; `all` is a power loss of the whole cluster, the one
that can lose acknowledged writes of a server that does not fsync): kill, drop, start, and wait
for each node to serve, exit (it refused what it found) or run out of time. Heal `lazyfs-heal`
closes that window; a node that did not come back is started again, and re-seeded if it exits
(see recovery.py). Teardown
stops each server, writes the unsynced data back (a clean shutdown loses nothing), unmounts,
puts the backing directory in the mount's place and starts the servers that ran, so the run
ends on a plain directory. A crashed run's mounts (daemon gone) are unmounted by the next run's
setup on the same nodes; `zkchaos cluster down` needs nothing of ours: every local node runs in a
mount namespace of its own (`ip netns exec` makes one), and its mounts go with its processes.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.db.capabilities import DataFiles, Primary, Process
from harness.preflight import Needs

from . import recovery
from .base import Fault, NemesisContext
from .targets import SPECS

if TYPE_CHECKING:
    from harness.db import Node

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
PROGRAM = ("lazyfs_daemon.py", "lazyfs_cache.py")
READY_S = 15.0  # the daemon has this long to mount and answer

# Mounts of ours whose daemon is gone (a crashed run; the workspace sweep SIGKILLs daemons):
# unmount them lazily, then remove the mount point and its run directory if nothing else is
# left in them. A mount whose daemon lives belongs to a run in progress and is left alone.
SWEEP = r"""
awk '$3 == "fuse.zkchaos-lazyfs" {print $1, $2}' /proc/mounts | while read -r dev mnt; do
  pid=${dev#zkchaos-lazyfs:}
  grep -qF lazyfs_daemon /proc/$pid/cmdline 2>/dev/null && continue
  mnt=$(printf '%b' "$mnt")
  { fusermount3 -u -z "$mnt" || fusermount -u -z "$mnt" || umount -l "$mnt"; } 2>/dev/null && echo "unmounted $mnt"
  rmdir "$mnt" "$(dirname "$mnt")" 2>/dev/null
done
true
"""


def unmount_command(mountpoint: str) -> str:
    return (f"fusermount3 -u -z {mountpoint} 2>/dev/null || fusermount -u -z {mountpoint} 2>/dev/null "
            f"|| umount -l {mountpoint}")


def mfusepy_source() -> Path:
    """The binding's single file, found without importing it (that would load libfuse here)."""
    spec = importlib.util.find_spec("mfusepy")
    if spec is None or spec.origin is None:
        raise RuntimeError("nemesis lazyfs needs the mfusepy package on this machine: pip install mfusepy")
    return Path(spec.origin)


class LazyfsFamily(recovery.RestartFamily):
    name = "lazyfs"
    faults = ("lose-unsynced",)
    heal_f = "lazyfs-heal"
    requires = (Process, Primary, DataFiles)
    needs = Needs(fuse=True)
    target_specs = SPECS

    def __init__(self) -> None:
        super().__init__()
        self.mounted: list[str] = []  # nodes whose data directory is our mount

    # --- mounting ----------------------------------------------------------------------------

    def setup(self, ctx: NemesisContext) -> None:
        binding = mfusepy_source()
        for node in ctx.nodes:
            node.remote.run(SWEEP, timeout=60, sudo=False)
            self.mount(node, binding)

    def mount(self, node: Node, binding: Path) -> None:
        d = node.dir
        node.remote.run(f"mkdir -p {d}/lazyfs {d}/lazyfs-backing {d}/data", timeout=30, sudo=False)
        for path in [binding, *(HERE / name for name in PROGRAM)]:
            node.remote.upload(path, f"{d}/lazyfs/{path.name}")
        serve = (f"echo $$ > {d}/lazyfs.pid; exec python3 {d}/lazyfs/lazyfs_daemon.py serve "
                 f"{d}/lazyfs-backing {d}/data {d}/lazyfs.sock --write-through myid")
        self.mounted.append(node.name)  # listed first: a half-made mount is still unmounted
        node.remote.run(f"setsid sh -c '{serve}' >> {d}/lazyfs.log 2>&1 < /dev/null &", timeout=30, sudo=False)
        deadline = time.monotonic() + READY_S
        while not node.remote.run(_control(node, "status"), timeout=30, check=False, sudo=False).ok:
            if time.monotonic() > deadline or not _daemon_alive(node):
                log_tail = node.remote.run(f"tail -n 5 {d}/lazyfs.log", timeout=20, check=False, sudo=False).stdout
                raise RuntimeError(f"{node.name}: the lazyfs daemon did not mount {d}/data: {log_tail.strip()}")
            time.sleep(0.2)

    def control(self, node: Node, command: str) -> list[str]:
        """Send the daemon a command; its answer's words."""
        return node.remote.run(_control(node, command), timeout=60, sudo=False).stdout.split()

    # --- faults ------------------------------------------------------------------------------

    def choose(self, ctx: NemesisContext) -> Fault:
        spec, nodes = ctx.pick(self.specs)
        return Fault("lose-unsynced", tuple(n.name for n in nodes), {"spec": spec})

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        return self.restart_around(ctx, fault.targets, self.lose)

    def lose(self, node: Node) -> dict[str, int]:
        _, files, pages = self.control(node, "lose")
        return {"lost_files": int(files), "lost_pages": int(pages)}

    # --- teardown ----------------------------------------------------------------------------

    def teardown(self, ctx: NemesisContext) -> None:
        """Heal, then take the mounts away under servers stopped for the purpose, and start
        again those that ran. Every node is attempted; one we cannot reach stays listed."""
        if self.active():
            try:
                self.heal(ctx)
            except Exception as e:  # noqa: BLE001 - the mounts must go all the same
                log.warning("lazyfs heal at teardown: %s", e)
        nodes = [ctx.node(name) for name in self.mounted]
        running = [n for n in nodes if _quietly(lambda n=n: ctx.db.is_running(n), n, "check the server")]
        for node in running:
            _quietly(lambda n=node: ctx.db.stop(n), node, "stop the server")
        self.mounted = [n.name for n in nodes if not _quietly(lambda n=n: self.unmount(n), n, "unmount")]
        for node in running:
            _quietly(lambda n=node: ctx.db.start(n), node, "start the server again")

    def unmount(self, node: Node) -> bool:
        """Write back what is unsynced, unmount, wait for the daemon to go, and put the backing
        directory where the mount was."""
        d = node.dir
        if not d:
            raise RuntimeError("its run directory is gone")
        if _daemon_alive(node):
            self.control(node, "sync")
        mounted = f"grep -qF ' {d}/data fuse.zkchaos-lazyfs ' /proc/mounts"
        node.remote.run(f"if {mounted}; then {unmount_command(f'{d}/data')}; fi", timeout=30, sudo=False)
        deadline = time.monotonic() + 10
        while _daemon_alive(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _daemon_alive(node):  # it never mounted, or hangs: it must not outlive the run
            node.remote.run(f"kill -KILL $(cat {d}/lazyfs.pid)", timeout=20, sudo=False)
        node.remote.run(f"rmdir {d}/data && mv {d}/lazyfs-backing {d}/data", timeout=30, sudo=False)
        return True


def _control(node: Node, command: str) -> str:
    return f"python3 {node.dir}/lazyfs/lazyfs_daemon.py control {node.dir}/lazyfs.sock {command}"


def _daemon_alive(node: Node) -> bool:
    check = f"pid=$(cat {node.dir}/lazyfs.pid 2>/dev/null) && grep -qF lazyfs_daemon /proc/$pid/cmdline"
    return node.remote.run(check, timeout=20, check=False, sudo=False).ok


def _quietly(action, node: Node, what: str) -> Any:
    """`action()`, or False with a warning: teardown goes on to the next node."""
    try:
        return action()
    except Exception as e:  # noqa: BLE001
        log.warning("lazyfs teardown: %s: could not %s: %s", node.name, what, e)
        return False
