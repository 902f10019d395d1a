"""ZAB in a simulated ensemble: elections, synchronisation, broadcast, and regressions from
ZooKeeper's history. Every run is deterministic from its seed; the invariants in
invariants.py are checked after every event of every test (a violation fails the test)."""

from __future__ import annotations

import pytest

from zkserver.protocol.constants import Err, OpCode
from zkserver.quorum import messages as m
from zkserver.quorum.history import epoch_of, make_zxid
from zkserver.quorum.messages import PeerState

from .checks import assert_acks_survive, assert_converged, connect, history, preload, write
from .client import SimClient
from .ensemble import TICK_STEP, SimEnsemble


def leading(sim: SimEnsemble) -> list[int]:
    return [s.sid for s in sim.servers.values() if s.state == PeerState.LEADING]


def epoch(sim: SimEnsemble, sid: int) -> int:
    return sim.servers[sid].peer.role.epoch


def follower_of(sim: SimEnsemble, lid: int) -> list[int]:
    return [s.sid for s in sim.servers.values() if s.alive and s.sid != lid and not s.observer]


# --- elections -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [3, 5])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fresh_ensemble_elects_the_highest_id(n, seed):
    sim = SimEnsemble(n=n, seed=seed)
    lid = sim.wait_stable()
    assert lid == n
    assert epoch(sim, lid) == 1
    c = connect(sim, 1)
    write(c, "/x", b"1")
    sim.wait_stable()
    assert_converged(sim)


@pytest.mark.parametrize(
    "n, logs, expected",
    [
        # (current epoch, [(epoch, txn count), ...]) per server
        (3, {1: (1, [(1, 5)]), 2: (1, [(1, 3)]), 3: (1, [(1, 4)])}, 1),  # the longest log
        (3, {1: (1, [(1, 4)]), 2: (1, [(1, 2)]), 3: (1, [(1, 4)])}, 3),  # a tie: the higher id
        (3, {1: (2, [(1, 3), (2, 1)]), 2: (1, [(1, 3)]), 3: (1, [(1, 3)])}, 1),  # a newer epoch
        # peer epoch beats zxid: 2 synced with epoch 2 (nothing new); 3 logged an old
        # proposal nobody else has
        (3, {1: (1, [(1, 3)]), 2: (2, [(1, 3)]), 3: (1, [(1, 4)])}, 2),
        (5, {1: (1, [(1, 2)]), 2: (1, [(1, 6)]), 3: (1, [(1, 5)]), 4: (1, [(1, 6)]), 5: (1, [(1, 1)])}, 4),
        (5, {1: (3, [(1, 2), (3, 2)]), 2: (2, [(1, 2), (2, 4)]), 3: (3, [(1, 2), (3, 2)]), 4: (2, [(1, 2)]), 5: (1, [(1, 2)])}, 3),
    ],
)
def test_election_picks_highest_epoch_then_zxid_then_id(n, logs, expected):
    sim = SimEnsemble(n=n, seed=7, start=False)
    # Every server's log is a prefix of one history (per epoch), as ZAB would leave it.
    for sid, (cur, shape) in logs.items():
        preload(sim, sid, history(shape), cur)
    for sid in sim.servers:
        sim.restart(sid)
    lid = sim.wait_stable()
    assert lid == expected, sim.dump()
    assert epoch(sim, lid) == max(cur for cur, _ in logs.values()) + 1
    state = assert_converged(sim)
    expected_nodes = len(history(logs[expected][1])) - 1
    assert len([p for p in state["nodes"] if p.startswith("/n")]) == expected_nodes


def test_restarted_follower_rejoins_the_existing_leader():
    sim = SimEnsemble(n=3, seed=11)
    lid = sim.wait_stable()
    e = epoch(sim, lid)
    f = follower_of(sim, lid)[0]
    c = connect(sim, lid)
    write(c, "/a")
    sim.crash(f)
    write(c, "/b")
    sim.restart(f)
    sim.wait_stable()
    assert sim.leader() == lid and epoch(sim, lid) == e, "a returning follower must not unseat the leader"
    assert sim.servers[f].state == PeerState.FOLLOWING
    write(c, "/c")
    sim.wait_stable()
    assert_converged(sim)


