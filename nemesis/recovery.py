"""How a node comes back after its data was damaged (disk) or lost (lazyfs): restarted, watched
until it serves, exits (it refused its data) or runs out of time; and, when it refuses, re-seeded
the way an operator would: its state wiped (myid kept) so it rejoins from the others (by SNAP, or
by DIFF while the leader still holds the whole history). The families that damage data share
this, so their heals mean the same thing."""

from __future__ import annotations

import shlex
import time
from typing import TYPE_CHECKING, Any, Callable

from .base import Family

if TYPE_CHECKING:
    from harness.db import Node

    from .base import NemesisContext

RECOVERY_S = 60.0  # a restarted node has this long to serve again (a JVM, an election, a SNAP)
# Once some of the restarted nodes exited (they refused their data), the others likely wait for
# them to form a quorum, which only the heal's re-seeding brings: wait this much longer, not more.
AFTER_EXIT_S = 10.0
# While no node of the ensemble serves at all, another fault (a partition of every node, a pause
# of the majority) holds the quorum back and only its heal brings it: wait this long, not more.
NO_QUORUM_S = 15.0
SERVING = "serving"
RESEEDED = "reseeded, "


def await_serving(ctx: NemesisContext, nodes: list[Node], timeout: float = RECOVERY_S) -> dict[str, str]:
    """node name -> how its restart ended: `serving after 2.1s`, `exited` (the server refused
    to start), or `not serving after 60s` (it runs but does not serve: out of time, soon after
    other nodes of the group exited, or while no node of the ensemble served at all)."""
    started = time.monotonic()
    pending = {n.name: n for n in nodes}
    outcome: dict[str, str] = {}
    first_exit: float | None = None
    any_served = started
    while pending:
        now = time.monotonic()
        elapsed = now - started
        serving_now = {n.name for n in ctx.nodes if ctx.db.mode(n) is not None}
        if serving_now:
            any_served = now
        for name, node in list(pending.items()):
            if name in serving_now:
                outcome[name] = f"{SERVING} after {elapsed:.1f}s"
            elif not ctx.db.is_running(node):
                outcome[name] = "exited"
                first_exit = elapsed if first_exit is None else first_exit
            elif (elapsed > timeout or (first_exit is not None and elapsed > first_exit + AFTER_EXIT_S)
                  or now - any_served > NO_QUORUM_S):
                outcome[name] = f"not serving after {elapsed:.0f}s"
            else:
                continue
            del pending[name]
        time.sleep(0.2)
    return outcome


def serving(outcome: str) -> bool:
    return outcome.removeprefix(RESEEDED).startswith(SERVING)


def wipe_state(node: Node, data_dir: str) -> None:
    """Everything the server keeps in `data_dir` goes, except myid (the node's identity, which
    the harness wrote and the server cannot recreate)."""
    node.remote.run(f"find {shlex.quote(data_dir)} -mindepth 1 -maxdepth 1 ! -name myid -exec rm -rf {{}} +",
                    timeout=120, sudo=False)


def revive(ctx: NemesisContext, nodes: list[Node], timeout: float = RECOVERY_S) -> tuple[dict[str, str], list[str]]:
    """Start `nodes` again and wait until each serves. Those that exit (they refuse their data)
    are re-seeded, once, and waited for again with the rest that did not serve yet (they may have
    waited for those to rejoin). Returns how each came back, and the names of those that did not."""
    for node in nodes:
        ctx.db.start(node)
    report = await_serving(ctx, nodes, timeout)
    refused = [n for n in nodes if report[n.name] == "exited"]
    if refused:
        for node in refused:
            wipe_state(node, ctx.db.data_layout(node).data_dir)
            ctx.db.start(node)
        waiting = [n for n in nodes if not serving(report[n.name])]
        again = await_serving(ctx, waiting, timeout)
        for node in waiting:
            report[node.name] = (RESEEDED if node in refused else "") + again[node.name]
    return report, [name for name, how in report.items() if not serving(how)]


class RestartFamily(Family):
    """A family whose faults stop nodes, do something to their data and start them again; the
    fault's window is that restart and recovery, which the heal closes (reviving the nodes
    that did not come back)."""

    heal_needs_quorum = True

    def __init__(self) -> None:
        super().__init__()
        self.window = False  # a fault's restart and recovery is under way until healed
        self.unhealthy: list[str] = []  # nodes that have not served since their fault

    def restart_around(self, ctx: NemesisContext, names: tuple[str, ...],
                       act: Callable[[Node], dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Kill every node named, `act` on each (what it returns is recorded), start them all,
        and record how each came back. All are down before any is acted on: one power loss."""
        nodes = [ctx.node(name) for name in names]
        self.window, self.unhealthy = True, list(names)  # first: a half-done fault is still healed
        for node in nodes:
            ctx.db.kill(node)
        done = {node.name: act(node) for node in nodes}
        for node in nodes:
            ctx.db.start(node)
        for name, how in await_serving(ctx, nodes).items():
            done[name]["restart"] = how
        self.unhealthy = [name for name in names if not serving(done[name]["restart"])]
        return done

    def active(self) -> bool:
        return self.window or bool(self.unhealthy)

    def heal(self, ctx: NemesisContext) -> Any:
        report, still_down = revive(ctx, [ctx.node(name) for name in self.unhealthy])
        self.unhealthy = still_down
        if still_down:
            raise RuntimeError(f"{self.name}: {', '.join(still_down)} still not serving: {report}")
        self.window = False
        return report
