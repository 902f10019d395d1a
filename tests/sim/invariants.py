"""ZAB's safety properties, checked while a simulation runs (a violation raises at once).

- Agreement: a zxid names one txn, on every server, for ever.
- At most one leader establishes each epoch.
- Commit needs a quorum: a leader applies or announces (COMMIT/UPTODATE) zxid z only when z is
  durable on a quorum of voters' simulated disks.
- A learner acks NEWLEADER, and writes currentEpoch, only once everything it was synced is
  durable (ZOOKEEPER-3911, -4643, -4646); it acks a proposal only once it is durable.
- Nothing committed is ever lost: a new leader's initial history holds every txn committed
  before it establishes, and no server ever truncates a committed txn away.
- A server serving clients shows only committed state.
- Each server applies txns in zxid order.

"Committed" is recorded when any server applies a txn (ServerCore.committed, wrapped here),
and when a leader establishes its epoch (everything in its initial history).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zkserver.quorum import messages as m
from zkserver.quorum.history import epoch_of
from zkserver.quorum.leader import Leader
from zkserver.quorum.learner import Learner
from zkserver.tree.datatree import DataTree
from zkserver.txn import Txn, TxnHeader, decode_txn, encode_txn

from .disk import lineage

if TYPE_CHECKING:
    from .ensemble import SimEnsemble, SimServer


class Violation(AssertionError):
    pass


class Invariants:
    def __init__(self, ens: "SimEnsemble") -> None:
        self.ens = ens
        self.txns: dict[int, bytes] = {}  # every txn any server logged or applied
        self.committed: dict[int, bytes] = {}
        self.max_committed = 0
        self.leaders: dict[int, tuple[int, int]] = {}  # epoch -> (sid, incarnation) that established it
        self.established_seen: set[tuple[int, int, int]] = set()
        self.applied_last: dict[int, tuple[int, int]] = {}  # sid -> (id(tree), last applied zxid)
        self.check_serving = True
        self.violations = 0

    def fail(self, msg: str) -> None:
        self.violations += 1
        raise Violation(f"{msg}\n{self.ens.dump()}")

    # --- agreement -----------------------------------------------------------------------------

    def _agree(self, where: str, hdr: TxnHeader, txn: Txn) -> bytes:
        raw = encode_txn(hdr, txn)
        known = self.txns.setdefault(hdr.zxid, raw)
        if known != raw:
            self.fail(f"{where}: two different txns share zxid 0x{hdr.zxid:x}: {decode_txn(known)} vs {(hdr, txn)}")
        return raw

    def _commit(self, hdr: TxnHeader, txn: Txn, raw: bytes) -> None:
        self.committed[hdr.zxid] = raw
        if hdr.zxid > self.max_committed:
            self.max_committed = hdr.zxid

    def _quorum_durable(self, zxid: int) -> list[int]:
        return [v for v in sorted(self.ens.voters) if self.ens.servers[v].disk.contains(zxid)]

    def _need(self) -> int:
        return len(self.ens.voters) // 2 + 1

    # --- hooks from SimIO ----------------------------------------------------------------------

    def on_start(self, s: "SimServer") -> None:
        core = s.core
        orig = core.committed
        self.applied_last.pop(s.sid, None)
        for hdr, txn in s.disk.log:
            self._agree(f"server {s.sid} restarts with", hdr, txn)

        def committed(hdr: TxnHeader, txn: Txn, origin=None) -> None:
            self.on_apply(s, hdr, txn)
            orig(hdr, txn, origin)
            lineage(core.tree).append(hdr.zxid)

        core.committed = committed  # type: ignore[method-assign]

    def on_append(self, s: "SimServer", batch, payloads=None) -> None:
        for i, (hdr, txn) in enumerate(batch):
            raw = self._agree(f"server {s.sid} logs", hdr, txn)
            if payloads is not None and payloads[i] is not None and payloads[i] != raw:
                self.fail(f"server {s.sid} logs 0x{hdr.zxid:x} with a payload that is not its encoding")

    def on_apply(self, s: "SimServer", hdr: TxnHeader, txn: Txn) -> None:
        raw = self._agree(f"server {s.sid} applies", hdr, txn)
        tree_id = id(s.core.tree)
        last = self.applied_last.get(s.sid)
        if last is not None and last[0] == tree_id and hdr.zxid <= last[1]:
            self.fail(f"server {s.sid} applies 0x{hdr.zxid:x} after 0x{last[1]:x}")
        self.applied_last[s.sid] = (tree_id, hdr.zxid)
        if s.peer.role is not None and isinstance(s.peer.role, Leader):
            holders = self._quorum_durable(hdr.zxid)
            if len(holders) < self._need():
                self.fail(f"leader {s.sid} commits 0x{hdr.zxid:x}, durable only on {holders}")
        self._commit(hdr, txn, raw)

    def on_send(self, s: "SimServer", conn, side: str, p: m.Packet) -> None:
        role = s.peer.role
        disk = s.disk
        if isinstance(role, Learner) and p.kind == m.Kind.ACK:
            if p.zxid & 0xFFFFFFFF == 0 and epoch_of(p.zxid) == role.epoch:
                if role.sync_last < 0 or disk.durable_end() < role.sync_last:
                    self.fail(
                        f"server {s.sid} acks NEWLEADER 0x{p.zxid:x} with its sync (to 0x{role.sync_last:x}) "
                        f"durable only to 0x{disk.durable_end():x}"
                    )
            elif disk.durable_end() < p.zxid:
                self.fail(f"server {s.sid} acks 0x{p.zxid:x}, durable only to 0x{disk.durable_end():x}")
        elif isinstance(role, Leader) and p.kind == m.Kind.SYNC_DATA:
            self._check_sync_data(s, role, conn, m.read_sync_data(p))
        elif isinstance(role, Leader) and p.kind in (m.Kind.COMMIT, m.Kind.UPTODATE):
            holders = self._quorum_durable(p.zxid)
            if p.zxid > 0 and len(holders) < self._need():
                self.fail(f"leader {s.sid} sends {p.kind.name} 0x{p.zxid:x}, durable only on {holders}")

    def _check_sync_data(self, s: "SimServer", role: Leader, conn, data: m.SyncData) -> None:
        """What a learner is sent must continue its state without a gap: every txn the leader
        holds after the learner's new base (the snapshot, the truncation point, or its own last
        zxid) is in the packet."""
        if data.snapshot is not None:
            base = role.core.tree.last_zxid
        elif data.truncate_to is not None:
            base = data.truncate_to
        else:
            base = role.links[conn].last_zxid
        held = set(s.disk.logged) | set(s.peer.history.zxids)
        held |= {hdr.zxid for hdr, _ in s.disk.queued + (s.disk.in_flight or [])}
        expected = sorted(z for z in held if z > base)
        sent = [hdr.zxid for hdr, _ in data.txns]
        if sent != expected:
            gap = sorted(set(expected) - set(sent))
            self.fail(
                f"leader {s.sid} syncs a learner from 0x{base:x} but leaves out {[hex(z) for z in gap[:10]]} "
                f"(sent {len(sent)} txns from {hex(sent[0]) if sent else '-'}; history floor 0x{s.peer.history.floor:x})"
            )

    def on_current_epoch(self, s: "SimServer", epoch: int) -> None:
        role = s.peer.role
        if isinstance(role, Learner):
            if role.sync_last < 0 or s.disk.durable_end() < role.sync_last:
                self.fail(
                    f"server {s.sid} writes currentEpoch={epoch} with its sync (to 0x{role.sync_last:x}) "
                    f"durable only to 0x{s.disk.durable_end():x}"
                )

    def on_truncate(self, s: "SimServer", zxid: int) -> None:
        disk = s.disk
        gone = {z for z in disk.logged if z > zxid}
        gone |= {z for z in self.committed if zxid < z <= disk.snap_zxid()}
        lost = sorted(z for z in gone if z in self.committed)
        if lost:
            self.fail(f"server {s.sid} truncates to 0x{zxid:x}, dropping committed {[hex(z) for z in lost]}")

    # --- after every event -----------------------------------------------------------------------

    def poll(self) -> None:
        for s in self.ens.servers.values():
            if not s.alive:
                continue
            if s.established():
                role = s.peer.role
                key = (s.sid, s.inc, role.epoch)
                if key not in self.established_seen:
                    self.established_seen.add(key)
                    self._on_establish(s, role.epoch)
        if self.check_serving:
            for s in self.ens.servers.values():
                if s.alive and s.core.serving and s.tree.last_zxid > self.max_committed:
                    self.fail(
                        f"server {s.sid} serves clients a tree at 0x{s.tree.last_zxid:x}, beyond anything "
                        f"committed (0x{self.max_committed:x})"
                    )

    def _on_establish(self, s: "SimServer", epoch: int) -> None:
        owner = self.leaders.get(epoch)
        if owner is not None and owner != (s.sid, s.inc):
            self.fail(f"two leaders established epoch {epoch}: {owner[0]} and {s.sid}")
        self.leaders[epoch] = (s.sid, s.inc)
        lin = lineage(s.core.tree)
        if any(a >= b for a, b in zip(lin, lin[1:])):
            self.fail(f"leader {s.sid}'s tree was built out of zxid order")
        have = set(lin)
        missing = sorted(z for z in self.committed if z not in have)
        if missing:
            self.fail(
                f"leader {s.sid} establishes epoch {epoch} without committed txns "
                f"{[hex(z) for z in missing[:10]]} (its tree: 0x{s.tree.last_zxid:x})"
            )
        # Its whole initial history is committed now.
        for z in lin:
            raw = self.txns.get(z)
            if raw is None:
                self.fail(f"leader {s.sid}'s tree holds 0x{z:x}, a txn no server ever logged")
            self.committed[z] = raw
        self.max_committed = max(self.max_committed, s.tree.last_zxid)

    # --- the end ---------------------------------------------------------------------------------

    def reference_tree(self) -> DataTree:
        """Every committed txn applied in zxid order to an empty tree."""
        tree = DataTree()
        for z in sorted(self.committed):
            hdr, txn = decode_txn(self.committed[z])
            tree.apply(hdr, txn, [])
        return tree
