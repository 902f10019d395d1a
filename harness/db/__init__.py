"""Databases under test: zkchaos's own server and Apache ZooKeeper, behind one protocol."""

from __future__ import annotations

from .base import DB, Node, ServerDB, SetupError
from .zkchaos import ZkChaosDB
from .zookeeper import ZooKeeperDB


def make_db(name: str, tick_time: int = 500, install_path: str | None = None) -> ServerDB:
    if name == "zkchaos":
        return ZkChaosDB(tick_time=tick_time)
    if name == "zookeeper":
        return ZooKeeperDB(tick_time=tick_time, install_path=install_path)
    raise ValueError(f"unknown db {name!r} (zkchaos or zookeeper)")


__all__ = ["DB", "Node", "ServerDB", "SetupError", "ZkChaosDB", "ZooKeeperDB", "make_db"]
