"""Process faults: SIGKILL then restart (kill), SIGSTOP then SIGCONT (pause).

Targets: one random node, the leader, or a random minority. Healing restarts or resumes
exactly the nodes this nemesis faulted; teardown does both for every node, so nothing stays
dead or frozen whatever happened before.
"""

from __future__ import annotations

import logging
from typing import Any

from .base import NemesisContext, pick_targets

log = logging.getLogger(__name__)

VARIANTS = ("one", "leader", "minority")


class KillNemesis:
    name = "kill"
    start_f = "kill"
    stop_f = "start"

    def __init__(self, variants: tuple[str, ...] = VARIANTS) -> None:
        self.variants = variants
        self.dead: list[str] = []

    def start(self, ctx: NemesisContext) -> Any:
        variant = ctx.rng.choice(self.variants)
        targets = pick_targets(ctx, variant)
        for node in targets:
            ctx.db.kill(node)
            self.dead.append(node.name)
        return {"variant": variant, "nodes": [n.name for n in targets]}

    def heal(self, ctx: NemesisContext) -> Any:
        by_name = {n.name: n for n in ctx.nodes}
        restarted = []
        for name in self.dead:
            ctx.db.start(by_name[name])
            restarted.append(name)
        self.dead.clear()
        return {"nodes": restarted}

    def teardown(self, ctx: NemesisContext) -> None:
        self.dead = [n.name for n in ctx.nodes]
        for node in ctx.nodes:
            try:
                if not ctx.db.is_running(node):
                    ctx.db.start(node)
            except Exception as e:  # noqa: BLE001
                log.warning("could not restart %s: %s", node.name, e)
        self.dead.clear()


class PauseNemesis:
    name = "pause"
    start_f = "pause"
    stop_f = "resume"

    def __init__(self, variants: tuple[str, ...] = VARIANTS) -> None:
        self.variants = variants
        self.paused: list[str] = []

    def start(self, ctx: NemesisContext) -> Any:
        variant = ctx.rng.choice(self.variants)
        targets = pick_targets(ctx, variant)
        for node in targets:
            ctx.db.pause(node)
            self.paused.append(node.name)
        return {"variant": variant, "nodes": [n.name for n in targets]}

    def heal(self, ctx: NemesisContext) -> Any:
        by_name = {n.name: n for n in ctx.nodes}
        resumed = []
        for name in self.paused:
            ctx.db.resume(by_name[name])
            resumed.append(name)
        self.paused.clear()
        return {"nodes": resumed}

    def teardown(self, ctx: NemesisContext) -> None:
        for node in ctx.nodes:
            try:
                ctx.db.resume(node)
            except Exception as e:  # noqa: BLE001
                log.warning("could not resume %s: %s", node.name, e)
        self.paused.clear()
