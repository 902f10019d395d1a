"""Disk faults: damage a stopped node's durable state, then start it again and watch what the
server makes of it.

A fault (history f) kills the target servers, damages each one's files in the DB's own layout
(`DataFiles`), starts them again and waits until each serves, exits (it refused its data) or runs
out of time; the fault's window is that restart and recovery, and the completion records exactly
what was done (file, offsets, bytes) and how each node came back. The heal (`disk-heal`) closes
the window: a node that did not come back is started again, and one that exits is re-seeded
(state wiped, myid kept) so it rejoins from the others (see recovery.py).

- truncate-log: cut the newest log's data (ZooKeeper's zero preallocation excluded) by `bytes`;
- corrupt-log / corrupt-snapshot: XOR `flips` bytes of the newest log / snapshot's data;
- delete-snapshot: remove the newest snapshot;
- wipe-data: remove everything in the data directory but myid.

At most a minority of the nodes is hit at once unless `--disk-max-targets` says majority (all but
one) or all: damage on a majority can lose acknowledged writes by design.
"""

from __future__ import annotations

import json
import random
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.db.capabilities import DataFiles, Primary, Process
from harness.preflight import Needs
from harness.workload import Option

from . import recovery
from .base import Fault, NemesisContext
from .targets import SPECS

if TYPE_CHECKING:
    from harness.db import Node

FAULTS = ("truncate-log", "corrupt-log", "corrupt-snapshot", "delete-snapshot", "wipe-data")
LOG_HEADER_MAX = 16  # bytes: ZooKeeper's log file header; zkchaos's segment header is shorter
CAPS = ("minority", "majority", "all")
MAX_CUT = 256  # bytes: a few records of either DB's log
MAX_FLIPS = 4
NODE_HELPER = Path(__file__).with_name("disk_node.py")


def spec_size(spec: str, n: int) -> int:
    """The most nodes `spec` can name in a cluster of n."""
    return {"one": 1, "leader": 1, "minority": (n - 1) // 2, "primaries": (n - 1) // 2,
            "majority": n - 1, "followers": n - 1, "all": n}[spec]


def cap_size(cap: str, n: int) -> int:
    """How many nodes `--disk-max-targets` lets one fault hit."""
    return {"minority": (n - 1) // 2, "majority": n - 1, "all": n}[cap]


def allowed_specs(specs: list[str], cap: str, n: int) -> list[str]:
    return [s for s in specs if 0 < spec_size(s, n) <= cap_size(cap, n)]


def plan_flips(end: int, count: int, rng: random.Random, start: int = 0) -> list[tuple[int, int]]:
    """(offset, XOR mask) for `count` distinct bytes between `start` and `end` of a file."""
    offsets = sorted(rng.sample(range(start, end), min(count, max(0, end - start))))
    return [(offset, rng.randint(1, 255)) for offset in offsets]


def plan_cut(end: int, cut: int) -> int:
    """The size a file keeps when its data's tail loses `cut` bytes."""
    return max(0, end - cut)


class DiskFamily(recovery.RestartFamily):
    name = "disk"
    faults = FAULTS
    heal_f = "disk-heal"
    requires = (Process, Primary, DataFiles)
    needs = Needs(helpers=True)  # disk_node.py runs on the node
    target_specs = SPECS
    options = (
        Option("disk-max-targets", "minority", "How many nodes one disk fault may damage at once: minority, "
               "majority (all but one) or all (acknowledged writes may then be lost by design).", choices=CAPS),
    )

    def setup(self, ctx: NemesisContext) -> None:
        cap = ctx.options.get("disk_max_targets", "minority")
        self.specs = allowed_specs(self.specs, cap, len(ctx.nodes))
        if not self.specs:
            raise ValueError(f"nemesis disk: no target fits --disk-max-targets {cap} on {len(ctx.nodes)} "
                             "node(s); allow majority or all")

    def choose(self, ctx: NemesisContext) -> Fault:
        f = ctx.rng.choice(FAULTS)
        spec, nodes = ctx.pick(self.specs)
        params: dict[str, Any] = {"spec": spec}
        if f == "truncate-log":
            params["bytes"] = ctx.rng.randint(1, MAX_CUT)
        elif f in ("corrupt-log", "corrupt-snapshot"):
            params.update(flips=ctx.rng.randint(1, MAX_FLIPS), seed=ctx.rng.randrange(2**31))
        return Fault(f, tuple(n.name for n in nodes), params)

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        return self.restart_around(ctx, fault.targets, lambda node: self.damage(ctx, node, fault))

    def damage(self, ctx: NemesisContext, node: Node, fault: Fault) -> dict[str, Any]:
        """Do the fault to one stopped node; what was done, exactly."""
        layout = ctx.db.data_layout(node)
        if fault.f == "wipe-data":
            recovery.wipe_state(node, layout.data_dir)
            return {"wiped": layout.data_dir}
        pattern = layout.snapshots if "snapshot" in fault.f else layout.logs
        files = list_files(node, pattern)
        if not files:
            return {"skipped": f"no file matches {pattern}"}
        newest = _newest_with_data(files) if "log" in fault.f else files[-1]
        path = newest["path"]
        if fault.f == "delete-snapshot":
            node.remote.run(f"rm -f {shlex.quote(path)}", timeout=30, sudo=False)
            return {"file": path, "deleted_bytes": newest["size"]}
        if fault.f == "truncate-log":
            size = plan_cut(newest["end"], fault.params["bytes"])
            return {"file": path, "data_end": newest["end"], **_helper(node, "cut", path, str(size))}
        # Seeded per node: a replayed fault flips the same offsets of each node's file.
        # A log's flips land in its records, past the file header (damage there is a different
        # fault: a file that is no log at all).
        plan = plan_flips(newest["end"], fault.params["flips"], random.Random(f"{fault.params['seed']}:{node.name}"),
                          LOG_HEADER_MAX if "log" in fault.f else 0)
        if not plan:
            return {"file": path, "skipped": "no data to corrupt"}
        flips = _helper(node, "flip", path, *(f"{offset}:{mask}" for offset, mask in plan))
        return {"file": path, "data_end": newest["end"], "flipped": flips}


def _newest_with_data(files: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest log holding records, not just the header of a segment begun at a restart."""
    return next((f for f in reversed(files) if f.get("end", 0) > LOG_HEADER_MAX), files[-1])


def list_files(node: Node, pattern: str) -> list[dict[str, Any]]:
    """The node's files matching `pattern`, oldest first: path, size and where the data ends."""
    return _helper(node, "list", pattern)


def _helper(node: Node, *args: str) -> Any:
    """Run disk_node.py on the node with `args`; its JSON answer."""
    source = NODE_HELPER.read_text()
    command = f"python3 - {' '.join(shlex.quote(a) for a in args)} <<'ZKCHAOS_EOF'\n{source}ZKCHAOS_EOF"
    return json.loads(node.remote.run(command, timeout=120, sudo=False).stdout)
