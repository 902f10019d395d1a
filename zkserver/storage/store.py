"""A server's durable state on disk: restore on start, log batches, snapshots, purging."""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import ServerConfig
from ..tree.datatree import DataTree
from . import snapshot as snap
from .txnlog import CorruptLogError, TxnLog, read_log, segment_zxid, segments

log = logging.getLogger(__name__)

SUBDIR = "zkchaos-v1"


class Storage:
    def __init__(self, config: ServerConfig) -> None:
        self.snap_dir: Path = config.data_dir / SUBDIR
        self.log_dir: Path = config.data_log_dir / SUBDIR
        self.force_sync = config.force_sync
        self.retain = config.snap_retain_count
        self.log = TxnLog(self.log_dir, self.force_sync)
        self.snap_dir.mkdir(parents=True, exist_ok=True)

    def restore(self) -> DataTree:
        """Newest valid snapshot + every later logged txn. Opens a fresh log segment."""
        for leftover in self.snap_dir.glob("*.tmp"):
            leftover.unlink()  # a snapshot a crash interrupted
        tree = None
        for path in snap.snapshots(self.snap_dir):
            try:
                tree = snap.load(path)
                log.info("loaded snapshot %s (zxid 0x%x, %d nodes)", path.name, tree.last_zxid, len(tree.nodes))
                break
            except snap.BadSnapshot as e:
                log.warning("skipping damaged snapshot: %s", e)
        if tree is None:
            segs = segments(self.log_dir)
            if segs and segment_zxid(segs[0]) > 1 and snap.snapshots(self.snap_dir):
                raise CorruptLogError(
                    f"{self.snap_dir}: every snapshot is damaged and the log starts at zxid "
                    f"0x{segment_zxid(segs[0]):x}, not at the beginning; refusing to start with lost history"
                )
            tree = DataTree()
        replayed = 0
        for hdr, txn in read_log(self.log_dir, tree.last_zxid):
            tree.apply(hdr, txn, [])
            replayed += 1
        if replayed:
            log.info("replayed %d txns from the log; last zxid 0x%x", replayed, tree.last_zxid)
        self.log.roll(tree.last_zxid + 1)
        return tree

    def begin_snapshot(self, tree: DataTree) -> snap.SnapshotWriter:
        """Start a fuzzy snapshot at the tree's current zxid; the log rolls to a new segment
        first, so purging can later drop whole segments."""
        self.log.roll(tree.last_zxid + 1)
        return snap.SnapshotWriter(self.snap_dir, tree.last_zxid, dict(tree.sessions))

    def purge(self) -> None:
        """Keep the newest `retain` snapshots and the log segments needed to replay from the
        oldest of them."""
        snaps = snap.snapshots(self.snap_dir)
        if len(snaps) <= self.retain:
            return
        keep_from = snap.snapshot_zxid(snaps[self.retain - 1])
        for old in snaps[self.retain :]:
            old.unlink(missing_ok=True)
        segs = segments(self.log_dir)
        for seg, nxt in zip(segs, segs[1:]):
            if segment_zxid(nxt) <= keep_from + 1 and seg != self.log.current:
                seg.unlink(missing_ok=True)

    def close(self) -> None:
        self.log.close()
