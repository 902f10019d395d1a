"""Scenarios a code review found, kept as regressions: a server counted twice towards a
quorum, a write landing after its session moved on, a lagging follower expiring a live
session, an outstanding proposal waiting for an unrelated write."""

from __future__ import annotations

from tests.sim.checks import connect, write
from tests.sim.client import SimClient
from tests.sim.ensemble import SimEnsemble


def test_a_server_on_two_links_counts_once_towards_a_quorum():
    """5 voters; only the leader and A make /y durable (the others' disks stall). A loses
    power and comes back on a new link while the leader still has the old one: two links of
    one server are not two votes, so /y must not be acknowledged."""
    sim = SimEnsemble(n=5, seed=3)
    lid = sim.wait_stable()
    followers = [s for s in sim.servers if s != lid]
    a, others = followers[0], followers[1:]
    c = connect(sim, lid)
    write(c, "/before")
    sim.wait_stable()
    for s in others:
        sim.hold_disk(s)
    xid = c.create("/y", b"y")
    sim.run(50)
    sim.crash(a, power=True)
    sim.restart(a)
    sim.run_until(lambda: sim.servers[a].serving(), 5000)
    c.create("/z", b"z")  # more acks arrive: the commit point is evaluated again
    sim.run(200)
    assert c.replies.get(xid) is None, "acknowledged with only 2 of 5 servers holding it"
    for s in others:
        sim.release_disk(s)
    assert sim.run_until(lambda: c.replies.get(xid) is not None, 5000)
    assert c.replies[xid].err == 0


def test_a_write_held_on_a_server_the_session_left_never_lands_after_its_later_writes():
    """W1 is stuck in follower A's link to the leader; A steps down, the client moves to B and
    writes W2. When the partition heals W1 reaches the leader: it must be refused
    (SESSIONMOVED), not applied after W2."""
    sim = SimEnsemble(n=3, seed=5)
    lid = sim.wait_stable()
    a, b = [s for s in sim.servers if s != lid]
    c = connect(sim, a)
    write(c, "/k", b"v0")
    sim.wait_stable()
    sim.partition([a], [lid, b])
    c.set_data("/k", b"v1")
    assert sim.run_until(lambda: c.closed, 5000), "A kept the client though it lost the leader"
    c.connect(b)
    assert c.wait_connected()
    r2 = c.call(c.set_data("/k", b"v2"))
    assert r2.err == 0
    sim.heal()
    sim.run(2000)
    sim.wait_stable()
    for server in sim.servers.values():
        assert server.tree.nodes["/k"].data == b"v2"


def test_a_lagging_follower_does_not_expire_a_live_session():
    """The session was created through A; B, cut off from the leader, has not applied its
    creation. A client failing over to B must not be told its session expired."""
    sim = SimEnsemble(n=3, seed=9)
    lid = sim.wait_stable()
    a, b = [s for s in sim.servers if s != lid]
    sim.partition([b], [lid, a])
    c = SimClient(sim, a)
    assert c.wait_connected()
    sid = c.session_id
    c.connect(b)
    sim.run(500)
    assert not c.expired, "B declared a live session expired from its own stale table"
    sim.heal()
    c.connect(a)
    assert c.wait_connected() and c.session_id == sid and not c.expired


def test_an_outstanding_proposal_commits_when_a_resynced_learner_completes_the_quorum():
    sim = SimEnsemble(n=3, seed=21)
    lid = sim.wait_stable()
    f1, f2 = [s for s in sim.servers if s != lid]
    c = connect(sim, lid)
    write(c, "/before")
    sim.wait_stable()
    sim.crash(f2)
    sim.hold_disk(f1)
    x = c.create("/p", b"p")
    sim.run(100)
    assert c.replies.get(x) is None
    sim.restart(f2)  # its sync data carries /p: with the leader that is a quorum
    assert sim.run_until(lambda: c.replies.get(x) is not None, 2000), "commit waited for an unrelated write"
    assert c.replies[x].err == 0
