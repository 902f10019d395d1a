"""The leader's side of ZAB: discovery, synchronisation, broadcast.

Discovery: once a quorum (us included) has said FOLLOWERINFO, the new epoch is one more than
any accepted epoch, persisted, and sent as LEADERINFO. A learner whose ACKEPOCH shows a more
recent history than ours means we should not lead: back to LOOKING.
Synchronisation: each learner gets DIFF, TRUNC+DIFF or SNAP (one SYNC_DATA packet) and then
NEWLEADER; a quorum of NEWLEADER acks establishes the epoch: our own unapplied history is
committed, clients are served, UPTODATE goes out.
Broadcast: proposals are logged here and sent to followers; acks are cumulative, so the commit
point is the highest zxid a quorum has made durable. Commits and informs go out in order.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Hashable

from ..prep import Request
from ..storage.snapshot import dumps
from ..txn import TxnHeader
from . import messages as m
from .history import make_zxid, plan_sync

if TYPE_CHECKING:
    from .peer import QuorumPeer

log = logging.getLogger(__name__)


@dataclass
class LearnerLink:
    handle: Hashable
    sid: int = -1
    observer: bool = False
    accepted_epoch: int = -1
    last_zxid: int = -1
    epoch_acked: bool = False
    synced: bool = False  # got SYNC_DATA: proposals and commits flow to it
    sync_last: int = 0  # the last zxid its SYNC_DATA brought it to
    newleader_acked: bool = False
    acked: int = 0  # highest zxid it has made durable
    last_heard: int = 0


class Leader:
    def __init__(self, peer: "QuorumPeer", now_ms: int) -> None:
        self.peer = peer
        self.core = peer.core
        self.links: dict[Hashable, LearnerLink] = {}
        self.epoch: int | None = None
        self.accepted: dict[int, int] = {peer.my_id: peer.io.accepted_epoch}
        self.epoch_acks: set[int] = {peer.my_id}
        self.newleader_acks: set[int] = {peer.my_id}
        self.established = False
        self.committed = peer.core.tree.last_zxid
        self.self_acked = peer.logged_zxid
        self.outstanding: deque[tuple[TxnHeader, object]] = deque()
        self.syncs: deque[tuple[int, Hashable | None, int, int]] = deque()  # (zxid, link, sid, xid)
        self.deadline = now_ms + peer.config.init_limit * peer.tick_ms
        self.next_ping = now_ms
        self.my_epoch_record = (peer.io.current_epoch, peer.logged_zxid)
        self._maybe_new_epoch()

    # --- connection events -------------------------------------------------------------------

    def connected(self, handle: Hashable, now_ms: int) -> None:
        self.links[handle] = LearnerLink(handle, last_heard=now_ms)

    def lost(self, handle: Hashable, now_ms: int) -> None:
        self.links.pop(handle, None)

    def _send(self, link: LearnerLink, p: m.Packet) -> None:
        self.peer.io.send_quorum(link.handle, p)

    # --- packets -------------------------------------------------------------------------------

    def receive(self, handle: Hashable, p: m.Packet, now_ms: int) -> None:
        link = self.links.get(handle)
        if link is None:
            link = self.links[handle] = LearnerLink(handle)
        link.last_heard = now_ms
        kind = p.kind
        if kind == m.Kind.ACK:
            self._ack(link, p.zxid, now_ms)
        elif kind == m.Kind.REQUEST:
            self.propose(m.read_request(p), now_ms, self.peer.wall_ms)
        elif kind == m.Kind.PING:
            self._touch(m.read_ping(p), now_ms)
        elif kind == m.Kind.SYNC:
            sid, xid = m.read_sync(p)
            self._queue_sync(handle, sid, xid)
        elif kind == m.Kind.FOLLOWERINFO:
            self._follower_info(link, m.read_follower_info(p))
        elif kind == m.Kind.ACKEPOCH:
            self._ack_epoch(link, *m.read_ack_epoch(p), now_ms)

    def _follower_info(self, link: LearnerLink, info: m.FollowerInfo) -> None:
        link.sid, link.observer = info.sid, info.observer
        link.accepted_epoch, link.last_zxid = info.accepted_epoch, info.last_zxid
        if not info.observer:
            self.accepted[info.sid] = info.accepted_epoch
        if self.epoch is None:
            self._maybe_new_epoch()
        else:
            self._send(link, m.Packet(m.Kind.LEADERINFO, make_zxid(self.epoch, 0)))

    def _maybe_new_epoch(self) -> None:
        if self.epoch is not None or not self.peer.quorum(self.accepted):
            return
        self.epoch = max(self.accepted.values()) + 1
        self.peer.io.set_accepted_epoch(self.epoch)
        log.info("leader %d: new epoch %d", self.peer.my_id, self.epoch)
        for link in self.links.values():
            if link.sid >= 0:
                self._send(link, m.Packet(m.Kind.LEADERINFO, make_zxid(self.epoch, 0)))

    def _ack_epoch(self, link: LearnerLink, current_epoch: int, last_zxid: int, now_ms: int) -> None:
        io = self.peer.io
        discovering = io.current_epoch != self.epoch
        # Only during discovery: later, a learner that already synced in this epoch and
        # comes back holds our own proposals, which is no reason to give up leading.
        if discovering and (current_epoch, last_zxid) > self.my_epoch_record:
            # A learner has seen more than we have: we must not lead this epoch.
            self.peer.look(now_ms, f"server {link.sid} has a more recent history (0x{last_zxid:x})")
            return
        link.last_zxid = last_zxid
        link.epoch_acked = True
        if not link.observer:
            self.epoch_acks.add(link.sid)
        if io.current_epoch != self.epoch and self.peer.quorum(self.epoch_acks):
            io.set_current_epoch(self.epoch)
        if io.current_epoch == self.epoch:
            for other in list(self.links.values()):
                if other.epoch_acked and not other.synced:
                    self._sync(other)

    def _sync(self, link: LearnerLink) -> None:
        """Send one learner what it lacks; from now on it also gets every proposal."""
        if link.synced:
            return
        history = self.peer.history
        # Before we are established our whole history is about to be committed; after, only
        # what a quorum has acknowledged is.
        committed = self.committed if self.established else history.last_zxid
        plan = plan_sync(history, link.last_zxid, committed)
        if plan.mode == "SNAP":
            data = m.SyncData(None, dumps(self.core.tree), [], self.committed)
            data = data._replace(txns=history.after(self.core.tree.last_zxid))
        else:
            data = m.SyncData(plan.truncate_to, None, plan.txns, self.committed)
        log.info(
            "leader %d: sync server %d (at 0x%x) by %s, %d txns", self.peer.my_id, link.sid, link.last_zxid, plan.mode, len(data.txns)
        )
        self._send(link, m.sync_data(data))
        self._send(link, m.Packet(m.Kind.NEWLEADER, make_zxid(self.epoch, 0)))
        link.synced = True
        link.acked = 0
        link.sync_last = data.txns[-1][0].zxid if data.txns else self.core.tree.last_zxid

    def _ack(self, link: LearnerLink, zxid: int, now_ms: int) -> None:
        if zxid == make_zxid(self.epoch or 0, 0) and not link.newleader_acked:
            link.newleader_acked = True
            link.acked = max(link.acked, link.sync_last)
            if not link.observer:
                self.newleader_acks.add(link.sid)
            if self.established:
                self._send(link, m.Packet(m.Kind.UPTODATE, self.committed))
            elif self.peer.quorum(self.newleader_acks) and self.peer.io.current_epoch == self.epoch:
                self._establish(now_ms)
            return
        if zxid > link.acked:
            link.acked = zxid
            self._try_commit()

    def _establish(self, now_ms: int) -> None:
        """A quorum holds our history: it is committed; start serving."""
        peer, core = self.peer, self.core
        self.established = True
        peer.apply_upto(peer.history.last_zxid)
        self.committed = core.tree.last_zxid
        core.reset(core.tree, make_zxid(self.epoch, 0), now_ms)
        core.submit = lambda req, wall: self.propose(req, self.peer.now_ms, wall)
        core.forward_sync = lambda sid, xid: self._queue_sync(None, sid, xid)
        core.owns_sessions = True
        core.touches = None
        core.serving = True
        log.info("leader %d: epoch %d established at 0x%x; serving", peer.my_id, self.epoch, self.committed)
        for link in self.links.values():
            if link.newleader_acked:
                self._send(link, m.Packet(m.Kind.UPTODATE, self.committed))

    # --- broadcast ---------------------------------------------------------------------------

    def propose(self, req: Request, now_ms: int, wall_ms: int) -> None:
        if not self.established:
            return  # a request forwarded before we serve is dropped; its client reconnects
        hdr, txn = self.core.preparer.prep(req, now_ms, wall_ms)
        self.outstanding.append((hdr, txn))
        packet = m.proposal(hdr, txn)
        self.peer.accept([(hdr, txn)], [packet.body])  # encoded once, for the log and the wire
        for link in self.links.values():
            if link.synced and not link.observer:
                self._send(link, packet)

    def logged(self, zxid: int) -> None:
        self.self_acked = max(self.self_acked, zxid)
        self._try_commit()

    def _try_commit(self) -> None:
        if not self.established or not self.outstanding:
            return
        durable = sorted(
            [self.self_acked] + [ln.acked for ln in self.links.values() if ln.synced and not ln.observer and ln.sid >= 0],
            reverse=True,
        )
        need = len(self.peer.voters) // 2 + 1
        if len(durable) < need:
            return
        point = durable[need - 1]
        if point <= self.committed:
            return
        informs = []
        while self.outstanding and self.outstanding[0][0].zxid <= point:
            hdr, txn = self.outstanding.popleft()
            informs.append((hdr, txn))
        self.peer.apply_upto(point)
        self.committed = point
        commit = m.Packet(m.Kind.COMMIT, point)
        for link in self.links.values():
            if not link.synced:
                continue
            if link.observer:
                for hdr, txn in informs:
                    self._send(link, m.proposal(hdr, txn, m.Kind.INFORM))
            else:
                self._send(link, commit)
        self._answer_syncs()

    # --- sessions and syncs ------------------------------------------------------------------

    def _touch(self, touches: dict[int, int], now_ms: int) -> None:
        tracker = self.core.tracker
        for sid, timeout in touches.items():
            tracker.touch(sid, now_ms, timeout or None)

    def _queue_sync(self, handle: Hashable | None, sid: int, xid: int) -> None:
        last_proposed = self.outstanding[-1][0].zxid if self.outstanding else self.committed
        self.syncs.append((last_proposed, handle, sid, xid))
        self._answer_syncs()

    def _answer_syncs(self) -> None:
        while self.syncs and self.syncs[0][0] <= self.committed:
            _, handle, sid, xid = self.syncs.popleft()
            if handle is None:
                self.core.sync_done(sid, xid)
            elif handle in self.links:
                self._send(self.links[handle], m.sync_request(sid, xid))

    # --- time ----------------------------------------------------------------------------------

    def tick(self, now_ms: int) -> None:
        peer = self.peer
        if not self.established:
            if now_ms > self.deadline:
                peer.look(now_ms, "no quorum synced within initLimit")
            return
        if now_ms >= self.next_ping:
            self.next_ping = now_ms + peer.tick_ms // 2
            ping = m.ping()
            for link in self.links.values():
                if link.synced:
                    self._send(link, ping)
        limit = peer.config.sync_limit * peer.tick_ms
        alive = {peer.my_id} | {
            ln.sid for ln in self.links.values() if ln.synced and not ln.observer and now_ms - ln.last_heard <= limit
        }
        if not peer.quorum(alive):
            peer.look(now_ms, "lost the quorum (no word from a majority within syncLimit)")
