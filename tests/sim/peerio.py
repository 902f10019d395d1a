"""`PeerIO` for a simulated server, and the quorum connections it uses.

SimIO is what `zkserver.quorum.shell.EnsembleServer` is in production, minus sockets, files and
clocks: it hands messages to the simulated network of its `SimEnsemble`, and log writes,
epochs, truncation and snapshots to the server's `SimDisk`, reporting durability back through
`peer.logged(zxid)` when the simulation decides a write has reached the disk.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Hashable

from zkserver.quorum.messages import Notification, Packet, PeerState
from zkserver.tree.datatree import DataTree
from zkserver.txn import Txn, TxnHeader

if TYPE_CHECKING:
    from .ensemble import SimServer

DIAL_RETRY = 100  # ms, as the shell's LEADER_DIAL_PAUSE
LEARNER, LEADER = "learner", "leader"
FIN = object()  # the end of a connection, queued behind the data already written


def other(side: str) -> str:
    return LEADER if side == LEARNER else LEARNER


class QConn:
    """One quorum TCP connection between a learner and a leader."""

    _ids = itertools.count(1)

    def __init__(self, learner: int, learner_inc: int, leader: int, leader_inc: int) -> None:
        self.id = next(self._ids)
        self.ends = {LEARNER: (learner, learner_inc), LEADER: (leader, leader_inc)}
        self.open = {LEARNER: True, LEADER: True}
        self.pipes: dict[str, deque] = {LEARNER: deque(), LEADER: deque()}  # by destination side
        self.last_ready = {LEARNER: 0, LEADER: 0}

    def __repr__(self) -> str:
        return f"<qconn {self.id} {self.ends[LEARNER][0]}->{self.ends[LEADER][0]}>"


class SimIO:
    """PeerIO for one incarnation of one server."""

    def __init__(self, server: "SimServer") -> None:
        self.server = server
        self.ens = server.ens
        self.inc = server.inc
        self.leader_conn: QConn | None = None
        self.inbound: dict[QConn, None] = {}
        self.dial_gen = 0

    @property
    def live(self) -> bool:
        return self.server.alive and self.server.inc == self.inc

    @property
    def accepted_epoch(self) -> int:
        return self.server.disk.accepted_epoch

    @property
    def current_epoch(self) -> int:
        return self.server.disk.current_epoch

    # --- network ---------------------------------------------------------------------------

    def send_election(self, sid: int, n: Notification) -> None:
        self.ens._send_election(self.server.sid, sid, n)

    def send_quorum(self, handle: Hashable, p: Packet) -> None:
        conn = self.leader_conn if handle == "leader" else handle
        if isinstance(conn, QConn):
            side = LEARNER if handle == "leader" else LEADER
            self.ens.invariants.on_send(self.server, conn, side, p)
            self.ens._qsend(conn, side, p)

    def connect_leader(self, sid: int, retry: bool = False) -> None:
        self.dial_gen += 1
        gen, ens = self.dial_gen, self.ens
        deadline = ens.now + self.server.config.init_limit * self.server.config.tick_time
        ens.after(DIAL_RETRY if retry else ens.latency(), self._dial, sid, gen, deadline)

    def _dial(self, sid: int, gen: int, deadline: int) -> None:
        ens = self.ens
        if not self.live or gen != self.dial_gen:
            return
        target = ens.servers[sid]
        if not target.alive and frozenset((self.server.sid, sid)) not in ens.blocked:
            # Nobody listens there: the connect is refused at once.
            ens._enter(self.server, lambda: self.server.peer.on_quorum_lost("leader", ens.now))
            return
        if not ens.reachable(self.server.sid, sid):
            # Dropped SYNs: the kernel retransmits (a heal in time lets it through) until the
            # connect times out at initLimit, which the learner hears as a lost link.
            if ens.now + DIAL_RETRY < deadline:
                ens.after(DIAL_RETRY, self._dial, sid, gen, deadline)
            else:
                ens._enter(self.server, lambda: self.server.peer.on_quorum_lost("leader", ens.now))
            return
        if self.leader_conn is not None:
            ens._close_side(self.leader_conn, LEARNER)
        conn = QConn(self.server.sid, self.inc, sid, target.inc)
        ens.conns[conn] = None
        self.leader_conn = conn
        if target.peer is not None and target.peer.state == PeerState.LEADING:
            target.io.inbound[conn] = None
            ens._enter(target, lambda: target.peer.on_quorum_connected(conn, ens.now))
        else:
            ens._close_side(conn, LEADER)  # only a leader takes learners
        ens._enter(self.server, lambda: self.server.peer.on_quorum_connected("leader", ens.now))

    def close_link(self, handle: Hashable) -> None:
        """The leader drops one learner's link."""
        if handle in self.inbound:
            del self.inbound[handle]
            self.ens._close_side(handle, LEADER)

    def close_quorum(self) -> None:
        self.dial_gen += 1
        conn, self.leader_conn = self.leader_conn, None
        if conn is not None:
            self.ens._close_side(conn, LEARNER)
        for conn in list(self.inbound):
            self.ens._close_side(conn, LEADER)
        self.inbound.clear()

    # --- disk ------------------------------------------------------------------------------

    def append_log(self, batch: list[tuple[TxnHeader, Txn]], payloads: list[bytes] | None = None) -> None:
        if not batch:
            return
        disk = self.server.disk
        self.ens.invariants.on_append(self.server, batch, payloads)
        disk.queued.extend(batch)
        if disk.in_flight is None and not disk.start_pending:
            disk.start_pending = True
            self.ens.after(0, self._start_write, disk.gen)

    def _start_write(self, gen: int) -> None:
        disk = self.server.disk
        if not self.live or gen != disk.gen:
            return
        disk.start_pending = False
        if disk.in_flight is not None or not disk.queued:
            return
        disk.in_flight, disk.queued = disk.queued, []
        if not disk.held:
            self.ens.after(self.ens.fsync_delay(), self._write_done, gen)

    def _write_done(self, gen: int) -> None:
        server, disk = self.server, self.server.disk
        if not self.live or gen != disk.gen or disk.in_flight is None or disk.held:
            return
        batch, disk.in_flight = disk.in_flight, None
        disk.write_log(batch)
        self.ens._enter(server, lambda: server.peer.logged(batch[-1][0].zxid))
        if not self.live:
            return
        if server.snap_every:
            server.since_snap += len(batch)
            if server.since_snap >= server.snap_every:
                server.since_snap = 0
                disk.take_snapshot(server.core.tree)
        if disk.queued:
            self._start_write(gen)

    def release(self) -> None:
        disk = self.server.disk
        disk.held = False
        if disk.in_flight is not None:
            self.ens.after(self.ens.fsync_delay(), self._write_done, disk.gen)

    def quiesce_log(self) -> int | None:
        disk = self.server.disk
        disk.queued = []
        disk.gen += 1
        disk.start_pending = False
        batch, disk.in_flight = disk.in_flight, None
        if not batch:
            return None
        # The shell waits for the write in flight: it reaches the disk (no `logged` call).
        disk.write_log(batch)
        return batch[-1][0].zxid

    def set_accepted_epoch(self, epoch: int) -> None:
        self.server.disk.accepted_epoch = epoch

    def set_current_epoch(self, epoch: int) -> None:
        self.ens.invariants.on_current_epoch(self.server, epoch)
        self.server.disk.current_epoch = epoch

    def truncate(self, zxid: int) -> DataTree:
        self.quiesce_log()
        self.ens.invariants.on_truncate(self.server, zxid)
        self.server.disk.truncate(zxid)
        tree, _ = self.server.disk.load(self.server.window)
        return tree

    def install_snapshot(self, tree: DataTree) -> None:
        self.quiesce_log()
        tree._sim_lineage = list(self.server.incoming_lineage)  # type: ignore[attr-defined]
        self.server.disk.install(tree)
