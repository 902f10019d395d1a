"""The bank workload: accounts, one znode each holding a balance; a transfer moves money between
two accounts in one multi, a read sees every account at once through one multiRead.

Ops (history values):
  transfer  {"from": a, "to": b, "amount": x}   invocation
            ok adds {"balances": [ba, bb], "versions": [na, nb], "zxid": z}: both accounts
            after the transfer (from first), their versions, and the multi's zxid (the mzxid
            both setData returned)
  read      {} invocation ({"sync": true} after a sync: --read-mode sync, and the final phase)
            ok adds {"balances": [...], "versions": [...], "mzxids": [...]}, indexed by account
Accounts are `/zkchaos/bank/<i>`, i < --accounts, all created by one multi with the same
balance, so the total is fixed from the first state on. A transfer reads both accounts (a
multiRead), gives up if the payer has less than the amount, then one multi sets both balances,
each setData at the version read: the versions are the multi's checks, and the multi applies
whole or not at all.

Outcomes: fail = certainly no effect (insufficient funds, a version changed, the read failed);
info = the multi went unanswered: it may have committed.
"""

from __future__ import annotations

import random
import threading
from typing import Any, Iterable

import click
from kazoo.exceptions import NodeExistsError

from harness.checkers.bank import INITIAL_BALANCE, BankChecker
from harness.history import FAIL, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .multiread import multi_read_async
from .zkclient import ZkClient

ROOT = "/zkchaos/bank"
MAX_AMOUNT = 20


def account(i: int) -> str:
    return f"{ROOT}/{i}"


class BankClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.accounts = int(options.get("accounts", 5))
        self.ops = {"transfer": self.transfer, "read": self.read}

    def prepare(self) -> None:
        """All accounts in one multi: no read can ever see some of them without the others."""
        self.zk.ensure_path(ROOT)
        tx = self.zk.transaction()
        for i in range(self.accounts):
            tx.create(account(i), str(INITIAL_BALANCE).encode())
        results = self.wait(tx.commit_async())
        refused = [r for r in results if isinstance(r, Exception)]
        if refused and not any(isinstance(r, NodeExistsError) for r in refused):
            raise refused[0]  # NodeExists: another client made them first

    def balances(self, accounts: Iterable[int]) -> list[tuple[int, Any]]:
        """(balance, Stat) of each account, all from one state of the server."""
        results = self.wait(multi_read_async(self.zk, [account(i) for i in accounts]))
        for r in results:
            if isinstance(r, Exception):
                raise r
        return [(int(data), stat) for data, stat in results]

    def read(self, value: dict) -> Completion:
        if value.get("sync"):
            self.wait(self.zk.sync_async(ROOT))
        seen = self.balances(range(self.accounts))
        return Completion(OK, dict(value, balances=[b for b, _ in seen], versions=[s.version for _, s in seen],
                                   mzxids=[s.mzxid for _, s in seen]))

    def transfer(self, value: dict) -> Completion:
        payer, payee, amount = value["from"], value["to"], value["amount"]
        try:
            (have, payer_stat), (other, payee_stat) = self.balances([payer, payee])
        except Exception as e:  # noqa: BLE001 - nothing was written: certainly no effect
            return Completion(FAIL, error=f"read failed: {type(e).__name__}")
        if have < amount:
            return Completion(FAIL, error="insufficient funds")
        tx = self.zk.transaction()
        tx.set_data(account(payer), str(have - amount).encode(), version=payer_stat.version)
        tx.set_data(account(payee), str(other + amount).encode(), version=payee_stat.version)
        results = self.wait(tx.commit_async())
        refused = [r for r in results if isinstance(r, Exception)]
        if refused:
            return Completion(FAIL, error=f"multi refused: {type(refused[0]).__name__}")
        after_payer, after_payee = results
        return Completion(OK, dict(value, balances=[have - amount, other + amount],
                                   versions=[after_payer.version, after_payee.version], zxid=after_payer.mzxid))


class BankGenerator:
    """Transfers of 1..MAX_AMOUNT between two distinct random accounts, and reads of all."""

    def __init__(self, accounts: int, rng: random.Random, sync_reads: bool, transfers: float = 0.5) -> None:
        self.accounts = accounts
        self.rng = rng
        self.sync_reads = sync_reads
        self.transfers = transfers
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            if self.rng.random() >= self.transfers:
                return "read", {"sync": True} if self.sync_reads else {}
            payer, payee = self.rng.sample(range(self.accounts), 2)
            return "transfer", {"from": payer, "to": payee, "amount": self.rng.randint(1, MAX_AMOUNT)}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        pass


def _accounts(options: Options) -> int:
    return int(options.get("accounts", 5))


WORKLOAD = Workload(
    name="bank",
    description="transfers between accounts in one multi, reads of every account in one multiRead; the total never changes",
    client=BankClient,
    generator=lambda options, rng: BankGenerator(_accounts(options), rng, options.get("read_mode", "plain") == "sync"),
    checker=lambda options: BankChecker(options.get("consistency", "zookeeper"), _accounts(options)),
    final_generator=lambda options, node: Once([("read", {"sync": True})]),
    options=(
        Option("accounts", 5, "Bank accounts (one znode each).", type=click.IntRange(2, 1000)),
        Option("read-mode", "plain", "Reads as they are, or after a sync.", choices=("plain", "sync")),
    ),
)
