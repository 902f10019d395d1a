"""Process faults: SIGKILL then restart (kill), SIGSTOP then SIGCONT (pause).

Targets: one random node, the leader, or a random minority. Healing restarts or resumes
exactly the nodes this nemesis faulted; teardown undoes the fault on every node, so nothing
stays dead or frozen whatever happened before.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from harness.db.capabilities import Pause, Primary, Process
from harness.preflight import Needs

if TYPE_CHECKING:
    from harness.db import Node

from .base import NemesisContext, pick_targets

log = logging.getLogger(__name__)

VARIANTS = ("one", "leader", "minority")


class ProcessNemesis:
    """A fault done to the server process of some nodes, and its undoing."""

    name = "process"
    start_f = "fault"
    stop_f = "undo"
    requires: tuple[type, ...] = (Primary,)  # to pick the leader
    needs = Needs()  # the server runs as the login user: signalling it needs no root

    def __init__(self, variants: tuple[str, ...] = VARIANTS) -> None:
        self.variants = variants
        self.victims: list[str] = []

    def fault(self, ctx: NemesisContext, node: Node) -> None:
        raise NotImplementedError

    def undo(self, ctx: NemesisContext, node: Node) -> None:
        raise NotImplementedError

    def start(self, ctx: NemesisContext) -> Any:
        variant = ctx.rng.choice(self.variants)
        targets = pick_targets(ctx, variant)
        for node in targets:
            self.fault(ctx, node)
            self.victims.append(node.name)
        return {"variant": variant, "nodes": [n.name for n in targets]}

    def heal(self, ctx: NemesisContext) -> Any:
        """Undo on every victim; one we cannot reach stays listed for the next attempt."""
        by_name = {n.name: n for n in ctx.nodes}
        done, left = [], []
        for name in self.victims:
            try:
                self.undo(ctx, by_name[name])
                done.append(name)
            except Exception as e:  # noqa: BLE001 - go on with the other victims
                log.warning("%s: could not undo on %s: %s", self.name, name, e)
                left.append(name)
        self.victims = left
        if left:
            raise RuntimeError(f"{self.name} still in effect on {', '.join(left)}")
        return {"nodes": done}

    def teardown(self, ctx: NemesisContext) -> None:
        for node in ctx.nodes:
            try:
                self.undo(ctx, node)
            except Exception as e:  # noqa: BLE001 - teardown goes on to the next node
                log.warning("%s teardown on %s: %s", self.name, node.name, e)
        self.victims.clear()


class KillNemesis(ProcessNemesis):
    name = "kill"
    start_f = "kill"
    stop_f = "start"
    requires = (Process, Primary)

    def fault(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.kill(node)

    def undo(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.start(node)  # a no-op for a server that runs


class PauseNemesis(ProcessNemesis):
    name = "pause"
    start_f = "pause"
    stop_f = "resume"
    requires = (Pause, Primary)

    def fault(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.pause(node)

    def undo(self, ctx: NemesisContext, node: Node) -> None:
        ctx.db.resume(node)
