"""The counter workload: one znode holding a number, incremented by one and read.

Ops (history values):
  increment  {"value": v, "version": n, "mzxid": z, "attempts": k}   null on the invocation;
             v is the counter after this increment, n and z the Stat its setData returned,
             k how many read-then-setData rounds it took
  read       {"value": v, "version": n, "mzxid": z}                 null on the invocation;
             "sync": true in the value when the read follows a sync (--read-mode sync, and
             the final phase's reads)
The node is created at 0 (version 0) and every increment reads it and writes value + 1 at the
version it read, so value == version in every state the counter goes through.

Outcomes: fail = no setData of the increment can have applied (every one it sent was refused as
BadVersion, or it never got to send one: its read failed); info = a setData went unanswered
(timeout, connection loss), so it may apply at any later time. An increment retries only after
a BadVersion, which is a definite refusal: retrying after an unanswered setData could count twice.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError

from harness.checkers.counter import CounterChecker
from harness.history import FAIL, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .zkclient import ZkClient, stat_fields

ROOT = "/zkchaos"
COUNTER = f"{ROOT}/counter"


class CounterClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"increment": self.increment, "read": self.read}

    def prepare(self) -> None:
        self.zk.ensure_path(ROOT)
        try:
            self.wait(self.zk.create_async(COUNTER, b"0"))
        except NodeExistsError:  # another client made it: every client starts from the same 0
            pass

    def read(self, value: dict) -> Completion:
        if value.get("sync"):
            self.wait(self.zk.sync_async(COUNTER))
        data, stat = self.wait(self.zk.get_async(COUNTER))
        return Completion(OK, dict(value, value=int(data), **stat_fields(stat)))

    def increment(self, value: dict) -> Completion:
        deadline = time.monotonic() + self.op_timeout
        attempts = 0
        while True:
            try:
                data, stat = self.wait(self.zk.get_async(COUNTER))
            except Exception as e:  # noqa: BLE001 - every setData sent so far was refused: no effect
                return Completion(FAIL, error=f"read failed: {type(e).__name__}")
            attempts += 1
            new = int(data) + 1
            try:
                stat = self.wait(self.zk.set_async(COUNTER, str(new).encode(), version=stat.version))
            except BadVersionError:
                if time.monotonic() < deadline:
                    continue
                return Completion(FAIL, error=f"version changed under all {attempts} attempts")
            return Completion(OK, dict(value, value=new, attempts=attempts, **stat_fields(stat)))


class CounterGenerator:
    """Increments and reads, mixed at random; reads after a sync with --read-mode sync."""

    def __init__(self, rng: random.Random, sync_reads: bool, increments: float = 0.5) -> None:
        self.rng = rng
        self.sync_reads = sync_reads
        self.increments = increments
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            increment = self.rng.random() < self.increments
        if increment:
            return "increment", {"value": None}
        return "read", {"value": None, "sync": True} if self.sync_reads else {"value": None}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        pass


def _final_read(options: Options, node: Any) -> Once:
    """After healing: the counter read after a sync, through every node."""
    return Once([("read", {"value": None, "sync": True})])


WORKLOAD = Workload(
    name="counter",
    description="increments (read, then setData at the read version) and reads of one counter",
    client=CounterClient,
    generator=lambda options, rng: CounterGenerator(rng, options.get("read_mode", "plain") == "sync"),
    checker=lambda options: CounterChecker(options.get("consistency", "zookeeper")),
    final_generator=_final_read,
    options=(
        Option("read-mode", "plain", "Reads as they are, or after a sync.", choices=("plain", "sync")),
    ),
)
