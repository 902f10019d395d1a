"""End-of-run checks and small builders shared by the ZAB scenarios."""

from __future__ import annotations

from zkserver.protocol.constants import OpCode
from zkserver.protocol.records import OPEN_ACL_UNSAFE
from zkserver.quorum.history import make_zxid
from zkserver.txn import CreateSessionTxn, CreateTxn, TxnHeader

from tests.unit.helpers import diff_states, tree_state

from .client import Ack, SimClient
from .disk import lineage
from .ensemble import SimEnsemble


def assert_converged(sim: SimEnsemble, reference: bool = True) -> dict:
    """Every live server holds the same tree (every node's data and Stat, the ephemeral
    indexes, the session table); with `reference`, it is also exactly the committed txns
    applied in order."""
    states = {s.sid: tree_state(s.tree) for s in sim.servers.values() if s.alive}
    first_sid, first = next(iter(states.items()))
    for sid, state in states.items():
        diff = diff_states(first, state)
        assert not diff, f"server {sid} differs from server {first_sid}:\n" + "\n".join(diff[:20]) + "\n" + sim.dump()
    if reference:
        committed = sorted(sim.invariants.committed)
        for s in sim.servers.values():
            if s.alive:
                lin = lineage(s.tree)
                assert sorted(set(lin)) == committed, (
                    f"server {s.sid}'s tree is built from {len(lin)} txns, not the {len(committed)} committed: "
                    f"extra {[hex(z) for z in sorted(set(lin) - set(committed))[:10]]}, "
                    f"missing {[hex(z) for z in sorted(set(committed) - set(lin))[:10]]}\n{sim.dump()}"
                )
        ref = tree_state(sim.invariants.reference_tree())
        diff = diff_states(ref, first)
        assert not diff, "the replicas differ from the committed txns replayed:\n" + "\n".join(diff[:20]) + "\n" + sim.dump()
    return first


def assert_acks_survive(sim: SimEnsemble, acks: list[Ack]) -> None:
    """Every acknowledged create/setData is in the final state (checked on every live server)."""
    for s in sim.servers.values():
        if not s.alive:
            continue
        nodes = s.tree.nodes
        for ack in acks:
            if ack.op == OpCode.CREATE:
                node = nodes.get(ack.path)
                if _ephemeral(ack) and ack.session not in s.tree.sessions:
                    assert node is None or node.owner != ack.session, (
                        f"ephemeral {ack.path} outlives its session 0x{ack.session:x} on server {s.sid}"
                    )
                    continue
                assert node is not None and node.czxid == ack.zxid, (
                    f"acknowledged create {ack} is missing on server {s.sid}\n{sim.dump()}"
                )
                assert node.data == ack.data, f"{ack}: data {node.data!r} on server {s.sid}"
            elif ack.op == OpCode.SET_DATA:
                node = nodes.get(ack.path)
                assert node is not None and node.mzxid >= ack.zxid, f"acknowledged write {ack} lost on server {s.sid}"
                if node.mzxid == ack.zxid:
                    assert node.data == ack.data, f"{ack}: data {node.data!r} on server {s.sid}"


def _ephemeral(ack: Ack) -> bool:
    return ack.path.startswith("/e/")


def assert_session_order(acks: list[Ack]) -> None:
    """Within a session, acknowledged writes carry strictly increasing zxids."""
    last: dict[int, Ack] = {}
    for ack in acks:
        prev = last.get(ack.session)
        assert prev is None or ack.zxid > prev.zxid, f"session 0x{ack.session:x}: {ack} acknowledged after {prev}"
        last[ack.session] = ack


def connect(sim: SimEnsemble, sid: int, timeout: int = 4000) -> SimClient:
    c = sim.client(sid, timeout=timeout)
    assert c.wait_connected(), f"client could not connect to server {sid}\n{sim.dump()}"
    return c


def write(c: SimClient, path: str, data: bytes = b"", **kw) -> int:
    """Create a node and return its zxid (the write must succeed)."""
    r = c.call(c.create(path, data, **kw))
    assert r.err == 0, f"create {path}: error {r.err}"
    return r.zxid


# --- hand-made disks (to start an ensemble from chosen histories) ------------------------------


def history(epoch_counts: list[tuple[int, int]], session: int = 0x77) -> list:
    """A valid txn sequence: a createSession, then one create per zxid, for each (epoch, count)."""
    out = []
    n = 0
    for epoch, count in epoch_counts:
        for c in range(1, count + 1):
            z = make_zxid(epoch, c)
            if not out:
                out.append((TxnHeader(session, 0, z, 1000 + n, OpCode.CREATE_SESSION), CreateSessionTxn(4000)))
            else:
                out.append((TxnHeader(session, n, z, 1000 + n, OpCode.CREATE), CreateTxn(f"/n{n}", b"v%d" % n, OPEN_ACL_UNSAFE, 0, n)))
            n += 1
    return out


def preload(sim: SimEnsemble, sid: int, txns: list, current_epoch: int, accepted_epoch: int | None = None) -> None:
    disk = sim.servers[sid].disk
    disk.log = []
    disk.logged = set()
    disk.write_log(txns)
    disk.current_epoch = current_epoch
    disk.accepted_epoch = current_epoch if accepted_epoch is None else accepted_epoch
