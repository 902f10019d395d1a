"""The extension points: every workload and fault family is found through its registry, and a
family the DB under test cannot serve is refused before anything runs."""

from __future__ import annotations

import pytest

import nemesis
import workloads
from harness.checkers.core import Checker
from harness.db import ZkChaosDB, ZooKeeperDB


def test_every_registered_workload_is_complete() -> None:
    for name in workloads.names():
        w = workloads.get(name)
        assert w.name == name and w.description
        assert isinstance(w.checker({"consistency": "zookeeper"}), Checker)
        keys = [o.key for o in w.options]
        assert len(keys) == len(set(keys))


def test_an_unknown_workload_names_the_choices() -> None:
    with pytest.raises(workloads.UnknownWorkload, match="choose from register"):
        workloads.get("elections")


class KillOnlyDB:
    """A DB that can start and kill servers, but not pause them and not tell the leader."""

    name = "kill-only"

    def start(self, node) -> None: ...

    def kill(self, node) -> None: ...


def test_a_family_the_db_cannot_serve_is_refused() -> None:
    with pytest.raises(nemesis.NemesisError, match="nemesis pause needs a DB with Pause, Primary; kill-only has none"):
        nemesis.make(["pause"], KillOnlyDB())


def test_both_servers_serve_every_family() -> None:
    for db in (ZkChaosDB(), ZooKeeperDB()):
        assert [n.name for n in nemesis.make(nemesis.names(), db)] == nemesis.names()


def test_unknown_and_none_families() -> None:
    assert nemesis.check_names(["none"]) == []
    assert nemesis.check_names(["kill", "kill", ""]) == ["kill"]
    assert nemesis.check_names(["all", "pause"]) == ["pause"] + [n for n in nemesis.names() if n != "pause"]
    with pytest.raises(nemesis.NemesisError, match=f"unknown nemesis flood; choose from {', '.join(nemesis.names())}, all, none"):
        nemesis.check_names(["flood"])


def test_fault_and_heal_fs_name_their_family() -> None:
    faults, heals = nemesis.fault_fs(), nemesis.heal_fs()
    assert set(faults.values()) == set(heals.values()) == set(nemesis.names())
    assert not set(faults) & set(heals)
