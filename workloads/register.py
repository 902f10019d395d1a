"""The register workload: independent keys (one znode each) read, written and compare-and-set.

Ops (history values):
  read  {"key": k, "value": v, "version": n, "mzxid": z}   v, n, z are null on the invocation,
                                                           and on an ok read of a missing key;
                                                           "sync": true when a sync precedes it
  write {"key": k, "value": v, "version": n, "mzxid": z}   setData, or create for a new key
  cas   {"key": k, "from": a, "to": b, "version": n, "mzxid": z}   read, then setData at the read version
The completion adds the Stat the server returned (version, mzxid), so every acknowledged write
and every read is placed in the node's own history; the record's zxid is the reply's.
Written values are unique per key (a counter), so every read names the write it saw. A cas
takes its expected value from what its process last saw of the key, so cas chains cross faults.

Outcomes: fail = certainly did not happen (a cas on another value or a lost version race, a cas
whose read failed); info = unknown (timeouts, connection loss).
"""

from __future__ import annotations

import itertools
import random
import threading
from typing import Any

import click
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from harness.checkers.register import RegisterChecker
from harness.history import FAIL, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .zkclient import ZkClient, stat_fields

ROOT = "/zkchaos/register"


class RegisterClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"read": self.read, "write": self.write, "cas": self.cas}

    def prepare(self) -> None:
        self.zk.ensure_path(ROOT)

    def read(self, value: dict) -> Completion:
        path = f"{ROOT}/{value['key']}"
        if value.get("sync"):
            self.wait(self.zk.sync_async(path))
        try:
            data, stat = self.wait(self.zk.get_async(path))
        except NoNodeError:
            return Completion(OK, dict(value, value=None, version=None, mzxid=None))
        return Completion(OK, dict(value, value=int(data), **stat_fields(stat)))

    def write(self, value: dict) -> Completion:
        path, data = f"{ROOT}/{value['key']}", str(value["value"]).encode()
        try:
            stat = self.wait(self.zk.set_async(path, data))
        except NoNodeError:
            try:
                _, stat = self.wait(self.zk.create_async(path, data, include_data=True))
            except NodeExistsError:  # someone created it meanwhile: our set still applies
                stat = self.wait(self.zk.set_async(path, data))
        return Completion(OK, dict(value, **stat_fields(stat)))

    def cas(self, value: dict) -> Completion:
        path = f"{ROOT}/{value['key']}"
        try:
            data, stat = self.wait(self.zk.get_async(path))
        except NoNodeError:
            return Completion(FAIL, error="no such key")
        except Exception as e:  # noqa: BLE001 - nothing was written yet: certainly no effect
            return Completion(FAIL, error=f"read failed: {type(e).__name__}")
        if int(data) != value["from"]:
            return Completion(FAIL, error="value mismatch")
        try:
            stat = self.wait(self.zk.set_async(path, str(value["to"]).encode(), version=stat.version))
        except BadVersionError:
            return Completion(FAIL, error="version changed")
        return Completion(OK, dict(value, **stat_fields(stat)))


class RegisterGenerator:
    """Random ops over `keys` keys. Written values come from one counter per key, so they never
    repeat; a cas expects what its process last read or wrote of the key (a process that has
    seen nothing of a key reads it first)."""

    def __init__(self, keys: int, rng: random.Random, mix: tuple[float, float, float] = (0.5, 0.3, 0.2),
                 sync_reads: bool = False) -> None:
        self.keys = keys
        self.read_op = {"value": None, "sync": True} if sync_reads else {"value": None}
        self.rng = rng
        self.mix = mix
        self.counters = {k: itertools.count(1) for k in range(keys)}
        self.seen: dict[tuple[int, int], int] = {}  # (process, key) -> value last read or written
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            key = self.rng.randrange(self.keys)
            r = self.rng.random()
            known = (process, key) in self.seen
            if r < self.mix[0] or (r >= self.mix[0] + self.mix[1] and not known):
                return "read", {"key": key, **self.read_op}
            value = next(self.counters[key])
            if r < self.mix[0] + self.mix[1]:
                return "write", {"key": key, "value": value}
            return "cas", {"key": key, "from": self.seen[(process, key)], "to": value}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        if done.type != OK:
            return
        seen = done.value if isinstance(done.value, dict) else value
        latest = seen.get("to") if f == "cas" else seen.get("value")
        with self.lock:
            if latest is None:
                self.seen.pop((process, seen["key"]), None)
            else:
                self.seen[(process, seen["key"])] = latest


def _final_reads(options: Options, node: Any) -> Once:
    """After healing: every key read, after a sync, through every node."""
    return Once([("read", {"key": k, "value": None, "final": True, "sync": True})
                 for k in range(int(options.get("keys", 5)))])


WORKLOAD = Workload(
    name="register",
    description="read, write and cas on independent keys; linearizable writes, ZooKeeper-consistent reads",
    client=RegisterClient,
    generator=lambda options, rng: RegisterGenerator(int(options.get("keys", 5)), rng,
                                                     sync_reads=options.get("read_mode") == "sync"),
    checker=lambda options: RegisterChecker(options.get("consistency", "zookeeper"),
                                            float(options.get("check_time_limit") or 60.0)),
    final_generator=_final_reads,
    options=(
        Option("keys", 5, "Register keys (one znode each).", type=click.IntRange(1, 10000)),
        Option("read-mode", "plain", "Reads as they are, or after a sync.", choices=("plain", "sync")),
    ),
)
