"""A zkchaos ensemble as real processes on loopback: replication, failover, recovery."""

from __future__ import annotations

import threading
import time

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, KazooException, NodeExistsError, SessionExpiredError
from kazoo.protocol.states import KazooState

from harness.ensemble import LocalEnsemble
from harness.localproc import four_letter
from tests.rawclient import RawClient

pytestmark = pytest.mark.integration


def client(ens: LocalEnsemble, sids: list[int] | None = None, **kw) -> KazooClient:
    kw.setdefault("timeout", 10)
    c = KazooClient(hosts=ens.connection_string(sids), **kw)
    c.start(timeout=20)
    return c


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except KazooException:
            pass
        time.sleep(interval)
    return False


@pytest.fixture
def ensemble(tmp_path):
    ens = LocalEnsemble("zkchaos", tmp_path, 3).start()
    yield ens
    ens.stop()


def test_one_leader_and_writes_replicate(ensemble):
    modes = sorted(ensemble.modes().values())
    assert modes == ["follower", "follower", "leader"]
    writer = client(ensemble, [1])
    readers = [client(ensemble, [i]) for i in (2, 3)]
    try:
        writer.create("/rep", b"v1")
        for r in readers:
            r.sync("/rep")
            assert r.get("/rep")[0] == b"v1"
        stat = writer.set("/rep", b"v2")
        for r in readers:
            r.sync("/")
            data, rstat = r.get("/rep")
            assert data == b"v2" and rstat.mzxid == stat.mzxid
        assert stat.mzxid >> 32 >= 1, "ensemble zxids carry the epoch"
    finally:
        for c in [writer, *readers]:
            c.stop()


def test_srvr_and_mntr_report_roles(ensemble):
    leader = ensemble.leader()
    text = four_letter(leader.host, leader.client_port, "mntr")
    rows = dict(line.split("\t", 1) for line in text.strip().splitlines())
    assert rows["zk_server_state"] == "leader"
    assert rows["zk_followers"] == "2" and rows["zk_synced_followers"] == "2"
    follower = next(s for s in ensemble.servers if s is not leader)
    assert "Mode: follower" in four_letter(follower.host, follower.client_port, "srvr")


class Load:
    """Sequential creates through the whole ensemble; remembers which were acknowledged."""

    def __init__(self, ens: LocalEnsemble) -> None:
        self.zk = client(ens, timeout=6)
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            path = f"/load/n{i:06d}"
            try:
                self.zk.create(path, b"x", makepath=True)
                self.acked.append(path)
                i += 1
            except NodeExistsError:
                self.acked.append(path)  # an earlier attempt landed after all
                i += 1
            except (ConnectionLoss, SessionExpiredError, KazooException):
                time.sleep(0.05)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(20)


def test_kill_9_leader_under_load_loses_no_acknowledged_write(ensemble):
    load = Load(ensemble)
    time.sleep(1.5)
    old = ensemble.leader()
    before = len(load.acked)
    old.kill()
    new = ensemble.wait_for_leader(exclude=old.server_id)
    assert new.server_id != old.server_id
    assert wait_until(lambda: len(load.acked) > before + 20, timeout=30), "writes did not resume after failover"
    load.finish()
    check = client(ensemble, [new.server_id])
    try:
        present = set(check.get_children("/load"))
        lost = [p for p in load.acked if p.rsplit("/", 1)[1] not in present]
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {lost[:3]}"
    finally:
        check.stop()
        load.zk.stop()
    old.start()  # the old leader rejoins as a follower and catches up
    rejoined = client(ensemble, [old.server_id])
    try:
        rejoined.sync("/")
        assert set(rejoined.get_children("/load")) >= {p.rsplit("/", 1)[1] for p in load.acked}
        assert old.mode() == "follower"
    finally:
        rejoined.stop()


def test_followers_killed_and_restarted_catch_up(ensemble):
    zk = client(ensemble)
    try:
        leader = ensemble.leader()
        followers = [s for s in ensemble.servers if s is not leader]
        followers[0].kill()
        for i in range(50):
            zk.create(f"/f{i}", b"d", makepath=True)  # a majority is still up
        followers[0].start()
        followers[1].kill()
        followers[1].start()
        for f in followers:
            c = client(ensemble, [f.server_id])
            try:
                c.sync("/")
                assert len([n for n in c.get_children("/") if n.startswith("f")]) == 50
            finally:
                c.stop()
    finally:
        zk.stop()


def test_whole_ensemble_restart_keeps_data(ensemble):
    zk = client(ensemble)
    zk.create("/durable", b"kept")
    zk.create("/durable/child", b"c")
    zk.stop()
    ensemble.stop()
    ensemble.start()
    zk = client(ensemble)
    try:
        assert zk.get("/durable")[0] == b"kept"
        assert zk.get_children("/durable") == ["child"]
        zk.create("/after-restart")
    finally:
        zk.stop()


