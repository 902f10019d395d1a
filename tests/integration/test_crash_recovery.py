"""Durability with real processes: kill -9 under write load loses no acknowledged write;
snapshots, torn log tails and corruption are handled on restart."""

from __future__ import annotations

import threading
import time

import pytest

from tests.conftest import connect
from tests.rawclient import RawClient
from zkserver.protocol.constants import OpCode
from zkserver.protocol.jute import Writer
from zkserver.storage.store import SUBDIR
from zkserver.storage.txnlog import encode_record, segments
from zkserver.txn import CreateTxn, TxnHeader

pytestmark = pytest.mark.integration


def _create_body(path: str, data: bytes) -> bytes:
    return Writer().ustring(path).buffer(data).int(1).int(31).ustring("world").ustring("anyone").int(0).bytes()


class Writer_:
    """Pipelines creates of /load/n<i> and setData of /load (value = i) until the server dies;
    remembers what was acknowledged."""

    def __init__(self, server, window: int = 32) -> None:
        self.server = server
        self.window = window
        self.acked_creates: set[int] = set()
        self.acked_value = -1
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        c = RawClient(self.server.host, self.server.client_port, timeout=5)
        c.handshake(timeout_ms=10000)
        i = 0
        try:
            while True:
                sent = []
                for _ in range(self.window):
                    xid = c.send(OpCode.CREATE, _create_body(f"/load/n{i}", b"v"))
                    sent.append(("create", i, xid))
                    xid = c.send(OpCode.SET_DATA, Writer().ustring("/load").buffer(str(i).encode()).int(-1).bytes())
                    sent.append(("set", i, xid))
                    i += 1
                for kind, n, xid in sent:
                    reply = c.recv_reply()
                    assert reply.xid == xid and reply.err == 0, reply
                    if kind == "create":
                        self.acked_creates.add(n)
                    else:
                        self.acked_value = n
        except (ConnectionError, OSError):
            return  # the server was killed


def _run_load_and_kill(server, seconds: float) -> Writer_:
    zk = connect(server)
    zk.create("/load", b"-1")
    zk.stop()
    zk.close()
    writer = Writer_(server)
    writer.thread.start()
    time.sleep(seconds)
    server.kill()
    writer.thread.join(10)
    return writer


def _check_survivors(server, writer: Writer_) -> None:
    zk = connect(server)
    try:
        present = {int(name[1:]) for name in zk.get_children("/load")}
        lost = writer.acked_creates - present
        assert not lost, f"{len(lost)} acknowledged creates lost, e.g. {sorted(lost)[:5]}"
        value = int(zk.get("/load")[0])
        assert value >= writer.acked_value, f"acknowledged setData {writer.acked_value} lost (now {value})"
        # Unacknowledged writes may or may not have landed, but only in order: no holes.
        assert present == set(range(len(present)))
    finally:
        zk.stop()
        zk.close()


def test_kill_9_under_write_load_loses_nothing_acknowledged(server_factory):
    server = server_factory()
    writer = _run_load_and_kill(server, 1.5)
    assert len(writer.acked_creates) > 100, "load generator made too little progress to mean anything"
    server.start()
    _check_survivors(server, writer)


def test_kill_9_with_snapshots_taken_during_load(server_factory):
    server = server_factory(snapCount="200", autopurge__purgeInterval="1", autopurge__snapRetainCount="3")
    writer = _run_load_and_kill(server, 2.0)
    snaps = list((server.data_dir / SUBDIR).glob("snapshot.*"))
    assert snaps, "no snapshot was taken during the load"
    assert len(snaps) <= 3 + 1, "purge keeps snapRetainCount snapshots"
    server.start()
    _check_survivors(server, writer)
    # Restart again, from the restored state: the same tree comes back.
    zk = connect(server)
    before = (sorted(zk.get_children("/load")), zk.get("/load")[0])
    zk.stop()
    zk.close()
    server.stop()
    server.start()
    zk = connect(server)
    assert (sorted(zk.get_children("/load")), zk.get("/load")[0]) == before
    zk.stop()
    zk.close()


def _newest_segment(server):
    return segments(server.data_dir / SUBDIR)[-1]


def test_torn_tail_is_cut_with_a_warning(server_factory):
    server = server_factory()
    zk = connect(server)
    for i in range(20):
        zk.create(f"/keep{i}")
    zk.stop()
    zk.close()
    server.kill()
    seg = _newest_segment(server)
    # What a crash mid-append leaves: the first part of a well-formed record.
    record = encode_record(TxnHeader(1, 99, 10**6, 0, OpCode.CREATE), CreateTxn("/torn", b"t" * 200, (), 0, 1))
    with open(seg, "ab") as f:
        f.write(record[: len(record) // 2])
    server.start()
    assert "torn" in server.log_path.read_text()
    zk = connect(server)
    assert all(zk.exists(f"/keep{i}") for i in range(20))
    assert zk.exists("/torn") is None
    zk.create("/after-repair")
    zk.stop()
    zk.close()


def test_corruption_in_the_middle_stops_start_up(server_factory):
    server = server_factory()
    zk = connect(server)
    for i in range(50):
        zk.create(f"/n{i}", b"x" * 100)
    zk.stop()
    zk.close()
    server.kill()
    seg = _newest_segment(server)
    data = bytearray(seg.read_bytes())
    data[len(data) // 3] ^= 0xFF  # a flipped byte with valid records after it
    seg.write_bytes(bytes(data))
    with pytest.raises(RuntimeError) as failed:
        server.start(timeout=20)
    assert "refusing to start" in str(failed.value) or "corrupt" in str(failed.value).lower()


def test_sessions_and_ephemerals_survive_a_restart(server_factory):
    server = server_factory()
    c = RawClient(server.host, server.client_port)
    c.handshake(timeout_ms=8000)
    sid, pw = c.session_id, c.passwd
    c.create("/eph", flags=1)
    c.close()
    server.kill()
    server.start()
    again = RawClient(server.host, server.client_port)
    assert again.handshake(session_id=sid, passwd=pw, timeout_ms=8000) == 8000
    zk = connect(server)
    assert zk.exists("/eph").ephemeralOwner == sid
    again.call(OpCode.CLOSE_SESSION)
    assert zk.exists("/eph") is None
    zk.stop()
    zk.close()


def test_restored_session_expires_if_client_never_returns(server_factory):
    server = server_factory()
    c = RawClient(server.host, server.client_port)
    c.handshake(timeout_ms=600)
    c.create("/orphan", flags=1)
    c.close()
    server.kill()
    server.start()
    zk = connect(server)
    deadline = time.monotonic() + 10
    while zk.exists("/orphan") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert zk.exists("/orphan") is None
    zk.stop()
    zk.close()
