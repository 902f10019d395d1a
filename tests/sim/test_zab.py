"""ZAB in a simulated ensemble: elections, synchronisation, broadcast, and regressions from
ZooKeeper's history. Every run is deterministic from its seed; the invariants in
invariants.py are checked after every event of every test (a violation fails the test)."""

from __future__ import annotations

import pytest

from zkserver.protocol.constants import Err
from zkserver.quorum import messages as m
from zkserver.quorum.history import epoch_of
from zkserver.quorum.messages import PeerState

from .checks import assert_acks_survive, assert_converged, assert_session_order, connect, history, preload, write
from .client import SimClient
from .ensemble import SimEnsemble
from .workload import run_random


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
    assert all(s.peer.elections == 1 for s in sim.servers.values()), "decided in the first round, nobody stepped down"
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


def test_a_learner_whose_leader_is_gone_looks_again_after_a_few_dials():
    """Server 1 decides for leader 3, which dies (with 2) before 1 connects: every dial is
    turned away, and after LEADER_DIAL_TRIES of them 1 is back in the election, well before
    initLimit runs out (ZooKeeper's learner gives up the same way; waiting initLimit would keep
    it from looking, and so from serving read-only clients, for tens of seconds)."""
    from zkserver.quorum.learner import LEADER_DIAL_TRIES, Learner

    sim = SimEnsemble(n=3, seed=13, start=False)
    sim.restart(2)
    sim.restart(3)
    assert sim.wait_stable(ignore=(1,)) == 3
    sim.restart(1)
    assert sim.run_until(lambda: isinstance(sim.servers[1].peer.role, Learner), 2000)
    role, decided = sim.servers[1].peer.role, sim.now
    sim.crash(3)
    sim.crash(2)
    config = sim.servers[1].config
    init_limit = config.init_limit * config.tick_time
    assert sim.run_until(lambda: sim.servers[1].state == PeerState.LOOKING, init_limit)
    assert role.dials == LEADER_DIAL_TRIES
    assert sim.now - decided < init_limit * 0.7, "waited out initLimit instead of giving up on the dials"


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


@pytest.mark.parametrize("with_leader", [True, False])
def test_minority_never_elects_nor_commits(with_leader):
    """Two of five are cut off (with the current leader, or without it): nobody on their side
    becomes a leader or applies anything, their client's write is never acknowledged; the
    majority elects (if needed) and commits."""
    sim = SimEnsemble(n=5, seed=21)
    lid = sim.wait_stable()
    others = [s for s in sim.servers if s != lid]
    minority = [lid, others[0]] if with_leader else others[:2]
    majority = [s for s in sim.servers if s not in minority]
    cm = connect(sim, minority[-1])
    write(cm, "/shared")
    sim.wait_stable()
    frozen = {s: sim.servers[s].tree.last_zxid for s in minority}
    old_role = sim.servers[lid].peer.role
    sim.partition(minority, majority)
    pending = cm.create("/minority-write")
    bad = []

    def watch():
        for s in minority:
            srv = sim.servers[s]
            if not srv.alive:
                continue
            if srv.state == PeerState.LEADING and srv.peer.role is not old_role:
                bad.append((sim.now, s, "leads"))
            if srv.tree.last_zxid != frozen[s]:
                bad.append((sim.now, s, f"applied 0x{srv.tree.last_zxid:x}"))

    sim.hooks.append(watch)
    sim.run(5000)
    assert cm.replies.get(pending) is None or cm.replies[pending].err != Err.OK
    assert all(sim.servers[s].state == PeerState.LOOKING for s in minority), sim.dump()
    new = sim.leader()
    assert new in majority
    write(connect(sim, majority[-1]), "/majority-write")
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


@pytest.mark.parametrize("power", [False, True])
@pytest.mark.parametrize("delay", [0, 1, 2, 4, 7])
@pytest.mark.parametrize("variant", ["plain", "slow-follower", "one-received"])
def test_leader_crash_between_proposal_and_commit(variant, delay, power):
    """The leader crashes `delay` ms after sending a PROPOSAL: before anybody logged it, after
    some did, after it committed. Either every survivor ends up with the write or none does,
    an acknowledged write is always kept, and the survivors (then everybody) agree."""
    sim = SimEnsemble(n=3, seed=100 + delay)
    lid = sim.wait_stable()
    fs = follower_of(sim, lid)
    c = connect(sim, fs[0])
    write(c, "/before")
    sim.wait_stable()
    if variant == "slow-follower":
        sim.hold_disk(fs[1])  # it cannot make the proposal durable in time
    elif variant == "one-received":
        sim.partition([lid, fs[0]], [fs[1]])  # the proposal to fs[1] is held back in the network
    before = len(sim.sent(m.Kind.PROPOSAL, src=lid))
    xid = c.create("/w", b"payload")
    assert sim.run_until(lambda: len(sim.sent(m.Kind.PROPOSAL, src=lid)) > before, 2000)
    sim.run(delay)
    sim.crash(lid, power=power)
    sim.heal()
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
    OUTCOMES.append((variant, delay, power, bool(has)))


