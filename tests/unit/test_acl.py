"""ACL schemes, checks and fix-up as ZooKeeper does them (digest, ip, world, auth, super)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from zkserver import acl as aclmod
from zkserver.acl import SUPER, Id, allows, authenticate, check, digest_id, fixup, is_valid_id
from zkserver.protocol.constants import Err, Perm, ZkError
from zkserver.protocol.records import ACL

SUPER_DIGEST = "super:D/InIHSb7yEEbrWz8b9l71RjZJU="


def _code(fn, *args):
    with pytest.raises(ZkError) as e:
        fn(*args)
    return e.value.code


# --- digest ---------------------------------------------------------------------------------


def test_digest_of_super_test_matches_kazoo_harness_value():
    assert digest_id("super:test") == SUPER_DIGEST


def test_digest_is_user_colon_base64_sha1_of_whole_credential():
    expected = "alice:" + base64.b64encode(hashlib.sha1(b"alice:s3cret").digest()).decode()
    assert digest_id("alice:s3cret") == expected


def test_digest_keeps_colons_in_password():
    expected = "bob:" + base64.b64encode(hashlib.sha1(b"bob:a:b").digest()).decode()
    assert digest_id("bob:a:b") == expected


def test_authenticate_digest():
    ids = authenticate("digest", b"alice:pw", None)
    assert ids == [Id("digest", digest_id("alice:pw"))]


def test_authenticate_super():
    ids = authenticate("digest", b"super:test", SUPER_DIGEST)
    assert SUPER in ids
    assert Id("digest", SUPER_DIGEST) in ids


def test_authenticate_wrong_super_password_is_plain_user():
    ids = authenticate("digest", b"super:wrong", SUPER_DIGEST)
    assert SUPER not in ids
    assert ids == [Id("digest", digest_id("super:wrong"))]


@pytest.mark.parametrize("scheme", ["foo", "ip", "world", "sasl_unknown", ""])
def test_unknown_auth_scheme_fails(scheme):
    assert _code(authenticate, scheme, b"x:y", None) == Err.AUTHFAILED


# --- id validity ------------------------------------------------------------------------------


@pytest.mark.parametrize("ident", ["user:hash", ":hash", "u:h="])
def test_valid_digest_ids(ident):
    assert is_valid_id("digest", ident)


@pytest.mark.parametrize("ident", ["user:", "user", "", "a:b:c", "user::"])
def test_invalid_digest_ids(ident):
    # DigestAuthenticationProvider.isValid: id.split(":").length == 2 (Java drops trailing empties)
    assert not is_valid_id("digest", ident)


@pytest.mark.parametrize("ident", ["10.0.0.1", "10.0.0.0/8", "192.168.1.0/24", "0.0.0.0/0", "127.0.0.1/32"])
def test_valid_ip_ids(ident):
    assert is_valid_id("ip", ident)


@pytest.mark.parametrize("ident", ["300.1.1.1", "10.0.0", "host.example", "10.0.0.1/33", "10.0.0.1/x", "10.0.0.1/-1", ""])
def test_invalid_ip_ids(ident):
    assert not is_valid_id("ip", ident)


# --- fixup ------------------------------------------------------------------------------------

ALICE = Id("digest", digest_id("alice:pw"))
BOB = Id("digest", digest_id("bob:pw"))
IP = Id("ip", "127.0.0.1")


def test_fixup_world_passes_through():
    assert fixup([ACL(31, "world", "anyone")], [IP]) == (ACL(31, "world", "anyone"),)


def test_fixup_removes_duplicates_keeping_order():
    acls = [ACL(1, "world", "anyone"), ACL(31, "digest", "u:h"), ACL(1, "world", "anyone"), ACL(31, "digest", "u:h")]
    assert fixup(acls, []) == (ACL(1, "world", "anyone"), ACL(31, "digest", "u:h"))


def test_fixup_same_id_different_perms_are_not_duplicates():
    acls = [ACL(1, "world", "anyone"), ACL(3, "world", "anyone")]
    assert fixup(acls, []) == tuple(acls)


def test_fixup_expands_auth_to_every_authenticated_digest_id():
    out = fixup([ACL(31, "auth", "")], [IP, ALICE, BOB])
    assert out == (ACL(31, "digest", ALICE.id), ACL(31, "digest", BOB.id))


def test_fixup_auth_ignores_ip_ids():
    # ip is not an "authenticated" provider, so it never stands in for auth.
    assert ACL(31, "ip", "127.0.0.1") not in fixup([ACL(31, "auth", "")], [IP, ALICE])


@pytest.mark.parametrize(
    "acls, ids",
    [
        ([], [ALICE]),
        (None, [ALICE]),
        ([ACL(31, "auth", "")], []),
        ([ACL(31, "auth", "")], [IP]),  # only an ip id: nothing to expand to
        ([ACL(31, "digest", "user:")], [ALICE]),
        ([ACL(31, "digest", "user")], [ALICE]),
        ([ACL(31, "ip", "999.1.1.1")], [ALICE]),
        ([ACL(31, "ip", "10.0.0.1/40")], [ALICE]),
        ([ACL(31, "nosuchscheme", "x")], [ALICE]),
        ([ACL(31, "world", "someone")], [ALICE]),
        ([ACL(31, "world", "anyone"), ACL(31, "digest", "bad")], [ALICE]),
    ],
)
def test_fixup_invalid_acl(acls, ids):
    assert _code(fixup, acls, ids) == Err.INVALIDACL


# --- check ------------------------------------------------------------------------------------


def test_world_anyone_grants_only_its_perms():
    acl = [ACL(Perm.READ, "world", "anyone")]
    check(acl, Perm.READ, [])
    assert _code(check, acl, Perm.WRITE, [IP]) == Err.NOAUTH
    assert _code(check, acl, Perm.ADMIN, [IP, ALICE]) == Err.NOAUTH


def test_empty_acl_allows_everything():
    check([], Perm.ADMIN, [])


def test_digest_check():
    acl = [ACL(Perm.ALL, "digest", ALICE.id)]
    check(acl, Perm.DELETE, [IP, ALICE])
    assert _code(check, acl, Perm.READ, [IP, BOB]) == Err.NOAUTH
    assert _code(check, acl, Perm.READ, [IP]) == Err.NOAUTH


def test_digest_perms_are_a_bitmask():
    acl = [ACL(Perm.READ | Perm.WRITE, "digest", ALICE.id)]
    check(acl, Perm.WRITE, [ALICE])
    assert _code(check, acl, Perm.CREATE, [ALICE]) == Err.NOAUTH
    # getACL asks for READ|ADMIN: any one of the bits suffices
    check(acl, Perm.READ | Perm.ADMIN, [ALICE])


def test_ip_exact_and_cidr():
    exact = [ACL(Perm.ALL, "ip", "10.1.2.3")]
    check(exact, Perm.READ, [Id("ip", "10.1.2.3")])
    assert _code(check, exact, Perm.READ, [Id("ip", "10.1.2.4")]) == Err.NOAUTH
    cidr = [ACL(Perm.ALL, "ip", "10.1.0.0/16")]
    check(cidr, Perm.READ, [Id("ip", "10.1.255.7")])
    assert _code(check, cidr, Perm.READ, [Id("ip", "10.2.0.1")]) == Err.NOAUTH
    # host bits in the ACL address are masked away
    check([ACL(Perm.ALL, "ip", "10.1.2.3/8")], Perm.READ, [Id("ip", "10.200.0.1")])
    check([ACL(Perm.ALL, "ip", "0.0.0.0/0")], Perm.READ, [Id("ip", "192.0.2.1")])


def test_ip_acl_does_not_match_digest_id_with_same_text():
    assert _code(check, [ACL(Perm.ALL, "ip", "10.0.0.1")], Perm.READ, [Id("digest", "10.0.0.1")]) == Err.NOAUTH


def test_super_bypasses_everything():
    locked = [ACL(Perm.READ, "digest", ALICE.id)]
    check(locked, Perm.ADMIN, [IP, SUPER])
    check([ACL(0, "world", "anyone")], Perm.WRITE, [SUPER])


def test_allows_mirrors_check():
    acl = [ACL(Perm.READ, "world", "anyone")]
    assert allows(acl, Perm.READ, [])
    assert not allows(acl, Perm.WRITE, [])


def test_user_name_for_who_am_i():
    assert aclmod.user_name(ALICE) == "alice"
    assert aclmod.user_name(IP) == "127.0.0.1"