@pytest.mark.parametrize("n", [3, 5])
def test_reelection_after_the_leader_crashes(n):
    sim = SimEnsemble(n=n, seed=12)
    old = sim.wait_stable()
    e = epoch(sim, old)
    c = connect(sim, 1)
    write(c, "/before")
    sim.crash(old)
    t0 = sim.now
    new = sim.wait_stable()
    assert new != old and epoch(sim, new) > e
    assert sim.now - t0 < 3000
    c = connect(sim, new)
    write(c, "/after")
    sim.restart(old)
    assert sim.wait_stable() == new
    assert sim.servers[old].state == PeerState.FOLLOWING
    state = assert_converged(sim)
    assert {"/before", "/after"} <= set(state["nodes"])


@pytest.mark.parametrize("seed", range(6))
def test_at_most_one_leader_per_epoch_under_churn(seed):
    """Leaders crash, get isolated and come back, over and over; the invariant checker records
    which server established each epoch and fails if two ever do."""
    import random

    rng = random.Random(seed)
    sim = SimEnsemble(n=5, seed=seed)
    sim.wait_stable()
    for _ in range(8):
        lid = sim.leader() or rng.choice(list(sim.servers))
        if rng.random() < 0.5:
            sim.isolate(lid)
        else:
            sim.crash(lid)
        sim.run(rng.randint(100, 1500))
        if rng.random() < 0.5:
            others = [s for s in sim.servers if s != lid]
            rng.shuffle(others)
            sim.partition([lid, others[0]], others[1:])
            sim.run(rng.randint(100, 1000))
        sim.heal()
        for s in sim.servers.values():
            if not s.alive:
                sim.restart(s.sid)
        sim.wait_stable()
    epochs = sorted(sim.invariants.leaders)
    assert len(epochs) >= 5 and len(set(epochs)) == len(epochs)
    assert_converged(sim)


def test_minority_never_elects_nor_commits():
    sim = SimEnsemble(n=5, seed=21)
    lid = sim.wait_stable()
    minority = [lid, [s for s in sim.servers if s != lid][0]]
    majority = [s for s in sim.servers if s not in minority]
    cm = connect(sim, minority[1])
    write(cm, "/shared")
    sim.wait_stable()
    frozen = {s: sim.servers[s].tree.last_zxid for s in minority}

    sim.partition(minority, majority)
    t_cut = sim.now
    pending = cm.create("/minority-write")  # the old leader is still up for a moment

    bad = []

    def watch():
        for s in minority:
            srv = sim.servers[s]
            if srv.alive and srv.state == PeerState.LEADING and srv.peer.role.epoch != epoch_of(frozen[lid] or make_zxid(1, 0)) and sim.now > t_cut:
                bad.append((sim.now, s, "leads"))
            if srv.alive and srv.tree.last_zxid != frozen[s]:
                bad.append((sim.now, s, f"applied 0x{srv.tree.last_zxid:x}"))

    sim.hooks.append(watch)
    sim.run(5000)
    assert cm.replies.get(pending) is None or cm.replies[pending].err != Err.OK
    for s in minority:
        assert sim.servers[s].state == PeerState.LOOKING, sim.dump()
    # The majority goes on.
    new = sim.leader()
    assert new in majority
    cM = connect(sim, majority[0])
    write(cM, "/majority-write")
    sim.run(2000)
    assert not bad, bad[:5]
    sim.hooks.remove(watch)
    sim.heal()
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/majority-write" in state["nodes"] and "/minority-write" not in state["nodes"]


