"""A server's simulated disk: epochs, snapshots and the durable log, plus the volatile write
queue of the group-commit log (what a crash loses).

Mirrors `zkserver.storage.store.Storage` and `GroupCommitLog`: one batch is written at a time
while later appends queue up behind it and become the next batch; `quiesce` drops the queue
and waits for the batch in flight (so that batch *is* durable, as in the shell); `truncate`
drops later snapshots and log records and rebuilds the tree from the newest snapshot left plus
the log; `install` replaces everything; `restore` loads the newest snapshot and replays every
logged txn after it.
"""

from __future__ import annotations

from collections import deque

from zkserver.quorum.history import History
from zkserver.storage.snapshot import dumps, loads
from zkserver.tree.datatree import DataTree
from zkserver.txn import Txn, TxnHeader

Batch = list[tuple[TxnHeader, Txn]]


class LogOutOfOrder(AssertionError):
    """The real log refuses to start from such a file (txnlog.read_log: CorruptLogError)."""


class SimDisk:
    def __init__(self, name: str = "disk") -> None:
        self.name = name
        # durable
        self.accepted_epoch = 0
        self.current_epoch = 0
        # (zxid, bytes, lineage) ascending by zxid; the lineage lists the txns the tree was
        # built from (the oracle's bookkeeping, see invariants.py)
        self.snapshots: list[tuple[int, bytes, tuple[int, ...]]] = []
        self.log: Batch = []
        self.logged: set[int] = set()
        # volatile: the group-commit queue
        self.queued: Batch = []
        self.in_flight: Batch | None = None
        self.start_pending = False
        self.held = False  # the batch in flight does not finish while held (a slow fsync)
        self.gen = 0  # bumped by quiesce and crash: completions of older batches are void

    # --- queries -----------------------------------------------------------------------------

    def log_end(self) -> int:
        return self.log[-1][0].zxid if self.log else 0

    def snap_zxid(self) -> int:
        return self.snapshots[-1][0] if self.snapshots else 0

    def durable_end(self) -> int:
        return max(self.log_end(), self.snap_zxid())

    def contains(self, zxid: int) -> bool:
        """Is txn `zxid` durable here (in the log, or inside a snapshot that covers it)?"""
        return zxid in self.logged or zxid <= self.snap_zxid()

    def pending(self) -> int:
        return len(self.queued) + len(self.in_flight or ())

    # --- durable writes ----------------------------------------------------------------------

    def write_log(self, batch: Batch) -> None:
        for hdr, txn in batch:
            last = self.log_end()
            if hdr.zxid <= last:
                raise LogOutOfOrder(f"{self.name}: log record 0x{hdr.zxid:x} written after 0x{last:x}")
            self.log.append((hdr, txn))
            self.logged.add(hdr.zxid)

    def take_snapshot(self, tree: DataTree) -> None:
        z = tree.last_zxid
        entry = (z, dumps(tree), tuple(lineage(tree)))
        self.snapshots = [s for s in self.snapshots if s[0] != z] + [entry]
        self.snapshots.sort(key=lambda s: s[0])

    def truncate(self, zxid: int) -> None:
        self.snapshots = [s for s in self.snapshots if s[0] <= zxid]
        self.log = [item for item in self.log if item[0].zxid <= zxid]
        self.logged = {hdr.zxid for hdr, _ in self.log}

    def install(self, tree: DataTree) -> None:
        self.snapshots = [(tree.last_zxid, dumps(tree), tuple(lineage(tree)))]
        self.log = []
        self.logged = set()

    def lose_volatile(self, keep: int = 0) -> None:
        """A crash: the first `keep` txns of the batch being written may have reached the disk."""
        if self.in_flight and keep > 0:
            self.write_log(self.in_flight[:keep])
        self.queued = []
        self.in_flight = None
        self.start_pending = False
        self.gen += 1

    # --- loading -----------------------------------------------------------------------------

    def load(self, window: int) -> tuple[DataTree, History]:
        """Storage.restore with keep_replayed = window: newest snapshot + every later txn."""
        if self.snapshots:
            tree = loads(self.snapshots[-1][1])
            tree._sim_lineage = list(self.snapshots[-1][2])  # type: ignore[attr-defined]
        else:
            tree = DataTree()
            tree._sim_lineage = []  # type: ignore[attr-defined]
        start = floor = last = tree.last_zxid
        kept: deque[tuple[TxnHeader, Txn]] = deque()
        for hdr, txn in self.log:
            if hdr.zxid <= start:
                continue
            if hdr.zxid <= last:
                raise LogOutOfOrder(f"{self.name}: zxid 0x{hdr.zxid:x} follows 0x{last:x}; log out of order")
            last = hdr.zxid
            tree.apply(hdr, txn, [])
            tree._sim_lineage.append(hdr.zxid)  # type: ignore[attr-defined]
            kept.append((hdr, txn))
            if len(kept) > window:
                floor = kept.popleft()[0].zxid
        history = History(floor, window)
        for hdr, txn in kept:
            history.append(hdr, txn)
        return tree, history


def lineage(tree: DataTree) -> list[int]:
    """The zxids a tree was built from, in order (kept on the tree object by the simulation)."""
    lin = getattr(tree, "_sim_lineage", None)
    if lin is None:
        lin = tree._sim_lineage = []  # type: ignore[attr-defined]
    return lin
