"""A server's durable state on disk: restore on start, log batches, snapshots, purging."""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from pathlib import Path

from ..config import ServerConfig
from ..tree.datatree import DataTree
from . import snapshot as snap
from ..txn import Txn, TxnHeader
from .txnlog import CorruptLogError, TxnLog, read_log, segment_zxid, segments, truncate_log

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
        self.replayed: list[tuple[TxnHeader, Txn]] = []  # the tail restore replayed (for sync)
        self.keep_replayed = 0
        self.replay_floor = 0
        # install/truncate rewrite what is on disk; a snapshot being finished or a purge in a
        # worker thread must not interleave with them, and a snapshot of the state before
        # them must not land afterwards.
        self.lock = threading.Lock()
        self.generation = 0

    def restore(self) -> DataTree:
        """Newest valid snapshot + every later logged txn. Opens a fresh log segment."""
        tree = self._load()
        self.log.roll(tree.last_zxid + 1)
        return tree

    def _load(self) -> DataTree:
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
        kept: deque[tuple[TxnHeader, Txn]] = deque()
        self.replay_floor = tree.last_zxid  # the zxid just before the first txn kept in `replayed`
        for hdr, txn in read_log(self.log_dir, tree.last_zxid):
            tree.apply(hdr, txn, [])
            replayed += 1
            if self.keep_replayed:
                kept.append((hdr, txn))
                if len(kept) > self.keep_replayed:
                    self.replay_floor = kept.popleft()[0].zxid
            else:
                self.replay_floor = hdr.zxid
        self.replayed = list(kept)
        if replayed:
            log.info("replayed %d txns from the log; last zxid 0x%x", replayed, tree.last_zxid)
        return tree

    def begin_snapshot(self, tree: DataTree, next_log_zxid: int | None = None) -> snap.SnapshotWriter:
        """Start a fuzzy snapshot at the tree's current zxid. The log first rolls to a new
        segment named after the next zxid it will hold (purging drops whole segments)."""
        self.log.roll(next_log_zxid if next_log_zxid is not None else tree.last_zxid + 1)
        writer = snap.SnapshotWriter(self.snap_dir, tree.last_zxid, dict(tree.sessions))
        writer.generation = self.generation
        return writer

    def finish_snapshot(self, writer: snap.SnapshotWriter) -> Path | None:
        """Seal and rename a snapshot (worker thread); None if the disk state it describes was
        replaced meanwhile."""
        with self.lock:
            if writer.generation != self.generation:
                writer.abort()
                return None
            return writer.finish(self.force_sync)

    def truncate(self, zxid: int) -> DataTree:
        """Drop every logged txn after `zxid` (and snapshots that may include them); the
        state is rebuilt from what remains."""
        with self.lock:
            self.generation += 1
            self.log.close()
            for path in snap.snapshots(self.snap_dir):
                if snap.snapshot_zxid(path) > zxid:
                    path.unlink()
            truncate_log(self.log_dir, zxid)
            tree = self._load()
            self.log.roll(tree.last_zxid + 1)
            return tree

    def install(self, tree: DataTree) -> None:
        """Replace everything on disk by `tree` (a leader's snapshot): the old log and
        snapshots describe a history the leader has overruled. The new snapshot is durable
        before anything old goes, and the log goes newest segment first, so a crash at any
        point leaves either the old history whole or the new snapshot with only older txns
        (which replay skips), never a gap."""
        with self.lock:
            self.generation += 1
            self.log.close()
            writer = snap.SnapshotWriter(self.snap_dir, tree.last_zxid, dict(tree.sessions))
            writer.write(snap.encode_nodes(tree.nodes.items()))
            installed = writer.finish(self.force_sync)
            for seg in reversed(segments(self.log_dir)):
                seg.unlink()
            for path in snap.snapshots(self.snap_dir):
                if path != installed:
                    path.unlink()
            self.log.roll(tree.last_zxid + 1)

    # --- epochs (ZAB) ----------------------------------------------------------------------------

    def read_epoch(self, name: str) -> int:
        path = self.snap_dir / name
        try:
            return int(path.read_text().strip())
        except FileNotFoundError:
            return 0
        except ValueError:
            raise CorruptLogError(f"{path}: not an epoch number") from None

    def write_epoch(self, name: str, value: int) -> None:
        """Durably: write a temporary file, fsync it, rename it over the old one. Always fsynced,
        as ZooKeeper does: forceSync=no speeds up the txn log only; an epoch file lost to a crash
        (empty after a power loss) would stop the server from starting at all."""
        path = self.snap_dir / name
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.write(f"{value}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(self.snap_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def purge(self) -> None:
        """Keep the newest `retain` snapshots and the log segments needed to replay from the
        oldest of them."""
        with self.lock:
            self._purge()

    def _purge(self) -> None:
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