def test_isolated_leader_steps_down_within_sync_limit():
    sim = SimEnsemble(n=3, seed=31)
    lid = sim.wait_stable()
    c = connect(sim, lid)
    write(c, "/a")
    sync_ms = sim.servers[lid].config.sync_limit * sim.servers[lid].config.tick_time
    sim.isolate(lid)
    t0 = sim.now
    xid = c.create("/lost")  # logged on the old leader only; never committed
    assert sim.run_until(lambda: sim.servers[lid].state != PeerState.LEADING, 5000)
    took = sim.now - t0
    assert took <= sync_ms + sim.servers[lid].config.tick_time, f"stepped down after {took} ms"
    assert c.replies.get(xid) is None
    assert not sim.servers[lid].core.serving and c.closed
    new = sim.wait_stable(ignore=(lid,))
    assert new != lid
    sim.heal()
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/lost" not in state["nodes"]


# --- synchronisation -------------------------------------------------------------------------------


def sync_modes(sim: SimEnsemble, dst: int, since: int = 0) -> list[str]:
    return [p.info.split()[0] for p in sim.sent(m.Kind.SYNC_DATA, dst=dst) if p.time >= since]


def test_far_behind_follower_gets_a_snapshot():
    sim = SimEnsemble(n=3, seed=41, window=5)
    lid = sim.wait_stable()
    f = follower_of(sim, lid)[0]
    c = connect(sim, lid)
    write(c, "/base")
    sim.crash(f)
    for i in range(12):
        write(c, f"/k{i}", b"v%d" % i)
    t0 = sim.now
    sim.restart(f)
    sim.wait_stable()
    assert sync_modes(sim, f, t0) == ["SNAP"]
    assert sim.servers[f].disk.snap_zxid() >= sim.servers[lid].tree.last_zxid - 1
    write(connect(sim, f), "/after")
    sim.wait_stable()
    assert_converged(sim)


def test_slightly_behind_follower_gets_a_diff():
    sim = SimEnsemble(n=3, seed=42)
    lid = sim.wait_stable()
    f = follower_of(sim, lid)[0]
    c = connect(sim, lid)
    write(c, "/base")
    sim.wait_stable()
    sim.crash(f)
    zxids = [write(c, f"/k{i}") for i in range(3)]
    t0 = sim.now
    sim.restart(f)
    sim.wait_stable()
    diffs = [p for p in sim.sent(m.Kind.SYNC_DATA, dst=f) if p.time >= t0]
    assert [p.info.split()[0] for p in diffs] == ["DIFF"]
    assert all(hex(z) in diffs[0].info for z in zxids)
    assert_converged(sim)


def test_follower_with_proposals_beyond_the_leader_is_truncated():
    """The old leader logs proposals nobody else saw, loses its quorum, and comes back to a
    new leader: it is told TRUNC to the last txn they share, then DIFF."""
    sim = SimEnsemble(n=3, seed=43)
    old = sim.wait_stable()
    c = connect(sim, old)
    shared = write(c, "/shared")
    sim.wait_stable()
    sim.isolate(old)
    lost = [c.create(f"/lost{i}") for i in range(3)]
    sim.run(50)
    assert sim.servers[old].disk.durable_end() > shared, "the old leader should have logged them"
    new = sim.wait_stable(ignore=(old,))
    c2 = connect(sim, new)
    kept = write(c2, "/kept")
    t0 = sim.now
    sim.heal()
    sim.wait_stable()
    sync = [p for p in sim.sent(m.Kind.SYNC_DATA, dst=old) if p.time >= t0]
    assert sync and sync[-1].info.startswith(f"TRUNC to 0x{shared:x}"), [p.info for p in sync]
    assert all(c.replies.get(x) is None for x in lost)
    state = assert_converged(sim)
    assert "/kept" in state["nodes"] and not any(p.startswith("/lost") for p in state["nodes"])
    disk = sim.servers[old].disk
    assert not any(z > shared and epoch_of(z) == epoch_of(shared) for z in disk.logged)
    assert kept in disk.logged


# --- a leader crash between PROPOSAL and COMMIT --------------------------------------------------


