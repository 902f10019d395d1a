"""Random clients and random faults over a simulated ensemble, all from one seed.

Clients write unique values (creates of fresh paths, setData on a few shared keys, ephemerals),
keep a few requests in flight, and fail over like real clients: on a lost connection they
reconnect to another server with their session id, password and last zxid seen, or start a
new session once theirs has expired. Faults: crashes (sometimes with a torn write), restarts,
partitions, heals, and stalled disks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .client import Ack, SimClient
from .ensemble import SimEnsemble

KEYS = ("/r0", "/r1", "/r2")
LAST: list = [None]  # the last simulation run_random built (for post-mortems)


@dataclass
class Worker:
    sim: SimEnsemble
    rng: random.Random
    n: int
    client: SimClient | None = None
    next_try: int = 0
    count: int = 0
    acked: list[Ack] = field(default_factory=list)
    sessions: list[SimClient] = field(default_factory=list)

    def step(self) -> None:
        sim, c = self.sim, self.client
        if c is None or c.expired:
            if sim.now < self.next_try:
                return
            self.client = c = SimClient(sim, self._server(), connect=False)
            self.sessions.append(c)
            c.connect(self._server())
            self.next_try = sim.now + 200
            return
        if c.closed:
            if sim.now >= self.next_try:
                c.connect(self._server())  # same session, password and last zxid seen
                self.next_try = sim.now + self.rng.randint(50, 300)
            return
        if not c.connected or len(c.pending) >= self.rng.randint(1, 3):
            return
        self.count += 1
        tag = f"c{self.n}-{self.count}"
        roll = self.rng.random()
        if roll < 0.45:
            c.create(f"/w/{tag}", tag.encode())
        elif roll < 0.85:
            c.set_data(self.rng.choice(KEYS), tag.encode())
        elif roll < 0.95:
            c.create(f"/e/{tag}", tag.encode(), ephemeral=True)
        elif roll < 0.98:
            c.get_data(self.rng.choice(KEYS))
        else:
            c.sync()

    def _server(self) -> int:
        return self.rng.choice(sorted(self.sim.servers))

    def all_acks(self) -> list[Ack]:
        return [a for c in self.sessions for a in c.acked]


class Nemesis:
    def __init__(self, sim: SimEnsemble, rng: random.Random) -> None:
        self.sim = sim
        self.rng = rng
        self.held: dict[int, int] = {}  # sid -> release time

    def step(self) -> None:
        sim, rng = self.sim, self.rng
        for sid, until in list(self.held.items()):
            if sim.now >= until:
                del self.held[sid]
                sim.release_disk(sid)
        ids = sorted(sim.servers)
        up = [s for s in ids if sim.servers[s].alive]
        down = [s for s in ids if not sim.servers[s].alive]
        roll = rng.random()
        if roll < 0.22 and up:
            victim = sim.leader() if rng.random() < 0.5 and sim.leader() else rng.choice(up)
            disk = sim.servers[victim].disk
            keep = rng.randint(0, len(disk.in_flight)) if disk.in_flight and rng.random() < 0.5 else 0
            sim.crash(victim, keep=keep, power=rng.random() < 0.3)
            self.held.pop(victim, None)
            disk.held = False
        elif roll < 0.45 and down:
            sim.restart(rng.choice(down))
        elif roll < 0.62:
            shuffled = ids[:]
            rng.shuffle(shuffled)
            cut = rng.randint(1, len(ids) - 1)
            sim.partition(shuffled[:cut], shuffled[cut:])
        elif roll < 0.68:
            lid = sim.leader()
            if lid is not None:
                sim.isolate(lid)
        elif roll < 0.85:
            sim.heal()
        elif up:
            sid = rng.choice(up)
            sim.hold_disk(sid)
            self.held[sid] = sim.now + rng.randint(20, 1500)


def run_random(seed: int, n: int = 3, observers: int = 0, duration: int = 15_000, clients: int = 4) -> dict:
    rng = random.Random(seed * 7919 + 1)
    sim = SimEnsemble(
        n=n,
        observers=observers,
        seed=seed,
        window=rng.choice([None, None, 20, 5]),
        snap_every=rng.choice([None, 40, 150]),
    )
    LAST[0] = sim
    lid = sim.wait_stable()
    setup = SimClient(sim, lid)
    assert setup.wait_connected()
    for path in ("/w", "/e") + KEYS:
        assert setup.call(setup.create(path, b"")).err == 0
    setup.drop()
    workers = [Worker(sim, random.Random(rng.random()), i) for i in range(clients)]
    nemesis = Nemesis(sim, random.Random(rng.random()))
    end = sim.now + duration
    next_fault = sim.now + rng.randint(100, 800)
    while sim.now < end:
        sim.run(rng.randint(2, 30))
        for w in workers:
            w.step()
        if sim.now >= next_fault:
            nemesis.step()
            next_fault = sim.now + rng.randint(50, 1200)
    # Undo every fault, let the clients finish what they have in flight, and settle.
    for sid in list(nemesis.held):
        sim.release_disk(sid)
    sim.settle()
    quiet = sim.now + 3000
    while sim.now < quiet:
        sim.run(20)
        for w in workers:
            c = w.client
            if c is not None and c.closed and not c.expired and sim.now >= w.next_try:
                c.connect(w._server())
                w.next_try = sim.now + 100
    for w in workers:
        for c in w.sessions:
            c.pinging = False
    sim.wait_stable()
    errors = [e for w in workers for c in w.sessions for e in c.protocol_errors]
    return {"sim": sim, "acks": [a for w in workers for a in w.all_acks()], "client_errors": errors}
