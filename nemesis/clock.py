"""Clock faults (after Jepsen's clock nemesis), with libfaketime instead of the machine's clock:
each node's server runs under libfaketime and reads its offset from a file in the node's run
directory on every clock call, so only the servers see a wrong time, never the host.

Faults: `bump-clock` (each target's offset jumps by its own delta, a millisecond to
`--clock-max-offset`, forward or back), `strobe-clock` (flips between the current offset and
another every period for a duration), `skew-clock` (runs fast or slow by a rate for a duration:
the offset ramps in small steps). Heal: `reset-clock` (offset 0, loops stopped).

Whether a node's monotonic clock moves with its offset is fixed when its server starts
(`--clock-monotonic`): ZooKeeper and zkchaos's server expire sessions on monotonic time, so a
fault hits nodes of one kind only and records which (`monotonic`).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click

from harness.db.capabilities import Environment, Primary
from harness.db.base import SetupError
from harness.preflight import Needs
from harness.workload import Option

from . import clock_node
from .base import Family, Fault, NemesisContext
from .targets import SPECS

if TYPE_CHECKING:
    import random

    from harness.db import Node

log = logging.getLogger(__name__)

MODES = ("wall", "both", "mixed")
FAULTS = ("bump-clock", "strobe-clock", "skew-clock")
STROBE_PERIOD_MS = (10, 1000)  # drawn log-uniformly
DURATION_MS = (1000, 30000)  # of strobes and skews
RATE = (0.01, 1.0)  # |rate| of a skew, drawn log-uniformly: 1% to twice (or zero) speed
SKEW_STEP_MS = 50


def fakes_monotonic(nodes: list[Node], mode: str) -> dict[str, bool]:
    """Whether each node's server fakes its monotonic clock too. `mixed`: every other node in
    the cluster's order (the first, the third, ...), so a run is the same on every replay."""
    return {n.name: mode == "both" or (mode == "mixed" and i % 2 == 0) for i, n in enumerate(nodes)}


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _clamp(value: float, limit: int) -> int:
    return int(max(-limit, min(limit, round(value))))


