"""What a workload is (after Jepsen's test map): a client, a generator of operations, a final
phase run after every fault is healed, a checker, and its own command-line options.

The runner knows workloads only through this module: each workload module builds one
`Workload` and the registry in `workloads/__init__.py` names it, so adding a workload is one
module plus one registry line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Protocol

from .checkers.core import Checker

if TYPE_CHECKING:
    from .db import Node

Options = Mapping[str, Any]  # the test's options, as test.json holds them


@dataclass(frozen=True)
class Completion:
    """How an operation ended: ok (it happened), fail (it certainly did not), info (unknown)."""

    type: str
    value: Any = None  # None: the invocation's value stands
    error: str | None = None
    zxid: int | None = None  # the last zxid the server returned (the reply header's)


class Client(Protocol):
    """One session's worth of operations (after Jepsen's client): open against a node, invoke
    one op at a time, close. A client never raises from `invoke`: an exception is an outcome."""

    def open(self, node: Node, nodes: list[Node]) -> None: ...

    def invoke(self, f: str, value: Any) -> Completion: ...

    def session(self) -> str | None:
        """The session id to record, "0x..." (None before there is one)."""

    def session_epoch(self) -> int:
        """How many sessions this client has had: it grows whenever a new session is created."""

    def server(self) -> str | None:
        """The name of the node the client is connected to now (None: not connected)."""

    def close(self) -> None: ...


class Generator(Protocol):
    """Operations for client processes. `next(process)` gives the process its next op as
    (f, value), or None when it has nothing more to do; `update` hears how each ended, so
    generators can follow what processes saw (a cas from the value last read)."""

    def next(self, process: int) -> tuple[str, Any] | None: ...

    def update(self, process: int, f: str, value: Any, done: Completion) -> None: ...


@dataclass(frozen=True)
class Option:
    """A workload's own command-line option, `--name`; in test.json as `name` with underscores."""

    name: str
    default: Any
    help: str
    type: Any = None  # a click type; None: from the default
    choices: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return self.name.replace("-", "_")


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    client: Callable[[Options], Client]
    generator: Callable[[Options, random.Random], Generator]
    checker: Callable[[Options], Checker]
    # After healing, one client per node runs this generator to its end (final reads, a drain).
    final_generator: Callable[[Options, Node], Generator] | None = None
    # How many times that goes through every node, in node order. Two rounds make a replica's
    # divergence provable whichever node it is: what the last node alone held in the first round,
    # the first node's second read (after its sync) must hold too.
    final_rounds: int = 1
    options: tuple[Option, ...] = field(default_factory=tuple)


class Once:
    """A generator that hands out a fixed list of ops, in order, to whichever process asks."""

    def __init__(self, ops: list[tuple[str, Any]]) -> None:
        self.ops = list(ops)

    def next(self, process: int) -> tuple[str, Any] | None:
        return self.ops.pop(0) if self.ops else None

    def update(self, process: int, f: str, value: Any, done: Completion) -> None:
        pass
