"""A quorum member: elects, then leads or learns, and drives the ServerCore accordingly.

No sockets, clocks or files: the shell (or a test's simulated network) implements `PeerIO`
and calls the event methods. Rare durable operations (epochs, truncation, installing a
snapshot) are synchronous calls on `io`; log appends are asynchronous and report back through
`logged(zxid)` once durable.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Hashable, Protocol

from ..config import ServerConfig
from ..core import ServerCore
from ..tree.datatree import DataTree
from ..txn import Txn, TxnHeader
from .election import Election
from .history import History
from .messages import Notification, Packet, PeerState, Vote

log = logging.getLogger(__name__)


class PeerIO(Protocol):
    accepted_epoch: int
    current_epoch: int

    def send_election(self, sid: int, n: Notification) -> None: ...
    def send_quorum(self, handle: Hashable, p: Packet) -> None: ...
    def connect_leader(self, sid: int, retry: bool = False) -> None:
        """One dial (after a short pause when `retry`): on_quorum_connected("leader") when it
        connects, on_quorum_lost("leader") when it fails or the link closes later."""
    def close_quorum(self) -> None: ...
    def close_link(self, handle: Hashable) -> None: ...
    def append_log(self, batch: list[tuple[TxnHeader, Txn]], payloads: list[bytes] | None = None) -> None: ...
    def set_accepted_epoch(self, epoch: int) -> None: ...
    def set_current_epoch(self, epoch: int) -> None: ...
    def truncate(self, zxid: int) -> DataTree: ...
    def install_snapshot(self, tree: DataTree) -> None: ...
    def quiesce_log(self) -> int | None: ...


class QuorumPeer:
    def __init__(
        self, config: ServerConfig, core: ServerCore, io: PeerIO, history: History, now_ms: int
    ) -> None:
        self.config = config
        self.core = core
        self.io = io
        self.my_id = config.server_id
        self.voters = frozenset(sid for sid, p in config.peers.items() if not p.observer)
        self.observer = config.peers[self.my_id].observer
        self.election = Election(self.my_id, self.voters, self.observer)
        self.history = history
        self.logged_zxid = history.last_zxid  # durable end of our log
        self.unapplied: deque[tuple[TxnHeader, Txn]] = deque()  # logged, not yet committed here
        self.origins: dict[int, tuple[int, int]] = {}  # zxid -> the client request it answers
        self.state = PeerState.LOOKING
        self.vote = Vote(self.my_id, self.logged_zxid, io.current_epoch)
        self.role = None  # a Leader or a Learner once the election is decided
        self.now_ms = now_ms
        self.wall_ms = 0
        self.tick_ms = config.tick_time
        self.elections = 0
        self.looking_since = now_ms

    # --- helpers for the roles ---------------------------------------------------------------

    def quorum(self, ids) -> bool:
        return len(self.voters.intersection(ids)) * 2 > len(self.voters)

    def apply_upto(self, zxid: int) -> None:
        """Apply, in order, every logged txn we hold with zxid <= `zxid`."""
        q, core, origins = self.unapplied, self.core, self.origins
        while q and q[0][0].zxid <= zxid:
            hdr, txn = q.popleft()
            origin = origins.pop(hdr.zxid, None) if origins else None
            if hdr.zxid > core.tree.last_zxid:
                core.committed(hdr, txn, origin)
        self.history.applied = core.tree.last_zxid

    def accept(self, batch: list[tuple[TxnHeader, Txn]], payloads: list[bytes] | None = None) -> None:
        """Txns to log (durability reported by `logged`) and apply once committed. `payloads`,
        when given, are the txns already encoded (as they came off the wire), so the log does
        not encode them again."""
        for item in batch:
            self.history.append(*item)
            self.unapplied.append(item)
        self.io.append_log(batch, payloads)

    def replace_state(self, tree: DataTree, logged_zxid: int) -> None:
        self.origins.clear()
        self.core.reset(tree, 0, self.now_ms)
        self.history = History(tree.last_zxid, self.history.window)
        self.unapplied.clear()
        self.logged_zxid = logged_zxid

    # --- events from the shell ---------------------------------------------------------------

    def start(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.look(now_ms, "starting")

    def look(self, now_ms: int, why: str) -> None:
        """Back to LOOKING: stop serving, drop the quorum links, start a new election round."""
        if self.role is not None:
            log.info("server %d leaves %s: %s", self.my_id, self.state.name.lower(), why)
        self.role = None
        self.state = PeerState.LOOKING
        self.core.stop_serving()
        self.core.submit = self.core._prep_locally
        self.core.forward_sync = None
        self.core.revalidate = None
        self.core.answer_unlabelled = False
        self.core.touches = None
        self.origins.clear()
        self.core.owns_sessions = False
        self.io.close_quorum()
        # Appends not yet on disk are dropped: nobody was told they are durable, and the next
        # leader decides what our log must hold.
        durable = self.io.quiesce_log()
        if durable is not None and durable > self.logged_zxid:
            self.logged_zxid = durable
        self.history.truncate(self.logged_zxid)
        while self.unapplied and self.unapplied[-1][0].zxid > self.logged_zxid:
            self.unapplied.pop()
        self.elections += 1
        self.looking_since = now_ms
        self.election.start(self.logged_zxid, self.io.current_epoch, now_ms)
        self._flush_election()
        self._check_decided(now_ms)

    def on_notification(self, n: Notification, now_ms: int) -> None:
        self.now_ms = now_ms
        if self.state == PeerState.LOOKING:
            self.election.receive(n, now_ms)
            self._flush_election()
            self._check_decided(now_ms)
        elif n.state == PeerState.LOOKING:
            # Tell a member that is still looking whom we follow, so it can join quickly.
            reply = Notification(self.vote, self.election.election_epoch, self.state, self.my_id)
            self.io.send_election(n.sid, reply)

    def on_packet(self, handle: Hashable, p: Packet, now_ms: int, wall_ms: int) -> None:
        self.now_ms, self.wall_ms = now_ms, wall_ms
        if self.role is not None:
            self.role.receive(handle, p, now_ms)

    def on_quorum_connected(self, handle: Hashable, now_ms: int) -> None:
        self.now_ms = now_ms
        if self.role is not None:
            self.role.connected(handle, now_ms)

    def on_quorum_lost(self, handle: Hashable, now_ms: int) -> None:
        self.now_ms = now_ms
        if self.role is not None:
            self.role.lost(handle, now_ms)

    def logged(self, zxid: int) -> None:
        """Everything we appended up to `zxid` is durable."""
        if zxid > self.logged_zxid:
            self.logged_zxid = zxid
        if self.role is not None:
            self.role.logged(zxid)

    def tick(self, now_ms: int, wall_ms: int) -> None:
        self.now_ms, self.wall_ms = now_ms, wall_ms
        if self.state == PeerState.LOOKING:
            self.election.tick(now_ms)
            self._flush_election()
            self._check_decided(now_ms)
            # As ZooKeeper: after max(2 s, a tick) without a quorum, serve read-only clients.
            delay = max(2000, self.tick_ms)
            if self.config.read_only_mode and not self.core.read_only and now_ms - self.looking_since >= delay:
                if self.state == PeerState.LOOKING:
                    log.info("server %d: no quorum for %d ms; serving read-only clients", self.my_id, delay)
                    self.core.enter_read_only()
        elif self.role is not None:
            self.role.tick(now_ms)
        self.core.tick(now_ms, wall_ms)

    # --- internals ---------------------------------------------------------------------------

    def _flush_election(self) -> None:
        for sid, n in self.election.take_outbox():
            self.io.send_election(sid, n)

    def _check_decided(self, now_ms: int) -> None:
        if self.state != PeerState.LOOKING or self.election.decided is None:
            return
        from .leader import Leader
        from .learner import Learner

        vote, state = self.election.decided
        self.vote = vote
        self.state = state
        if self.core.read_only:
            self.core.stop_serving()  # read-only clients go; they come back to a full server
        log.info("server %d: election %d decided, leader %d, now %s", self.my_id, self.elections, vote.leader, state.name.lower())
        if state == PeerState.LEADING:
            self.role = Leader(self, now_ms)
        else:
            self.role = Learner(self, vote.leader, now_ms)

    def mode(self) -> str:
        if self.core.read_only:
            return "read-only"
        return {
            PeerState.LOOKING: "looking",
            PeerState.FOLLOWING: "follower",
            PeerState.LEADING: "leader",
            PeerState.OBSERVING: "observer",
        }[self.state]