class ClockFamily(Family):
    name = "clock"
    faults = FAULTS
    heal_f = "reset-clock"
    requires = (Environment, Primary)  # Primary: to target the leader
    needs = Needs(faketime=True)  # the servers and loops run as the login user: no root
    target_specs = SPECS
    options = (
        Option("clock-monotonic", "mixed",
               "Which clocks clock faults move: wall (the wall clock only), both (monotonic too), mixed "
               "(every other node fakes its monotonic clock too; a fault hits nodes of one kind).",
               choices=MODES),
        Option("clock-max-offset", 60.0, "Largest clock offset a clock fault sets, in seconds.",
               type=click.FloatRange(0.001, 86400.0)),
    )

    def __init__(self) -> None:
        super().__init__()
        self.offsets: dict[str, int] = {}  # node -> its offset (ms) once any loop is done
        self.touched: set[str] = set()  # nodes whose offset may be off or whose loop may run

    # --- before the servers start ------------------------------------------------------------

    def setup(self, ctx: NemesisContext) -> None:
        """Every server starts under libfaketime at offset 0, faking its monotonic clock or not."""
        kinds = fakes_monotonic(ctx.nodes, self._mode(ctx))
        for node in ctx.nodes:
            library = clock_node.find_library(node)
            if library is None:
                raise SetupError(f"{node.name}: libfaketime not found: apt-get install libfaketime")
            clock_node.set_offset(node, 0)
            shared = clock_node.make_shared_memory(node, library)
            ctx.db.set_env(node, clock_node.server_env(node, library, kinds[node.name], shared))

    # --- choosing ----------------------------------------------------------------------------

    def choose(self, ctx: NemesisContext) -> Fault:
        spec, picked = ctx.pick(self.specs)
        kinds = fakes_monotonic(ctx.nodes, self._mode(ctx))
        monotonic = ctx.rng.choice(sorted({kinds[n.name] for n in picked}))
        targets = tuple(n.name for n in picked if kinds[n.name] == monotonic)
        f = ctx.rng.choice(FAULTS)
        params: dict[str, Any] = {"spec": spec, "monotonic": monotonic}
        params.update(self._draw(f, targets, ctx.rng, self._max_offset_ms(ctx)))
        return Fault(f, targets, params)

    def _draw(self, f: str, targets: tuple[str, ...], rng: random.Random, limit: int) -> dict[str, Any]:
        """The fault's parameters; no offset it leads to exceeds `limit` ms."""
        if f == "skew-clock":
            rate = round(rng.choice((-1, 1)) * _log_uniform(rng, *RATE), 4)
            headroom = limit - max(abs(self.offsets.get(name, 0)) for name in targets)
            duration = min(rng.randint(*DURATION_MS), int(headroom / abs(rate)))
            return {"rate": rate, "duration_ms": max(duration, 1), "step_ms": SKEW_STEP_MS}
        deltas = {}
        for name in targets:
            now = self.offsets.get(name, 0)
            wanted = now + rng.choice((-1, 1)) * _log_uniform(rng, 1, limit)
            deltas[name] = _clamp(wanted, limit) - now
        if f == "bump-clock":
            return {"delta_ms": deltas}
        return {"delta_ms": deltas, "period_ms": round(_log_uniform(rng, *STROBE_PERIOD_MS)),
                "duration_ms": rng.randint(*DURATION_MS)}

    @staticmethod
    def _mode(ctx: NemesisContext) -> str:
        return str(ctx.options.get("clock_monotonic", "mixed"))

    @staticmethod
    def _max_offset_ms(ctx: NemesisContext) -> int:
        return max(1, round(float(ctx.options.get("clock_max_offset", 60.0)) * 1000))

    # --- doing and undoing -------------------------------------------------------------------

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        apply: Callable[[Node, Fault], dict[str, Any]] = {
            "bump-clock": self._bump, "strobe-clock": self._strobe, "skew-clock": self._skew}[fault.f]
        return self._each(ctx, fault.targets, lambda node: apply(node, fault))

    def _bump(self, node: Node, fault: Fault) -> dict[str, Any]:
        now = self.offsets.get(node.name, 0)
        to = now + fault.params["delta_ms"][node.name]
        clock_node.set_offset(node, to)
        self.offsets[node.name] = to
        return {"from_ms": now, "to_ms": to}

    def _strobe(self, node: Node, fault: Fault) -> dict[str, Any]:
        low = self.offsets.get(node.name, 0)
        high = low + fault.params["delta_ms"][node.name]
        period, duration = fault.params["period_ms"], fault.params["duration_ms"]
        pid = clock_node.start_strobe(node, low, high, period, duration)
        return {"from_ms": low, "high_ms": high, "period_ms": period, "duration_ms": duration, "pid": pid}

    def _skew(self, node: Node, fault: Fault) -> dict[str, Any]:
        now = self.offsets.get(node.name, 0)
        duration = fault.params["duration_ms"]
        to = now + round(fault.params["rate"] * duration)
        pid = clock_node.start_skew(node, now, to, duration, fault.params["step_ms"])
        self.offsets[node.name] = to
        return {"from_ms": now, "to_ms": to, "duration_ms": duration, "pid": pid}

    def _each(self, ctx: NemesisContext, names: Iterable[str], action: Callable[[Node], dict[str, Any]]) -> dict[str, Any]:
        """`action` on every named node, each marked touched first (a half-done step is still
        undone); a node that fails is named with its error. Raises when none succeeded."""
        done: dict[str, dict[str, Any]] = {}
        for name in names:
            self.touched.add(name)
            try:
                done[name] = action(ctx.node(name))
            except Exception as e:  # noqa: BLE001 - go on with the other nodes
                log.warning("%s on %s failed: %s", self.name, name, e)
                done[name] = {"error": f"{type(e).__name__}: {e}"}
        if done and all("error" in d for d in done.values()):
            raise RuntimeError("; ".join(f"{n}: {d['error']}" for n, d in done.items()))
        return {"nodes": done}

    def active(self) -> bool:
        return bool(self.touched)

    def heal(self, ctx: NemesisContext) -> Any:
        """Offset 0 and no loop on every touched node; one that cannot be reached stays touched."""
        done, left = {}, []
        for name in sorted(self.touched):
            try:
                self._reset(ctx.node(name))
                done[name] = {"to_ms": 0}
            except Exception as e:  # noqa: BLE001 - go on with the other nodes
                log.warning("reset-clock on %s failed: %s", name, e)
                left.append(name)
        if left:
            raise RuntimeError(f"clock still off on {', '.join(left)}")
        return {"nodes": done}

    def teardown(self, ctx: NemesisContext) -> None:
        """Offset 0, no loop and no shared memory left on every node, whatever happened before;
        safe to repeat."""
        for node in ctx.nodes:
            try:
                self._reset(node)
                clock_node.remove_shared_memory(node)
            except Exception as e:  # noqa: BLE001 - teardown goes on to the next node
                log.warning("clock teardown on %s: %s", node.name, e)

    def _reset(self, node: Node) -> None:
        clock_node.set_offset(node, 0)
        self.offsets[node.name] = 0
        self.touched.discard(node.name)
