"""ACL schemes (world, auth, digest, ip, super), permission checks and ACL fix-up, as ZooKeeper
does them. An authenticated identity is an `Id` (scheme, id); a connection holds a list of them."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
from typing import Iterable, NamedTuple, Sequence

from .protocol.constants import Err, ZkError
from .protocol.records import ACL, OPEN_ACL_UNSAFE


class Id(NamedTuple):
    scheme: str
    id: str


SUPER = Id("super", "")


def digest_id(user_password: str) -> str:
    """'user:pass' -> 'user:base64(sha1(user:pass))'."""
    user = user_password.split(":", 1)[0]
    sha = hashlib.sha1(user_password.encode("utf-8")).digest()
    return f"{user}:{base64.b64encode(sha).decode('ascii')}"


def _java_split_count(s: str, sep: str) -> int:
    """Parts Java's String.split would return (trailing empty strings dropped)."""
    parts = s.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return len(parts)


def _ip_network(spec: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    addr, _, bits = spec.partition("/")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return None
    if bits:
        if not bits.isdigit() or int(bits) > ip.max_prefixlen:
            return None
        return ipaddress.ip_network(f"{addr}/{bits}", strict=False)
    return ipaddress.ip_network(addr)


def is_valid_id(scheme: str, ident: str) -> bool:
    if scheme == "digest":
        return _java_split_count(ident, ":") == 2
    if scheme == "ip":
        return _ip_network(ident) is not None
    return False


def _matches(scheme: str, auth_id: str, acl_id: str) -> bool:
    if scheme == "ip":
        net = _ip_network(acl_id)
        try:
            return net is not None and ipaddress.ip_address(auth_id) in net
        except ValueError:
            return False
    return auth_id == acl_id


def check(acl: Sequence[ACL], perm: int, ids: Sequence[Id]) -> None:
    """Raise NOAUTH unless one of `ids` is granted `perm` by `acl`."""
    if acl is OPEN_ACL_UNSAFE or not acl:
        return
    for ident in ids:
        if ident.scheme == "super":
            return
    for a in acl:
        if a.perms & perm:
            if a.scheme == "world" and a.id == "anyone":
                return
            for ident in ids:
                if ident.scheme == a.scheme and _matches(a.scheme, ident.id, a.id):
                    return
    raise ZkError(Err.NOAUTH)


def allows(acl: Sequence[ACL], perm: int, ids: Sequence[Id]) -> bool:
    if acl is OPEN_ACL_UNSAFE:
        return True
    try:
        check(acl, perm, ids)
        return True
    except ZkError:
        return False


def fixup(acls: Iterable[ACL] | None, ids: Sequence[Id]) -> tuple[ACL, ...]:
    """Validate a requested ACL list: drop duplicates, expand `auth` to the caller's
    authenticated ids; INVALIDACL for an empty list or an id no scheme accepts."""
    if acls is OPEN_ACL_UNSAFE:
        return acls
    unique: list[ACL] = []
    for a in acls or ():
        if a not in unique:
            unique.append(a)
    if not unique:
        raise ZkError(Err.INVALIDACL)
    out: list[ACL] = []
    for a in unique:
        if a.scheme == "world" and a.id == "anyone":
            out.append(a)
        elif a.scheme == "auth":
            authenticated = [i for i in ids if i.scheme == "digest"]
            if not authenticated:
                raise ZkError(Err.INVALIDACL)
            out.extend(ACL(a.perms, i.scheme, i.id) for i in authenticated)
        elif is_valid_id(a.scheme, a.id):
            out.append(a)
        else:
            raise ZkError(Err.INVALIDACL)
    return tuple(out)


def authenticate(scheme: str, auth: bytes, super_digest: str | None) -> list[Id]:
    """Ids an auth packet adds to its connection; AUTHFAILED for an unknown scheme."""
    if scheme != "digest":
        raise ZkError(Err.AUTHFAILED, f"unknown auth scheme {scheme!r}")
    ident = digest_id(auth.decode("utf-8", "replace"))
    if super_digest is not None and ident == super_digest:
        return [SUPER, Id("digest", ident)]
    return [Id("digest", ident)]


def user_name(ident: Id) -> str:
    """The `user` whoAmI reports for an id."""
    if ident.scheme == "digest":
        return ident.id.split(":", 1)[0]
    return ident.id
