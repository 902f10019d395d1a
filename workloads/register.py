"""The register workload: independent keys (one znode each) read, written and compare-and-set.

Ops (values in history records, as design.md fixes them):
  read  {"key": k, "value": v}      v is None on the invocation, and on an ok read of a missing key
  write {"key": k, "value": v}      setData, or create when the key does not exist yet
  cas   {"key": k, "from": a, "to": b}   read, then setData with the version read
Written values are unique per key (a counter), so every read names the write it saw.

Outcomes: ok = happened; fail = certainly did not (cas on a different value or a lost version
race; a cas whose read already failed); info = unknown (timeouts, connection loss).
"""

from __future__ import annotations

import itertools
import random
import threading
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from harness.history import FAIL, INFO, OK

ROOT = "/zkchaos/register"


@dataclass
class Completion:
    type: str
    value: Any = None
    error: str | None = None
    zxid: int | None = None


class RegisterClient:
    """One kazoo session bound to one node."""

    def __init__(self, address: str, op_timeout: float = 5.0, session_timeout: float = 10.0, read_mode: str = "plain") -> None:
        self.zk = KazooClient(hosts=address, timeout=session_timeout, connection_retry={"max_tries": -1, "delay": 0.1, "max_delay": 1.0})
        self.op_timeout = op_timeout
        self.read_mode = read_mode
        self.started = False

    def open(self, timeout: float = 15.0) -> None:
        self.zk.start(timeout=timeout)
        self.zk.ensure_path(ROOT)
        self.started = True

    def session(self) -> str | None:
        # kazoo's client_id is None while it is disconnected, but the session lives on (and a
        # reconnect resumes it): its last id is the right one to record.
        sid = self.zk._session_id or (self.zk.client_id[0] if self.zk.client_id else None)
        return f"0x{sid:x}" if sid else None

    def close(self) -> None:
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:  # noqa: BLE001 - closing a client on a dead node must not fail a run
            pass

    def _wait(self, async_result):
        return async_result.get(timeout=self.op_timeout)

    def invoke(self, f: str, value: dict[str, Any]) -> Completion:
        try:
            if f == "read":
                return self._read(value["key"])
            if f == "write":
                return self._write(value["key"], value["value"])
            if f == "cas":
                return self._cas(value["key"], value["from"], value["to"])
            return Completion(FAIL, error=f"unknown op {f}")
        except KazooTimeoutError:
            return Completion(INFO, error="timeout")
        except Exception as e:  # noqa: BLE001 - connection loss, session expiry, ...: outcome unknown
            return Completion(INFO, error=type(e).__name__)

    def _path(self, key: int) -> str:
        return f"{ROOT}/{key}"

    def _read(self, key: int) -> Completion:
        if self.read_mode == "sync":
            self._wait(self.zk.sync_async(self._path(key)))
        try:
            data, stat = self._wait(self.zk.get_async(self._path(key)))
        except NoNodeError:
            return Completion(OK, {"key": key, "value": None})
        return Completion(OK, {"key": key, "value": int(data)}, zxid=stat.mzxid)

    def _write(self, key: int, v: int) -> Completion:
        path, data = self._path(key), str(v).encode()
        try:
            stat = self._wait(self.zk.set_async(path, data))
            return Completion(OK, zxid=stat.mzxid)
        except NoNodeError:
            pass
        try:
            _, stat = self._wait(self.zk.create_async(path, data, include_data=True))
            return Completion(OK, zxid=stat.mzxid)
        except NodeExistsError:  # someone created it meanwhile: our set still applies
            stat = self._wait(self.zk.set_async(path, data))
            return Completion(OK, zxid=stat.mzxid)

    def _cas(self, key: int, old: int, new: int) -> Completion:
        path = self._path(key)
        try:
            data, stat = self._wait(self.zk.get_async(path))
        except NoNodeError:
            return Completion(FAIL, error="no such key")
        except Exception as e:  # noqa: BLE001 - nothing was written yet: certainly no effect
            return Completion(FAIL, error=f"read failed: {type(e).__name__}")
        if int(data) != old:
            return Completion(FAIL, error="value mismatch")
        try:
            stat = self._wait(self.zk.set_async(path, str(new).encode(), version=stat.version))
        except BadVersionError:
            return Completion(FAIL, error="version changed")
        return Completion(OK, zxid=stat.mzxid)


class RegisterGenerator:
    """Random ops over `keys` keys; write and cas values come from one counter per key, so
    they never repeat."""

    def __init__(self, keys: int, rng: random.Random, mix: tuple[float, float, float] = (0.5, 0.3, 0.2)) -> None:
        self.keys = keys
        self.rng = rng
        self.mix = mix
        self.counters = {k: itertools.count(1) for k in range(keys)}
        self.recent: dict[int, list[int]] = {k: [] for k in range(keys)}
        self.lock = threading.Lock()

    def next(self) -> tuple[str, dict[str, Any]]:
        with self.lock:
            key = self.rng.randrange(self.keys)
            r = self.rng.random()
            if r < self.mix[0]:
                return "read", {"key": key, "value": None}
            value = next(self.counters[key])
            if r < self.mix[0] + self.mix[1] or not self.recent[key]:
                self.recent[key] = (self.recent[key] + [value])[-3:]
                return "write", {"key": key, "value": value}
            old = self.rng.choice(self.recent[key])
            self.recent[key] = (self.recent[key] + [value])[-3:]
            return "cas", {"key": key, "from": old, "to": value}
