"""Durable state on real files (tmp_path): CRC-checked log segments, torn tails, corruption,
snapshots, falling back past a damaged snapshot, and fuzzy snapshots repaired by the log."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from zkserver.config import ServerConfig
from zkserver.protocol.constants import Err, OpCode
from zkserver.protocol.records import ACL, OPEN_ACL_UNSAFE
from zkserver.storage import snapshot as snap
from zkserver.storage.store import SUBDIR, Storage
from zkserver.storage.txnlog import (
    MAGIC,
    CorruptLogError,
    TxnLog,
    encode_record,
    read_log,
    segment_name,
    segments,
)
from zkserver.tree.datatree import DataTree
from zkserver.tree.node import CONTAINER_OWNER, ttl_owner
from zkserver.txn import (
    CheckTxn,
    CloseSessionTxn,
    CreateSessionTxn,
    CreateTxn,
    DeleteTxn,
    ErrorTxn,
    MultiTxn,
    SetACLTxn,
    SetDataTxn,
    TxnHeader,
    decode_txn,
    encode_txn,
)

from .helpers import TxnMaker, diff_states, random_history, tree_state


def h(zxid: int, op: int = OpCode.CREATE, sid: int = 0x77) -> TxnHeader:
    return TxnHeader(sid, zxid, zxid, 1_700_000_000_000 + zxid, op)


def sample_txns(first: int, n: int) -> list[tuple[TxnHeader, object]]:
    """n txns of assorted types with consecutive zxids."""
    kinds = [
        lambda z: (h(z), CreateTxn(f"/n{z}", b"data%d" % z, OPEN_ACL_UNSAFE, 0, z)),
        lambda z: (h(z, OpCode.SET_DATA), SetDataTxn(f"/n{z}", None, 3)),
        lambda z: (h(z, OpCode.DELETE), DeleteTxn(f"/n{z}")),
        lambda z: (h(z, OpCode.SET_ACL), SetACLTxn("/x", (ACL(1, "digest", "u:h"), ACL(31, "ip", "10.0.0.0/8")), 2)),
        lambda z: (h(z, OpCode.CREATE_SESSION), CreateSessionTxn(30000)),
        lambda z: (h(z, OpCode.CLOSE_SESSION), CloseSessionTxn(("/e1", "/e2"))),
        lambda z: (h(z, OpCode.DELETE), ErrorTxn(Err.NONODE)),
        lambda z: (
            h(z, OpCode.MULTI),
            MultiTxn(((OpCode.CREATE, CreateTxn("/m", b"", OPEN_ACL_UNSAFE, -5, 1)), (OpCode.CHECK, CheckTxn("/m", 1)))),
        ),
    ]
    return [kinds[(z - first) % len(kinds)](z) for z in range(first, first + n)]


def write_segment(directory: Path, txns) -> Path:
    log = TxnLog(directory, force_sync=False)
    log.roll(txns[0][0].zxid)
    log.append(b"".join(encode_record(hd, t) for hd, t in txns))
    log.close()
    return directory / segment_name(txns[0][0].zxid)


# --- txn encoding -----------------------------------------------------------------------------


def test_txn_encoding_round_trip():
    for hd, txn in sample_txns(1, 16):
        assert decode_txn(encode_txn(hd, txn)) == (hd, txn)


def test_negative_and_large_values_round_trip():
    hd = TxnHeader(-(2**63), -1, (5 << 32) | 7, 2**62, OpCode.CREATE_TTL)
    txn = CreateTxn("/t\u00e4", None, (), ttl_owner(123), -3)
    assert decode_txn(encode_txn(hd, txn)) == (hd, txn)
    txn = CreateTxn("/c", b"", OPEN_ACL_UNSAFE, CONTAINER_OWNER, 0)
    assert decode_txn(encode_txn(hd, txn)) == (hd, txn)


# --- the log ----------------------------------------------------------------------------------


def test_log_round_trip_across_segments(tmp_path):
    txns = sample_txns(1, 30)
    log = TxnLog(tmp_path, force_sync=False)
    log.roll(1)
    log.append(b"".join(encode_record(*t) for t in txns[:10]))
    for t in txns[10:15]:  # one record per append
        log.append(encode_record(*t))
    log.roll(16)
    log.append(b"".join(encode_record(*t) for t in txns[15:20]))
    log.roll(21)
    log.append(b"".join(encode_record(*t) for t in txns[20:]))
    log.close()
    assert [p.name for p in segments(tmp_path)] == [segment_name(1), segment_name(16), segment_name(21)]
    assert list(read_log(tmp_path, 0)) == txns
    assert list(read_log(tmp_path, 15)) == txns[15:]
    assert list(read_log(tmp_path, 17)) == txns[17:]
    assert list(read_log(tmp_path, 3)) == txns[3:]
    assert list(read_log(tmp_path, 30)) == []


def test_segment_starts_with_magic(tmp_path):
    path = write_segment(tmp_path, sample_txns(1, 1))
    assert path.read_bytes()[: len(MAGIC)] == MAGIC


def test_reroll_to_an_existing_segment_appends(tmp_path):
    txns = sample_txns(1, 4)
    log = TxnLog(tmp_path, force_sync=False)
    log.roll(1)
    log.append(encode_record(*txns[0]))
    log.roll(1)  # e.g. restart: same name, no second header
    log.append(b"".join(encode_record(*t) for t in txns[1:]))
    log.close()
    assert list(read_log(tmp_path, 0)) == txns


def test_empty_directory(tmp_path):
    assert list(read_log(tmp_path / "missing", 0)) == []
    assert list(read_log(tmp_path, 0)) == []


def _record_offsets(path: Path) -> list[int]:
    """Start offset of each record in a segment (from the length fields)."""
    import struct

    data = path.read_bytes()
    pos, out = len(MAGIC), []
    while pos < len(data):
        out.append(pos)
        (n,) = struct.unpack_from(">I", data, pos)
        pos += 12 + n
    return out


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_torn_tail_mid_record_is_cut(tmp_path):
    txns = sample_txns(1, 5)
    path = write_segment(tmp_path, txns)
    offsets = _record_offsets(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 7)  # the last record loses its end
    assert list(read_log(tmp_path, 0)) == txns[:4]
    assert path.stat().st_size == offsets[4]  # cut back to the last whole record
    assert list(read_log(tmp_path, 0)) == txns[:4]  # and stays readable


@pytest.mark.parametrize("keep", [1, 5, 11, 12, 13])
def test_torn_tail_inside_last_record_header_is_cut(tmp_path, keep):
    txns = sample_txns(1, 3)
    path = write_segment(tmp_path, txns)
    last = _record_offsets(path)[2]
    with open(path, "r+b") as f:
        f.truncate(last + keep)
    assert list(read_log(tmp_path, 0)) == txns[:2]
    assert path.stat().st_size == last


def test_garbled_last_record_payload_is_cut(tmp_path):
    txns = sample_txns(1, 5)
    path = write_segment(tmp_path, txns)
    last = _record_offsets(path)[4]
    _flip(path, last + 12 + 3)
    assert list(read_log(tmp_path, 0)) == txns[:4]
    assert path.stat().st_size == last


def test_garbled_last_record_header_is_cut(tmp_path):
    # "A record cut short or garbled at the very end of the newest segment is a write torn by a
    # crash: it is cut off" -- nothing valid follows it, so no committed txn can be lost.
    txns = sample_txns(1, 5)
    path = write_segment(tmp_path, txns)
    last = _record_offsets(path)[4]
    _flip(path, last + 2)  # its length field
    assert list(read_log(tmp_path, 0)) == txns[:4]
    assert path.stat().st_size == last


@pytest.mark.parametrize("zeros", [1, 12, 100, 4096])
def test_zero_filled_tail_is_cut(tmp_path, zeros):
    txns = sample_txns(1, 5)
    path = write_segment(tmp_path, txns)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(bytes(zeros))  # preallocated / never-written blocks
    assert list(read_log(tmp_path, 0)) == txns
    assert path.stat().st_size == size


def test_zeroed_last_record_is_cut(tmp_path):
    txns = sample_txns(1, 5)
    path = write_segment(tmp_path, txns)
    last = _record_offsets(path)[4]
    data = bytearray(path.read_bytes())
    data[last:] = bytes(len(data) - last)
    path.write_bytes(bytes(data))
    assert list(read_log(tmp_path, 0)) == txns[:4]
    assert path.stat().st_size == last


def test_torn_tail_then_more_appends(tmp_path):
    txns = sample_txns(1, 6)
    path = write_segment(tmp_path, txns[:4])
    with open(path, "ab") as f:
        f.write(encode_record(*txns[4])[:20])  # a crash mid-write
    assert list(read_log(tmp_path, 0)) == txns[:4]
    log = TxnLog(tmp_path, force_sync=False)
    log.roll(5)
    log.append(encode_record(*txns[4]) + encode_record(*txns[5]))
    log.close()
    assert list(read_log(tmp_path, 0)) == txns


def test_empty_newest_segment_with_cut_header_is_removed(tmp_path):
    txns = sample_txns(1, 3)
    write_segment(tmp_path, txns)
    (tmp_path / segment_name(4)).write_bytes(MAGIC[:3])
    assert list(read_log(tmp_path, 0)) == txns
    assert not (tmp_path / segment_name(4)).exists()


@pytest.mark.parametrize("where", ["payload", "length", "crc", "header_crc"])
def test_damage_before_valid_records_is_corruption(tmp_path, where):
    txns = sample_txns(1, 6)
    path = write_segment(tmp_path, txns)
    rec = _record_offsets(path)[1]
    offset = {"payload": rec + 12 + 5, "length": rec + 3, "crc": rec + 5, "header_crc": rec + 9}[where]
    _flip(path, offset)
    before = path.read_bytes()
    with pytest.raises(CorruptLogError):
        list(read_log(tmp_path, 0))
    assert path.read_bytes() == before  # nothing was cut


def test_zeroed_record_before_valid_records_is_corruption(tmp_path):
    txns = sample_txns(1, 6)
    path = write_segment(tmp_path, txns)
    offs = _record_offsets(path)
    data = bytearray(path.read_bytes())
    data[offs[2] : offs[3]] = bytes(offs[3] - offs[2])
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptLogError):
        list(read_log(tmp_path, 0))


def test_damaged_tail_of_an_older_segment_is_corruption(tmp_path):
    first = sample_txns(1, 5)
    second = sample_txns(6, 5)
    old = write_segment(tmp_path, first)
    write_segment(tmp_path, second)
    with open(old, "r+b") as f:
        f.truncate(old.stat().st_size - 3)
    with pytest.raises(CorruptLogError):
        list(read_log(tmp_path, 0))


def test_bad_magic_is_corruption(tmp_path):
    path = write_segment(tmp_path, sample_txns(1, 2))
    _flip(path, 0)
    with pytest.raises(CorruptLogError):
        list(read_log(tmp_path, 0))


# --- snapshots --------------------------------------------------------------------------------


def build_sample_tree() -> DataTree:
    t = DataTree()
    mk = TxnMaker()
    txns = [
        (mk.hdr(OpCode.CREATE_SESSION, 0x10), CreateSessionTxn(5000)),
        (mk.hdr(OpCode.CREATE_SESSION, 0x11), CreateSessionTxn(7000)),
        mk.create("/a", b"data"),
        mk.create("/a/b", None),
        mk.create("/a/b/c", b"\x00\x01\xff", acl=(ACL(1, "digest", "u:h"), ACL(31, "ip", "10.0.0.0/8"))),
        mk.create("/e", b"", owner=0x10),
        mk.create("/a/e2", b"", owner=0x11),
        mk.create("/c", b"", owner=CONTAINER_OWNER, op=OpCode.CREATE_CONTAINER),
        mk.create("/t", b"", owner=ttl_owner(1234), op=OpCode.CREATE_TTL),
        mk.set_data("/a", b"data2"),
        mk.set_acl("/a/b", (ACL(31, "world", "anyone"),)),
        mk.create("/a/x"),
        mk.delete("/a/x"),
        mk.create("/\u00e4hm", b"unicode"),
    ]
    for hd, txn in txns:
        assert t.apply(hd, txn, []).err == Err.OK
    return t


def write_snapshot(directory: Path, tree: DataTree) -> Path:
    w = snap.SnapshotWriter(directory, tree.last_zxid, dict(tree.sessions))
    w.write(snap.encode_nodes(tree.nodes.items()))
    return w.finish(fsync=False)


def test_snapshot_round_trip(tmp_path):
    tree = build_sample_tree()
    path = write_snapshot(tmp_path, tree)
    assert path.name == snap.snapshot_name(tree.last_zxid)
    assert not list(tmp_path.glob("*.tmp"))
    loaded = snap.load(path)
    assert loaded.last_zxid == tree.last_zxid
    assert diff_states(tree_state(loaded), tree_state(tree)) == []


def test_snapshot_written_in_chunks(tmp_path):
    tree = build_sample_tree()
    items = list(tree.nodes.items())
    w = snap.SnapshotWriter(tmp_path, tree.last_zxid, dict(tree.sessions))
    for i in range(0, len(items), 3):
        w.write(snap.encode_nodes(items[i : i + 3]))
    loaded = snap.load(w.finish(fsync=False))
    assert tree_state(loaded) == tree_state(tree)


def test_snapshots_listed_newest_first(tmp_path):
    t = DataTree()
    for z in (5, 300, 17):
        t.last_zxid = z
        write_snapshot(tmp_path, t)
    (tmp_path / (snap.snapshot_name(999) + ".tmp")).write_bytes(b"partial")
    assert [snap.snapshot_zxid(p) for p in snap.snapshots(tmp_path)] == [300, 17, 5]


@pytest.mark.parametrize("where", [0, 20, -1, -5, "truncate"])
def test_damaged_snapshot_is_rejected(tmp_path, where):
    path = write_snapshot(tmp_path, build_sample_tree())
    if where == "truncate":
        with open(path, "r+b") as f:
            f.truncate(path.stat().st_size // 2)
    else:
        _flip(path, where % path.stat().st_size)
    with pytest.raises(snap.BadSnapshot):
        snap.load(path)


# --- restore: snapshots + log ---------------------------------------------------------------------


def config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(data_dir=tmp_path / "data", data_log_dir=tmp_path / "log", force_sync=False)


class Server:
    """Storage as the standalone shell drives it: log every txn, apply, snapshot now and then."""

    def __init__(self, tmp_path: Path) -> None:
        self.storage = Storage(config(tmp_path))
        self.tree = self.storage.restore()

    def commit(self, hd, txn) -> None:
        self.storage.log.append(encode_record(hd, txn))
        self.tree.apply(hd, txn, [])

    def snapshot(self) -> Path:
        w = self.storage.begin_snapshot(self.tree)
        w.write(snap.encode_nodes(list(self.tree.nodes.items())))
        return w.finish(fsync=False)

    def close(self) -> None:
        self.storage.close()


def restore(tmp_path: Path) -> DataTree:
    s = Storage(config(tmp_path))
    try:
        return s.restore()
    finally:
        s.close()


def test_restore_log_only(tmp_path):
    seq, truth = random_history(1, 120)
    srv = Server(tmp_path)
    for hd, txn in seq:
        srv.commit(hd, txn)
    srv.close()
    restored = restore(tmp_path)
    assert diff_states(tree_state(restored), tree_state(truth)) == []
    assert restored.last_zxid == truth.last_zxid


def test_restore_snapshot_plus_log(tmp_path):
    seq, truth = random_history(2, 150)
    srv = Server(tmp_path)
    for i, (hd, txn) in enumerate(seq):
        srv.commit(hd, txn)
        if i in (40, 100):
            srv.snapshot()
    srv.close()
    restored = restore(tmp_path)
    assert diff_states(tree_state(restored), tree_state(truth)) == []
    assert restored.last_zxid == truth.last_zxid


def test_damaged_newest_snapshot_falls_back_to_older(tmp_path):
    seq, truth = random_history(3, 150)
    srv = Server(tmp_path)
    snaps = []
    for i, (hd, txn) in enumerate(seq):
        srv.commit(hd, txn)
        if i in (40, 100):
            snaps.append(srv.snapshot())
    srv.close()
    _flip(snaps[1], snaps[1].stat().st_size // 2)
    restored = restore(tmp_path)
    assert diff_states(tree_state(restored), tree_state(truth)) == []


def test_restart_after_torn_tail_keeps_serving(tmp_path):
    seq, _ = random_history(4, 60)
    srv = Server(tmp_path)
    for hd, txn in seq[:50]:
        srv.commit(hd, txn)
    srv.storage.log.append(encode_record(*seq[50])[:-5])  # crash while writing txn 51
    srv.close()
    expected = DataTree()
    for hd, txn in seq[:50]:
        expected.apply(hd, txn, [])
    srv = Server(tmp_path)
    assert diff_states(tree_state(srv.tree), tree_state(expected)) == []
    for hd, txn in seq[50:]:
        srv.commit(hd, txn)
        expected.apply(hd, txn, [])
    srv.close()
    assert diff_states(tree_state(restore(tmp_path)), tree_state(expected)) == []


def test_all_snapshots_damaged_and_log_start_missing_refuses(tmp_path):
    seq, _ = random_history(5, 80)
    srv = Server(tmp_path)
    for i, (hd, txn) in enumerate(seq):
        srv.commit(hd, txn)
        if i == 40:
            only = srv.snapshot()
    srv.close()
    log_dir = tmp_path / "log" / SUBDIR
    segments(log_dir)[0].unlink()  # purged: the snapshot was the only way to the early txns
    _flip(only, 30)
    with pytest.raises(CorruptLogError):
        restore(tmp_path)


# --- fuzzy snapshots --------------------------------------------------------------------------


def _fuzzy_run(tmp_path: Path, seq, z: int, rng: random.Random) -> None:
    """Apply seq[:z]; start a snapshot; encode the node list in chunks while the rest of the txns
    keep committing in between (nodes deleted before their turn are skipped, as the shell does)."""
    srv = Server(tmp_path)
    for hd, txn in seq[:z]:
        srv.commit(hd, txn)
    writer = srv.storage.begin_snapshot(srv.tree)
    paths = list(srv.tree.nodes)
    rest = list(seq[z:])
    i = 0
    while i < len(paths):
        chunk = paths[i : i + rng.randrange(1, 4)]
        i += len(chunk)
        writer.write(snap.encode_nodes([(p, srv.tree.nodes[p]) for p in chunk if p in srv.tree.nodes]))
        for _ in range(rng.randrange(0, 4)):
            if rest:
                srv.commit(*rest.pop(0))
    writer.finish(fsync=False)
    for hd, txn in rest:
        srv.commit(hd, txn)
    srv.close()


@pytest.mark.parametrize("seed", range(24))
def test_fuzzy_snapshot_plus_log_equals_true_tree(tmp_path, seed):
    seq, truth = random_history(100 + seed, 200)
    rng = random.Random(seed)
    _fuzzy_run(tmp_path, seq, rng.randrange(50, 150), rng)
    restored = restore(tmp_path)
    assert diff_states(tree_state(restored), tree_state(truth)) == []
    assert restored.last_zxid == truth.last_zxid


def test_fuzzy_snapshot_with_child_deleted_before_its_turn(tmp_path):
    """/p is written at zxid Z; /p/c is deleted (Z+1) before the snapshot reaches it. Replaying
    the delete must still move /p's pzxid to Z+1, as ZooKeeper's deleteNode does."""
    mk = TxnMaker()
    srv = Server(tmp_path)
    for t in (mk.create("/p"), mk.create("/p/c")):
        srv.commit(*t)
    writer = srv.storage.begin_snapshot(srv.tree)
    writer.write(snap.encode_nodes([(p, srv.tree.nodes[p]) for p in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config", "/p")]))
    srv.commit(*mk.delete("/p/c"))
    writer.write(snap.encode_nodes([(p, srv.tree.nodes[p]) for p in ("/p/c",) if p in srv.tree.nodes]))
    writer.finish(fsync=False)
    truth = srv.tree
    srv.close()
    restored = restore(tmp_path)
    assert restored.get("/p").stat()[10] == truth.get("/p").stat()[10] == 3  # pzxid
    assert diff_states(tree_state(restored), tree_state(truth)) == []


def test_epoch_files_are_fsynced_even_with_force_sync_off(tmp_path, monkeypatch):
    """forceSync=no is about the txn log; an epoch file lost to a power cut (empty) would stop
    the server from starting at all, so it is always made durable (as ZooKeeper does)."""
    import os

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    storage = Storage(config(tmp_path))  # force_sync=False
    storage.write_epoch("acceptedEpoch", 7)
    assert len(synced) == 2  # the file, then its directory (the rename)
    assert storage.read_epoch("acceptedEpoch") == 7
