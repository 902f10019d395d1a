"""Packet faults: random loss, flaky links (loss in bursts) and rate limiting, per node (all it
receives, SSH excepted) or between pairs of nodes; and, on hosts whose kernel has netem, delay
and reordering.

Loss and rate limits are iptables rules in the receiving node's INPUT chain (`statistic` for a
probability, `hashlimit` for a rate); a flaky link is a 100% drop rule the nemesis adds and
removes at random moments until healed. Healing removes exactly the rules added. Delay and
reordering need the kernel's netem queueing discipline (`tc qdisc ... netem`): this machine's
kernel lacks it, so those faults are offered only where every node has it, found out at setup.
"""

from __future__ import annotations

import itertools
import random
import logging
import threading
from typing import TYPE_CHECKING, Any

import click

from harness.preflight import Needs
from harness.workload import Option

from .base import Family, Fault, NemesisContext
from .iptables import Rules

if TYPE_CHECKING:
    from harness.db import Node

log = logging.getLogger(__name__)

COMMENT = "zkchaos-packet"
NOT_SSH = "-p tcp ! --dport 22"
NETEM_NOTE = ("delay and reorder need the kernel's netem qdisc; where `tc qdisc add ... netem` fails "
              "(as on kernels built without sch_netem) only loss, bursts and rate limits are offered")


