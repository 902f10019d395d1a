"""Databases under test: zkchaos's own server and Apache ZooKeeper, behind one protocol.

The adapters load when first asked for: checking a stored history (`zkchaos analyze`) reaches
this package through the fault families' capability protocols and must not pay for the SSH
libraries the adapters use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import DB, Node, ServerDB, SetupError
    from .zkchaos import ZkChaosDB
    from .zookeeper import ZooKeeperDB

_WHERE = {"DB": "base", "Node": "base", "ServerDB": "base", "SetupError": "base",
          "ZkChaosDB": "zkchaos", "ZooKeeperDB": "zookeeper"}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)


def make_db(name: str, tick_time: int = 500, install_path: str | None = None) -> ServerDB:
    if name == "zkchaos":
        from .zkchaos import ZkChaosDB

        return ZkChaosDB(tick_time=tick_time)
    if name == "zookeeper":
        from .zookeeper import ZooKeeperDB

        return ZooKeeperDB(tick_time=tick_time, install_path=install_path)
    raise ValueError(f"unknown db {name!r} (zkchaos or zookeeper)")


__all__ = ["DB", "Node", "ServerDB", "SetupError", "ZkChaosDB", "ZooKeeperDB", "make_db"]
