"""Crash points in the storage's rewrites: installing a leader's snapshot, a log with a gap."""

from __future__ import annotations

from pathlib import Path

import pytest

from zkserver.config import ServerConfig
from zkserver.protocol.constants import OpCode
from zkserver.protocol.records import OPEN_ACL_UNSAFE
from zkserver.storage import snapshot as snap
from zkserver.storage.store import SUBDIR, Storage
from zkserver.storage.txnlog import CorruptLogError, segments
from zkserver.tree.datatree import DataTree
from zkserver.txn import CreateTxn, TxnHeader


def storage(tmp_path: Path) -> Storage:
    return Storage(ServerConfig(data_dir=tmp_path, data_log_dir=tmp_path, force_sync=False))


def fill(st: Storage, first: int, n: int, roll_every: int = 5) -> DataTree:
    """Log n creates (a new segment every few), applying them to a tree."""
    tree = st.restore()
    for z in range(first, first + n):
        if (z - first) % roll_every == 0:
            st.log.roll(z)
        hdr = TxnHeader(1, z, z, 0, OpCode.CREATE)
        txn = CreateTxn(f"/n{z}", b"x", OPEN_ACL_UNSAFE, 0, z)
        from zkserver.storage.txnlog import encode_record

        st.log.append(encode_record(hdr, txn))
        tree.apply(hdr, txn, [])
    return tree


def leader_tree(last: int) -> DataTree:
    tree = DataTree()
    for z in range(1, last + 1):
        tree.apply(TxnHeader(2, z, z, 0, OpCode.CREATE), CreateTxn(f"/leader{z}", b"L", OPEN_ACL_UNSAFE, 0, z), [])
    return tree


@pytest.mark.parametrize("crash_after_unlinks", [0, 1, 2, 3, 5, 100])
def test_a_crash_during_install_never_leaves_a_gap(tmp_path, monkeypatch, crash_after_unlinks):
    st = storage(tmp_path)
    fill(st, 1, 20)
    st.close()
    target = leader_tree(40)  # a SNAP always comes from beyond the learner's last zxid
    unlinks = {"n": 0}
    real_unlink = Path.unlink

    def crashing_unlink(self, missing_ok=False):
        if unlinks["n"] >= crash_after_unlinks:
            raise SystemExit("power lost")
        unlinks["n"] += 1
        return real_unlink(self, missing_ok=missing_ok)

    st = storage(tmp_path)
    st.restore()
    monkeypatch.setattr(Path, "unlink", crashing_unlink)
    try:
        st.install(target)
    except SystemExit:
        pass
    monkeypatch.setattr(Path, "unlink", real_unlink)
    st.log.close()
    restored = storage(tmp_path).restore()
    # Either way: the leader's state, whole; never the new snapshot plus a hole.
    assert restored.last_zxid == 40
    assert {p for p in restored.nodes if p.startswith("/leader")} == {f"/leader{z}" for z in range(1, 41)}


def test_a_missing_segment_stops_start_up(tmp_path):
    st = storage(tmp_path)
    fill(st, 1, 20)
    st.close()
    snaps_dir = tmp_path / SUBDIR
    tree = DataTree()
    for z in range(1, 6):
        tree.apply(TxnHeader(1, z, z, 0, OpCode.CREATE), CreateTxn(f"/n{z}", b"x", OPEN_ACL_UNSAFE, 0, z), [])
    w = snap.SnapshotWriter(snaps_dir, 5, {})
    w.write(snap.encode_nodes(tree.nodes.items()))
    w.finish(False)
    segs = segments(snaps_dir)
    segs[1].unlink()  # txns 6..10 gone
    with pytest.raises(CorruptLogError, match="missing"):
        storage(tmp_path).restore()
