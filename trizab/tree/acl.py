"""ACLs and authentication: ZooKeeper's auth providers and ``checkACL``.

Theory of operation
-------------------
A connection carries a list of authenticated :class:`~trizab.wire.records.Id`
(``authInfo`` in ``ServerCnxn``): ``ip:<address>`` from the start, plus what
``addauth`` adds (``digest:user:base64(sha1(user:pass))``, and ``super:`` when
that digest equals the configured super digest), and ``x509:<subject>`` for a
client that presented a verified certificate (the runtime derives it, see
``trizab.runtime.tls``).  ``check_acl`` is
``ZooKeeperServer.checkACL``: an empty ACL or a ``super`` id allows everything,
otherwise some ACL entry granting the permission must match one of the ids
(``world:anyone`` matches everyone; ``digest`` and ``x509`` by equality; ``sasl`` by
equality, and the sasl user ``super`` matches every ``sasl`` entry, as
``SASLAuthenticationProvider.matches`` has it; ``ip`` by address and prefix).
``fixup_acl`` is ``PrepRequestProcessor.fixupACL`` (dedupe, reject malformed entries,
expand ``auth``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Sequence

# Err at module level: imported inside fixup_acl it cost 1.2 us a create (2.0 -> 0.8 us; an import
# statement runs the import machinery on every call, even for a module already loaded).
from trizab.wire.codes import Err, Perms
from trizab.wire.records import ACL, Id

__all__ = [
    "CREATOR_ALL_ACL",
    "OPEN_ACL_UNSAFE",
    "READ_ACL_UNSAFE",
    "AclError",
    "authenticate",
    "check_acl",
    "fixup_acl",
    "generate_digest",
    "intern_acl",
    "user_name",
    "valid_x500_name",
]

ANYONE = Id("world", "anyone")
_OPEN_ENTRY = ACL(int(Perms.ALL), ANYONE)
OPEN_ACL_UNSAFE: tuple[ACL, ...] = (_OPEN_ENTRY,)
READ_ACL_UNSAFE: tuple[ACL, ...] = (ACL(int(Perms.READ), ANYONE),)
CREATOR_ALL_ACL: tuple[ACL, ...] = (ACL(int(Perms.ALL), Id("auth", "")),)
SUPER = Id("super", "")


class AclError(Exception):
    """Carries the ZooKeeper error code (NO_AUTH, INVALID_ACL, AUTH_FAILED)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def generate_digest(id_password: str) -> str:
    """``DigestAuthenticationProvider.generateDigest``: ``user:base64(sha1(user:password))``."""
    user = id_password.split(":", 1)[0]
    digest = hashlib.sha1(id_password.encode("utf-8", "surrogateescape")).digest()
    return f"{user}:{base64.b64encode(digest).decode('ascii')}"


