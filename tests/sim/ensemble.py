"""A whole ensemble in one process, deterministic from a seed: no threads, sockets or clocks.

`SimEnsemble` runs a discrete-event loop over fake time (ms). Each server is a real
`QuorumPeer` + `ServerCore` wired to `SimIO` (peerio.py), an in-memory `PeerIO`:

- Election notifications travel with a random latency and are dropped across a partition or
  to a dead server (the election resends; when two servers can talk again each re-announces
  itself, as the shell does when an election link is (re)established).
- Quorum links behave like TCP connections: FIFO, reliable while both ends are up; a partition
  holds bytes back until it heals (the ZAB timeouts still fire); a close sends a FIN after the
  data already written; a crash closes the crashed side (the kernel sends its FIN; a power
  failure sends nothing more), and data arriving at a closed side is discarded. A learner dials the leader; a server that is not
  leading accepts and closes at once, like the shell.
- Each server has a `SimDisk` (disk.py); log appends become durable after a random fsync
  delay, one batch in flight at a time (group commit), or never while the disk is held. A crash
  loses what is not durable; a restart rebuilds the tree and history from the disk alone.
- Every server's timer fires every `TICK_STEP` ms with `peer.tick(now, wall)`.

Clients (client.py) send raw ZooKeeper frames into a server's ServerCore. Invariants
(invariants.py) are checked after every event and raise at once; `dump()` shows the state
and the last events of a failing run.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from pathlib import Path
from typing import Callable, NamedTuple

from zkserver.config import Peer, ServerConfig
from zkserver.core import ServerCore
from zkserver.quorum import messages as m
from zkserver.quorum.history import DEFAULT_WINDOW
from zkserver.quorum.messages import Notification, Packet, PeerState
from zkserver.quorum.peer import QuorumPeer
from zkserver.tree.datatree import DataTree

from .disk import SimDisk, lineage
from .invariants import Invariants
from .peerio import FIN, LEADER, LEARNER, QConn, SimIO, other

WALL0 = 1_700_000_000_000
TICK_TIME = 100
TICK_STEP = 20


class PacketRecord(NamedTuple):
    time: int
    src: int
    dst: int
    kind: m.Kind
    zxid: int
    info: str = ""


class SimServer:
    def __init__(self, ens: "SimEnsemble", config: ServerConfig) -> None:
        self.ens = ens
        self.config = config
        self.sid = config.server_id
        self.observer = config.peers[self.sid].observer
        self.disk = SimDisk(f"server {self.sid}" + (" (observer)" if self.observer else ""))
        self.alive = False
        self.inc = 0
        self.io: SimIO | None = None
        self.core: ServerCore | None = None
        self.peer: QuorumPeer | None = None
        self.window = DEFAULT_WINDOW
        self.snap_every: int | None = None
        self.since_snap = 0
        self.clients: list = []
        self.incoming_lineage: tuple[int, ...] = ()  # of the snapshot in the SYNC_DATA being handled

    @property
    def tree(self) -> DataTree:
        assert self.core is not None
        return self.core.tree

    @property
    def state(self) -> PeerState | None:
        return self.peer.state if self.alive and self.peer is not None else None

    def established(self) -> bool:
        role = self.peer.role if self.alive and self.peer else None
        return self.state == PeerState.LEADING and role is not None and role.established

    def serving(self) -> bool:
        return self.alive and self.core is not None and self.core.serving

    def __repr__(self) -> str:
        return f"<server {self.sid} {'up' if self.alive else 'down'} {self.state and self.state.name}>"


class SimEnsemble:
    def __init__(
        self,
        n: int = 3,
        observers: int = 0,
        seed: int = 0,
        latency: tuple[int, int] = (1, 4),
        fsync: tuple[int, int] = (1, 4),
        window: int | None = None,
        snap_every: int | None = None,
        start: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.now = 0
        self._queue: list = []
        self._seq = itertools.count()
        self.lat_range = latency
        self.fsync_range = fsync
        self.blocked: set[frozenset[int]] = set()
        self.packets: list[PacketRecord] = []
        self.trace: deque[str] = deque(maxlen=400)
        self.conns: dict[QConn, None] = {}  # every quorum connection with an open side
        self.hooks: list[Callable[[], None]] = []  # run after every event (test-specific checks)
        ids = list(range(1, n + observers + 1))
        peers = {i: Peer(i, f"10.0.0.{i}", 2888, 3888, observer=i > n) for i in ids}
        self.servers: dict[int, SimServer] = {}
        for i in ids:
            config = ServerConfig(
                data_dir=Path(f"/nonexistent/sim/{i}"),
                data_log_dir=Path(f"/nonexistent/sim/{i}"),
                tick_time=TICK_TIME,
                init_limit=10,
                sync_limit=5,
                server_id=i,
                peer_type="observer" if i > n else "participant",
                peers=peers,
                max_client_cnxns=0,
            )
            server = SimServer(self, config)
            if window is not None:
                server.window = window
            server.snap_every = snap_every
            self.servers[i] = server
        self.voters = frozenset(i for i in ids if not peers[i].observer)
        self.invariants = Invariants(self)
        if start:
            for i in ids:
                self.restart(i)

    # --- the event loop ------------------------------------------------------------------------

    def at(self, t: int, fn: Callable, *args) -> None:
        heapq.heappush(self._queue, (t, next(self._seq), fn, args))

    def after(self, dt: int, fn: Callable, *args) -> None:
        self.at(self.now + dt, fn, *args)

    def latency(self) -> int:
        return self.rng.randint(*self.lat_range)

    def fsync_delay(self) -> int:
        return self.rng.randint(*self.fsync_range)

    def wall(self) -> int:
        return WALL0 + self.now

    def step(self) -> bool:
        if not self._queue:
            return False
        t, _, fn, args = heapq.heappop(self._queue)
        self.now = max(self.now, t)
        fn(*args)
        return True

    def run(self, ms: int) -> None:
        end = self.now + ms
        while self._queue and self._queue[0][0] <= end:
            self.step()
        self.now = end

    def run_until(self, pred: Callable[[], bool], timeout: int = 10_000) -> bool:
        end = self.now + timeout
        if pred():
            return True
        while self._queue and self._queue[0][0] <= end:
            self.step()
            if pred():
                return True
        self.now = end
        return False

    def _enter(self, server: SimServer, fn: Callable[[], None]) -> None:
        """Run peer code on a server, then flush its client output and check invariants."""
        fn()
        if server.alive and server.core is not None:
            server.core.flush()
        self.invariants.poll()
        for hook in self.hooks:
            hook()

    def log(self, msg: str) -> None:
        self.trace.append(f"{self.now:>7} {msg}")

    def dump(self) -> str:
        lines = [f"seed={self.seed} now={self.now}"]
        for s in self.servers.values():
            if s.alive:
                role = s.peer.role
                epoch = getattr(role, "epoch", None)
                lines.append(
                    f"  server {s.sid}: {s.state.name} epoch={epoch} tree=0x{s.tree.last_zxid:x} "
                    f"logged=0x{s.peer.logged_zxid:x} disk=0x{s.disk.durable_end():x} "
                    f"acc={s.disk.accepted_epoch} cur={s.disk.current_epoch} serving={s.core.serving}"
                )
            else:
                lines.append(f"  server {s.sid}: down disk=0x{s.disk.durable_end():x}")
        lines.append(f"  blocked={sorted(tuple(sorted(p)) for p in self.blocked)}")
        lines.extend(list(self.trace)[-60:])
        return "\n".join(lines)

    # --- servers -----------------------------------------------------------------------------

    def restart(self, sid: int) -> None:
        """Start (or restart) a server from what its disk holds, as EnsembleServer.start does."""
        s = self.servers[sid]
        assert not s.alive, f"server {sid} is running"
        s.alive = True
        s.inc += 1
        s.since_snap = 0
        s.clients = []
        tree, history = s.disk.load(s.window)
        s.io = SimIO(s)
        s.core = ServerCore(s.config, tree, self.now, self.wall())
        s.core.serving = False
        s.core.owns_sessions = False
        s.peer = QuorumPeer(s.config, s.core, s.io, history, self.now)
        self.invariants.on_start(s)
        self.log(f"start {sid} at 0x{tree.last_zxid:x}")
        self._enter(s, lambda: s.peer.start(self.now))
        self.after(self.rng.randint(1, TICK_STEP), self._tick, s, s.inc)
        for other_sid in self.servers:
            if other_sid != sid:
                self.after(self.latency(), self._link_up, sid, other_sid)

    def crash(self, sid: int, keep: int = 0, power: bool = False) -> None:
        """Kill a server: what is not durable is lost (`keep`: a torn write kept that many
        txns of the batch in flight); its clients are cut off. A killed process's kernel
        still sends what was written to its sockets, then FIN; with `power`, the machine
        dies: nothing more leaves it, and its peers only notice by their timeouts."""
        s = self.servers[sid]
        if not s.alive:
            return
        self.log(f"crash {sid}{' (power)' if power else ''}")
        io = s.io
        s.disk.lose_volatile(keep)
        sides = [(io.leader_conn, LEARNER)] if io.leader_conn is not None else []
        sides += [(conn, LEADER) for conn in io.inbound]
        for conn, side in sides:
            if power:
                conn.open[side] = False
                conn.pipes[side].clear()
                conn.pipes[other(side)].clear()
            else:
                self._close_side(conn, side)
        s.alive = False
        for client in s.clients:
            client._cut()
        s.clients = []
        self.invariants.poll()

    def _tick(self, s: SimServer, inc: int) -> None:
        if not s.alive or s.inc != inc:
            return
        self._enter(s, lambda: s.peer.tick(self.now, self.wall()))
        self.after(TICK_STEP, self._tick, s, inc)

    def hold_disk(self, sid: int) -> None:
        """fsyncs on this server stall until release_disk (the batch in flight stays in flight)."""
        self.servers[sid].disk.held = True

    def release_disk(self, sid: int) -> None:
        s = self.servers[sid]
        if s.alive:
            s.io.release()
        else:
            s.disk.held = False

    # --- network -------------------------------------------------------------------------------

    def reachable(self, a: int, b: int) -> bool:
        return self.servers[a].alive and self.servers[b].alive and frozenset((a, b)) not in self.blocked

    def partition(self, *groups) -> None:
        """Cut every link between different groups; servers not named form one more group."""
        named = {sid for g in groups for sid in g}
        groups = [set(g) for g in groups] + [set(self.servers) - named]
        before = set(self.blocked)
        self.blocked = set()
        for g1, g2 in itertools.combinations([g for g in groups if g], 2):
            for a in g1:
                for b in g2:
                    self.blocked.add(frozenset((a, b)))
        self.log(f"partition {[sorted(g) for g in groups if g]}")
        self._links_changed(before)

    def isolate(self, sid: int) -> None:
        self.partition([sid])

    def heal(self) -> None:
        before = set(self.blocked)
        self.blocked = set()
        self.log("heal")
        self._links_changed(before)

    def _links_changed(self, before: set) -> None:
        for pair in before - self.blocked:
            a, b = sorted(pair)
            self.after(self.latency(), self._link_up, a, b)
        for conn in list(self.conns):
            if not conn.open[LEARNER] and not conn.open[LEADER] and not any(conn.pipes.values()):
                del self.conns[conn]
                continue
            for side in (LEARNER, LEADER):
                if conn.pipes[side]:
                    self.after(0, self._pump, conn, side)

    def _link_up(self, a: int, b: int) -> None:
        """A (re)established election link: a LOOKING server says where it stands."""
        if not self.reachable(a, b):
            return
        for x, y in ((a, b), (b, a)):
            s = self.servers[x]
            if s.peer.state == PeerState.LOOKING:
                n = s.peer.election._notification()
                self._send_election(x, y, n)

    def _send_election(self, a: int, b: int, n: Notification) -> None:
        if not self.reachable(a, b):
            return
        inc = self.servers[b].inc
        self.after(self.latency(), self._deliver_election, a, b, inc, n)

    def _deliver_election(self, a: int, b: int, inc: int, n: Notification) -> None:
        s = self.servers[b]
        if not self.reachable(a, b) or s.inc != inc:
            return
        self._enter(s, lambda: s.peer.on_notification(n, self.now))

    def _qsend(self, conn: QConn, from_side: str, item) -> None:
        if not conn.open[from_side]:
            return
        dest = other(from_side)
        info = ""
        if item is not FIN:
            src, dst = conn.ends[from_side][0], conn.ends[dest][0]
            info = _info(item)
            self.packets.append(PacketRecord(self.now, src, dst, item.kind, item.zxid, info))
            if item.kind != m.Kind.PING:
                self.log(f"{src}->{dst} {item.kind.name} 0x{item.zxid:x} {info}")
        meta = None
        if item is not FIN and item.kind == m.Kind.SYNC_DATA and info.startswith("SNAP"):
            meta = tuple(lineage(self.servers[src].core.tree))  # the tree just dumped into it
        ready = max(conn.last_ready[dest], self.now + self.latency())
        conn.last_ready[dest] = ready
        conn.pipes[dest].append((ready, item, meta))
        self.at(ready, self._pump, conn, dest)

    def _close_side(self, conn: QConn, side: str) -> None:
        if conn.open[side]:
            self._qsend(conn, side, FIN)
            conn.open[side] = False
            conn.pipes[side].clear()

    def _pump(self, conn: QConn, dest: str) -> None:
        pipe = conn.pipes[dest]
        src = conn.ends[other(dest)][0]
        dst, dst_inc = conn.ends[dest]
        server = self.servers[dst]
        while pipe and pipe[0][0] <= self.now:
            if not conn.open[dest] or not server.alive or server.inc != dst_inc:
                conn.open[dest] = False
                pipe.clear()
                return
            if frozenset((src, dst)) in self.blocked:
                return  # held back until the partition heals
            _, item, meta = pipe.popleft()
            if meta is not None:
                server.incoming_lineage = meta
            self._deliver(conn, dest, item)

    def _deliver(self, conn: QConn, dest: str, item) -> None:
        server = self.servers[conn.ends[dest][0]]
        io, peer = server.io, server.peer
        if item is FIN:
            conn.open[dest] = False
            conn.pipes[dest].clear()
            if dest == LEARNER and io.leader_conn is conn:
                io.leader_conn = None
                self._enter(server, lambda: peer.on_quorum_lost("leader", self.now))
            elif dest == LEADER and conn in io.inbound:
                del io.inbound[conn]
                self._enter(server, lambda: peer.on_quorum_lost(conn, self.now))
            return
        if dest == LEARNER:
            if io.leader_conn is conn:
                self._enter(server, lambda: peer.on_packet("leader", item, self.now, self.wall()))
        else:
            self._enter(server, lambda: peer.on_packet(conn, item, self.now, self.wall()))

    # --- queries -------------------------------------------------------------------------------

    def leader(self) -> int | None:
        """The established leader, if exactly one live server is one."""
        found = [s.sid for s in self.servers.values() if s.established()]
        return found[0] if len(found) == 1 else None

    def wait_leader(self, timeout: int = 10_000) -> int:
        ok = self.run_until(lambda: self.leader() is not None, timeout)
        assert ok, "no leader established\n" + self.dump()
        return self.leader()

    def stable(self, ignore: tuple[int, ...] = ()) -> bool:
        """One established leader; every live server (but `ignore`) serving and applied up to
        its commits."""
        lid = self.leader()
        if lid is None:
            return False
        leader = self.servers[lid]
        if leader.peer.role.outstanding or leader.disk.pending():
            return False
        top = leader.tree.last_zxid
        for s in self.servers.values():
            if not s.alive or s.sid in ignore:
                continue
            if not s.serving() or s.tree.last_zxid != top or s.disk.pending():
                return False
            if s.sid != lid and s.state not in (PeerState.FOLLOWING, PeerState.OBSERVING):
                return False
        return True

    def wait_stable(self, timeout: int = 20_000, ignore: tuple[int, ...] = ()) -> int:
        ok = self.run_until(lambda: self.stable(ignore), timeout)
        assert ok, "the ensemble did not settle\n" + self.dump()
        return self.leader()

    def settle(self, timeout: int = 30_000) -> int:
        """Undo every fault and wait for one leader with everybody in sync."""
        self.heal()
        for s in self.servers.values():
            if not s.alive:
                self.restart(s.sid)
            else:
                self.release_disk(s.sid)
        return self.wait_stable(timeout)

    def sent(self, kind: m.Kind | None = None, src: int | None = None, dst: int | None = None) -> list[PacketRecord]:
        return [
            p
            for p in self.packets
            if (kind is None or p.kind == kind) and (src is None or p.src == src) and (dst is None or p.dst == dst)
        ]

    def client(self, sid: int, **kw):
        from .client import SimClient

        return SimClient(self, sid, **kw)


def _info(p: Packet) -> str:
    if p.kind == m.Kind.SYNC_DATA:
        data = m.read_sync_data(p)
        mode = "SNAP" if data.snapshot is not None else "TRUNC" if data.truncate_to is not None else "DIFF"
        trunc = f" to 0x{data.truncate_to:x}" if data.truncate_to is not None else ""
        return f"{mode}{trunc} txns={[hex(h.zxid) for h, _ in data.txns]}"
    return ""
