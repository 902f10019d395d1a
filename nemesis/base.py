"""What a fault family is, and the context every family works in.

A family (after Jepsen's nemesis with its `fs`) names the history `f`s it emits: one or more
faults and one heal. The schedule asks it to `choose` a fault (a pure decision from the seeded
random source and the cluster's state), records the choice, has the family `inject` it, and later
`heal` it; `setup` runs before the DB starts (a family may need the servers started its way) and
`teardown` on every way out, undoing whatever is still in effect, never raising for a node that
is gone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from . import targets as T

if TYPE_CHECKING:
    from harness.db import Node, ServerDB
    from harness.preflight import Needs
    from harness.workload import Option


@dataclass
class NemesisContext:
    nodes: list[Node]
    db: ServerDB
    rng: random.Random = field(default_factory=random.Random)
    options: Mapping[str, Any] = field(default_factory=dict)
    target_specs: list[str] | None = None  # --nemesis-targets, when given
    clients: list = field(default_factory=list)  # the workload's live clients (client-side faults)

    def leader(self) -> Node | None:
        return self.db.leader(self.nodes)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def pick(self, specs: list[str]) -> tuple[str, list[Node]]:
        """A random spec of `specs` and the nodes it names now."""
        spec = self.rng.choice(specs)
        return spec, T.pick(spec, self)


@dataclass(frozen=True)
class Fault:
    """A fault as the history records it: its f, the nodes it hits, and its parameters."""

    f: str
    targets: tuple[str, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> dict[str, Any]:
        return {"targets": list(self.targets), **self.params}

    def describe(self) -> str:
        what = " ".join(f"{k}={v}" for k, v in self.params.items() if not isinstance(v, (dict, list)))
        return f"{self.f} {','.join(self.targets)} {what}".strip()


class Family:
    """Defaults for a fault family; subclasses set the class attributes and the methods."""

    name: str = ""
    faults: tuple[str, ...] = ()  # history fs of its faults
    heal_f: str = ""  # history f of its heal
    requires: tuple[type, ...] = ()  # DB capabilities (harness.db.capabilities)
    needs: Needs
    options: tuple[Option, ...] = ()  # its own command-line options
    target_specs: tuple[str, ...] = ()  # which target specs it draws from (see targets.py)
    needs_targets: bool = True  # False: it has faults that name no target (partition shapes)
    # Its heal restarts nodes and waits until they serve, which other faults (a partition of
    # every node) can prevent: the final heal undoes those first.
    heal_needs_quorum: bool = False

    def __init__(self) -> None:
        self.specs: list[str] = list(self.target_specs)

    def configure(self, specs: list[str]) -> None:
        """The target specs this run allows (the family's own, narrowed by --nemesis-targets)."""
        self.specs = specs

    def setup(self, ctx: NemesisContext) -> None:
        """Before the DB starts on the nodes."""

    def choose(self, ctx: NemesisContext) -> Fault:
        raise NotImplementedError

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        """Do `fault`; return a JSON-able account of what was done."""
        raise NotImplementedError

    def heal(self, ctx: NemesisContext) -> Any:
        """Undo what is in effect; raise if something could not be undone (it stays listed)."""
        raise NotImplementedError

    def active(self) -> bool:
        """Whether a fault of this family is in effect."""
        raise NotImplementedError

    def teardown(self, ctx: NemesisContext) -> None:
        """Undo whatever is in effect on every node, whatever happened before."""
        if self.active():
            self.heal(ctx)
