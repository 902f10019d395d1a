"""The bank checker on hand-built histories: a valid one under each model, and one history per
anomaly it claims, each checked for its verdict and classification."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from harness.checkers.bank import INITIAL_BALANCE, check_bank

MODELS = ["zookeeper", "linearizable"]
ACCOUNTS = 3
CREATED = 1  # the zxid of the multi that created the accounts

State = tuple[list[int], list[int], list[int]]  # balances, versions, mzxids


class History:
    """A bank that the transfers change as they commit, and the records of the ops on it.
    `transfer` commits unless told not to (an info transfer may go either way); `read` sees the
    bank as it is now, or a given (older, or made-up) state. Each process is its own session."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.balances = [INITIAL_BALANCE] * ACCOUNTS
        self.versions = [0] * ACCOUNTS
        self.mzxids = [CREATED] * ACCOUNTS
        self.zxid = 10

    def state(self) -> State:
        return list(self.balances), list(self.versions), list(self.mzxids)

    def _add(self, p: Any, kind: str, f: str, value: dict, final: bool, error: str | None = None) -> None:
        self.records.append({"index": len(self.records), "time_ns": len(self.records) * 1000, "process": p,
                             "node": "n1", "type": kind, "f": f, "value": value, "error": error, "zxid": None,
                             "session": f"s{p}", **({"final": True} if final else {})})

    def transfer(self, p: Any, payer: int, payee: int, amount: int, outcome: str = "ok",
                 commits: bool = True) -> "History":
        value = {"from": payer, "to": payee, "amount": amount}
        self._add(p, "invoke", "transfer", value, False)
        if commits:
            self.zxid += 1
            self.balances[payer] -= amount
            self.balances[payee] += amount
            for i in (payer, payee):
                self.versions[i] += 1
                self.mzxids[i] = self.zxid
        if outcome == "ok":
            value = dict(value, balances=[self.balances[payer], self.balances[payee]],
                         versions=[self.versions[payer], self.versions[payee]], zxid=self.zxid)
        self._add(p, outcome, "transfer", value, False, None if outcome == "ok" else "timeout")
        return self

    def read(self, p: Any, state: State | None = None, sync: bool = False, final: bool = False) -> "History":
        balances, versions, mzxids = state or self.state()
        value = {"sync": True} if sync or final else {}
        self._add(p, "invoke", "read", value, final)
        self._add(p, "ok", "read", dict(value, balances=balances, versions=versions, mzxids=mzxids), final)
        return self

    def finals(self, *states: State) -> "History":
        for n, state in enumerate(states or [self.state()] * 3):
            self.read(f"final{n}", state, final=True)
        return self


def check(h: History, consistency: str = "zookeeper") -> dict:
    result = check_bank(h.records, consistency, ACCOUNTS)
    json.dumps(result)
    return result