class PacketFamily(Family):
    name = "packet"
    faults = ("drop-packets", "flaky-links", "limit-rate", "delay-packets", "reorder-packets")
    heal_f = "stop-packets"
    needs = Needs(root=True, iptables=True)
    target_specs = ("one", "minority", "majority", "all", "leader", "followers", "primaries")
    options = (
        Option("packet-loss", 0.2, "Drop probability of packet loss faults (0..1). " + NETEM_NOTE + ".",
               type=click.FloatRange(0.0, 1.0)),
        Option("packet-rate", 100, "Packets per second a rate-limited link lets through.",
               type=click.IntRange(1, 1_000_000)),
    )

    def __init__(self) -> None:
        super().__init__()
        self.rules = Rules(COMMENT)
        self.netem: dict[str, str] = {}  # node -> interface, on nodes where netem works
        self.qdiscs: list[str] = []  # nodes with a netem qdisc of ours
        self.flapping: threading.Event | None = None  # set to stop a flaky-link thread
        self.flapper: threading.Thread | None = None

    def setup(self, ctx: NemesisContext) -> None:
        for node in ctx.nodes:
            self.rules.sweep(node)  # what a crashed run may have left
            iface = _netem_interface(node)
            if iface:
                self.netem[node.name] = iface

    def choose(self, ctx: NemesisContext) -> Fault:
        kinds = ["drop-packets", "flaky-links", "limit-rate"]
        if self.netem and len(self.netem) == len(ctx.nodes):
            kinds += ["delay-packets", "reorder-packets"]
        f = ctx.rng.choice(kinds)
        params: dict[str, Any] = {}
        if f in ("delay-packets", "reorder-packets"):
            spec, nodes = ctx.pick(self.specs)
            params = {"spec": spec, "delay_ms": ctx.rng.choice([20, 50, 200]), "jitter_ms": 10}
            return Fault(f, tuple(n.name for n in nodes), params)
        if ctx.rng.random() < 0.5 and len(ctx.nodes) > 1:
            a, b = ctx.rng.sample([n.name for n in ctx.nodes], 2)
            params["pairs"] = [[a, b]]
            targets: tuple[str, ...] = (a, b)
        else:
            spec, nodes = ctx.pick(self.specs)
            params["spec"] = spec
            targets = tuple(n.name for n in nodes)
        if f == "drop-packets":
            params["probability"] = float(ctx.options.get("packet_loss", 0.2))
        elif f == "limit-rate":
            params["per_second"] = int(ctx.options.get("packet_rate", 100))
        else:
            params["bursts"] = {"on_ms": [50, 1000], "off_ms": [200, 2000]}
        return Fault(f, targets, params)

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        if fault.f in ("delay-packets", "reorder-packets"):
            return self._netem(ctx, fault)
        rules = self._rules(ctx, fault)
        if fault.f == "flaky-links":
            self._start_flapping(ctx, rules, fault.params["bursts"])
            return {"links": len(rules), "flapping": True}
        for node, rule in rules:
            self.rules.add(node, rule)
        return {"rules": len(rules)}

    def _rules(self, ctx: NemesisContext, fault: Fault) -> list[tuple[Node, str]]:
        """(receiving node, rule) for each link the fault touches."""
        if fault.f == "drop-packets":
            how = f"-m statistic --mode random --probability {fault.params['probability']:.4f}"
        elif fault.f == "limit-rate":
            # One hashlimit bucket per rule and source: each link gets its own rate.
            name = f"zk{next(_BUCKETS)}"
            how = (f"-m hashlimit --hashlimit-above {fault.params['per_second']}/sec "
                   f"--hashlimit-mode srcip --hashlimit-name {name}")
        else:
            how = ""
        if "pairs" in fault.params:
            out = []
            for a, b in fault.params["pairs"]:
                out += [(ctx.node(a), self.rules.spec(f"-s {ctx.node(b).address} {NOT_SSH} {how}".strip())),
                        (ctx.node(b), self.rules.spec(f"-s {ctx.node(a).address} {NOT_SSH} {how}".strip()))]
            return out
        return [(ctx.node(name), self.rules.spec(f"{NOT_SSH} {how}".strip())) for name in fault.targets]

    def _start_flapping(self, ctx: NemesisContext, rules: list[tuple[Node, str]], bursts: dict) -> None:
        """A thread that adds the drop rules for a random burst, removes them for a random
        pause, and so on until healed. Its timings come from the run's seeded random source."""
        stop = self.flapping = threading.Event()
        rng = random.Random(ctx.rng.random())

        def flap() -> None:
            while not stop.is_set():
                for node, rule in rules:
                    self.rules.add(node, rule)
                if stop.wait(rng.uniform(*bursts["on_ms"]) / 1000):
                    return
                try:
                    self.rules.remove(ctx.node)
                except RuntimeError as e:  # the heal retries what is left
                    log.warning("flaky links: %s", e)
                    return
                stop.wait(rng.uniform(*bursts["off_ms"]) / 1000)

        self.flapper = threading.Thread(target=flap, name="flaky-links", daemon=True)
        self.flapper.start()

    def _netem(self, ctx: NemesisContext, fault: Fault) -> Any:
        p = fault.params
        extra = " reorder 25% 50%" if fault.f == "reorder-packets" else ""
        for name in fault.targets:
            self.qdiscs.append(name)
            ctx.node(name).remote.run(
                f"tc qdisc replace dev {self.netem[name]} root netem delay {p['delay_ms']}ms {p['jitter_ms']}ms{extra}",
                timeout=30)
        return {"qdiscs": list(fault.targets)}

    def active(self) -> bool:
        return bool(self.rules.added or self.qdiscs or self.flapping)

    def heal(self, ctx: NemesisContext) -> Any:
        if self.flapping is not None:
            self.flapping.set()
            if self.flapper is not None:
                self.flapper.join(timeout=60)
            self.flapping = self.flapper = None
        removed = self.rules.remove(ctx.node)
        for name in list(self.qdiscs):
            ctx.node(name).remote.run(f"tc qdisc del dev {self.netem[name]} root", timeout=30, check=False)
            self.qdiscs.remove(name)
        return {"removed_rules": removed}

    def teardown(self, ctx: NemesisContext) -> None:
        try:
            if self.active():
                self.heal(ctx)
        finally:
            for node in ctx.nodes:
                self.rules.sweep(node)


_BUCKETS = itertools.count(1)


def _netem_interface(node: Node) -> str | None:
    """The node's interface for its address, when a netem qdisc can be put on it."""
    script = (f"i=$(ip -o -4 addr show | awk '$4 ~ /^{node.address}\\// {{print $2; exit}}'); [ -n \"$i\" ] && "
              "tc qdisc add dev $i root netem delay 0ms 2>/dev/null && tc qdisc del dev $i root && echo $i")
    try:
        out = node.remote.run(script, timeout=30, check=False).stdout.strip()
    except Exception:  # noqa: BLE001 - no tc, no netem: the faults that need it are not offered
        return None
    return out or None