@pytest.mark.parametrize("delay", [0, 1, 2, 3, 4, 6, 9])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_leader_crash_between_proposal_and_commit(delay, seed):
    sim = SimEnsemble(n=3, seed=100 + seed)
    lid = sim.wait_stable()
    fs = follower_of(sim, lid)
    c = connect(sim, fs[0])
    write(c, "/before")
    sim.wait_stable()
    if seed == 3:
        sim.hold_disk(fs[1])  # one follower cannot make it durable
    before = len(sim.sent(m.Kind.PROPOSAL, src=lid))
    xid = c.create("/w", b"payload")
    assert sim.run_until(lambda: len(sim.sent(m.Kind.PROPOSAL, src=lid)) > before, 2000)
    sim.run(delay)
    sim.crash(lid)
    new = sim.wait_stable(ignore=(lid,), timeout=20_000) if seed != 3 else None
    if seed == 3:
        sim.release_disk(fs[1])
        new = sim.wait_stable()
    assert new != lid
    has = [s for s in fs if "/w" in sim.servers[s].tree.nodes]
    assert has in ([], fs), f"/w on {has} only"
    reply = c.replies.get(xid)
    if reply is not None and reply.err == 0:
        assert has == fs, "an acknowledged write was lost"
    sim.restart(lid)
    sim.wait_stable()
    state = assert_converged(sim)
    assert ("/w" in state["nodes"]) == (has == fs)


# --- regressions from ZooKeeper's history ----------------------------------------------------------


def newleader_acks(sim: SimEnsemble, src: int, since: int = 0) -> list:
    return [p for p in sim.sent(m.Kind.ACK, src=src) if p.zxid & 0xFFFFFFFF == 0 and p.time >= since]


def nowhere(sim: SimEnsemble, path: str) -> bool:
    return all(path not in s.tree.nodes for s in sim.servers.values() if s.alive)


def isolate_and_log_alone(sim: SimEnsemble, c: SimClient, lid: int, path: str) -> int:
    """Cut the leader off and have it log one more proposal that nobody else sees."""
    before = sim.servers[lid].disk.durable_end()
    sim.isolate(lid)
    c.create(path, b"alone")
    assert sim.run_until(lambda: sim.servers[lid].disk.durable_end() > before, 500)
    return sim.servers[lid].disk.durable_end()


@pytest.mark.parametrize("window", [None, 2])
def test_zookeeper_1154_txn_logged_only_by_a_crashed_leader_is_discarded(window):
    sim = SimEnsemble(n=3, seed=54, window=window)
    old = sim.wait_stable()
    c = connect(sim, old)
    for i in range(4):
        write(c, f"/a{i}")
    sim.wait_stable()
    b = isolate_and_log_alone(sim, c, old, "/B")
    sim.crash(old)
    new = sim.wait_stable()  # (the partition holds back what the old leader had sent)
    sim.heal()
    c2 = connect(sim, new)
    cz = write(c2, "/C")
    sim.restart(old)
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/B" not in state["nodes"] and "/C" in state["nodes"]
    disk = sim.servers[old].disk
    assert b not in disk.logged and disk.contains(cz)
    assert b not in sim.invariants.committed


@pytest.mark.parametrize("how", ["partitioned", "crashed-before-logging", "expired", "snap"])
def test_zookeeper_2355_follower_that_missed_close_session_drops_the_ephemerals(how):
    sim = SimEnsemble(n=3, seed=55, window=2 if how == "snap" else None)
    lid = sim.wait_stable()
    f, g = follower_of(sim, lid)
    admin = connect(sim, lid)
    write(admin, "/e")
    owner = connect(sim, g)
    session = owner.session_id
    assert owner.call(owner.create("/e/x", b"mine", ephemeral=True)).err == 0
    assert owner.call(owner.create("/e/y", b"mine", ephemeral=True)).err == 0
    sim.wait_stable()
    assert all("/e/x" in s.tree.nodes for s in sim.servers.values())
    if how == "crashed-before-logging":
        sim.hold_disk(f)
        before = len(sim.sent(m.Kind.PROPOSAL, src=lid, dst=f))
        xid = owner.close_session()
        assert sim.run_until(lambda: len(sim.sent(m.Kind.PROPOSAL, src=lid, dst=f)) > before, 1000)
        sim.run(5)
        sim.crash(f)  # it had the closeSession proposal, not on disk
        sim.release_disk(f)
        assert owner.call(xid).err == 0
    else:
        if how == "snap":
            sim.crash(f)
        else:
            sim.isolate(f)
        if how == "expired":
            owner.drop()  # the client vanishes; the leader expires the session
            assert sim.run_until(lambda: session not in sim.servers[lid].tree.sessions, 10_000)
        else:
            assert owner.call(owner.close_session()).err == 0
        for i in range(4):
            write(admin, f"/more{i}")  # so that a small history window forces SNAP
    sim.heal()
    if not sim.servers[f].alive:
        sim.restart(f)
    sim.wait_stable()
    for s in sim.servers.values():
        orphans = [p for p, n in s.tree.nodes.items() if n.owner == session]
        assert not orphans, f"server {s.sid} keeps {orphans} of closed session 0x{session:x}"
        assert session not in s.tree.sessions
    assert_converged(sim)


