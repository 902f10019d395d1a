"""When faults happen. Each fault lives for its own random span and new faults begin at their
own random moments, both drawn from `--nemesis-interval`: when a start is due the schedule starts
a fault of a family that has none in effect, and each fault is healed when its span runs out. So
several families overlap (a partition while a node is down and a clock is off), while no fault
outlives the interval's upper bound unless its heal fails (then it is retried). Every step is
recorded in the history as the "nemesis" process: the invocation carries the fault's targets and
parameters, the info completion what was done (a fault's exact moment of effect is not
observable).

All choices come from one seeded random source, so a seed replays the same sequence of
decisions; targets that depend on the cluster's state (the leader) follow that state. The
schedule itself keeps no clock: `step(now)` is driven by `run` with the monotonic clock, and by
tests with a made-up one.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from harness.history import INFO, NEMESIS, HistoryRecorder

from .base import Family, Fault, NemesisContext

log = logging.getLogger(__name__)


class Schedule:
    def __init__(self, families: list[Family], ctx: NemesisContext, history: HistoryRecorder,
                 interval_s: tuple[float, float]) -> None:
        self.families = families
        self.ctx = ctx
        self.history = history
        self.interval_s = interval_s
        self.current: dict[str, Fault] = {}  # family -> the fault it has in effect
        self.heal_at: dict[str, float] = {}  # family -> when its fault is undone
        self.next_start = 0.0
        self.faults = 0
        self.failures: list[str] = []  # steps that raised (recorded in the history too)
        self.lock = threading.Lock()

    def _span(self) -> float:
        return self.ctx.rng.uniform(*self.interval_s)

    def _record(self, f: str, value: Any, action: Callable[[], Any]) -> bool:
        inv = self.history.invoke(NEMESIS, None, f, value)
        try:
            done = action()
            self.history.complete(inv, INFO, value=done)
            log.info("nemesis %s %s: %s", f, value, done)
            return True
        except Exception as e:  # noqa: BLE001 - a failed step is recorded, the test goes on
            log.warning("nemesis %s failed: %s", f, e)
            self.history.complete(inv, INFO, value=None, error=f"{type(e).__name__}: {e}")
            self.failures.append(f"{f}: {e}")
            return False

    def run(self, stop: threading.Event, clock: Callable[[], float] = time.monotonic) -> None:
        """Until `stop` is set: sleep until the next start or heal is due, then do it."""
        if not self.families:
            return
        self.begin(clock())
        while not stop.wait(max(0.0, self.next_event() - clock())):
            with self.lock:
                if stop.is_set():
                    break
                self.step(clock())

    def begin(self, now: float) -> None:
        self.next_start = now + self._span()

    def next_event(self) -> float:
        return min([self.next_start, *self.heal_at.values()])

    def step(self, now: float) -> None:
        """Heal the faults whose span is over (oldest deadline first), then start one if due."""
        for name, _ in sorted(self.heal_at.items(), key=lambda kv: kv[1]):
            if self.heal_at[name] <= now:
                family = next(f for f in self.families if f.name == name)
                if not family.active() or self.heal(family):  # (a failed start may leave nothing)
                    self.heal_at.pop(name)
                else:  # still in effect: try again later
                    self.heal_at[name] = now + self._span()
        if now >= self.next_start:
            idle = [f for f in self.families if not f.active()]
            if idle:
                family = self.ctx.rng.choice(idle)
                self.start(family)
                self.heal_at[family.name] = now + self._span()
            self.next_start = now + self._span()

    def start(self, family: Family) -> None:
        fault = family.choose(self.ctx)
        self.current[family.name] = fault
        self.faults += 1
        self._record(fault.f, fault.value, lambda: family.inject(self.ctx, fault))

    def heal(self, family: Family) -> bool:
        """Undo the family's fault. If that fails it stays in effect: no new fault of that
        family is stacked on top, and a later heal (at the latest the final one) tries again."""
        healed = self._record(family.heal_f, None, lambda: family.heal(self.ctx))
        if healed:
            self.current.pop(family.name, None)
        return healed

    def teardown(self) -> list[str]:
        """The final heal: undo what is in effect, then let every family sweep what is left.
        Returns what could not be undone (the run then ends with a fault in place)."""
        with self.lock:
            self.heal_at.clear()
            order = sorted(self.families, key=lambda f: f.heal_needs_quorum)  # stable: otherwise as given
            for family in order:
                if family.active():
                    self.heal(family)
            left = []
            for family in order:
                stuck = family.active()
                try:
                    family.teardown(self.ctx)
                except Exception as e:  # noqa: BLE001
                    log.warning("nemesis %s teardown: %s", family.name, e)
                if family.active():
                    left.append(f"{family.name}: {self.current.get(family.name, Fault('?')).describe()}")
                elif stuck:  # the teardown undid what the heal could not: the history says so
                    self._record(family.heal_f, None, lambda: {"by": "teardown"})
                    self.current.pop(family.name, None)
            return left

    def describe_active(self) -> str:
        faults = [self.current[f.name].describe() for f in self.families if f.active() and f.name in self.current]
        return "; ".join(faults) or "none"
