"""When faults happen: alternate fault and heal every `interval` seconds, one family at a time,
recording each step in the history as the "nemesis" process (invocations completed as info,
since a fault's exact moment of effect is not observable)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from harness.history import INFO, NEMESIS, HistoryRecorder

from .base import Nemesis, NemesisContext

log = logging.getLogger(__name__)


class Schedule:
    def __init__(
        self, nemeses: list[Nemesis], ctx: NemesisContext, history: HistoryRecorder, interval_s: float
    ) -> None:
        self.nemeses = nemeses
        self.ctx = ctx
        self.history = history
        self.interval_s = interval_s
        self.active: Nemesis | None = None
        self.active_desc: Any = None
        self.faults = 0
        self.lock = threading.Lock()

    def _record(self, f: str, action) -> tuple[bool, Any]:
        inv = self.history.invoke(NEMESIS, None, f, None)
        try:
            value = action()
            self.history.complete(inv, INFO, value=value)
            log.info("nemesis %s: %s", f, value)
            return True, value
        except Exception as e:  # noqa: BLE001 - a failed step is recorded, the test goes on
            log.warning("nemesis %s failed: %s", f, e)
            self.history.complete(inv, INFO, value=None, error=f"{type(e).__name__}: {e}")
            return False, None

    def run(self, stop: threading.Event) -> None:
        """Until `stop` is set: wait, fault, wait, heal, ..."""
        if not self.nemeses:
            return
        while not stop.wait(self.interval_s):
            if self.active is not None:
                self.heal()  # a heal that failed earlier: retry before any new fault
                continue
            with self.lock:
                if stop.is_set():
                    break
                nemesis = self.ctx.rng.choice(self.nemeses)
                self.active = nemesis
                _, self.active_desc = self._record(nemesis.start_f, lambda: nemesis.start(self.ctx))
                self.faults += 1
            if stop.wait(self.interval_s):
                break
            self.heal()

    def heal(self) -> None:
        """Undo the active fault. If that fails it stays active: no new fault is stacked on
        top, and the next heal (at the latest the final one) tries again."""
        with self.lock:
            nemesis = self.active
            if nemesis is None:
                return
            healed, _ = self._record(nemesis.stop_f, lambda: nemesis.heal(self.ctx))
            if healed:
                self.active, self.active_desc = None, None

    def teardown(self) -> None:
        """The final heal: undo the active fault, then let every family sweep what is left."""
        self.heal()
        for nemesis in self.nemeses:
            try:
                nemesis.teardown(self.ctx)
            except Exception as e:  # noqa: BLE001
                log.warning("nemesis %s teardown: %s", nemesis.name, e)

    def describe_active(self) -> str:
        nemesis, desc = self.active, self.active_desc
        if nemesis is None:
            return "none"
        if isinstance(desc, dict):
            what = desc.get("variant") or ""
            nodes = desc.get("nodes")
            return f"{nemesis.name} {what} {','.join(nodes) if nodes else ''}".strip()
        return nemesis.name