OUTCOMES: list = []


def test_leader_crash_between_proposal_and_commit_covers_both_outcomes():
    """(Runs after the cases above.) The crash points above must reach both outcomes, or
    that test checks less than it claims."""
    if len(OUTCOMES) < 30:
        pytest.skip("run together with every case of test_leader_crash_between_proposal_and_commit")
    assert {has for *_, has in OUTCOMES} == {True, False}


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
        sim.run(1500)  # long enough for the cut-off follower to give up on the leader and resync
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


# --- observers, liveness, reads ------------------------------------------------------------------


def test_observer_synced_during_outstanding_proposals_keeps_an_ordered_log():
    """An observer that syncs while proposals await their quorum gets them in SYNC_DATA; their
    commits (INFORM) must not log them a second time: a log out of order cannot be restored."""
    sim = SimEnsemble(n=3, observers=1, seed=81, start=False)
    obs = 4
    for sid in (1, 2, 3):
        sim.restart(sid)  # the observer joins later, from an empty disk
    lid = sim.wait_stable()
    f1, f2 = [s for s in sim.servers if s not in (lid, obs)]
    c = connect(sim, lid)
    write(c, "/base")
    sim.wait_stable()
    sim.hold_disk(f1)
    sim.hold_disk(f2)
    pending = [c.create(f"/p{i}", b"x") for i in range(3)]
    sim.run(20)
    assert all(c.replies.get(x) is None for x in pending)
    t0 = sim.now
    sim.restart(obs)
    assert sim.run_until(lambda: [p for p in sim.sent(m.Kind.NEWLEADER, dst=obs) if p.time >= t0], 3000)
    sim.run(30)
    sim.release_disk(f1)
    sim.release_disk(f2)
    assert all(c.call(x).err == 0 for x in pending)
    sim.wait_stable()
    zxids = [hdr.zxid for hdr, _ in sim.servers[obs].disk.log]
    assert zxids == sorted(set(zxids)), "the observer logged some txns twice"
    sim.crash(obs)
    sim.restart(obs)  # restore must read its own log
    sim.wait_stable()
    state = assert_converged(sim)
    assert {"/p0", "/p1", "/p2"} <= set(state["nodes"])


def test_proposal_logged_with_the_sync_batch_is_acknowledged():
    """A follower that joins an established leader logs its SYNC_DATA and a proposal that came
    right behind NEWLEADER in one fsync. Acking only NEWLEADER (credited up to the sync's end)
    leaves the proposal unacknowledged; when that follower is needed for the quorum, the write
    hangs until some unrelated txn comes along."""
    sim = SimEnsemble(n=5, seed=71, latency=(2, 2))  # NEWLEADER and the proposal arrive together
    lid = sim.wait_stable()
    f1, f2, f3, f4 = [s for s in sim.servers if s != lid]
    c = connect(sim, lid)
    write(c, "/base")
    sim.wait_stable()
    sim.crash(f4)
    sim.crash(f2)
    write(c, "/missed")
    sim.isolate(lid)  # a new epoch without f2, so that its return does not unseat the leader
    sim.run(1000)
    sim.heal()
    assert sim.wait_stable() == lid
    c.connect(lid)  # the same session: no expiry txn will come along later
    assert c.wait_connected()
    write(c, "/missed2")
    state = {"xid": None}
    t_restart = sim.now

    def propose_behind_newleader():
        if state["xid"] is None and [p for p in sim.sent(m.Kind.NEWLEADER, src=lid, dst=f2) if p.time >= t_restart]:
            state["xid"] = -1
            state["xid"] = c.create("/p", b"x")
            sim.crash(f3)  # from now on the leader needs f2's ack

    sim.hooks.append(propose_behind_newleader)
    sim.restart(f2)
    assert sim.run_until(lambda: state["xid"] is not None, 3000)
    sim.hooks.remove(propose_behind_newleader)
    t0 = sim.now
    reply = c.wait(state["xid"], 3000)
    assert sim.servers[lid].established(), "the leader kept its quorum (itself, f1, f2)"
    assert reply is not None and reply.err == 0, f"/p not committed {sim.now - t0} ms after it was proposed"
    sim.settle()
    assert_converged(sim)


