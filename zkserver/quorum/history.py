"""A server's recent logged txns in memory, and the leader's choice of how to sync a learner."""

from __future__ import annotations

import bisect
import itertools
from collections import deque
from typing import NamedTuple

from ..txn import Txn, TxnHeader

DEFAULT_WINDOW = 50_000


def epoch_of(zxid: int) -> int:
    return zxid >> 32


def make_zxid(epoch: int, counter: int) -> int:
    return (epoch << 32) | counter


class History:
    """The last `window` logged txns, in zxid order. `floor` is the zxid just before the
    oldest one kept: a learner at or above it can be caught up from memory."""

    def __init__(self, floor: int, window: int = DEFAULT_WINDOW) -> None:
        self.txns: deque[tuple[TxnHeader, Txn]] = deque()
        self.zxids: deque[int] = deque()
        self.floor = floor
        self.window = window
        # Txns above this zxid are never trimmed: they are not applied yet, and a SNAP sync
        # (the applied tree plus every later txn) needs all of them.
        self.applied = floor

    @property
    def last_zxid(self) -> int:
        return self.zxids[-1] if self.zxids else self.floor

    def append(self, hdr: TxnHeader, txn: Txn) -> None:
        self.txns.append((hdr, txn))
        self.zxids.append(hdr.zxid)
        while len(self.txns) > self.window and self.zxids[0] <= self.applied:
            hdr0, _ = self.txns.popleft()
            self.zxids.popleft()
            self.floor = hdr0.zxid

    def truncate(self, zxid: int) -> None:
        """Forget every txn after `zxid`."""
        while self.zxids and self.zxids[-1] > zxid:
            self.zxids.pop()
            self.txns.pop()
        if self.floor > zxid:
            self.floor = zxid

    def after(self, zxid: int) -> list[tuple[TxnHeader, Txn]]:
        i = bisect.bisect_right(self.zxids, zxid)
        return list(itertools.islice(self.txns, i, None))

    def last_at_or_below(self, zxid: int) -> int | None:
        """The largest zxid we hold that is <= zxid (the floor counts), None if below it."""
        if zxid < self.floor:
            return None
        i = bisect.bisect_right(self.zxids, zxid)
        return self.zxids[i - 1] if i else self.floor


class SyncPlan(NamedTuple):
    mode: str  # "DIFF", "TRUNC" or "SNAP"
    truncate_to: int | None
    txns: list[tuple[TxnHeader, Txn]]


def plan_sync(history: History, learner_zxid: int, committed: int) -> SyncPlan:
    """DIFF if the learner's last zxid is in our history and committed; TRUNC to the last
    committed zxid we share (then DIFF) if it holds txns we do not, or txns not committed yet
    (a restarted learner has applied its whole log: it must not serve those); SNAP if it is
    older than what we keep."""
    shared = history.last_at_or_below(min(learner_zxid, committed))
    if shared is None:
        return SyncPlan("SNAP", None, [])
    if shared == learner_zxid:
        return SyncPlan("DIFF", None, history.after(shared))
    return SyncPlan("TRUNC", shared, history.after(shared))
