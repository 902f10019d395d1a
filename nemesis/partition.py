"""Network partitions: iptables DROP rules in the INPUT chain of each node (its namespace, or a
remote host), every rule tagged with a comment naming zkchaos.

Shapes (after Jepsen's and ClickHouse Keeper's partitioners):
- isolate: the target nodes (one, a minority, a majority, the leader, the primaries, ...) are cut
  off from the rest, both ways;
- mute / deaf: one way only: the targets are heard by nobody but hear everyone (mute), or hear
  nobody but are heard (deaf);
- clients: the servers are fine, but the clients' traffic to the targets' client port is dropped,
  so sessions on those servers expire while the ensemble stays healthy;
- halves, majorities-ring (every node sees a majority, no two the same one), bridge (two halves
  that share one node).
We remember each rule we add, so healing deletes exactly those; teardown also sweeps any tagged
rule a crashed run left behind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.db.capabilities import Primary
from harness.preflight import Needs
from harness.servers import CLIENT_PORT

from .base import Family, Fault, NemesisContext
from .iptables import Rules

if TYPE_CHECKING:
    from harness.db import Node

COMMENT = "zkchaos-partition"
TARGETED = ("isolate", "mute", "deaf", "clients")
SHAPED = ("halves", "majorities-ring", "bridge")


def grudge_for(shape: str, names: list[str], victims: list[str], rng) -> dict[str, set[str]]:
    """node name -> names of the nodes whose packets it drops."""
    rest = [n for n in names if n not in victims]
    if shape == "isolate":
        if not rest:  # all: everyone alone
            return {v: set(names) - {v} for v in names}
        return {**{v: set(rest) for v in victims}, **{r: set(victims) for r in rest}}
    if shape == "mute":  # nobody hears the victims
        return {r: set(victims) for r in rest} if rest else {v: set(victims) - {v} for v in victims}
    if shape == "deaf":  # the victims hear nobody
        return {v: set(names) - {v} for v in victims}
    shuffled = names[:]
    rng.shuffle(shuffled)
    n = len(shuffled)
    if shape == "majorities-ring" and n >= 5:
        # Each node hears the `reach` nearest neighbours on either side: 2*reach + 1 is at
        # least a majority, yet short of everyone, so every majority is a different one.
        reach = (n // 2 + 1) // 2
        return {name: set(shuffled) - {shuffled[(i + d) % n] for d in range(-reach, reach + 1)}
                for i, name in enumerate(shuffled)}
    if shape == "bridge" and n >= 3:
        a, b = shuffled[1:1 + (n - 1) // 2], shuffled[1 + (n - 1) // 2:]  # shuffled[0] is the bridge
        return {**{x: set(b) for x in a}, **{y: set(a) for y in b}}
    cut = n // 2
    left, right = shuffled[:cut], shuffled[cut:]
    return {**{x: set(right) for x in left}, **{y: set(left) for y in right}}


class PartitionFamily(Family):
    name = "partition"
    faults = ("start-partition",)
    heal_f = "stop-partition"
    requires = (Primary,)  # to isolate the leader
    needs = Needs(root=True, iptables=True)
    target_specs = ("one", "minority", "majority", "leader", "followers", "primaries", "all")
    needs_targets = False  # halves, rings and bridges need none

    def __init__(self) -> None:
        super().__init__()
        self.rules = Rules(COMMENT)

    def setup(self, ctx: NemesisContext) -> None:
        for node in ctx.nodes:  # what a crashed run may have left
            self.rules.sweep(node)

    def choose(self, ctx: NemesisContext) -> Fault:
        shape = ctx.rng.choice(TARGETED + SHAPED if self.specs else SHAPED)
        names = [n.name for n in ctx.nodes]
        if shape in SHAPED:
            return Fault("start-partition", (), {"shape": shape,
                                                 "grudge": _sorted(grudge_for(shape, names, [], ctx.rng))})
        spec, victims = ctx.pick(self.specs)
        victim_names = [v.name for v in victims]
        if shape == "clients":
            return Fault("start-partition", tuple(victim_names), {"shape": shape, "spec": spec})
        return Fault("start-partition", tuple(victim_names),
                     {"shape": shape, "spec": spec, "grudge": _sorted(grudge_for(shape, names, victim_names, ctx.rng))})

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        if fault.params["shape"] == "clients":
            rules = [(name, self.rules.spec(f"-s {controller_address(ctx.node(name))} -p tcp --dport {CLIENT_PORT}"))
                     for name in fault.targets]
        else:
            rules = [(name, self.rules.spec(f"-s {ctx.node(enemy).address}"))
                     for name, enemies in fault.params["grudge"].items() for enemy in enemies]
        for name, r in rules:
            self.rules.add(ctx.node(name), r)
        return {"rules": len(rules)}

    def active(self) -> bool:
        return bool(self.rules.added)

    def heal(self, ctx: NemesisContext) -> Any:
        return {"removed_rules": self.rules.remove(ctx.node)}

    def teardown(self, ctx: NemesisContext) -> None:
        try:
            self.heal(ctx)
        finally:
            for node in ctx.nodes:
                self.rules.sweep(node)


def controller_address(node: Node) -> str:
    """Where the harness's clients come from, as the node sees it: our SSH peer address."""
    peer = node.remote.run('echo "${SSH_CLIENT%% *}"', timeout=20, sudo=False).stdout.strip()
    if not peer:
        raise RuntimeError(f"{node.name}: cannot tell the harness's address (no SSH_CLIENT)")
    return peer


def _sorted(grudge: dict[str, set[str]]) -> dict[str, list[str]]:
    return {k: sorted(v) for k, v in sorted(grudge.items()) if v}


def drops_between(a: Node, b: Node) -> bool:
    """Whether `a` currently drops traffic from `b` (for tests)."""
    out = a.remote.run(f"iptables -w -S INPUT | grep -- '{COMMENT}' || true", timeout=30).stdout
    return any(f"-s {b.address}/32 " in line and "--dport" not in line for line in out.splitlines())