def _java_split(s: str, sep: str) -> list[str]:
    """``String.split`` drops trailing empty strings."""
    parts = s.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _ip_network(expr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    parts = expr.split("/", 1)
    try:
        addr = ipaddress.ip_address(parts[0])
    except ValueError:
        return None
    bits = addr.max_prefixlen
    if len(parts) == 2:
        try:
            bits = int(parts[1])
        except ValueError:
            return None
        if not 0 <= bits <= addr.max_prefixlen:
            return None
    return ipaddress.ip_network(f"{addr}/{bits}", strict=False)


# Attribute keywords Java's X500Principal accepts in a distinguished name (AVAKeyword), besides OIDs.
_X500_KEYWORDS = frozenset(
    "CN C L S ST O OU T IP STREET DC DNQUALIFIER DNQ SURNAME GIVENNAME INITIALS GENERATION EMAIL "
    "EMAILADDRESS UID SERIALNUMBER".split()
)
_X500_ATTRIBUTE = re.compile(
    r"\s*(?:(?P<kw>[A-Za-z][A-Za-z0-9-]*)|(?:OID\.)?(?P<oid>[0-9]+(?:\.[0-9]+)+))\s*="
    r"\s*(?:#[0-9A-Fa-f]+|\"(?:[^\"\\]|\\.)*\"|(?:[^,;+\"\\]|\\.)*)\s*"
)


def valid_x500_name(name: str) -> bool:
    """Whether ``new X500Principal(name)`` would accept it (``X509AuthenticationProvider.isValid``).

    RFC 2253 / RFC 1779 syntax: ``type=value`` pairs joined by ``+`` within a name component,
    components by ``,`` or ``;``; a type is a keyword Java knows or an OID.  The empty name is valid.
    """
    if not name.strip():
        return True
    pos = 0
    while True:
        m = _X500_ATTRIBUTE.match(name, pos)
        if m is None or (m["kw"] is not None and m["kw"].upper() not in _X500_KEYWORDS):
            return False
        pos = m.end()
        if pos == len(name):
            return True
        if name[pos] not in ",;+":
            return False
        pos += 1


# KerberosName's parser: service[/host]@REALM; a name that does not match it is still valid
# (SASLAuthenticationProvider.isValid) unless it holds an "@".
_KERBEROS_NAME = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")


def _valid_id(scheme: str, ident: str | None, x509: bool = False, sasl: bool = False) -> bool:
    if ident is None:
        return False
    if scheme == "sasl":
        return sasl and (_KERBEROS_NAME.fullmatch(ident) is not None or "@" not in ident)
    if scheme == "digest":
        return len(_java_split(ident, ":")) == 2
    if scheme == "ip":
        return _ip_network(ident) is not None
    if scheme == "x509":
        return x509 and valid_x500_name(ident)
    return False


def _matches(scheme: str, auth_id: str | None, acl_id: str | None) -> bool:
    if scheme == "digest" or scheme == "x509":
        return auth_id == acl_id
    if scheme == "sasl":
        return auth_id == "super" or auth_id == acl_id
    if scheme == "ip":
        if auth_id is None or acl_id is None:
            return False
        net = _ip_network(acl_id)
        try:
            return net is not None and ipaddress.ip_address(auth_id) in net
        except ValueError:
            return False
    return False


def intern_acl(acl: Sequence[ACL]) -> Sequence[ACL]:
    """Share one object for the ubiquitous world:anyone ALL list (fast path in check_acl)."""
    if len(acl) == 1 and acl[0] == _OPEN_ENTRY:
        return OPEN_ACL_UNSAFE
    return acl


def check_acl(acl: Sequence[ACL], perm: int, ids: Sequence[Id]) -> bool:
    """``ZooKeeperServer.checkACL`` as a predicate."""
    if acl is OPEN_ACL_UNSAFE or not acl:
        return True
    for i in ids:
        if i.scheme == "super":
            return True
    for a in acl:
        if a.perms & perm:
            aid = a.id
            if aid.scheme == "world" and aid.id == "anyone":
                return True
            for i in ids:
                if i.scheme == aid.scheme and _matches(aid.scheme, i.id, aid.id):
                    return True
    return False


def fixup_acl(
    acl: Sequence[ACL] | None, ids: Sequence[Id], *, x509: bool = False, sasl: bool = False
) -> list[ACL]:
    """``PrepRequestProcessor.fixupACL``; raises :class:`AclError` (INVALID_ACL).

    ``x509``, ``sasl``: whether that scheme is registered (ACLs naming it are otherwise invalid).
    """
    # PrepRequestProcessor.removeDuplicates keeps the first of equal ACLs, comparing with the
    # Jute-generated ACL.equals, which throws NullPointerException on a null scheme or id of the
    # ACL being added (ZooKeeper answers that with MarshallingError); a null list is InvalidACL.
    uniq: list[ACL] = []
    for a in acl or ():
        if not any(_java_acl_equals(a, e) for e in uniq):
            uniq.append(a)
    if not uniq:
        raise AclError(Err.INVALID_ACL)
    out: list[ACL] = []
    for a in uniq:
        aid = a.id
        if aid is None or aid.scheme is None:
            raise AclError(Err.INVALID_ACL)
        if aid.id is None and aid.scheme in ("world", "digest", "ip"):
            # "anyone".equals / the provider's isValid dereference it.
            raise AclError(Err.MARSHALLING_ERROR)
        if aid.scheme == "world" and aid.id == "anyone":
            out.append(a)
        elif aid.scheme == "auth":
            valid = False
            for cid in ids:
                # Only the digest, x509 and sasl providers report isAuthenticated(); ip does
                # not and "super" has no provider, so neither is expanded (as in Java).
                if cid.scheme == "digest" or cid.scheme == "x509" or cid.scheme == "sasl":
                    valid = True
                    out.append(ACL(a.perms, cid))
            if not valid:
                raise AclError(Err.INVALID_ACL)
        else:
            if not _valid_id(aid.scheme, aid.id, x509, sasl):
                raise AclError(Err.INVALID_ACL)
            out.append(a)
    return out  # the tree interns it (intern_acl) when the create or setACL is applied


def _java_acl_equals(a: ACL, b: ACL) -> bool:
    """``a.equals(b)`` as Jute generates it; AclError(MARSHALLING_ERROR) where Java would NPE."""
    if a.perms != b.perms:
        return False
    if a.id.scheme is None:
        raise AclError(Err.MARSHALLING_ERROR)
    if a.id.scheme != b.id.scheme:
        return False
    if a.id.id is None:
        raise AclError(Err.MARSHALLING_ERROR)
    return a.id.id == b.id.id


def authenticate(
    scheme: str | None, auth: bytes | None, client_ip: str, super_digest: str | None
) -> list[Id] | None:
    """The ids an ``AuthPacket`` adds, or None for AUTH_FAILED (unknown scheme)."""
    if scheme == "digest":
        digest = generate_digest((auth or b"").decode("utf-8", "surrogateescape"))
        ids = [Id("digest", digest)]
        if super_digest is not None and digest == super_digest:
            ids.insert(0, SUPER)
        return ids
    if scheme == "ip":
        return [Id("ip", client_ip)]
    return None


def _java_string_hash(s: str | None) -> int:
    h = 0
    raw = (s or "").encode("utf-16-be", "surrogatepass")  # Java hashes UTF-16 code units
    for k in range(0, len(raw), 2):
        h = (31 * h + (raw[k] << 8 | raw[k + 1])) & 0xFFFFFFFF
    return h


def _java_id_hash(i: Id) -> int:
    """``Id.hashCode`` (Jute-generated) as an unsigned 32-bit value."""
    h = (37 * 17 + _java_string_hash(i.scheme)) & 0xFFFFFFFF
    return (37 * h + _java_string_hash(i.id)) & 0xFFFFFFFF


def java_set_order(ids: Sequence[Id]) -> list[Id]:
    """``ids`` (distinct, in insertion order) as ZooKeeper iterates a connection's auth ids.

    ``ServerCnxn.authInfo`` is a ``ConcurrentHashMap`` key set, so whoAmI lists the ids, and
    the ``auth`` ACL scheme expands them, in hash-bucket order: table size 16, doubled past
    3/4 full; within a bucket, insertion order (exact until the first resize, 12 ids).
    """
    n = 16
    while len(ids) >= n * 3 // 4:
        n *= 2

    def bucket(i: Id) -> int:
        h = _java_id_hash(i)
        return ((h ^ (h >> 16)) & 0x7FFFFFFF) & (n - 1)

    return sorted(ids, key=bucket)


def user_name(ident: Id) -> str:
    """``AuthenticationProvider.getUserName`` for whoAmI."""
    if ident.scheme == "digest" and ident.id is not None:
        return ident.id.split(":", 1)[0]
    return ident.id or ""
