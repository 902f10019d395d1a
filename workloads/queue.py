"""The queue workload: a FIFO queue of persistent sequential znodes, each dequeue leaving a
tombstone that names it, so even a dequeue of unknown outcome is decided in the end.

Ops (history values):
  enqueue     {"element": e}                    invocation; e is unique in the run
              {"element": e, "name": "item-0000000012", "czxid": z}   ok: the item made
  dequeue     {"op": id}                        invocation; id is unique in the run ("sync": true
                                                in the final drain: the listing follows a sync)
              {"op": id, "name": n, "element": e}   ok: the item taken
  tombstones  {}                                invocation (final phase only; after a sync)
              {"tombstones": [{"name": n, "op": id, "element": e, "zxid": z}, ...]}   ok
An item is `/zkchaos/queue/item-<sequence>` holding its element. A dequeue lists the items,
takes the lowest it can: it reads the item, then one multi deletes it and creates
`/zkchaos/queue-consumed/<item name>` holding {"op": id, "element": e}. The tombstone's zxid is
the multi's. An item another dequeue took first (NoNode) sends it on to the next.

Outcomes: a dequeue fails when it certainly consumed nothing: the listing was empty (error
"empty"), or every multi it sent was refused, or a read failed before it sent one. It is info
when a multi went unanswered; its tombstone will tell. An enqueue is info when its create went
unanswered. No kazoo retry wraps a dequeue: a transparent retry after a connection loss could
consume two items while reporting one.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
from typing import Any

from kazoo.exceptions import NoNodeError, RolledBackError, RuntimeInconsistency

from harness.checkers.total_queue import EMPTY, TotalQueueChecker
from harness.history import FAIL, OK
from harness.workload import Completion, Options, Workload

from .zkclient import ZkClient

ITEMS = "/zkchaos/queue"
TOMBSTONES = "/zkchaos/queue-consumed"
PREFIX = "item-"
DRAIN_GIVES_UP_AFTER = 3  # dequeues in a row that took nothing yet did not find the queue empty


class QueueClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"enqueue": self.enqueue, "dequeue": self.dequeue, "tombstones": self.tombstones}

    def prepare(self) -> None:
        self.zk.ensure_path(ITEMS)
        self.zk.ensure_path(TOMBSTONES)

    def enqueue(self, value: dict) -> Completion:
        path, stat = self.wait(self.zk.create_async(f"{ITEMS}/{PREFIX}", str(value["element"]).encode(),
                                                    sequence=True, include_data=True))
        return Completion(OK, dict(value, name=path.rsplit("/", 1)[1], czxid=stat.czxid))

    def dequeue(self, value: dict) -> Completion:
        try:
            if value.get("sync"):
                self.wait(self.zk.sync_async(ITEMS))
            names = sorted(self.wait(self.zk.get_children_async(ITEMS)))
        except Exception as e:  # noqa: BLE001 - nothing was written: certainly no effect
            return Completion(FAIL, error=f"listing failed: {type(e).__name__}")
        for name in names:
            try:
                data, _ = self.wait(self.zk.get_async(f"{ITEMS}/{name}"))
            except NoNodeError:
                continue
            except Exception as e:  # noqa: BLE001 - every multi sent so far was refused: no effect
                return Completion(FAIL, error=f"item read failed: {type(e).__name__}")
            refused = self._take(name, value["op"], int(data))
            if refused is None:
                return Completion(OK, dict(value, name=name, element=int(data)))
            if not isinstance(refused, NoNodeError):
                return Completion(FAIL, error=f"multi refused: {type(refused).__name__}")
        return Completion(FAIL, error=EMPTY if not names else "every listed item was taken")

    def _take(self, name: str, op: str, element: int) -> Exception | None:
        """One multi: delete the item, create its tombstone. None when it committed, else why
        it was refused (an unanswered multi raises: its outcome is unknown)."""
        tx = self.zk.transaction()
        tx.delete(f"{ITEMS}/{name}")
        tx.create(f"{TOMBSTONES}/{name}", json.dumps({"op": op, "element": element}).encode())
        results = self.wait(tx.commit_async())
        # A refused multi answers every op with an error: those around the cause are rollbacks.
        causes = [r for r in results if isinstance(r, Exception)
                  and not isinstance(r, (RolledBackError, RuntimeInconsistency))]
        return causes[0] if causes else None

    def tombstones(self, value: dict) -> Completion:
        self.wait(self.zk.sync_async(TOMBSTONES))
        names = sorted(self.wait(self.zk.get_children_async(TOMBSTONES)))
        reads = [(name, self.zk.get_async(f"{TOMBSTONES}/{name}")) for name in names]  # pipelined
        found = []
        for name, pending in reads:
            data, stat = self.wait(pending)
            found.append({"name": name, **json.loads(data), "zxid": stat.czxid})
        return Completion(OK, dict(value, tombstones=found))


class QueueGenerator:
    """Enqueues of fresh elements and dequeues, mixed at random; every op gets a unique id."""

    def __init__(self, rng: random.Random, enqueues: float = 0.5) -> None:
        self.rng = rng
        self.enqueues = enqueues
        self.elements = itertools.count(1)
        self.dequeues = itertools.count(1)
        self.lock = threading.Lock()

    def next(self, process: int) -> tuple[str, Any]:
        with self.lock:
            if self.rng.random() < self.enqueues:
                return "enqueue", {"element": next(self.elements)}
            return "dequeue", {"op": f"d{next(self.dequeues)}"}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        pass


class Drain:
    """The final phase through one node: dequeue (each after a sync) until the queue is empty,
    then read every tombstone."""

    def __init__(self, node_name: str) -> None:
        self.ids = (f"drain-{node_name}-{n}" for n in itertools.count(1))
        self.misses = 0
        self.draining = True
        self.tombstones_asked = False

    def next(self, process: int) -> tuple[str, Any] | None:
        if self.draining:
            return "dequeue", {"op": next(self.ids), "sync": True}
        if not self.tombstones_asked:
            self.tombstones_asked = True
            return "tombstones", {}
        return None

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        if f != "dequeue":
            return
        self.misses = self.misses + 1 if done.type != OK else 0
        self.draining = done.error != EMPTY and self.misses < DRAIN_GIVES_UP_AFTER


WORKLOAD = Workload(
    name="queue",
    description="enqueue to and dequeue from a queue of sequential znodes; every item delivered once",
    client=QueueClient,
    generator=lambda options, rng: QueueGenerator(rng),
    checker=lambda options: TotalQueueChecker(options.get("consistency", "zookeeper")),
    final_generator=lambda options, node: Drain(node.name),
)