def test_restarted_follower_does_not_serve_an_uncommitted_proposal():
    """A follower logs proposal P (nobody else has it durable yet), crashes and comes back: its
    restored tree holds P. If the leader syncs it by DIFF from P and it serves clients, a read
    returns P although P may never commit (and here, it is lost)."""
    sim = SimEnsemble(n=5, seed=61)
    lid = sim.wait_stable()
    f1, *rest = [s for s in sim.servers if s != lid]
    c = connect(sim, lid)
    write(c, "/base")
    reader = connect(sim, rest[0])
    sim.wait_stable()
    for s in [lid] + rest:
        sim.hold_disk(s)
    c.create("/p", b"uncommitted")
    top = sim.servers[lid].tree.last_zxid
    assert sim.run_until(lambda: sim.servers[f1].disk.durable_end() > top, 1000)
    p = sim.servers[f1].disk.durable_end()
    sim.crash(f1)
    sim.restart(f1)
    sim.run_until(lambda: sim.servers[f1].serving(), 3000)
    reader.connect(f1)
    seen = None
    if reader.wait_connected():
        r = reader.call(reader.get_data("/p"))
        seen = r.data() if r.err == 0 else None
        if seen is not None:
            assert p in sim.invariants.committed, "a read returned a txn that is not committed"
    # Whatever was read must survive: f1 and the leader go; the rest never got P on disk.
    sim.crash(f1)
    sim.crash(lid)
    for s in rest:
        sim.crash(s)
        sim.release_disk(s)
        sim.restart(s)
    sim.wait_stable()
    if seen is not None:
        assert all("/p" in sim.servers[s].tree.nodes for s in rest), "a value read was lost"
    sim.settle()
    assert_converged(sim)


# --- randomized --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "seed, n, observers",
    [(0, 3, 0), (1, 3, 0), (2, 5, 0), (3, 3, 1), (4, 3, 0), (5, 5, 0), (6, 3, 0), (7, 3, 1), (9, 3, 0), (10, 3, 0), (11, 5, 1), (14, 5, 0)],
)
def test_random_faults(seed, n, observers):
    """Random writes from clients on random servers under random crashes (some tearing the
    last write), restarts, partitions, heals and stalled disks; then every fault is undone.
    The replicas must be identical and equal to the committed txns replayed in order, every
    acknowledged write must be there, and each session's acknowledged writes must carry
    increasing zxids; every client got its replies in order and never saw a zxid older than
    one it had seen. (The invariants are checked after every event on the way.)"""
    result = run_random(seed, n=n, observers=observers, duration=15_000)
    sim, acks = result["sim"], result["acks"]
    assert len(acks) > 100, "the workload hardly ran"
    assert len(sim.invariants.leaders) >= 2, "no leader change happened"
    assert_converged(sim)
    assert_acks_survive(sim, acks)
    assert_session_order(acks)
    assert not result["client_errors"], result["client_errors"][:5]


def test_snap_sync_carries_every_txn_after_the_snapshot():
    """A leader holding more logged-but-unapplied txns than its history window (its proposals
    from a term it could not commit) is re-elected and syncs a far-behind follower by SNAP:
    the snapshot is its applied tree, so the txns that follow must all be sent, none skipped."""
    sim = SimEnsemble(n=3, seed=91, window=5)
    lid = sim.wait_stable()
    f1, f2 = follower_of(sim, lid)
    c = connect(sim, lid)
    write(c, "/base")
    sim.wait_stable()
    sim.crash(f1)  # f1 will be far behind
    sim.isolate(lid)
    for i in range(8):
        c.create(f"/u{i}", b"x")  # logged by the leader alone: 8 > window
    assert sim.run_until(lambda: not sim.servers[lid].serving(), 2000)
    sim.crash(f2)
    sim.heal()
    sim.restart(f1)  # the leader (most txns) and f1 elect; f1 is synced by SNAP
    lid2 = sim.wait_stable(ignore=(f2,))
    assert lid2 == lid
    sim.restart(f2)
    sim.wait_stable()
    state = assert_converged(sim)
    assert all(f"/u{i}" in state["nodes"] for i in range(8))
