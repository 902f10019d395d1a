"""The mutants: one realistic slip in each layer of the server, and the smoke campaign test that
must expose it (`campaign`: options that pick one test of the campaign file). Expected anomaly
types are the ones the checkers report for the symptom; any of them counts as caught.
"""

from __future__ import annotations

from .mutant import Mutant, Patch

EPHEMERAL = {"workload": "ephemeral", "nemesis": ["partition", "kill"]}
BANK = {"workload": "bank", "nemesis": ["lazyfs", "kill"], "nemesis_targets": ["all"]}
WATCH = {"workload": "watch", "nemesis": ["session-move", "kill"]}
UNIQUE_IDS = {"workload": "unique-ids", "nemesis": ["kill", "clock"]}

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="new-leader-reuses-old-epoch",
        layer="leader election",
        description="_establish restarts prep at the last committed zxid instead of (new epoch, 0): "
                    "the new leader numbers its txns in the old epoch, reusing the zxids of proposals the "
                    "deposed leader logged but nobody committed; when it comes back, its log looks like "
                    "a prefix of ours, it keeps those txns and never gets ours.",
        patch=Patch("zkserver/quorum/leader.py",
                    "        core.reset(core.tree, make_zxid(self.epoch, 0), now_ms)",
                    "        core.reset(core.tree, self.committed, now_ms)"),
        campaign={"workload": "set", "nemesis": ["partition", "pause"]},
        expects=("lost", "stale-prefix"),
    ),
    Mutant(
        name="commit-before-majority",
        layer="quorum commit",
        description="_try_commit waits for len(voters) // 2 durable copies, and the leader's own copy "
                    "is one of them: on three nodes the leader commits on its own fsync, so a leader "
                    "cut off from its followers acknowledges writes the next leader never had.",
        patch=Patch("zkserver/quorum/leader.py",
                    "        need = len(self.peer.voters) // 2 + 1",
                    "        need = len(self.peer.voters) // 2"),
        campaign={"workload": "register", "nemesis": ["partition", "kill"]},
        expects=("lost-write", "read-of-uncommitted-write", "not-linearizable"),
    ),
    Mutant(
        name="sync-skips-first-txn",
        layer="synchronisation after a leader change",
        description="History.after() slices from bisect_right(zxids, zxid) + 1, 'to start after zxid', "
                    "but bisect_right already points past it: every sync a learner gets, DIFF, TRUNC "
                    "or SNAP, leaves out the first txn it lacked, and it never gets it later.",
        patch=Patch("zkserver/quorum/history.py",
                    "        i = bisect.bisect_right(self.zxids, zxid)\n        return list(itertools.islice(",
                    "        i = bisect.bisect_right(self.zxids, zxid) + 1\n        return list(itertools.islice("),
        campaign=UNIQUE_IDS,
        expects=("lost",),
    ),
    Mutant(
        name="setdata-ignores-version",
        layer="request validation (versions)",
        description="_set_data computes the new version as node.version + 1 without comparing it to the "
                    "version the request expects, so every conditional setData succeeds: two "
                    "read-modify-writes of one node both win.",
        patch=Patch("zkserver/prep.py",
                    "        version = _next_version(node.version, r.version)\n        node = node.copy(zxid)\n"
                    "        node.version = version",
                    "        version = node.version + 1\n        node = node.copy(zxid)\n"
                    "        node.version = version"),
        campaign={"workload": "counter", "nemesis": ["partition", "session-move"]},
        expects=("lost-update", "value-version-mismatch"),
    ),
    Mutant(
        name="failed-multi-keeps-earlier-ops",
        layer="request validation (multi)",
        description="When a multi fails, _multi returns the txns of the ops before the failing one "
                    "instead of OK placeholders: the client is told nothing happened, yet the first "
                    "half of the transaction is applied.",
        patch=Patch("zkserver/prep.py",
                    "                before = [(OpCode.ERROR, ErrorTxn(Err.OK))] * i\n",
                    "                before = txns\n"),
        campaign=BANK,
        expects=("wrong-total", "lost-transfer", "negative-balance", "account-conflict"),
    ),
    Mutant(
        name="sequence-suffix-unpadded",
        layer="sequential naming",
        description="The sequential suffix lost its zero padding (f\"{path}{cversion}\"): item-10 now sorts "
                    "before item-9, so recipes that order children by name (queues, locks) take them "
                    "out of creation order.",
        patch=Patch("zkserver/prep.py",
                    '            path = f"{path}{parent.cversion:010d}"',
                    '            path = f"{path}{parent.cversion}"'),
        campaign={"workload": "queue", "nemesis": ["disk", "partition"]},
        expects=("out-of-order",),
    ),
    Mutant(
        name="sessions-dropped-on-new-epoch",
        layer="sessions (expiry)",
        description="reset() empties the session table and no longer loads it back from the replicated "
                    "tree: after an election the new leader tells reconnecting clients their session "
                    "expired, yet never expires it, so its ephemeral nodes outlive it.",
        patch=Patch("zkserver/core.py",
                    "        self.tracker.buckets.clear()\n        for sid, timeout in tree.sessions.items():\n"
                    "            self.tracker.add(sid, timeout, now_ms)\n",
                    "        self.tracker.buckets.clear()\n"),
        campaign=EPHEMERAL,
        expects=("survived-expiry", "outlived"),
    ),
    Mutant(
        name="close-answered-locally",
        layer="sessions (close)",
        description="closeSession takes the read-only shortcut in every mode: the server the client is on "
                    "answers it, forgets the session and drops the connection, and nothing goes through the "
                    "quorum; the client is told its session ended while the ensemble keeps it and its "
                    "ephemerals (until the leader expires it, or, closed on the leader, until the next "
                    "election).",
        patch=Patch("zkserver/core.py",
                    "        if self.read_only and (opcode in CLIENT_WRITES or opcode == OpCode.SYNC):\n"
                    "            if opcode == OpCode.CLOSE_SESSION:",
                    "        if opcode == OpCode.CLOSE_SESSION or self.read_only and (opcode in CLIENT_WRITES or "
                    "opcode == OpCode.SYNC):\n            if opcode == OpCode.CLOSE_SESSION:"),
        campaign=EPHEMERAL,
        expects=("survived-close",),
    ),
    Mutant(
        name="follower-answers-sync",
        layer="reads on followers",
        description="Followers answer sync themselves ('commits arrive in order anyway') instead of "
                    "asking the leader: a sync then promises nothing about writes the follower has not "
                    "heard of yet, which is all a sync is for.",
        patch=Patch("zkserver/quorum/learner.py",
                    "        core.forward_sync = lambda sid, xid: self._send(m.sync_request(sid, xid))",
                    "        core.forward_sync = None"),
        campaign={"workload": "register", "nemesis": ["packet"], "nemesis_targets": ["followers"],
                  "read_mode": "sync", "consistency": "linearizable"},
        expects=("stale-read", "stale-after-sync"),
    ),
    Mutant(
        name="watch-persistent-consumed",
        layer="watch delivery",
        description="trigger() removes every non-recursive watch it fires, persistent ones included: an "
                    "addWatch(PERSISTENT) watcher hears the first change of a node and nothing after.",
        patch=Patch("zkserver/watches.py",
                    "                    if mode == Mode.STANDARD:",
                    "                    if mode != Mode.PERSISTENT_RECURSIVE:"),
        campaign=WATCH,
        expects=("missed-event",),
    ),
    Mutant(
        name="exists-watch-needs-node",
        layer="watch delivery",
        description="exists() now returns NONODE before registering the watch, the way getData does: "
                    "a watch on a node that does not exist yet, which is how clients wait for a create, "
                    "is never set, and its NodeCreated never comes.",
        patch=Patch("zkserver/reads.py",
                    "    if r.watch:  # registered even when the node is missing: it waits for a create\n"
                    "        ctx.watches.data.add(r.path, ctx.conn)\n    if node is None:\n"
                    "        raise ZkError(Err.NONODE, r.path)\n",
                    "    if node is None:\n        raise ZkError(Err.NONODE, r.path)\n    if r.watch:\n"
                    "        ctx.watches.data.add(r.path, ctx.conn)\n"),
        campaign=WATCH,
        expects=("missed-event",),
    ),
    Mutant(
        name="small-batches-not-fsynced",
        layer="durability (log fsync)",
        description="append() skips fdatasync for batches under 64 KiB to save the syscall: writes are "
                    "acknowledged before they are on disk, and a power loss of the ensemble loses them "
                    "on every node.",
        patch=Patch("zkserver/storage/txnlog.py",
                    "        if self.force_sync:\n            os.fdatasync(self.fd)",
                    "        if self.force_sync and len(data) >= 64 * 1024:\n            os.fdatasync(self.fd)"),
        campaign=BANK,
        expects=("lost-transfer", "wrong-total", "final-reads-disagree"),
    ),
    Mutant(
        name="restore-skips-first-txn-after-snapshot",
        layer="durability (snapshots and restore)",
        description="Restore replays the log from the txn after snapshot zxid + 1, as if a snapshot were "
                    "named after the next zxid like a log segment is: a node restarted from a snapshot "
                    "lacks the first txn logged after it, and the leader's DIFF from its last zxid never "
                    "sends it.",
        patch=Patch("zkserver/storage/store.py",
                    "        for hdr, txn in read_log(self.log_dir, tree.last_zxid):",
                    "        for hdr, txn in read_log(self.log_dir, tree.last_zxid + 1):"),
        campaign=UNIQUE_IDS,
        expects=("lost",),
    ),
    Mutant(
        name="sessions-restart-on-wall-clock",
        layer="clock",
        description="_establish restarts every session's timeout with peer.wall_ms where the tracker "
                    "counts on the monotonic clock: after an election each session's deadline lies "
                    "decades ahead until its client touches it again, so a session whose client is "
                    "already gone never expires and its ephemerals stay.",
        patch=Patch("zkserver/quorum/leader.py",
                    "        core.reset(core.tree, make_zxid(self.epoch, 0), now_ms)",
                    "        core.reset(core.tree, make_zxid(self.epoch, 0), peer.wall_ms)"),
        campaign=EPHEMERAL,
        expects=("outlived", "survived-expiry"),
    ),
)

# About three minutes on two cores: five mutants of five layers (quorum commit, sync after a
# leader change, version checks, snapshots and restore, watches) under four quick tests (no disk
# faults, no session-settling final phase), and those four controls.
SUBSETS: dict[str, tuple[str, ...]] = {
    "ci": ("commit-before-majority", "sync-skips-first-txn", "setdata-ignores-version",
           "restore-skips-first-txn-after-snapshot", "watch-persistent-consumed"),
}


def by_name(name: str) -> Mutant:
    for mutant in MUTANTS:
        if mutant.name == name:
            return mutant
    raise KeyError(f"no mutant {name!r}; choose from {', '.join(m.name for m in MUTANTS)}")


def chosen(names: list[str] | None = None, subset: str | None = None) -> list[Mutant]:
    """The mutants named (all when none), or those of a subset."""
    if subset is not None:
        return [by_name(n) for n in SUBSETS[subset]]
    if not names or names == ["all"]:
        return list(MUTANTS)
    return [by_name(n) for n in dict.fromkeys(names)]  # a mutant named twice runs once
