"""The set workload: unique elements (integers from one counter) added concurrently, and reads of
the whole set. `--set-mode` says where the set lives:

  children  each element is a child znode /zkchaos/set/e-<n>; an add is a create, a read getChildren
  cas       the set is one znode's data (/zkchaos/set-cas, a JSON list); an add reads it and writes
            it back with one more element at the version it read, again on BadVersion, within the
            op timeout; a read is getData

Ops (history values; the completion adds the fields after the invocation's):
  add  {"element": n}
       children: + {"czxid": z}                            the created child's Stat
       cas:      + {"version": v, "mzxid": z, "attempts": k}   the Stat setData returned
  read {"elements": null}  ("final": true in the final phase, which reads after a sync)
       children: {"elements": [n, ...], "cversion": c, "pzxid": z}   the parent's Stat
       cas:      {"elements": [n, ...], "version": v, "mzxid": z}
Elements are listed as the server returned them (children sorted by element); a child whose
name is not e-<n> is listed by its name, so the checker reports it as never added.

Outcomes: fail = certainly not added (children: the node already existed; cas: every attempt
lost the version race, or a read failed before anything was written); info = unknown.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from typing import Any

from kazoo.exceptions import BadVersionError, NodeExistsError

from harness.checkers.set_full import SetChecker
from harness.history import FAIL, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .zkclient import ZkClient, stat_fields

CHILDREN_ROOT = "/zkchaos/set"
CAS_PATH = "/zkchaos/set-cas"
CHILD_PREFIX = "e-"
READ_FRACTION = 0.25  # reads return the whole set: a history grows with reads x set size


def element_of(child: str) -> int | str:
    """e-<n> -> n; any other name stays a name."""
    digits = child[len(CHILD_PREFIX):]
    return int(digits) if child.startswith(CHILD_PREFIX) and digits.isdigit() else child


class ChildrenSetClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"add": self.add, "read": self.read}

    def prepare(self) -> None:
        self.zk.ensure_path(CHILDREN_ROOT)

    def add(self, value: dict) -> Completion:
        path = f"{CHILDREN_ROOT}/{CHILD_PREFIX}{value['element']}"
        try:
            _, stat = self.wait(self.zk.create_async(path, b"", include_data=True))
        except NodeExistsError:  # nobody else adds this element: the set already held it
            return Completion(FAIL, error="node exists")
        return Completion(OK, dict(value, czxid=stat.czxid))

    def read(self, value: dict) -> Completion:
        if value.get("final"):
            self.wait(self.zk.sync_async(CHILDREN_ROOT))
        children, stat = self.wait(self.zk.get_children_async(CHILDREN_ROOT, include_data=True))
        return Completion(OK, dict(value, elements=_elements(children), cversion=stat.cversion, pzxid=stat.pzxid))


def _elements(children: list[str]) -> list[int | str]:
    """Elements by number, then any foreign names."""
    found = [element_of(c) for c in children]
    return sorted(e for e in found if isinstance(e, int)) + sorted(e for e in found if isinstance(e, str))


class CasSetClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"add": self.add, "read": self.read}

    def prepare(self) -> None:
        self.zk.ensure_path(CAS_PATH)

    def add(self, value: dict) -> Completion:
        deadline = time.monotonic() + self.op_timeout
        attempts = 0
        while True:
            attempts += 1
            try:
                data, stat = self.wait(self.zk.get_async(CAS_PATH))
            except Exception as e:  # noqa: BLE001 - every setData so far was refused: certainly no effect
                return Completion(FAIL, dict(value, attempts=attempts), error=f"read failed: {type(e).__name__}")
            # Append even if the element is already there: that can only be a server bug (our
            # earlier attempts were refused), and a duplicate shows it to the checker.
            elements = json.loads(data) if data else []
            try:
                stat = self.wait(self.zk.set_async(CAS_PATH, json.dumps(elements + [value["element"]]).encode(),
                                                   version=stat.version))
            except BadVersionError:
                if time.monotonic() < deadline:
                    continue
                return Completion(FAIL, dict(value, attempts=attempts), error="version changed on every attempt")
            return Completion(OK, dict(value, attempts=attempts, **stat_fields(stat)))

    def read(self, value: dict) -> Completion:
        if value.get("final"):
            self.wait(self.zk.sync_async(CAS_PATH))
        data, stat = self.wait(self.zk.get_async(CAS_PATH))
        return Completion(OK, dict(value, elements=json.loads(data) if data else [], **stat_fields(stat)))


class SetGenerator:
    """Adds of fresh elements (one counter for all processes, so none repeats) and whole-set
    reads, `read_fraction` of the ops."""

    def __init__(self, rng: random.Random, read_fraction: float = READ_FRACTION) -> None:
        self.rng = rng
        self.read_fraction = read_fraction
        self.counter = itertools.count(1)
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            if self.rng.random() < self.read_fraction:
                return "read", {"elements": None}
            return "add", {"element": next(self.counter)}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        pass


def _client(options: Options) -> ZkClient:
    return CasSetClient(options) if options.get("set_mode") == "cas" else ChildrenSetClient(options)


def _final_read(options: Options, node: Any) -> Once:
    """After healing: the whole set read after a sync, through every node, twice over."""
    return Once([("read", {"elements": None, "final": True})])


WORKLOAD = Workload(
    name="set",
    description="unique elements added concurrently, whole-set reads; no acknowledged element may be lost",
    client=_client,
    generator=lambda options, rng: SetGenerator(rng),
    checker=lambda options: SetChecker(),
    final_generator=_final_read,
    final_rounds=2,
    options=(
        Option("set-mode", "children", "Where the set lives: one child znode per element, or one znode's "
               "data updated by versioned setData.", choices=("children", "cas")),
    ),
)
