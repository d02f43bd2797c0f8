"""SASL DIGEST-MD5 (RFC 2831), both sides, sans-I/O: tokens in, tokens out.

Theory of operation
-------------------
This is what Apache ZooKeeper gets from the JDK's ``DigestMD5Server`` and
``DigestMD5Client`` with ZooKeeper's callback handlers (``SaslServerCallbackHandler``,
``SaslQuorumServerCallbackHandler``), restricted to what ZooKeeper uses: the
``auth`` quality of protection (no integrity or confidentiality layer), the
``md5-sess`` algorithm, one realm (``zk-sasl-md5``, ZooKeeper's fixed DIGEST-MD5
"server name") and the service ``zookeeper``.

The exchange, as a client sees it on ZooKeeper's client port (one ``sasl`` packet
per step) or on a quorum connection (one ``QuorumAuthPacket`` per step)::

    client -> server   (empty token)                       the client starts
    server -> client   realm="zk-sasl-md5",nonce="...",charset=utf-8,algorithm=md5-sess
    client -> server   username="bob",realm=...,nonce=...,cnonce=...,nc=00000001,
                       qop=auth,digest-uri="zookeeper/zk-sasl-md5",response=<hex>
    server -> client   rspauth=<hex>                        both sides are complete

:class:`DigestMD5Server` checks the response against the password the caller's
lookup gives for the user; any mismatch (unknown user, wrong password, tampered
field, another nonce, a nonce count other than 1, a second response after
completion) raises :class:`SaslError`, whose message never contains a password or a
digest.  :class:`DigestMD5Client` checks the server's ``rspauth`` (the server knew
the password too).  Neither draws random numbers: the caller passes the nonce
(server) or cnonce (client), so both are deterministic under test.

The authorization id is the user name, as ZooKeeper's callback handlers make it
(they set the authorized id from the authentication id, whatever ``authzid`` the
client asked for).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable

__all__ = [
    "REALM",
    "SERVICE",
    "DigestMD5Client",
    "DigestMD5Server",
    "SaslCompleteError",
    "SaslError",
    "parse_directives",
]

REALM = "zk-sasl-md5"  # ZooKeeper's SaslServerCallbackHandler / SecurityUtils: the DIGEST-MD5 realm
SERVICE = "zookeeper"
NONCE_BYTES = 30  # the JDK's DigestMD5Server: 30 random bytes, base64 (40 characters)
_MAX_TOKEN = 4096  # RFC 2831: a digest-response is at most 4096 bytes


class SaslError(Exception):
    """The exchange failed; ``str()`` is one line naming what failed, never a secret."""


class SaslCompleteError(SaslError):
    """A token after the exchange completed (the JDK throws IllegalStateException here)."""


def parse_directives(token: bytes) -> dict[str, str]:
    """RFC 2831 ``1#( name "=" ( token | quoted-string ) )`` into a dict; SaslError if malformed.

    A directive that appears twice is an error (RFC 2831 allows repetition only of
    ``realm`` in a challenge, which neither side here needs).
    """
    if len(token) > _MAX_TOKEN:
        raise SaslError("DIGEST-MD5: token too long")
    try:
        text = token.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError("DIGEST-MD5: token is not UTF-8") from None
    out: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        if i >= n:
            break
        eq = text.find("=", i)
        if eq < 0:
            raise SaslError("DIGEST-MD5: malformed directive")
        name = text[i:eq].strip().lower()
        i = eq + 1
        if i < n and text[i] == '"':
            i += 1
            chars: list[str] = []
            while True:
                if i >= n:
                    raise SaslError("DIGEST-MD5: unterminated quoted string")
                c = text[i]
                if c == "\\" and i + 1 < n:
                    chars.append(text[i + 1])
                    i += 2
                    continue
                i += 1
                if c == '"':
                    break
                chars.append(c)
            value = "".join(chars)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            value = text[i:end].strip()
            i = end
        if not name or name in out:
            raise SaslError(f"DIGEST-MD5: {'empty' if not name else 'repeated'} directive {name!r}")
        out[name] = value
    return out


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _h(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


def _hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _encode(value: str, utf8: bool) -> bytes:
    """RFC 2831 2.1.2.1: ISO 8859-1 unless both sides said charset=utf-8 (and it fits)."""
    if not utf8:
        try:
            return value.encode("iso-8859-1")
        except UnicodeEncodeError:
            pass
    return value.encode("utf-8")


def _response_value(
    *,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    cnonce: str,
    nc: str,
    qop: str,
    digest_uri: str,
    authzid: str | None,
    utf8: bool,
    for_rspauth: bool,
) -> str:
    """RFC 2831 2.1.2.1 ``response-value`` (and, ``for_rspauth``, the server's ``rspauth``)."""
    secret = _h(_encode(username, utf8) + b":" + _encode(realm, utf8) + b":" + _encode(password, utf8))
    a1 = secret + b":" + nonce.encode() + b":" + cnonce.encode()
    if authzid:
        a1 += b":" + authzid.encode("utf-8")
    a2 = ("" if for_rspauth else "AUTHENTICATE") + ":" + digest_uri
    kd = f"{_hex(a1)}:{nonce}:{nc}:{cnonce}:{qop}:{_hex(a2.encode())}"
    return _hex(kd.encode())


class DigestMD5Server:
    """The server side: :meth:`evaluate` each client token, send back what it returns.

    ``password_of(user)`` gives the user's password, or None for an unknown user.
    """

    def __init__(
        self,
        password_of: Callable[[str], str | None],
        *,
        nonce: bytes,
        realm: str = REALM,
        service: str = SERVICE,
    ) -> None:
        self._password_of = password_of
        self._nonce = base64.b64encode(nonce).decode("ascii")
        self._realm = realm
        self._digest_uri = f"{service}/{realm}"
        self._step = 0
        self.complete = False
        self.authorization_id: str | None = None

    def evaluate(self, token: bytes) -> bytes:
        """The answer to one client token; SaslError ends the exchange (AuthFailed)."""
        if self.complete:
            raise SaslCompleteError("DIGEST-MD5: authentication already complete")
        self._step += 1
        if self._step == 1:
            if token:
                raise SaslError("DIGEST-MD5 must not have an initial response")
            return self.challenge()
        if self._step == 2:
            rspauth = self._verify(token)
            return f"rspauth={rspauth}".encode("ascii")
        raise SaslError("DIGEST-MD5: unexpected token after the response")

    def challenge(self) -> bytes:
        return (
            f"realm={_quote(self._realm)},nonce={_quote(self._nonce)},charset=utf-8,algorithm=md5-sess"
        ).encode("ascii")

    def _verify(self, token: bytes) -> str:
        self._step = 3  # one response per nonce, right or wrong: no second try on this exchange
        d = parse_directives(token)
        for name in ("username", "nonce", "cnonce", "nc", "response", "digest-uri"):
            if name not in d:
                raise SaslError(f"DIGEST-MD5: digest response format violation: no {name}")
        charset = d.get("charset")
        if charset is not None and charset.lower() != "utf-8":
            raise SaslError("DIGEST-MD5: digest response format violation: bad charset")
        username = d["username"]
        realm = d.get("realm", self._realm)
        if realm != self._realm:
            raise SaslError(f"DIGEST-MD5: digest response format violation: mismatched realm {realm!r}")
        if not hmac.compare_digest(d["nonce"].encode(), self._nonce.encode()):
            raise SaslError("DIGEST-MD5: digest response format violation: mismatched nonce")
        if d["nc"] != "00000001":
            raise SaslError("DIGEST-MD5: nonce count must be 00000001")
        qop = d.get("qop", "auth")
        if qop != "auth":
            raise SaslError(f"DIGEST-MD5: qop {qop!r} not offered (only auth)")
        if d["digest-uri"].lower() != self._digest_uri.lower():
            raise SaslError(f"DIGEST-MD5: mismatched digest-uri {d['digest-uri']!r}")
        password = self._password_of(username)
        if password is None:
            raise SaslError(f"DIGEST-MD5: no such user {username!r}")
        fields = dict(
            username=username,
            realm=realm,
            password=password,
            nonce=d["nonce"],
            cnonce=d["cnonce"],
            nc=d["nc"],
            qop=qop,
            digest_uri=d["digest-uri"],
            authzid=d.get("authzid"),
            utf8=charset is not None,
        )
        expected = _response_value(**fields, for_rspauth=False)
        if not hmac.compare_digest(expected.encode(), d["response"].lower().encode()):
            raise SaslError(f"DIGEST-MD5: wrong password for user {username!r} (mismatched response)")
        self.complete = True
        self.authorization_id = username
        return _response_value(**fields, for_rspauth=True)


class DigestMD5Client:
    """The client side (what a member uses towards another, ``SaslQuorumAuthLearner``).

    Start with :meth:`initial` (the empty token), then :meth:`evaluate` each server
    token until :attr:`complete`.
    """

    def __init__(
        self,
        username: str,
        password: str,
        *,
        cnonce: bytes,
        service: str = SERVICE,
        host: str = REALM,
    ) -> None:
        self._username = username
        self._password = password
        self._cnonce = base64.b64encode(cnonce).decode("ascii")
        self._digest_uri = f"{service}/{host}"
        self._expected_rspauth: str | None = None
        self.complete = False

    def initial(self) -> bytes:
        return b""

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslCompleteError("DIGEST-MD5: authentication already complete")
        d = parse_directives(token)
        if self._expected_rspauth is None:
            return self._respond(d)
        rspauth = d.get("rspauth")
        expected = self._expected_rspauth.encode()
        if rspauth is None or not hmac.compare_digest(rspauth.lower().encode(), expected):
            raise SaslError("DIGEST-MD5: the server's rspauth does not match (it does not know the password)")
        self.complete = True
        return b""

    def _respond(self, d: dict[str, str]) -> bytes:
        if "nonce" not in d:
            raise SaslError("DIGEST-MD5: challenge without a nonce")
        qops = [q.strip() for q in d.get("qop", "auth").split(",")]
        if "auth" not in qops:
            raise SaslError("DIGEST-MD5: the server does not offer qop auth")
        realm = d.get("realm", REALM)
        utf8 = d.get("charset", "").lower() == "utf-8"
        fields = dict(
            username=self._username,
            realm=realm,
            password=self._password,
            nonce=d["nonce"],
            cnonce=self._cnonce,
            nc="00000001",
            qop="auth",
            digest_uri=self._digest_uri,
            authzid=None,
            utf8=utf8,
        )
        response = _response_value(**fields, for_rspauth=False)
        self._expected_rspauth = _response_value(**fields, for_rspauth=True)
        parts = [
            *(["charset=utf-8"] if utf8 else []),
            f"username={_quote(self._username)}",
            f"realm={_quote(realm)}",
            f"nonce={_quote(d['nonce'])}",
            "nc=00000001",
            f"cnonce={_quote(self._cnonce)}",
            f"digest-uri={_quote(self._digest_uri)}",
            "maxbuf=65536",
            f"response={response}",
            "qop=auth",
        ]
        return ",".join(parts).encode("utf-8")
