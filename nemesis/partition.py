"""Network partitions: iptables DROP rules inside each victim's namespace (or on a remote host).

Every rule carries a comment naming zkchaos, and we remember each one we add, so healing
deletes exactly our rules; teardown also sweeps any commented rule a crashed run left behind.
Variants (as in Jepsen): random halves, one node isolated, the leader isolated, a majorities
ring (every node sees a majority, no two the same one), and a bridge (two halves that share one
node).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from harness.db.capabilities import Primary
from harness.preflight import Needs

if TYPE_CHECKING:
    from harness.db import Node

from .base import NemesisContext

log = logging.getLogger(__name__)

COMMENT = "zkchaos-partition"
VARIANTS = ("halves", "isolate-one", "isolate-leader", "majorities-ring", "bridge")


def _rule(src: str) -> str:
    return f"INPUT -s {src} -j DROP -m comment --comment {COMMENT}"


def grudge_for(variant: str, ctx: NemesisContext) -> dict[str, set[str]]:
    """node name -> names of the nodes it must not hear from."""
    nodes = [n.name for n in ctx.nodes]
    rng = ctx.rng
    if variant in ("isolate-one", "isolate-leader"):
        victim = None
        if variant == "isolate-leader":
            leader = ctx.leader()
            victim = leader.name if leader is not None else None
        victim = victim or rng.choice(nodes)
        return _components([[victim], [n for n in nodes if n != victim]])
    if variant == "halves":
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        cut = len(shuffled) // 2
        return _components([shuffled[:cut], shuffled[cut:]])
    if variant == "majorities-ring" and len(nodes) >= 5:
        ring = nodes[:]
        rng.shuffle(ring)
        # Each node hears the `reach` nearest neighbours on either side: 2*reach + 1 is at
        # least a majority, yet short of everyone, so every majority is a different one.
        n = len(ring)
        reach = (n // 2 + 1) // 2
        grudge: dict[str, set[str]] = {}
        for i, name in enumerate(ring):
            near = {ring[(i + d) % n] for d in range(-reach, reach + 1)}
            grudge[name] = set(ring) - near
        return grudge
    if variant == "bridge" and len(nodes) >= 3:
        shuffled = nodes[:]
        rng.shuffle(shuffled)
        rest = shuffled[1:]  # shuffled[0] is the bridge: it keeps both sides
        cut = len(rest) // 2
        a, b = set(rest[:cut]), set(rest[cut:])
        grudge = {name: set() for name in nodes}
        for x in a:
            grudge[x] = set(b)
        for y in b:
            grudge[y] = set(a)
        return grudge
    return grudge_for("halves", ctx)


def _components(parts: list[list[str]]) -> dict[str, set[str]]:
    everyone = {n for part in parts for n in part}
    return {n: everyone - set(part) for part in parts for n in part}


class PartitionNemesis:
    name = "partition"
    start_f = "start-partition"
    stop_f = "stop-partition"
    requires = (Primary,)  # to isolate the leader
    needs = Needs(root=True, iptables=True)

    def __init__(self, variants: tuple[str, ...] = VARIANTS) -> None:
        self.variants = variants
        self.added: dict[str, list[str]] = {}  # node name -> source addresses we dropped

    def start(self, ctx: NemesisContext) -> Any:
        variant = ctx.rng.choice(self.variants)
        grudge = grudge_for(variant, ctx)
        by_name = {n.name: n for n in ctx.nodes}
        for name, enemies in grudge.items():
            node = by_name[name]
            for enemy in sorted(enemies):
                src = by_name[enemy].address
                node.remote.run(f"iptables -w -A {_rule(src)}", timeout=30)
                self.added.setdefault(name, []).append(src)
        return {"variant": variant, "grudge": {k: sorted(v) for k, v in grudge.items() if v}}

    def heal(self, ctx: NemesisContext) -> Any:
        """Delete each rule we added; a node we cannot reach keeps its entries, so the next
        heal (or teardown) tries again, and the failure is raised after the others are done."""
        by_name = {n.name: n for n in ctx.nodes}
        healed: dict[str, int] = {}
        failed: list[str] = []
        for name, sources in list(self.added.items()):
            node = by_name[name]
            left = []
            for src in sources:
                try:
                    node.remote.run(f"iptables -w -D {_rule(src)}", timeout=30, check=False)
                except Exception as e:  # noqa: BLE001 - go on with the other nodes
                    log.warning("could not remove a partition rule on %s: %s", name, e)
                    left.append(src)
            healed[name] = len(sources) - len(left)
            if left:
                self.added[name] = left
                failed.append(name)
            else:
                del self.added[name]
        if failed:
            raise RuntimeError(f"partition rules still in place on {', '.join(failed)}")
        return {"removed_rules": healed}

    def teardown(self, ctx: NemesisContext) -> None:
        self.heal(ctx)
        for node in ctx.nodes:
            # Rules a crashed earlier run left: ours carry the comment, nobody else's do.
            try:
                rules = node.remote.run(f"iptables -w -S INPUT | grep -- '{COMMENT}' || true", timeout=30).stdout
                for line in rules.splitlines():
                    if line.startswith("-A "):
                        node.remote.run(f"iptables -w -D {line[3:]}", timeout=30, check=False)
            except Exception as e:  # noqa: BLE001 - teardown must go on to the next node
                log.warning("could not sweep partition rules on %s: %s", node.name, e)


def drops_between(a: Node, b: Node) -> bool:
    """Whether `a` currently drops traffic from `b` (for tests)."""
    out = a.remote.run(f"iptables -w -S INPUT | grep -- '{COMMENT}' || true", timeout=30).stdout
    return f"-s {b.address}/32" in out or f"-s {b.address} " in out
