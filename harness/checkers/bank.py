"""Checking the bank workload (workloads/bank.py): money is neither made nor lost, and every read
sees the accounts as some prefix of the committed transfers left them.

Committed transfers are known by zxid: an acknowledged transfer reports its multi's zxid, and a
read reports each account's mzxid, the zxid of the last txn that changed it. A transfer of
unknown outcome (info) is never required to have happened nor assumed not to have: when a read
shows an account changed by a zxid no acknowledged transfer has, that transfer committed, and
from then on it is a committed txn like the others (counted in stats as
"unacknowledged_txns_seen").

Anomalies (violations under both models unless said otherwise):
  wrong-total          a read whose balances do not add up to the initial total
  negative-balance     a read with a balance below zero
  torn-read            a read that saw a txn on one account but missed a txn with a lower zxid on
                       another: not the state after any prefix of the log (a multi or the
                       multiRead was not atomic)
  account-conflict     two states claimed for one version of an account, or versions out of zxid
                       order: one of the writes was lost, or a read saw one that never committed
  lost-transfer        an acknowledged transfer missing from the final state
  final-reads-disagree the sync reads of every node after healing differ
  stale-read           a read missed a transfer acknowledged before it began: ZooKeeper allows it
  stale-sync-read      the same after a sync (and in the final phase)
  read-went-back       a session saw an account older than it had already seen
  missed-own-transfer  a session did not see its own acknowledged transfer

Result: {"valid", "explanation", "summary", "anomalies", "anomaly_count", "consistency",
"final": {"balances", "versions", "mzxids"} (the most advanced final read), "stats"}.
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from collections import Counter, defaultdict
from typing import Any, Iterable, Mapping

from .core import judge
from .history import Op, op_record, pair_ops

INITIAL_BALANCE = 100  # every account's balance when the workload creates it

WRONG_TOTAL = "wrong-total"
NEGATIVE = "negative-balance"
TORN_READ = "torn-read"
CONFLICT = "account-conflict"
LOST_TRANSFER = "lost-transfer"
FINAL_DISAGREE = "final-reads-disagree"
STALE_READ = "stale-read"
STALE_SYNC_READ = "stale-sync-read"
WENT_BACK = "read-went-back"
MISSED_OWN = "missed-own-transfer"

CLASSIFICATION = {
    WRONG_TOTAL: "total not conserved",
    NEGATIVE: "negative balance",
    TORN_READ: "read of no prefix of the committed transfers (not atomic)",
    CONFLICT: "account history conflict: a lost or uncommitted write",
    LOST_TRANSFER: "lost acknowledged transfer",
    FINAL_DISAGREE: "final reads disagree",
    STALE_READ: "stale read (allowed by ZooKeeper)",
    STALE_SYNC_READ: "stale read after a sync",
    WENT_BACK: "read went back in session order",
    MISSED_OWN: "missed own transfer",
}
ALLOWED_BY_ZOOKEEPER = {STALE_READ}


State = tuple[int, int, int | None, int]  # account, version, mzxid, balance: as an op saw or left it


def _anomaly(kind: str, ops: list[Op], explanation: str, **values: Any) -> dict:
    return {"type": kind, "explanation": explanation, "ops": [op_record(o) for o in ops], "values": values,
            "zookeeper": "allowed" if kind in ALLOWED_BY_ZOOKEEPER else "violation",
            "classification": CLASSIFICATION[kind]}


def _is_sync(op: Op) -> bool:
    return bool(op.invoke.get("final") or op.value.get("sync"))


def _states(op: Op) -> list[State]:
    """The account states an ok read or transfer reports: made again by each pass that needs them
    rather than kept for every op at once (a million ops' states would outweigh the history)."""
    v = op.value
    if op.f == "read":
        return list(zip(range(len(v["balances"])), v["versions"], v["mzxids"], v["balances"]))
    return [(a, n, v.get("zxid"), b) for a, n, b in zip((v["from"], v["to"]), v["versions"], v["balances"])]


def _sum_findings(reads: list[Op], accounts: int) -> list[dict]:
    found = []
    for r in reads:
        balances = r.value["balances"]
        if len(balances) != accounts or sum(balances) != accounts * INITIAL_BALANCE:
            found.append(_anomaly(WRONG_TOTAL, [r], f"read (record {r.ret}) saw {len(balances)} accounts holding "
                                  f"{sum(balances)}, not {accounts} holding {accounts * INITIAL_BALANCE}",
                                  balances=balances))
        if any(b < 0 for b in balances):
            found.append(_anomaly(NEGATIVE, [r], f"read (record {r.ret}) saw balances {balances}", balances=balances))
    return found


def _history_findings(ops: list[Op]) -> list[dict]:
    """Per account: one state per version (version 0 the initial one), mzxids rising with versions."""
    first: dict[int, dict[int, Op]] = defaultdict(dict)  # account -> version -> the first op to report it
    found = []
    for op in ops:
        for account, version, mzxid, balance in _states(op):
            ref = first[account].setdefault(version, op)
            if ref is op:
                if version == 0 and balance == INITIAL_BALANCE:
                    continue
                ref_mzxid, ref_balance = mzxid, INITIAL_BALANCE if version == 0 else balance
            else:
                ref_mzxid, ref_balance = _account_state(ref, account, version)
            expected = INITIAL_BALANCE if version == 0 else ref_balance
            if balance == expected and mzxid == ref_mzxid:
                continue
            other = (f"every account was created holding {INITIAL_BALANCE}" if balance != expected and version == 0
                     else f"{ref.f} (record {ref.ret}) saw balance {ref_balance} at zxid {ref_mzxid}")
            found.append(_anomaly(CONFLICT, [op, ref], f"account {account} at version {version}: {op.f} "
                                  f"(record {op.ret}) saw balance {balance} at zxid {mzxid}, but {other}",
                                  account=account, version=version))
    for account, versions in sorted(first.items()):
        chain = [(version, mzxid, op) for version in sorted(versions)
                 if (mzxid := _account_state(op := versions[version], account, version)[0]) is not None]
        for (old, older, older_op), (version, mzxid, op) in zip(chain, chain[1:]):
            if older >= mzxid:
                found.append(_anomaly(CONFLICT, [op, older_op], f"account {account}: version {version} has zxid "
                                      f"{mzxid}, not above version {old}'s {older}", account=account, version=version))
    return found


def _account_state(op: Op, account: int, version: int) -> tuple[int | None, int]:
    """(mzxid, balance) of an account at a version, as an ok read or transfer reports it."""
    v = op.value
    if op.f == "read":  # a read reports every account, in order
        return v["mzxids"][account], v["balances"][account]
    side = 0 if v["from"] == account and v["versions"][0] == version else 1  # a transfer: from, to
    return v.get("zxid"), v["balances"][side]


def _committed(ops: list[Op]) -> dict[int, list[int]]:
    """Per account, the zxids of the txns known to have changed it (acknowledged or seen)."""
    zxids: dict[int, set[int]] = defaultdict(set)
    for op in ops:
        for account, _, mzxid, _ in _states(op):
            if mzxid is not None:
                zxids[account].add(mzxid)
    return {account: sorted(z) for account, z in zxids.items()}


def _torn_findings(reads: list[Op], committed: dict[int, list[int]]) -> list[dict]:
    found = []
    for r in reads:
        mzxids = r.value["mzxids"]
        newest = max(mzxids)
        for i, saw in enumerate(mzxids):
            later = committed.get(i, [])
            k = bisect_right(later, saw)
            if k < len(later) and later[k] <= newest:
                found.append(_anomaly(TORN_READ, [r], f"read (record {r.ret}) saw zxid {newest} on account "
                                      f"{mzxids.index(newest)} but account {i} at zxid {saw}, missing the txn "
                                      f"{later[k]} on it", account=i, saw=saw, missed=later[k], newest=newest))
                break
    return found


def _final_findings(finals: list[Op], transfers: list[Op]) -> tuple[list[dict], Op | None]:
    if not finals:
        return [], None
    found = []
    distinct = {tuple(map(tuple, (r.value["balances"], r.value["versions"], r.value["mzxids"]))) for r in finals}
    if len(distinct) > 1:
        found.append(_anomaly(FINAL_DISAGREE, finals, f"{len(distinct)} different states in the final reads of "
                              f"{len(finals)} nodes", states=sorted(distinct)))
    final = max(finals, key=lambda r: sum(r.value["versions"]))
    versions, mzxids = final.value["versions"], final.value["mzxids"]
    for t in transfers:
        for account, version, mzxid, _ in _states(t):
            if version > versions[account] or (mzxid is not None and mzxid > mzxids[account]):
                found.append(_anomaly(LOST_TRANSFER, [t, final], f"transfer (record {t.ret}) left account {account} "
                                      f"at version {version}, zxid {mzxid}; the final state has it at version "
                                      f"{versions[account]}, zxid {mzxids[account]}", account=account))
                break
    return found, final


def _stale_findings(reads: list[Op], transfers: list[Op], accounts: int) -> list[dict]:
    """Against what transfers acknowledged before each read began force, account by account."""
    done = sorted(transfers, key=lambda t: t.ret)
    newest: list[tuple[float, Op | None]] = [(0, None)] * accounts  # per account: (zxid, transfer)
    found, k = [], 0
    for r in sorted(reads, key=lambda r: r.call):
        while k < len(done) and done[k].ret < r.call:
            for account, _, mzxid, _ in _states(done[k]):
                if mzxid is not None and account < accounts and mzxid > newest[account][0]:
                    newest[account] = (mzxid, done[k])
            k += 1
        saw = r.value["mzxids"]
        missed = [(i, z, t) for i, (z, t) in enumerate(newest) if i < len(saw) and saw[i] < z]
        if missed:
            i, z, t = missed[0]
            kind = STALE_SYNC_READ if _is_sync(r) else STALE_READ
            found.append(_anomaly(kind, [r, t], f"read (record {r.ret}) saw account {i} at zxid {saw[i]}, but a "
                                  f"transfer acknowledged before it began (record {t.ret}) wrote zxid {z}",
                                  accounts=[m[0] for m in missed]))
    return found


def _session_findings(reads: list[Op], transfers: list[Op]) -> list[dict]:
    """A session's view of each account (its reads, its own transfers) never goes back."""
    by_session: dict[Any, list[Op]] = defaultdict(list)
    for op in reads + transfers:
        by_session[op.session].append(op)
    found = []
    for ops in by_session.values():
        view: dict[int, tuple[int, Op]] = {}  # account -> (the newest zxid the session saw, the op)
        completed: list[tuple[float, int, Op]] = []  # ops not yet in the view: (completion, id, op)
        for op in sorted(ops, key=lambda o: o.call):
            while completed and completed[0][0] < op.call:
                _, _, done = heapq.heappop(completed)
                for account, _, mzxid, _ in _states(done):
                    if mzxid is not None and mzxid > view.get(account, (-1, None))[0]:
                        view[account] = (mzxid, done)
            if op.f == "read":
                behind = [(account, mzxid) for account, _, mzxid, _ in _states(op)
                          if account in view and mzxid < view[account][0]]
                if behind:
                    account, mzxid = behind[0]
                    had, source = view[account]
                    kind = WENT_BACK if source.f == "read" else MISSED_OWN
                    found.append(_anomaly(kind, [op, source], f"read (record {op.ret}) saw account {account} at zxid "
                                          f"{mzxid}, but session {op.session} had already seen zxid {had} (record "
                                          f"{source.ret})", accounts=[b[0] for b in behind]))
            heapq.heappush(completed, (op.ret, op.id, op))
    return found


def check_bank(history: Iterable[Mapping], consistency: str = "zookeeper", accounts: int = 5) -> dict:
    ops = pair_ops(history)
    transfers = [op for op in ops if op.f == "transfer" and op.ok]
    reads = [op for op in ops if op.f == "read" and op.ok]
    finals = [r for r in reads if r.invoke.get("final")]
    final_anomalies, final = _final_findings(finals, transfers)
    anomalies = (_sum_findings(reads, accounts) + _history_findings(transfers + reads) + final_anomalies
                 + _torn_findings(reads, _committed(transfers + reads)) + _stale_findings(reads, transfers, accounts)
                 + _session_findings(reads, transfers))
    out = _verdict(anomalies, consistency, have_final=final is not None)
    out["final"] = {k: final.value[k] for k in ("balances", "versions", "mzxids")} if final else None
    acknowledged = {t.value.get("zxid") for t in transfers}
    out["stats"] = {
        "transfers": dict(Counter(op.type for op in ops if op.f == "transfer")),
        "reads": len(reads),
        "unacknowledged_txns_seen": len({z for op in transfers + reads for _, n, z, _ in _states(op) if n > 0}
                                        - acknowledged),
    }
    return out


def _verdict(anomalies: list[dict], consistency: str, have_final: bool) -> dict:
    """Without a final read a lost transfer would be invisible."""
    model = "linearizable" if consistency == "linearizable" else "ZooKeeper-consistent"
    return judge(anomalies, consistency, None if have_final else "no final read succeeded: lost transfers cannot be ruled out",
                 f"every read conserves the total and is {model}")


class BankChecker:
    def __init__(self, consistency: str = "zookeeper", accounts: int = 5) -> None:
        self.consistency = consistency
        self.accounts = accounts

    def check(self, history: list[dict], options: Mapping[str, Any]) -> dict:
        return check_bank(history, self.consistency, self.accounts)