def kinds(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"]]


def violations(result: dict) -> list[str]:
    return [a["type"] for a in result["anomalies"] if a["zookeeper"] == "violation"]


@pytest.mark.parametrize("consistency", MODELS)
def test_a_valid_history(consistency: str) -> None:
    h = History().read(0)
    h.transfer(1, 0, 1, 10).read(0).transfer(2, 1, 2, 30)
    h.transfer(3, 2, 0, 5, outcome="info")  # it committed: reads show it
    h.transfer(4, 0, 2, 7, outcome="info", commits=False)
    h.transfer(5, 0, 1, 1, outcome="fail", commits=False)
    h.read(1, sync=True).finals()
    result = check(h, consistency)
    assert result["valid"] is True, result["explanation"]
    assert result["anomalies"] == []
    assert result["stats"]["unacknowledged_txns_seen"] == 1
    assert result["final"]["balances"] == [95, 80, 125]


def test_a_read_whose_total_is_off() -> None:
    h = History().transfer(1, 0, 1, 10).read(0, ([90, 100, 100], [1, 0, 0], [11, CREATED, CREATED])).finals()
    result = check(h)
    assert result["valid"] is False
    assert "wrong-total" in kinds(result)
    total = next(a for a in result["anomalies"] if a["type"] == "wrong-total")
    assert total["classification"] == "total not conserved"


def test_a_negative_balance() -> None:
    h = History().read(0, ([-10, 210, 100], [1, 1, 0], [11, 11, CREATED])).finals()
    result = check(h)
    assert result["valid"] is False
    assert kinds(result) == ["negative-balance"]


def test_a_read_that_saw_a_txn_but_missed_an_earlier_one_is_torn() -> None:
    # 0 -> 1 then 1 -> 0: account 1 is back at 100 (version 2), and so is account 0, but the read
    # shows account 0 as created: it saw the second transfer on 1 and missed the first on 0.
    h = History().transfer(1, 0, 1, 10).transfer(1, 1, 0, 10)
    h.read(0, ([100, 100, 100], [0, 2, 0], [CREATED, 12, CREATED])).finals()
    result = check(h)
    assert result["valid"] is False
    assert violations(result) == ["torn-read"]  # and a stale read, which ZooKeeper allows
    assert result["anomalies"][0]["values"] == {"account": 0, "saw": CREATED, "missed": 11, "newest": 12}


def test_two_states_for_one_version_of_an_account() -> None:
    h = History().transfer(1, 0, 1, 10).read(0, ([90, 110, 100], [1, 1, 0], [14, 14, CREATED])).finals()
    result = check(h)
    assert result["valid"] is False
    assert set(kinds(result)) == {"account-conflict"}
    assert result["anomalies"][0]["classification"] == "account history conflict: a lost or uncommitted write"


def test_versions_out_of_zxid_order() -> None:
    # The transfer made version 1 of accounts 0 and 1 at zxid 11; a read has their version 2 at zxid 5.
    h = History().transfer(1, 0, 1, 10).read(0, ([80, 120, 100], [2, 2, 0], [5, 5, CREATED])).finals()
    result = check(h)
    assert violations(result) == ["account-conflict", "account-conflict"]
    assert "version 2 has zxid 5, not above version 1's 11" in result["anomalies"][0]["explanation"]


def test_an_acknowledged_transfer_missing_from_the_final_state() -> None:
    h = History()
    before = h.state()
    h.transfer(1, 0, 1, 10).finals(before, before, before)
    result = check(h)
    assert result["valid"] is False
    assert kinds(result)[0] == "lost-transfer"
    assert {"classification": "lost acknowledged transfer", "count": 1, "zookeeper": "violation"} in result["summary"]


def test_final_reads_that_disagree() -> None:
    h = History()
    before = h.state()
    h.transfer(1, 0, 1, 10, outcome="info").finals(h.state(), before, h.state())
    result = check(h)
    assert result["valid"] is False
    assert kinds(result) == ["final-reads-disagree"]


def test_a_plain_stale_read_is_allowed_by_zookeeper_but_not_linearizable() -> None:
    h = History()
    before = h.state()
    h.transfer(1, 0, 1, 10).read(0, before).finals()
    zk = check(h, "zookeeper")
    assert zk["valid"] is True, zk["explanation"]
    [stale] = zk["anomalies"]
    assert stale["type"] == "stale-read" and stale["zookeeper"] == "allowed"
    assert stale["classification"] == "stale read (allowed by ZooKeeper)"
    lin = check(h, "linearizable")
    assert lin["valid"] is False and kinds(lin) == ["stale-read"]


def test_a_read_after_sync_must_see_every_acknowledged_transfer() -> None:
    h = History()
    before = h.state()
    h.transfer(1, 0, 1, 10).read(0, before, sync=True).finals()
    result = check(h)
    assert result["valid"] is False
    assert kinds(result) == ["stale-sync-read"]


def test_a_session_whose_reads_go_back() -> None:
    h = History()
    before = h.state()
    h.transfer(1, 0, 1, 10).read(0).read(0, before).finals()
    result = check(h)
    assert result["valid"] is False
    assert "read-went-back" in kinds(result)


def test_a_session_that_misses_its_own_transfer() -> None:
    h = History()
    before = h.state()
    h.transfer(0, 0, 1, 10).read(0, before).finals()
    result = check(h)
    assert result["valid"] is False
    assert violations(result) == ["missed-own-transfer"]


def test_without_a_final_read_the_verdict_is_unknown() -> None:
    result = check(History().transfer(1, 0, 1, 10).read(0))
    assert result["valid"] == "unknown"
    assert "no final read" in result["explanation"]


def test_a_long_history_is_checked_quickly() -> None:
    """Linear-ish: 20k ops over 10 sessions, each transfer followed by a read."""
    h = History()
    for n in range(10_000):
        payer = n % ACCOUNTS
        h.transfer(n % 10, payer, (payer + 1) % ACCOUNTS, 1).read((n + 3) % 10)
    h.finals()
    started = time.perf_counter()
    result = check(h, "linearizable")
    assert time.perf_counter() - started < 10
    assert result["valid"] is True, result["explanation"]
