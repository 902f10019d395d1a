"""The leader's side of ZAB: discovery, synchronisation, broadcast.

Discovery: once a quorum (us included) has said FOLLOWERINFO, the new epoch is one more than
any accepted epoch, persisted, and sent as LEADERINFO. A learner whose ACKEPOCH shows a more
recent history than ours is dropped; without a quorum of the others, initLimit runs out and a
new election follows.
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
from ..protocol.constants import Err, OpCode
from ..storage.snapshot import dumps
from ..txn import TxnHeader
from . import messages as m
from .history import make_zxid, plan_sync

if TYPE_CHECKING:
    from .peer import QuorumPeer

log = logging.getLogger(__name__)

ZXID_COUNTER_LIMIT = 0xFFFFFF00


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
        # Which server each session's client talks to. Requests from any other server are
        # answered SESSIONMOVED: a write held up on a server the client has left must not take
        # effect after what the client did since (ZooKeeper's session ownership).
        self.owners: dict[int, int] = {}
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

    def _drop(self, link: LearnerLink) -> None:
        self.links.pop(link.handle, None)
        self.peer.io.close_link(link.handle)

    def _send(self, link: LearnerLink, p: m.Packet) -> None:
        self.peer.io.send_quorum(link.handle, p)

    # --- packets -------------------------------------------------------------------------------

    def receive(self, handle: Hashable, p: m.Packet, now_ms: int) -> None:
        link = self.links.get(handle)
        if link is None:
            return  # a link we dropped: whatever it still delivers must not count
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
        elif kind == m.Kind.REVALIDATE:
            sid, timeout = m.read_revalidate(p)
            valid = self._revalidate(sid, timeout, link.sid, now_ms)
            self._send(link, m.revalidate(sid, 1 if valid else 0))
        elif kind == m.Kind.FOLLOWERINFO:
            self._follower_info(link, m.read_follower_info(p))
        elif kind == m.Kind.ACKEPOCH:
            self._ack_epoch(link, *m.read_ack_epoch(p), now_ms)

    def _follower_info(self, link: LearnerLink, info: m.FollowerInfo) -> None:
        for other in [ln for ln in self.links.values() if ln.sid == info.sid and ln is not link]:
            # The same server on a new connection: its old link is dead, and must never count
            # twice towards a quorum.
            self._drop(other)
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
        link.last_zxid = last_zxid
        link.epoch_acked = True
        # current_epoch -1: the learner had already accepted this epoch (from another leader
        # of the same number, or before a restart) and must not be counted twice (ZAB's
        # guard against two leaders establishing one epoch, ZOOKEEPER-1192).
        counts = current_epoch != -1 and not link.observer
        if counts and io.current_epoch != self.epoch and (current_epoch, last_zxid) > self.my_epoch_record:
            # It has seen more than we have: it must not follow us. Drop it; if we cannot
            # reach a quorum without it, initLimit runs out and a new election follows.
            log.info("leader %d: server %d is ahead (0x%x); dropping it", self.peer.my_id, link.sid, last_zxid)
            self._drop(link)
            return
        if counts:
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
                self._try_commit()  # its sync may complete the quorum for an outstanding proposal
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
        core.revalidate = lambda sid, timeout: core.revalidated(sid, self._revalidate(sid, timeout, peer.my_id, peer.now_ms))
        core.answer_unlabelled = False
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
        if self.core.preparer.zxid & 0xFFFFFFFF >= ZXID_COUNTER_LIMIT:
            # The counter would run into the next epoch's zxids: a new epoch starts it afresh.
            self.peer.look(now_ms, "zxid counter exhausted in this epoch")
            return
        hdr, txn = self.core.preparer.prep(req, now_ms, wall_ms, self._moved(req))
        self.outstanding.append((hdr, txn))
        packet = m.proposal(hdr, txn, origin=req.origin)
        if req.origin is not None:
            self.peer.origins[hdr.zxid] = req.origin
        self.peer.accept([(hdr, txn)], [packet.body[: -m.ORIGIN_SIZE]])  # encoded once
        for link in self.links.values():
            if link.synced and not link.observer:
                self._send(link, packet)

    def _moved(self, req: Request) -> int | None:
        """SESSIONMOVED if the request comes from a server the session has left."""
        if req.origin is None:
            return None  # our own session expiry, container sweeps
        server = req.origin[0]
        if req.opcode == OpCode.CREATE_SESSION:
            self.owners[req.session_id] = server
            return None
        owner = self.owners.setdefault(req.session_id, server)  # first word after an election
        return Err.SESSIONMOVED if owner != server else None

    def _revalidate(self, sid: int, timeout: int, server: int, now_ms: int) -> bool:
        """A client reconnects to `server`: is its session alive? If so it now lives there."""
        if not self.core.tracker.touch(sid, now_ms, timeout):
            return False
        self.owners[sid] = server
        return True

    def logged(self, zxid: int) -> None:
        self.self_acked = max(self.self_acked, zxid)
        self._try_commit()

    def _try_commit(self) -> None:
        if not self.established or not self.outstanding:
            return
        voters = self.peer.voters
        best: dict[int, int] = {}  # one vote per configured voter, whatever its links
        for ln in self.links.values():
            if ln.synced and not ln.observer and ln.sid in voters and ln.sid != self.peer.my_id:
                best[ln.sid] = max(best.get(ln.sid, 0), ln.acked)
        durable = sorted([self.self_acked, *best.values()], reverse=True)
        need = len(self.peer.voters) // 2 + 1
        if len(durable) < need:
            return
        point = durable[need - 1]
        if point <= self.committed:
            return
        observers = [ln for ln in self.links.values() if ln.synced and ln.observer]
        informs = []
        while self.outstanding and self.outstanding[0][0].zxid <= point:
            hdr, txn = self.outstanding.popleft()
            if observers:  # (before apply_upto consumes the origins)
                informs.append(m.proposal(hdr, txn, m.Kind.INFORM, self.peer.origins.get(hdr.zxid)))
        self.peer.apply_upto(point)
        self.committed = point
        commit = m.Packet(m.Kind.COMMIT, point)
        for link in self.links.values():
            if link.synced and not link.observer:
                self._send(link, commit)
        for link in observers:
            for packet in informs:
                self._send(link, packet)
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
            live = self.core.tracker.sessions
            for sid in [s for s in self.owners if s not in live]:
                del self.owners[sid]  # closed or expired sessions
            ping = m.ping()
            for link in self.links.values():
                if link.synced:
                    self._send(link, ping)
        limit = peer.config.sync_limit * peer.tick_ms
        for link in [ln for ln in self.links.values() if ln.synced and now_ms - ln.last_heard > limit]:
            # Silent for syncLimit: gone (a crash without a FIN, a partition). Closing it stops
            # its stale acks from counting and its unsent packets from piling up.
            log.info("leader %d: no word from server %d for %d ms; dropping it", peer.my_id, link.sid, now_ms - link.last_heard)
            self._drop(link)
        alive = {peer.my_id} | {ln.sid for ln in self.links.values() if ln.synced and not ln.observer}
        if not peer.quorum(alive):
            peer.look(now_ms, "lost the quorum (no word from a majority within syncLimit)")
