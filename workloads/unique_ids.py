"""The unique-ids workload: sequential creates under one parent (/zkchaos/ids/id-<number>), some
ephemeral, each of which must get its own sequence number, in the order the creates took effect.

Ops (history values; the completion adds the fields after the invocation's):
  create {"ephemeral": b}   + {"name": "id-0000000042", "seq": 42, "czxid": z}
                            create with SEQUENCE; czxid from the Stat the server returned
  list   {"final": true}    + {"names": [name, ...], "cversion": c, "pzxid": z}
                            final phase only: a sync, then getChildren of the parent with its Stat;
                            it shows which indeterminate creates took effect

Outcomes: fail = certainly not created (the server refused the name: it existed already);
info = unknown (timeouts, connection loss).
"""

from __future__ import annotations

import random
from typing import Any

import click
from kazoo.exceptions import NodeExistsError

from harness.checkers.unique_ids import UniqueIdsChecker, sequence_number
from harness.history import FAIL, OK
from harness.workload import Completion, Once, Option, Options, Workload

from .zkclient import ZkClient

PARENT = "/zkchaos/ids"
PREFIX = f"{PARENT}/id-"


class UniqueIdsClient(ZkClient):
    def __init__(self, options: Options) -> None:
        super().__init__(options)
        self.ops = {"create": self.create, "list": self.listing}

    def prepare(self) -> None:
        self.zk.ensure_path(PARENT)

    def create(self, value: dict) -> Completion:
        try:
            path, stat = self.wait(self.zk.create_async(PREFIX, b"", ephemeral=value["ephemeral"], sequence=True,
                                                        include_data=True))
        except NodeExistsError:  # the parent's counter named a node that exists: nothing created
            return Completion(FAIL, error="node exists")
        name = path.rsplit("/", 1)[1]
        return Completion(OK, dict(value, name=name, seq=sequence_number(name), czxid=stat.czxid))

    def listing(self, value: dict) -> Completion:
        self.wait(self.zk.sync_async(PARENT))
        names, stat = self.wait(self.zk.get_children_async(PARENT, include_data=True))
        return Completion(OK, dict(value, names=sorted(names), cversion=stat.cversion, pzxid=stat.pzxid))


class CreateGenerator:
    """Creates, `ephemeral` of them ephemeral (numbers of both kinds come from one counter)."""

    def __init__(self, rng: random.Random, ephemeral: float) -> None:
        self.rng = rng
        self.ephemeral = ephemeral

    def next(self, process: int) -> tuple[str, Any]:
        return "create", {"ephemeral": self.rng.random() < self.ephemeral}

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        pass


def _final_listing(options: Options, node: Any) -> Once:
    """After healing: the parent's children, after a sync, through every node."""
    return Once([("list", {"final": True})])


WORKLOAD = Workload(
    name="unique-ids",
    description="sequential creates under one parent; numbers unique and in the order creates took effect",
    client=UniqueIdsClient,
    generator=lambda options, rng: CreateGenerator(rng, float(options.get("ids_ephemeral", 0.25))),
    checker=lambda options: UniqueIdsChecker(),
    final_generator=_final_listing,
    options=(
        Option("ids-ephemeral", 0.25, "Fraction of unique-ids creates that make ephemeral nodes.",
               type=click.FloatRange(0.0, 1.0)),
    ),
)