@pytest.mark.parametrize("on", ["leader", "follower"])
@pytest.mark.parametrize("order", ["close-then-create", "create-then-close"])
def test_zookeeper_1208_pipelined_close_session_and_create_leave_no_orphan(on, order):
    sim = SimEnsemble(n=3, seed=56)
    lid = sim.wait_stable()
    sid = lid if on == "leader" else follower_of(sim, lid)[0]
    admin = connect(sim, lid)
    write(admin, "/e")
    sim.wait_stable()
    c = sim.client(sid)  # ConnectRequest sent; nothing answered yet
    session = c.conn.session_id
    if order == "close-then-create":
        c.close_session()
        c.create("/e/orphan", b"", ephemeral=True)
    else:
        c.create("/e/orphan", b"", ephemeral=True)
        c.close_session()
    sim.run(1000)
    sim.wait_stable()
    for s in sim.servers.values():
        assert "/e/orphan" not in s.tree.nodes, f"orphan ephemeral on server {s.sid}"
        assert session not in s.tree.sessions
    assert_converged(sim)
    # ZooKeeper answers the ConnectRequest (finishSessionInit) before the closeSession's reply.
    assert not c.protocol_errors, c.protocol_errors
    assert c.session_id == session


def _old_leader_with_an_unshared_txn(seed: int):
    """Leader L logs /t alone, both followers crash; F comes back with a held disk; L and F
    then elect L (it has the most), and L must sync /t to F in the new epoch."""
    sim = SimEnsemble(n=3, seed=seed)
    lid = sim.wait_stable()
    f, g = follower_of(sim, lid)
    c = connect(sim, lid)
    write(c, "/base")
    sim.wait_stable()
    t = isolate_and_log_alone(sim, c, lid, "/t")
    sim.crash(f)
    sim.crash(g)
    sim.heal()
    sim.hold_disk(f)
    t0 = sim.now
    sim.restart(f)
    assert sim.run_until(lambda: [p for p in sim.sent(m.Kind.NEWLEADER, src=lid, dst=f) if p.time >= t0], 5000)
    sync = [p for p in sim.sent(m.Kind.SYNC_DATA, src=lid, dst=f) if p.time >= t0][-1]
    assert hex(t) in sync.info, sync
    return sim, lid, f, g, t, t0


def test_zookeeper_3911_follower_acks_newleader_only_once_the_sync_is_durable():
    sim, lid, f, g, t, t0 = _old_leader_with_an_unshared_txn(57)
    sim.run(400)  # well within initLimit
    assert not newleader_acks(sim, f, t0), "NEWLEADER acked before the synced txns are on disk"
    assert not sim.servers[lid].established() and not sim.servers[lid].core.serving
    assert t not in sim.invariants.committed
    sim.release_disk(f)
    assert sim.run_until(lambda: sim.servers[lid].established(), 1000)
    ack = newleader_acks(sim, f, t0)[0]
    assert sim.servers[f].disk.contains(t)
    new = sim.wait_stable(ignore=(g,))
    assert new == lid and "/t" in sim.servers[f].tree.nodes
    assert ack.time >= t0
    sim.restart(g)
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/t" in state["nodes"]


