"""Every client opcode and its error cases, driven by kazoo against a real zkserver process."""

from __future__ import annotations

import pytest
from kazoo.exceptions import (
    BadArgumentsError,
    BadVersionError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
)
from kazoo.protocol.states import ZnodeStat

pytestmark = pytest.mark.integration


def test_create_get_set_delete(zk, base):
    path = zk.create(f"{base}/a", b"one")
    assert path == f"{base}/a"
    data, stat = zk.get(path)
    assert data == b"one"
    assert (stat.version, stat.dataLength, stat.numChildren, stat.ephemeralOwner) == (0, 3, 0, 0)
    assert stat.czxid == stat.mzxid == stat.pzxid
    stat2 = zk.set(path, b"two!")
    assert stat2.version == 1 and stat2.mzxid > stat.mzxid and stat2.czxid == stat.czxid
    assert stat2.dataLength == 4
    zk.delete(path)
    assert zk.exists(path) is None


def test_null_and_empty_data_are_different(zk, base):
    zk.create(f"{base}/null", None)
    zk.create(f"{base}/empty", b"")
    assert zk.get(f"{base}/null")[0] is None
    assert zk.get(f"{base}/empty")[0] == b""
    assert zk.get(f"{base}/null")[1].dataLength == 0


def test_create_errors(zk, base):
    zk.create(f"{base}/x")
    with pytest.raises(NodeExistsError):
        zk.create(f"{base}/x")
    with pytest.raises(NoNodeError):
        zk.create(f"{base}/missing/child")
    with pytest.raises(NodeExistsError):
        zk.create("/")
    zk.create(f"{base}/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create(f"{base}/eph/child")


# kazoo normalises '//' and trailing '/' itself; structural cases are in test_raw_protocol.py.
@pytest.mark.parametrize("bad", ["/b\x00", "/b\x1e", "/b\x7f", "/\ue000x", "/x\uffff"])
def test_invalid_paths_are_bad_arguments(zk, base, bad):
    with pytest.raises(BadArgumentsError):
        zk.create(base + bad)


def test_create2_returns_stat(zk, base):
    path, stat = zk.create(f"{base}/c2", b"abc", include_data=True)
    assert path == f"{base}/c2"
    assert isinstance(stat, ZnodeStat) and stat.dataLength == 3


def test_sequential_names_follow_parent_cversion(zk, base):
    zk.create(f"{base}/folder")
    assert zk.create(f"{base}/folder/a", sequence=True) == f"{base}/folder/a0000000000"
    assert zk.create(f"{base}/folder/a", sequence=True) == f"{base}/folder/a0000000001"
    zk.delete(f"{base}/folder/a0000000000")
    # The suffix counts creates only, so deletes never cause a name to be reused.
    assert zk.create(f"{base}/folder/", sequence=True) == f"{base}/folder/0000000002"


def test_cversion_counts_child_creates_and_deletes(zk, base):
    zk.create(f"{base}/p")
    zk.create(f"{base}/p/a")
    zk.create(f"{base}/p/b")
    zk.delete(f"{base}/p/a")
    stat = zk.exists(f"{base}/p")
    assert stat.cversion == 3 and stat.numChildren == 1
    root_cversion = zk.exists("/zookeeper").cversion
    assert root_cversion == -2  # its two children were never "created"


def test_delete_errors_in_zookeeper_order(zk, base):
    zk.create(f"{base}/d/child", makepath=True)
    with pytest.raises(BadVersionError):
        zk.delete(f"{base}/d", version=5)  # version is checked before emptiness
    with pytest.raises(NotEmptyError):
        zk.delete(f"{base}/d")
    with pytest.raises(NoNodeError):
        zk.delete(f"{base}/nothing")
    with pytest.raises(BadArgumentsError):
        zk.delete("/zookeeper")
    with pytest.raises(BadArgumentsError):
        zk.delete("/")
    zk.delete(f"{base}/d", recursive=True)
    assert zk.exists(f"{base}/d") is None


def test_set_with_versions(zk, base):
    zk.create(f"{base}/v", b"0")
    assert zk.set(f"{base}/v", b"1", version=0).version == 1
    with pytest.raises(BadVersionError):
        zk.set(f"{base}/v", b"2", version=0)
    assert zk.set(f"{base}/v", b"3", version=-1).version == 2
    with pytest.raises(NoNodeError):
        zk.set(f"{base}/none", b"x")


def test_get_children_and_children2(zk, base):
    for name in "abc":
        zk.create(f"{base}/{name}")
    assert sorted(zk.get_children(base)) == ["a", "b", "c"]
    children, stat = zk.get_children(base, include_data=True)
    assert sorted(children) == ["a", "b", "c"] and stat.numChildren == 3
    with pytest.raises(NoNodeError):
        zk.get_children(f"{base}/none")


def test_exists_and_sync(zk, base):
    assert zk.exists(f"{base}/none") is None
    assert zk.exists(base) is not None
    assert zk.sync("/not_there") == "/not_there"
    assert zk.sync(base) == base


def test_multi_commits_atomically(zk, base):
    zk.create(f"{base}/m", b"0")
    t = zk.transaction()
    t.check(f"{base}/m", 0)
    t.create(f"{base}/m/c", b"x")
    t.set_data(f"{base}/m", b"1")
    t.delete(f"{base}/m/c")
    results = t.commit()
    assert results[0] is True and results[1] == f"{base}/m/c" and results[3] is True
    assert results[2].version == 1
    assert zk.get(f"{base}/m")[0] == b"1"


def test_multi_failure_rolls_back_everything(zk, base):
    t = zk.transaction()
    t.create(f"{base}/will-not-exist")
    t.delete(f"{base}/missing")
    t.create(f"{base}/after")
    results = t.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NoNodeError)
    assert isinstance(results[2], RuntimeInconsistency)
    assert zk.exists(f"{base}/will-not-exist") is None
    assert zk.exists(f"{base}/after") is None


def test_multi_sees_its_own_earlier_ops(zk, base):
    t = zk.transaction()
    t.create(f"{base}/n")
    t.create(f"{base}/n/child")
    t.check(f"{base}/n", 0)
    results = t.commit()
    assert results == [f"{base}/n", f"{base}/n/child", True]


def test_large_values(zk, base):
    zk.create(f"{base}/big", b"x" * (512 * 1024))
    assert len(zk.get(f"{base}/big")[0]) == 512 * 1024


def test_unicode_paths(zk, base):
    path = zk.create(f"{base}/\u00e9t\u00e9-\u4e2d")
    assert zk.get_children(base) == ["\u00e9t\u00e9-\u4e2d"]
    assert zk.exists(path) is not None


def test_ephemeral_owner_is_session(zk, base):
    zk.create(f"{base}/e", ephemeral=True)
    assert zk.exists(f"{base}/e").ephemeralOwner == zk.client_id[0]
    assert zk.exists(base).ephemeralOwner == 0


def test_system_nodes(zk):
    assert "zookeeper" in zk.get_children("/")
    assert sorted(zk.get_children("/zookeeper")) == ["config", "quota"]
    acl, _ = zk.get_acls("/zookeeper/config")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acl] == [(1, "world", "anyone")]
