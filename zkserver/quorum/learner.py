"""A follower's or observer's side of ZAB.

It tells the leader its accepted epoch and last zxid, accepts the new epoch, takes SYNC_DATA
(truncating or replacing its state first when told to), and acknowledges NEWLEADER only once
everything synced is durable, writing currentEpoch at that same point (ZOOKEEPER-3911, -4643,
-4646). It serves clients from UPTODATE on: reads locally, writes and syncs forwarded to the
leader, commits applied in order, and the sessions its clients touched reported in pings.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Hashable

from ..storage.snapshot import loads
from . import messages as m
from .history import epoch_of

if TYPE_CHECKING:
    from .peer import QuorumPeer

log = logging.getLogger(__name__)

LEADER = "leader"  # the handle of our one quorum connection
# As ZooKeeper's Learner: a handful of dials, then back to the election. A leader that is gone
# refuses at once, and waiting out initLimit for it would leave this server neither following
# nor looking (so not even serving read-only clients) for tens of seconds.
LEADER_DIAL_TRIES = 5


class Learner:
    def __init__(self, peer: "QuorumPeer", leader_id: int, now_ms: int) -> None:
        self.peer = peer
        self.core = peer.core
        self.leader_id = leader_id
        self.observer = peer.observer
        self.epoch: int | None = None
        self.newleader_zxid: int | None = None  # waiting for our log before acking it
        self.sync_last = -1
        self.commit_mark = 0
        self.serving = False
        self.last_heard = now_ms
        self.deadline = now_ms + peer.config.init_limit * peer.tick_ms
        self.dials = 1
        peer.io.connect_leader(leader_id)

    def _send(self, p: m.Packet) -> None:
        self.peer.io.send_quorum(LEADER, p)

    # --- connection ----------------------------------------------------------------------------

    def connected(self, handle: Hashable, now_ms: int) -> None:
        peer = self.peer
        self.last_heard = now_ms
        info = m.FollowerInfo(peer.my_id, peer.io.accepted_epoch, peer.logged_zxid, self.observer)
        self._send(m.follower_info(info))

    def lost(self, handle: Hashable, now_ms: int) -> None:
        """Our link to the leader closed, or a dial failed."""
        if self.epoch is None and self.dials < LEADER_DIAL_TRIES and now_ms < self.deadline:
            # The winner may not have taken up leading yet and turned us away: dial again.
            self.dials += 1
            self.peer.io.connect_leader(self.leader_id, retry=True)
            return
        self.peer.look(now_ms, f"lost the connection to leader {self.leader_id}")

    # --- packets -------------------------------------------------------------------------------

    def receive(self, handle: Hashable, p: m.Packet, now_ms: int) -> None:
        self.last_heard = now_ms
        kind = p.kind
        if kind == m.Kind.PROPOSAL:
            hdr, txn, origin, payload = m.read_proposal(p)
            if origin is not None:
                self.peer.origins[hdr.zxid] = origin
            self.peer.accept([(hdr, txn)], [payload])
        elif kind == m.Kind.COMMIT:
            self._commit(p.zxid)
        elif kind == m.Kind.INFORM:
            hdr, txn, origin, payload = m.read_proposal(p)
            if origin is not None:
                self.peer.origins[hdr.zxid] = origin
            if hdr.zxid > self.peer.history.last_zxid:  # our sync may have brought it already
                self.peer.accept([(hdr, txn)], [payload])
            self._commit(hdr.zxid)
        elif kind == m.Kind.REVALIDATE:
            sid, valid = m.read_revalidate(p)
            self.core.revalidated(sid, bool(valid))
        elif kind == m.Kind.PING:
            touches = self.core.touches or {}
            self.core.touches = {} if self.serving else None
            self._send(m.ping(touches))
        elif kind == m.Kind.SYNC:
            self.core.sync_done(*m.read_sync(p))
        elif kind == m.Kind.LEADERINFO:
            self._leader_info(epoch_of(p.zxid), now_ms)
        elif kind == m.Kind.SYNC_DATA:
            self._sync_data(m.read_sync_data(p))
        elif kind == m.Kind.NEWLEADER:
            self.newleader_zxid = p.zxid
            self._maybe_ack_newleader()
        elif kind == m.Kind.UPTODATE:
            self._uptodate(p.zxid)

    def _leader_info(self, epoch: int, now_ms: int) -> None:
        io = self.peer.io
        if epoch < io.accepted_epoch:
            self.peer.look(now_ms, f"leader {self.leader_id} offers epoch {epoch} < accepted {io.accepted_epoch}")
            return
        if epoch > io.accepted_epoch:
            io.set_accepted_epoch(epoch)
            current = io.current_epoch
        else:
            current = -1  # already accepted this epoch: ack it, but it must not count again
        self.epoch = epoch
        self._send(m.ack_epoch(current, self.peer.logged_zxid))

    def _sync_data(self, data: m.SyncData) -> None:
        peer = self.peer
        if data.snapshot is not None:
            tree = loads(data.snapshot, "leader snapshot")
            peer.io.install_snapshot(tree)
            peer.replace_state(tree, tree.last_zxid)
            log.info("server %d: synced by SNAP at 0x%x", peer.my_id, tree.last_zxid)
        elif data.truncate_to is not None:
            tree = peer.io.truncate(data.truncate_to)
            peer.replace_state(tree, data.truncate_to)
            log.info("server %d: synced by TRUNC to 0x%x", peer.my_id, data.truncate_to)
        self.sync_last = data.txns[-1][0].zxid if data.txns else peer.logged_zxid
        self.commit_mark = max(self.commit_mark, data.committed_zxid)
        if data.txns:
            peer.accept(data.txns)

    def _maybe_ack_newleader(self) -> None:
        z = self.newleader_zxid
        if z is None or self.peer.logged_zxid < self.sync_last:
            return  # not durable yet: acking now could lose synced txns (ZOOKEEPER-3911)
        self.newleader_zxid = None
        self.peer.io.set_current_epoch(epoch_of(z))
        self._send(m.Packet(m.Kind.ACK, z))

    def _uptodate(self, committed: int) -> None:
        peer, core = self.peer, self.core
        self.commit_mark = max(self.commit_mark, committed)
        peer.apply_upto(self.commit_mark)
        # Session bookkeeping from whatever role we had before (closing flags of a former
        # leader, sessions whose creation never committed) gives way to the replicated table.
        core.reset(core.tree, 0, peer.now_ms)
        core.submit = lambda req, wall: self._send(m.request(req))
        core.forward_sync = lambda sid, xid: self._send(m.sync_request(sid, xid))
        core.revalidate = lambda sid, timeout: self._send(m.revalidate(sid, timeout))
        core.answer_unlabelled = False
        core.owns_sessions = False
        core.touches = {}
        core.serving = True
        self.serving = True
        log.info("server %d: up to date at 0x%x; serving as %s", peer.my_id, core.tree.last_zxid, peer.mode())

    def _commit(self, zxid: int) -> None:
        if zxid > self.commit_mark:
            self.commit_mark = zxid
        if self.serving:
            self.peer.apply_upto(zxid)

    # --- durability and time -------------------------------------------------------------------

    def logged(self, zxid: int) -> None:
        if self.newleader_zxid is not None:
            self._maybe_ack_newleader()
        # Acks are cumulative. One for this batch even right after the NEWLEADER ack: the
        # leader credits NEWLEADER only up to the sync data, and a proposal that reached the
        # disk in the same batch would otherwise wait for the next one.
        if self.newleader_zxid is None and not self.observer and self.epoch is not None:
            self._send(m.Packet(m.Kind.ACK, zxid))

    def tick(self, now_ms: int) -> None:
        peer = self.peer
        limit = (peer.config.sync_limit if self.serving else peer.config.init_limit) * peer.tick_ms
        if now_ms - self.last_heard > limit:
            peer.look(now_ms, f"no word from leader {self.leader_id} for {now_ms - self.last_heard} ms")
