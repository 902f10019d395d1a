"""Process faults: SIGKILL then restart (kill), SIGSTOP then SIGCONT (pause), and a rolling
restart (each node killed and started in turn, waiting for it to serve before the next).

Targets: any spec (one, a minority, a majority, all, the leader, the followers, the primaries):
killing all nodes at once tests that acknowledged writes are durable, which no minority fault
can. Healing restarts or resumes exactly the nodes this family faulted; teardown undoes the fault
on every node, so nothing stays dead or frozen whatever happened before.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from harness.db.capabilities import Pause, Primary, Process
from harness.preflight import Needs

from .base import Family, Fault, NemesisContext
from .targets import SPECS

if TYPE_CHECKING:
    from harness.db import Node

log = logging.getLogger(__name__)
RESTART_WAIT_S = 10.0  # a rolling restart waits this long at most for each node to serve again


class ProcessFamily(Family):
    """A fault done to the server process of some nodes, and its undoing."""

    needs = Needs()  # the server runs as the login user: signalling it needs no root
    target_specs = SPECS

    def __init__(self) -> None:
        super().__init__()
        self.victims: list[str] = []

    def fault(self, ctx: NemesisContext, node: Node) -> None:
        raise NotImplementedError

    def undo(self, ctx: NemesisContext, node: Node) -> None:
        raise NotImplementedError

    def choose(self, ctx: NemesisContext) -> Fault:
        spec, nodes = ctx.pick(self.specs)
        return Fault(self.faults[0], tuple(n.name for n in nodes), {"spec": spec})

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        for name in fault.targets:
            self.victims.append(name)  # listed first: a half-done fault is still undone
            self.fault(ctx, ctx.node(name))
        return {"nodes": list(fault.targets)}

    def active(self) -> bool:
        return bool(self.victims)

    def heal(self, ctx: NemesisContext) -> Any:
        """Undo on every victim; one we cannot reach stays listed for the next attempt."""
        done, left = [], []
        for name in dict.fromkeys(self.victims):
            try:
                self.undo(ctx, ctx.node(name))
                done.append(name)
            except Exception as e:  # noqa: BLE001 - go on with the other victims
                log.warning("%s: could not undo on %s: %s", self.name, name, e)
                left.append(name)
        self.victims = left
        if left:
            raise RuntimeError(f"{self.name} still in effect on {', '.join(left)}")
        return {"nodes": done}

    def teardown(self, ctx: NemesisContext) -> None:
        """Undo on every node; a victim that cannot be reached stays listed (still in effect)."""
        left = []
        for node in ctx.nodes:
            try:
                self.undo(ctx, node)
            except Exception as e:  # noqa: BLE001 - teardown goes on to the next node
                log.warning("%s teardown on %s: %s", self.name, node.name, e)
                if node.name in self.victims:
                    left.append(node.name)
        self.victims = left


class KillFamily(ProcessFamily):
    name = "kill"
    faults = ("kill", "rolling-restart")
    heal_f = "start"
    requires = (Process, Primary)

    def choose(self, ctx: NemesisContext) -> Fault:
        if ctx.rng.random() < 0.2 and len(ctx.nodes) > 1:
            order = [n.name for n in ctx.nodes]
            ctx.rng.shuffle(order)
            return Fault("rolling-restart", tuple(order))
        return super().choose(ctx)

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        if fault.f != "rolling-restart":
            return super().inject(ctx, fault)
        self.victims = list(fault.targets)  # until healed, the family counts as active
        for name in fault.targets:
            node = ctx.node(name)
            ctx.db.kill(node)
            ctx.db.start(node)
            _wait_serving(ctx, node)
        return {"restarted": list(fault.targets)}

    def fault(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.kill(node)

    def undo(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.start(node)  # a no-op for a server that runs


class PauseFamily(ProcessFamily):
    name = "pause"
    faults = ("pause",)
    heal_f = "resume"
    requires = (Pause, Primary)

    def fault(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.pause(node)

    def undo(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.resume(node)


def _wait_serving(ctx: NemesisContext, node: Node) -> None:
    deadline = time.monotonic() + RESTART_WAIT_S
    while ctx.db.mode(node) is None and time.monotonic() < deadline:
        time.sleep(0.1)
