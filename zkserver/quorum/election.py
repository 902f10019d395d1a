"""Fast leader election, as a state machine with no I/O.

Every voter proposes the candidate with the most recent history: the highest
(peer epoch, last zxid, server id). Votes travel with an election round (`election_epoch`);
a newer round resets the tally. A vote wins once a quorum of voters back it; we then wait
`finalize_ms` for a better vote before deciding, unless every voter already agrees. A LOOKING
server also learns an established leader from FOLLOWING/LEADING members' notifications.
Observers take part only to learn the leader; their votes are never counted.
"""

from __future__ import annotations

from typing import Iterable

from .messages import Notification, PeerState, Vote

FINALIZE_MS = 200
RESEND_START_MS = 200
RESEND_MAX_MS = 2000


def better(new: Vote, cur: Vote) -> bool:
    """ZooKeeper's totalOrderPredicate."""
    return (new.peer_epoch, new.zxid, new.leader) > (cur.peer_epoch, cur.zxid, cur.leader)


class Election:
    def __init__(self, my_id: int, voters: Iterable[int], observer: bool = False) -> None:
        self.my_id = my_id
        self.voters = frozenset(voters)
        self.observer = observer
        self.election_epoch = 0
        self.proposal = Vote(my_id, 0, 0)
        self.recv: dict[int, Vote] = {}  # this round's LOOKING votes
        self.out_of_election: dict[int, Notification] = {}
        self.decided: tuple[Vote, PeerState] | None = None
        self.finalize_at: int | None = None
        self.resend_at = 0
        self.resend_ms = RESEND_START_MS
        self.outbox: list[tuple[int, Notification]] = []

    # --- helpers ---------------------------------------------------------------------------

    def quorum(self, ids: Iterable[int]) -> bool:
        return len(self.voters.intersection(ids)) * 2 > len(self.voters)

    def _notification(self, state: PeerState = PeerState.LOOKING) -> Notification:
        return Notification(self.proposal, self.election_epoch, state, self.my_id)

    def _broadcast(self, now_ms: int) -> None:
        n = self._notification()
        for peer in sorted(self.voters | {self.my_id}):
            if peer != self.my_id:
                self.outbox.append((peer, n))
        self.resend_at = now_ms + self.resend_ms

    def take_outbox(self) -> list[tuple[int, Notification]]:
        out, self.outbox = self.outbox, []
        return out

    # --- events ----------------------------------------------------------------------------

    def start(self, last_zxid: int, current_epoch: int, now_ms: int) -> None:
        """Enter a new round, voting for ourselves (observers vote for nobody that counts)."""
        self.election_epoch += 1
        self.own_vote = Vote(self.my_id, last_zxid, current_epoch)
        self.proposal = self.own_vote if not self.observer else Vote(-1, -1, -1)
        self.recv = {} if self.observer else {self.my_id: self.proposal}
        self.out_of_election = {}
        self.decided = None
        self.finalize_at = None
        self.resend_ms = RESEND_START_MS
        self._broadcast(now_ms)
        self._check_quorum(now_ms)

    def receive(self, n: Notification, now_ms: int) -> None:
        if self.decided is not None:
            return
        if n.state == PeerState.LOOKING:
            self._looking_vote(n, now_ms)
        else:
            self._established_vote(n, now_ms)

    def tick(self, now_ms: int) -> None:
        if self.decided is not None:
            return
        if self.finalize_at is not None and now_ms >= self.finalize_at:
            self._decide(self.proposal)
            return
        if now_ms >= self.resend_at:
            # Nobody answered for a while: say it again, a little less often each time.
            self.resend_ms = min(self.resend_ms * 2, RESEND_MAX_MS)
            self._broadcast(now_ms)

    # --- the algorithm -------------------------------------------------------------------------

    def _looking_vote(self, n: Notification, now_ms: int) -> None:
        if n.sid not in self.voters or n.vote.leader not in self.voters:
            return  # observers' votes never count, nor do votes for them
        if n.election_epoch > self.election_epoch:
            self.election_epoch = n.election_epoch
            self.recv = {}
            base = self.own_vote if not self.observer else Vote(-1, -1, -1)
            self.proposal = n.vote if better(n.vote, base) else base
            if not self.observer:
                self.recv[self.my_id] = self.proposal
            self._broadcast(now_ms)
        elif n.election_epoch < self.election_epoch:
            # A straggler from an older round: tell it where we are.
            self.outbox.append((n.sid, self._notification()))
            return
        elif better(n.vote, self.proposal):
            self.proposal = n.vote
            if not self.observer:
                self.recv[self.my_id] = self.proposal
            self._broadcast(now_ms)
        elif n.vote != self.proposal:
            # It backs a worse candidate in our round (perhaps it missed our vote while it was
            # still following): tell it ours now rather than at the next resend.
            self.outbox.append((n.sid, self._notification()))
        self.recv[n.sid] = n.vote
        self._check_quorum(now_ms)

    def _check_quorum(self, now_ms: int) -> None:
        backers = [sid for sid, v in self.recv.items() if v == self.proposal]
        if self.proposal.leader not in self.voters or not self.quorum(backers):
            self.finalize_at = None
            return
        if self.voters <= set(backers):
            self._decide(self.proposal)  # everyone agrees: nothing better can come
        elif self.finalize_at is None:
            self.finalize_at = now_ms + FINALIZE_MS

    def _established_vote(self, n: Notification, now_ms: int) -> None:
        """Members already following or leading tell us who leads."""
        if n.sid not in self.voters:
            return
        if n.election_epoch == self.election_epoch and not self.observer:
            self.recv[n.sid] = n.vote
        self.out_of_election[n.sid] = n
        pool = self.out_of_election
        backers = [sid for sid, m in pool.items() if m.vote.leader == n.vote.leader]
        leader_says = pool.get(n.vote.leader)
        leader_ok = n.vote.leader == self.my_id or (leader_says is not None and leader_says.state == PeerState.LEADING)
        if self.quorum(backers) and leader_ok:
            self.election_epoch = max(self.election_epoch, n.election_epoch)
            self._decide(n.vote)

    def _decide(self, vote: Vote) -> None:
        if vote.leader == self.my_id and not self.observer:
            state = PeerState.LEADING
        elif self.observer:
            state = PeerState.OBSERVING
        else:
            state = PeerState.FOLLOWING
        self.proposal = vote
        self.decided = (vote, state)
        self.finalize_at = None

    def reply_when_settled(self, n: Notification, state: PeerState, vote: Vote) -> Notification | None:
        """A member that is not LOOKING answers a LOOKING one with the leader it follows."""
        if n.state != PeerState.LOOKING:
            return None
        return Notification(vote, self.election_epoch, state, self.my_id)
