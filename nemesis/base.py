"""The Nemesis protocol and the context every fault family works in.

A nemesis injects one kind of fault (`start`), undoes exactly what it did (`heal`), and heals
again in `teardown`, which the runner calls on every exit path. Targets are chosen at random
from the variants a family offers (a random node, the leader, a minority, ...).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from harness.db import Node, ServerDB
    from harness.preflight import Needs


@dataclass
class NemesisContext:
    nodes: list[Node]
    db: ServerDB
    rng: random.Random = field(default_factory=random.Random)

    def leader(self) -> Node | None:
        return self.db.leader(self.nodes)

    def minority(self) -> list[Node]:
        k = self.rng.randint(1, max(1, (len(self.nodes) - 1) // 2))
        return self.rng.sample(self.nodes, k)


class Nemesis(Protocol):
    name: str  # the family: partition, kill, pause, clock
    start_f: str  # history f of the fault, e.g. "start-partition"
    stop_f: str  # history f of the heal, e.g. "stop-partition"
    requires: tuple[type, ...]  # DB capabilities (harness.db.capabilities) it uses
    needs: Needs  # what it needs of every host (root, iptables, ...)

    def start(self, ctx: NemesisContext) -> Any:
        """Inject a fault; return a JSON-able description of what was done."""

    def heal(self, ctx: NemesisContext) -> Any:
        """Undo whatever is in effect; return what was undone."""

    def teardown(self, ctx: NemesisContext) -> None:
        """Heal, whatever state we are in; never raises for a node that is gone."""


def pick_targets(ctx: NemesisContext, variant: str) -> list[Node]:
    """Nodes for a kill/pause variant: one random node, the leader, or a minority."""
    if variant == "leader":
        leader = ctx.leader()
        return [leader] if leader is not None else [ctx.rng.choice(ctx.nodes)]
    if variant == "minority":
        return ctx.minority()
    return [ctx.rng.choice(ctx.nodes)]
