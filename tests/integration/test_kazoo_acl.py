"""ACL schemes (world, auth, digest, ip with CIDR, super) and permission checks per op."""

from __future__ import annotations

import pytest
from kazoo.exceptions import AuthFailedError, BadVersionError, InvalidACLError, NoAuthError
from kazoo.security import ACL, Id, Permissions, make_acl, make_digest_acl

from tests.conftest import connect

pytestmark = pytest.mark.integration

ALL = Permissions.ALL


@pytest.fixture
def alice(zkserver):
    client = connect(zkserver, auth_data=[("digest", "alice:pw")])
    yield client
    client.stop()
    client.close()


def test_digest_acl_guards_every_permission(zk, alice, base):
    acl = [make_digest_acl("alice", "pw", all=True)]
    alice.create(f"{base}/secret", b"s", acl=acl)
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/secret")
    with pytest.raises(NoAuthError):
        zk.set(f"{base}/secret", b"x")
    with pytest.raises(NoAuthError):
        zk.create(f"{base}/secret/child")
    with pytest.raises(NoAuthError):
        zk.get_children(f"{base}/secret")
    with pytest.raises(NoAuthError):
        zk.set_acls(f"{base}/secret", [make_acl("world", "anyone", all=True)])
    assert alice.get(f"{base}/secret")[0] == b"s"
    alice.create(f"{base}/secret/child")
    with pytest.raises(NoAuthError):
        zk.delete(f"{base}/secret/child")  # DELETE is checked on the parent
    alice.delete(f"{base}/secret/child")


def test_exists_checks_no_acl_like_zookeeper(zk, alice, base):
    # ZooKeeper answers exists without a READ check, so ensure_path works through nodes one
    # cannot read; the data stays protected.
    alice.create(f"{base}/hidden", acl=[make_digest_acl("alice", "pw", all=True)])
    assert zk.exists(f"{base}/hidden") is not None
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/hidden")
    assert zk.exists(f"{base}/absent") is None


def test_auth_scheme_expands_to_authenticated_ids(alice, base, zk):
    alice.create(f"{base}/mine", acl=[make_acl("auth", "", all=True)])
    acl, _ = alice.get_acls(f"{base}/mine")
    assert [(a.id.scheme, a.id.id) for a in acl] == [("digest", "alice:" + make_digest_acl("alice", "pw").id.id.split(":", 1)[1])]
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/nobody", acl=[make_acl("auth", "", all=True)])  # no digest id to expand to


@pytest.mark.parametrize(
    "acl",
    [
        [ACL(ALL, Id("digest", "nocolon"))],
        [ACL(ALL, Id("ip", "300.1.1.1"))],
        [ACL(ALL, Id("ip", "10.0.0.0/33"))],
        [ACL(ALL, Id("unknown", "x"))],
        [ACL(ALL, Id("world", "someone"))],
    ],
)
def test_invalid_acls(zk, base, acl):
    with pytest.raises(InvalidACLError):
        zk.create(f"{base}/bad", acl=acl)


def test_empty_acl_is_invalid(zk, base):
    # kazoo turns an empty list into its default ACL on create, but sends it as-is on setACL.
    zk.create(f"{base}/n")
    with pytest.raises(InvalidACLError):
        zk.set_acls(f"{base}/n", [])


def test_duplicate_acls_are_removed(zk, base):
    open_acl = make_acl("world", "anyone", all=True)
    zk.create(f"{base}/dup", acl=[open_acl, open_acl])
    acl, _ = zk.get_acls(f"{base}/dup")
    assert len(acl) == 1


def test_ip_acl_with_cidr(zk, base):
    zk.create(f"{base}/lo", acl=[make_acl("ip", "127.0.0.0/8", read=True)])
    assert zk.get(f"{base}/lo")[0] == b""
    zk.create(f"{base}/elsewhere", acl=[make_acl("ip", "10.1.2.3", read=True)])
    with pytest.raises(NoAuthError):
        zk.get(f"{base}/elsewhere")


def test_read_only_acl(zk, base):
    zk.create(f"{base}/ro", b"v", acl=[make_acl("world", "anyone", read=True)])
    assert zk.get(f"{base}/ro")[0] == b"v"
    with pytest.raises(NoAuthError):
        zk.set(f"{base}/ro", b"w")


def test_set_acl_versions_use_aversion(zk, base):
    zk.create(f"{base}/a")
    stat = zk.set_acls(f"{base}/a", [make_acl("world", "anyone", all=True)], version=0)
    assert stat.aversion == 1 and stat.version == 0
    with pytest.raises(BadVersionError):
        zk.set_acls(f"{base}/a", [make_acl("world", "anyone", all=True)], version=0)


def test_get_acl_masks_digests_without_admin(zkserver, alice, zk, base):
    alice.create(
        f"{base}/m",
        acl=[make_digest_acl("alice", "pw", all=True), make_acl("world", "anyone", read=True)],
    )
    acl, _ = zk.get_acls(f"{base}/m")
    assert ("digest", "alice:x") in [(a.id.scheme, a.id.id) for a in acl]
    acl, _ = alice.get_acls(f"{base}/m")
    assert all(a.id.id != "alice:x" for a in acl)


def test_super_user_bypasses_acls(zkserver, alice, base):
    alice.create(f"{base}/locked", b"z", acl=[make_digest_acl("alice", "pw", all=True)])
    root = connect(zkserver, auth_data=[("digest", "super:test")])
    try:
        assert root.get(f"{base}/locked")[0] == b"z"
        root.delete(f"{base}/locked")
    finally:
        root.stop()
        root.close()


def test_unknown_auth_scheme_fails_auth(zkserver):
    from kazoo.client import KazooClient

    client = KazooClient(hosts=zkserver.address, timeout=5)
    client.start(timeout=5)
    try:
        with pytest.raises(AuthFailedError):
            client.add_auth("nosuchscheme", "x")
    finally:
        client.stop()
        client.close()


def test_watch_events_need_read_permission(zkserver, zk, alice, base):
    import queue

    alice.create(f"{base}/p", acl=[make_acl("world", "anyone", all=True)])
    events: queue.Queue = queue.Queue()
    zk.get(f"{base}/p", watch=events.put)
    alice.set_acls(f"{base}/p", [make_digest_acl("alice", "pw", all=True)])
    alice.set(f"{base}/p", b"new")
    with pytest.raises(queue.Empty):
        events.get(timeout=0.5)