def test_zookeeper_4646_follower_crash_before_the_sync_is_durable_loses_nothing_committed():
    sim, lid, f, g, t, t0 = _old_leader_with_an_unshared_txn(58)
    sim.run(400)
    assert not newleader_acks(sim, f, t0)
    reader = sim.client(lid)
    sim.run(50)
    assert not reader.connected, "the new leader serves before a quorum holds its history"
    sim.crash(f)  # /t never reached its disk
    sim.release_disk(f)
    assert not sim.servers[f].disk.contains(t)
    sim.crash(lid)
    sim.restart(f)
    sim.restart(g)
    new = sim.wait_stable()
    assert new in (f, g)
    # /t was never committed, so nobody may have it; everything committed survives.
    assert nowhere(sim, "/t") and t not in sim.invariants.committed
    c = connect(sim, new)
    write(c, "/later")
    sim.restart(lid)
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/t" not in state["nodes"] and "/base" in state["nodes"]


def test_zookeeper_4643_current_epoch_is_written_only_after_the_sync_is_durable():
    """T is committed by L and G while F is down; G crashes; F returns (slow disk) and L
    syncs T to it in a new epoch. If F wrote currentEpoch before T was durable and then
    crashed, F would later outvote G (newer epoch) and G's committed T would be truncated."""
    sim = SimEnsemble(n=3, seed=59)
    lid = sim.wait_stable()
    f, g = follower_of(sim, lid)
    c = connect(sim, lid)
    write(c, "/base")
    sim.wait_stable()
    sim.crash(f)
    t = write(c, "/t")
    sim.run(20)
    assert sim.servers[g].disk.contains(t)
    sim.crash(g)
    sim.hold_disk(f)
    t0 = sim.now
    sim.restart(f)
    assert sim.run_until(lambda: [p for p in sim.sent(m.Kind.NEWLEADER, src=lid, dst=f) if p.time >= t0], 5000)
    new_epoch = epoch_of(sim.sent(m.Kind.NEWLEADER, src=lid, dst=f)[-1].zxid)
    sim.run(300)
    disk = sim.servers[f].disk
    assert disk.accepted_epoch == new_epoch
    assert disk.current_epoch < new_epoch, "currentEpoch written while the synced txns are not durable"
    sim.crash(f)
    sim.crash(lid)
    sim.release_disk(f)
    assert disk.current_epoch < new_epoch and not disk.contains(t)
    sim.restart(f)
    sim.restart(g)
    new = sim.wait_stable()
    assert new == g, "the server holding the committed txn must win"
    assert all("/t" in sim.servers[s].tree.nodes for s in (f, g))
    sim.restart(lid)
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/t" in state["nodes"]


@pytest.mark.parametrize("restart", [False, True])
def test_zookeeper_2845_log_ahead_of_snapshot_across_an_election(restart):
    sim = SimEnsemble(n=3, seed=60)
    old = sim.wait_stable()
    c = connect(sim, old)
    for i in range(3):
        write(c, f"/a{i}", b"a")
    sim.wait_stable()
    srv = sim.servers[old]
    srv.disk.take_snapshot(srv.tree)
    snap = srv.disk.snap_zxid()
    for i in range(3):
        write(c, f"/b{i}", b"b")
    c.set_data("/a0", b"changed")
    sim.wait_stable()
    committed_end = srv.tree.last_zxid
    assert srv.disk.log_end() == committed_end > snap
    u = isolate_and_log_alone(sim, c, old, "/u")
    if restart:
        sim.crash(old)
        sim.restart(old)  # restore replays the whole log, /u included, over the snapshot
        assert "/u" in sim.servers[old].tree.nodes
    new = sim.wait_stable(ignore=(old,))
    c2 = connect(sim, new)
    write(c2, "/c")
    c2.call(c2.set_data("/b0", b"changed-by-new-leader"))
    sim.heal()
    sim.wait_stable()
    state = assert_converged(sim)
    assert "/u" not in state["nodes"] and state["nodes"]["/a0"][0] == b"changed"
    assert u not in sim.servers[old].disk.logged