def test_minority_never_accepts_writes(ensemble):
    leader = ensemble.leader()
    others = [s for s in ensemble.servers if s is not leader]
    zk = client(ensemble, [leader.server_id])
    zk.create("/before")
    others[0].kill()
    others[1].kill()
    # Alone, the leader loses its quorum within syncLimit and stops serving.
    assert wait_until(lambda: leader.mode() is None, timeout=10)
    with pytest.raises(Exception):  # connection loss or a timeout: never a success
        zk.create_async("/during").get(timeout=4)
    zk.stop()
    others[0].start()
    ensemble.wait_for_leader()
    zk = client(ensemble, [leader.server_id, others[0].server_id])
    try:
        assert zk.exists("/during") is None
        assert zk.exists("/before") is not None
    finally:
        zk.stop()


def test_session_fails_over_with_its_ephemerals_and_watches(ensemble):
    leader = ensemble.leader()
    follower = next(s for s in ensemble.servers if s is not leader)
    others = [s.server_id for s in ensemble.servers if s is not follower]
    zk = KazooClient(hosts=",".join([follower.address] + [ensemble.server(i).address for i in others]), timeout=10, randomize_hosts=False)
    zk.start(timeout=20)
    states: list = []
    zk.add_listener(states.append)
    try:
        sid = zk.client_id[0]
        zk.create("/mine", ephemeral=True)
        follower.kill()
        assert wait_until(lambda: zk.state == KazooState.CONNECTED and KazooState.SUSPENDED in states, timeout=20)
        assert zk.client_id[0] == sid, "the session moved to another server"
        assert KazooState.LOST not in states
        assert zk.exists("/mine").ephemeralOwner == sid
        zk.create("/after-failover")
    finally:
        zk.stop()
        follower.start()


def test_ephemerals_vanish_everywhere_only_after_expiry(ensemble):
    owner = RawClient(ensemble.server(1).host, ensemble.server(1).client_port)
    assert owner.handshake(timeout_ms=2000) == 2000
    assert owner.create("/eph", flags=1).err == 0
    watchers = [client(ensemble, [i]) for i in (2, 3)]
    try:
        for w in watchers:
            w.sync("/")
            assert w.exists("/eph").ephemeralOwner == owner.session_id
        owner.sock.close()  # silent: no pings, no closeSession; the leader must expire it
        start = time.monotonic()
        assert all(w.exists("/eph") is not None for w in watchers)  # not before the timeout
        assert wait_until(lambda: all(w.exists("/eph") is None for w in watchers), timeout=20)
        elapsed = time.monotonic() - start
        assert elapsed >= 1.5, f"expired after {elapsed:.2f}s, before its 2 s timeout"
    finally:
        for w in watchers:
            w.stop()


def test_observer_replicates_and_serves_reads(tmp_path):
    ens = LocalEnsemble("zkchaos", tmp_path, 3, observers=1).start()
    try:
        observer = ens.server(4)
        assert observer.mode() == "observer"
        writer = client(ens, [1, 2, 3])
        reader = client(ens, [4])
        try:
            writer.create("/obs", b"seen")
            reader.sync("/obs")
            assert reader.get("/obs")[0] == b"seen"
            reader.set("/obs", b"written via observer")
            writer.sync("/obs")
            assert writer.get("/obs")[0] == b"written via observer"
        finally:
            writer.stop()
            reader.stop()
        # Two voters gone: the observer alone keeps no quorum alive.
        ens.server(1).kill()
        ens.server(2).kill()
        assert wait_until(lambda: ens.server(3).mode() is None, timeout=10)
    finally:
        ens.stop()


def test_read_only_mode_when_the_quorum_is_gone(tmp_path):
    from kazoo.exceptions import NotReadOnlyCallError
    from kazoo.protocol.states import KeeperState

    ens = LocalEnsemble("zkchaos", tmp_path, 3, settings={"readonlymode.enabled": "true"}).start()
    try:
        writer = client(ens)
        writer.create("/ro", b"before")
        writer.stop()
        survivor = ens.server(1)
        ens.server(2).kill()
        ens.server(3).kill()
        assert wait_until(lambda: four_letter(survivor.host, survivor.client_port, "isro") == "ro", timeout=20)
        assert "Mode: read-only" in four_letter(survivor.host, survivor.client_port, "srvr")
        ro = KazooClient(hosts=survivor.address, read_only=True, timeout=10)
        ro.start(timeout=20)
        try:
            assert ro.client_state == KeeperState.CONNECTED_RO
            assert ro.get("/ro")[0] == b"before"
            with pytest.raises(NotReadOnlyCallError):
                ro.create("/nope")
        finally:
            ro.stop()
            ro.close()
        rw = KazooClient(hosts=survivor.address, timeout=3)
        with pytest.raises(Exception):
            rw.start(timeout=3)  # a client that wants writes is turned away
        rw.close()
        ens.server(2).start()
        assert wait_until(lambda: four_letter(survivor.host, survivor.client_port, "isro") == "rw", timeout=30)
        back = client(ens, [1])
        back.create("/after", b"rw again")
        back.stop()
    finally:
        ens.stop()
