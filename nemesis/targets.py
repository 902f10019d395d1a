"""Which nodes a fault hits (after Jepsen's node specs): one, a minority, a majority, all, the
leader, the followers, or the primaries (the leader and a minority around it).

`--nemesis-targets` narrows the specs every family may draw from; a spec the cluster is too small
for is refused before any node is touched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import NemesisContext

SPECS = ("one", "minority", "majority", "all", "leader", "followers", "primaries")


class TargetError(ValueError):
    """A target spec that does not exist, or one this cluster is too small for."""


def infeasible(spec: str, n: int) -> str | None:
    """Why `spec` cannot be used on `n` nodes, or None when it can."""
    if spec not in SPECS:
        return f"unknown target {spec!r}; choose from {', '.join(SPECS)}"
    need = {"minority": 3, "majority": 3, "followers": 2, "primaries": 3}.get(spec, 1)
    if n < need:
        return f"target {spec} needs at least {need} nodes, the cluster has {n}"
    return None


def allowed(family_specs: tuple[str, ...], requested: list[str] | None, n: int) -> list[str]:
    """The specs a family may use: its own, narrowed to the requested ones, feasible on n nodes."""
    for spec in requested or ():
        reason = infeasible(spec, n)
        if reason:
            raise TargetError(reason)
    specs = [s for s in family_specs if requested is None or s in requested]
    return [s for s in specs if infeasible(s, n) is None]


def pick(spec: str, ctx: NemesisContext) -> list:
    """The nodes `spec` names now (the leader is asked for when needed)."""
    nodes, rng = ctx.nodes, ctx.rng
    n = len(nodes)
    if spec == "one":
        return [rng.choice(nodes)]
    if spec == "all":
        return list(nodes)
    if spec == "minority":
        return rng.sample(nodes, rng.randint(1, (n - 1) // 2))
    if spec == "majority":
        return rng.sample(nodes, rng.randint(n // 2 + 1, n - 1))
    leader = ctx.leader() or rng.choice(nodes)
    others = [x for x in nodes if x is not leader]
    if spec == "leader":
        return [leader]
    if spec == "followers":
        return others
    if spec == "primaries":
        return [leader, *rng.sample(others, rng.randint(0, (n - 1) // 2 - 1))]
    raise TargetError(f"unknown target {spec!r}")
