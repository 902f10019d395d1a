"""What a DB under test can have done to it, one small protocol per capability (after Jepsen's
db.clj: Process, Pause, Primary, LogFiles). A fault family names the capabilities it needs, and
a run whose DB lacks one is refused before any node is touched."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from .base import Node


@runtime_checkable
class Process(Protocol):
    """Start a node's server, and kill it (SIGKILL: a crash)."""

    def start(self, node: Node) -> None: ...

    def kill(self, node: Node) -> None: ...


@runtime_checkable
class Pause(Protocol):
    """Freeze a node's server (SIGSTOP) and let it go on (SIGCONT)."""

    def pause(self, node: Node) -> None: ...

    def resume(self, node: Node) -> None: ...


@runtime_checkable
class Primary(Protocol):
    """Which node leads, and each node's role (None: it does not serve)."""

    def leader(self, nodes: list[Node]) -> Node | None: ...

    def mode(self, node: Node) -> str | None: ...


@runtime_checkable
class LogFiles(Protocol):
    """The files worth keeping from a node."""

    def log_files(self, node: Node) -> list[str]: ...


def missing(db: object, required: tuple[type, ...]) -> list[str]:
    """The names of the capabilities in `required` that `db` lacks."""
    return [cap.__name__ for cap in required if not isinstance(db, cap)]


@runtime_checkable
class Environment(Protocol):
    """Extra environment for a node's server, from its next start on (libfaketime for clocks)."""

    def set_env(self, node: Node, env: dict[str, str]) -> None: ...


@dataclass(frozen=True)
class DataLayout:
    """Where a server keeps its state on a node, in its own format (globs relative to the node)."""

    data_dir: str  # everything the server persists lives under it
    logs: str  # glob of the transaction log files, named <prefix>.<first zxid in hex>
    snapshots: str  # glob of the snapshot files, named <prefix>.<zxid in hex>


@runtime_checkable
class DataFiles(Protocol):
    """Where the server's durable state is, for disk faults."""

    def data_layout(self, node: Node) -> DataLayout: ...
