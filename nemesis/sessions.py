"""Client-side faults: live sessions moved to another server on purpose (the client drops its
connection and resumes the session on the next server in its connection string), so session
guarantees are tested across failover even when no server fails. The fault's window lasts until
the schedule's next heal, which has nothing to undo."""

from __future__ import annotations

import random
from typing import Any

from harness.preflight import Needs

from .base import Family, Fault, NemesisContext


class SessionMoveFamily(Family):
    name = "session-move"
    faults = ("move-sessions",)
    heal_f = "settle-sessions"
    needs = Needs()

    def __init__(self) -> None:
        super().__init__()
        self.moved = False

    def choose(self, ctx: NemesisContext) -> Fault:
        live = len(ctx.clients)
        share = ctx.rng.choice([0.25, 0.5, 1.0])
        return Fault("move-sessions", (), {"share": share, "of": live, "seed": ctx.rng.randrange(2**31)})

    def inject(self, ctx: NemesisContext, fault: Fault) -> Any:
        clients = [c for c in list(ctx.clients) if hasattr(c, "move")]
        count = max(1, round(len(clients) * fault.params["share"])) if clients else 0
        chosen = random.Random(fault.params["seed"]).sample(clients, count)
        moves = []
        for client in chosen:
            session, left = client.session(), client.move()
            if left is not None:
                moves.append({"session": session, "from": left})
        self.moved = True
        return {"moved": moves}

    def active(self) -> bool:
        return self.moved

    def heal(self, ctx: NemesisContext) -> Any:
        self.moved = False
        return {}
