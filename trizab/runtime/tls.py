"""TLS for the client port: an ``ssl.SSLContext`` from ZooKeeper's ``ssl.*`` keys, and x509 ids.

Theory of operation
-------------------
:func:`server_context` builds the context ZooKeeper 3.8's ``X509Util`` would: the key
store (the server's certificate chain and private key) and the trust store (the CAs
a client certificate must chain to) in the formats ZooKeeper reads (PEM, PKCS12 and
JKS, the type named by ``ssl.*Store.type`` or else by the file's extension),
``ssl.clientAuth`` (``need``, the default, ``want`` or ``none``), ``ssl.protocol``
(default TLSv1.2, the only protocol enabled unless ``ssl.enabledProtocols`` lists
others) and ``ssl.ciphersuites`` (Java's names; default ZooKeeper's list of ECDHE
suites).  Without a trust store a client certificate is checked against the system's
CAs, as Java falls back to its own ``cacerts``.  The TLS itself is the standard
library's ``ssl`` (OpenSSL); JKS is read with pyjks and PKCS12 with cryptography.

A key that did not come from a PEM file is handed to OpenSSL through an anonymous
in-memory file (``memfd``) where the platform has one, else through a temporary file
in a private directory, removed at once; either way it is encrypted with a one-off
password first, so it never rests on disk in the clear.

:class:`ServerTls` holds the current context.  With ``client.certReload`` its
:meth:`~ServerTls.watch` task notices a changed key or trust store (size, mtime, inode),
builds a new context and swaps it in for new connections (existing ones keep theirs);
a store that does not load is logged and the previous context kept.

:func:`x509_ids` is ZooKeeper's ``X509AuthenticationProvider``: a client that presented
a certificate the handshake verified (``want`` or ``need``) is authenticated as
``x509:<subject>``, the subject being the certificate's X.500 name exactly as Java's
``X500Principal.getName()`` (RFC 2253) writes it (:func:`rfc2253_name`), plus
``super:<subject>`` when it equals ``X509AuthenticationProvider.superUser``.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import trio

from trizab.config import TLS_PROTOCOLS, TlsSettings
from trizab.wire.records import Id

__all__ = [
    "ServerTls",
    "TlsError",
    "rfc2253_name",
    "server_context",
    "x509_ids",
]

log = logging.getLogger("trizab.server")

RELOAD_POLL_S = 1.0
# Netty's SslHandler default; a client that does not finish its handshake by then is dropped.
HANDSHAKE_TIMEOUT_S = 10.0


class TlsError(Exception):
    """A store that cannot be loaded or a setting OpenSSL refuses; ``str()`` is one line."""


# X509Util's default cipher suites on Java 9+ (GCM first, then CBC), Java names.
DEFAULT_CIPHER_SUITES = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
)

# Java (IANA) cipher suite names -> OpenSSL's, for the TLS 1.2 suites OpenSSL 3 offers.  A name
# not listed is passed to OpenSSL as it is (so OpenSSL's own names work too).
_OPENSSL_NAMES = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384": "ECDHE-ECDSA-AES256-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384": "ECDHE-RSA-AES256-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "DHE-RSA-CHACHA20-POLY1305",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA256": "DHE-RSA-AES128-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA256": "DHE-RSA-AES256-SHA256",
    "TLS_DHE_RSA_WITH_AES_128_CBC_SHA": "DHE-RSA-AES128-SHA",
    "TLS_DHE_RSA_WITH_AES_256_CBC_SHA": "DHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA256": "AES256-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
# TLS 1.3's suites have one name everywhere; OpenSSL enables all three and Python cannot
# narrow them (no SSL_CTX_set_ciphersuites).
_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)

_VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
_CLIENT_AUTH = {"none": ssl.CERT_NONE, "want": ssl.CERT_OPTIONAL, "need": ssl.CERT_REQUIRED}


# -- the stores ------------------------------------------------------------------------------


def _password(inline: str, path: Path | None) -> str:
    """X509Util.getPasswordFromConfigPropertyOrFile: the file wins, less one trailing newline."""
    if path is None:
        return inline
    try:
        value = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TlsError(f"cannot read the password file {path}: {exc.strerror or exc}") from None
    return value.removesuffix("\n")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TlsError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _pem_cert(der: bytes) -> str:
    return ssl.DER_cert_to_PEM_cert(der)


def _pem_key(pkcs8_der: bytes) -> str:
    body = base64.encodebytes(pkcs8_der).decode("ascii")
    return f"-----BEGIN PRIVATE KEY-----\n{body}-----END PRIVATE KEY-----\n"


_JKS_MAGIC = (b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce")  # JKS, JCEKS


def _load_jks(path: Path, password: str, what: str) -> tuple[list[tuple[list[bytes], bytes]], list[bytes]]:
    """(private key entries as (chain DER, PKCS#8 DER), trusted certificates DER) of a JKS file."""
    import jks  # pyjks

    try:
        ks = jks.KeyStore.loads(_read(path, what), password)
    except Exception as exc:  # pyjks raises several unrelated types
        raise TlsError(f"cannot load {what} {path} as JKS: {exc}") from None
    keys: list[tuple[list[bytes], bytes]] = []
    for alias in sorted(ks.private_keys):
        pk = ks.private_keys[alias]
        if not pk.is_decrypted():
            pk.decrypt(password)
        keys.append(([der for _type, der in pk.cert_chain], pk.pkey_pkcs8))
    certs = [ks.certs[alias].cert for alias in sorted(ks.certs)]
    return keys, certs


def _load_pkcs12(path: Path, password: str, what: str) -> tuple[list[tuple[list[bytes], bytes]], list[bytes]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read(path, what)
    last: Exception | None = None
    # An empty password may mean "no password" or "the empty password", depending on the tool.
    for pw in (password.encode("utf-8"), None) if not password else (password.encode("utf-8"),):
        try:
            p12 = pkcs12.load_pkcs12(data, pw)
            break
        except Exception as exc:  # ValueError for a wrong password or a bad file
            last = exc
    else:
        raise TlsError(f"cannot load {what} {path} as PKCS12: {last}") from None
    der = serialization.Encoding.DER
    keys: list[tuple[list[bytes], bytes]] = []
    certs = [c.certificate.public_bytes(der) for c in p12.additional_certs]
    if p12.key is not None and p12.cert is not None:
        key = p12.key.private_bytes(der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        keys.append(([p12.cert.certificate.public_bytes(der), *certs], key))
    elif p12.cert is not None:
        certs.insert(0, p12.cert.certificate.public_bytes(der))
    return keys, certs


def _load_store(
    path: Path, kind: str | None, password: str, what: str
) -> tuple[list[tuple[list[bytes], bytes]], list[bytes]]:
    if kind == "PKCS12":
        return _load_pkcs12(path, password, what)
    data = _read(path, what)
    if data[:4] not in _JKS_MAGIC:
        # Java 9+ reads a PKCS12 file through the JKS type too (keystore.type.compat), and
        # keytool has written PKCS12 by default since then, often named .jks.
        return _load_pkcs12(path, password, what)
    return _load_jks(path, password, what)


@contextlib.contextmanager
def _secret_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can read ``data`` from, gone when the block ends."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fd = memfd_create("trizab-tls", 0)
        try:
            os.write(fd, data)
            yield f"/proc/self/fd/{fd}"
        finally:
            os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="trizab-tls-") as d:  # mode 0700
        path = os.path.join(d, "key.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield path


def _load_key_store(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    path = settings.key_store_location
    assert path is not None
    what = "ssl.keyStore.location"
    password = _password(settings.key_store_password, settings.key_store_password_path)
    if settings.key_store_type == "PEM":
        # The key and its certificate chain in one file, as ZooKeeper's PemReader reads it; an
        # encrypted key ("ENCRYPTED PRIVATE KEY") is decrypted with the password.
        _read(path, what)
        try:
            ctx.load_cert_chain(str(path), password=password.encode("utf-8") if password else None)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsError(f"cannot load {what} {path} as PEM: {_reason(exc)}") from None
        return
    keys, _certs = _load_store(path, settings.key_store_type, password, what)
    if not keys:
        raise TlsError(f"{what} {path} holds no private key")
    if len(keys) > 1:
        log.warning("%s %s holds %d private keys; using the first by alias", what, path, len(keys))
    chain, key = keys[0]
    from cryptography.hazmat.primitives import serialization

    one_off = secrets.token_urlsafe(24).encode("ascii")
    private = serialization.load_der_private_key(key, None)
    encrypted = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(one_off),
    )
    pem = encrypted + "".join(_pem_cert(c) for c in chain).encode("ascii")
    with _secret_file(pem) as secret:
        try:
            ctx.load_cert_chain(secret, password=one_off)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise TlsError(f"cannot use the key in {what} {path}: {_reason(exc)}") from None


def _load_trust_store(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    path = settings.trust_store_location
    if path is None:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        return
    what = "ssl.trustStore.location"
    if settings.trust_store_type == "PEM":
        pem = _read(path, what).decode("ascii", "replace")
    else:
        password = _password(settings.trust_store_password, settings.trust_store_password_path)
        keys, certs = _load_store(path, settings.trust_store_type, password, what)
        # Java trusts the certificates of key entries in a trust store too.
        pem = "".join(_pem_cert(c) for c in [*certs, *(chain[0] for chain, _ in keys)])
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise TlsError(f"{what} {path} holds no certificate")
    try:
        ctx.load_verify_locations(cadata=pem)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsError(f"cannot load {what} {path}: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).lower().replace("_", " ")
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# -- the context -----------------------------------------------------------------------------


def _protocols(ctx: ssl.SSLContext, settings: TlsSettings) -> list[str]:
    enabled = list(settings.enabled_protocols or ())
    if not enabled:
        # SSLContextAndOptions: the context's own protocol; Java's "TLS" context enables 1.2 and 1.3.
        enabled = ["TLSv1.2", "TLSv1.3"] if settings.protocol == "TLS" else [settings.protocol]
    order = sorted({TLS_PROTOCOLS.index(p) for p in enabled})
    if order != list(range(order[0], order[-1] + 1)):
        raise TlsError(
            f"ssl.enabledProtocols={','.join(enabled)}: OpenSSL enables a range of versions; "
            "list consecutive versions"
        )
    ctx.minimum_version = _VERSIONS[TLS_PROTOCOLS[order[0]]]
    ctx.maximum_version = _VERSIONS[TLS_PROTOCOLS[order[-1]]]
    return [TLS_PROTOCOLS[i] for i in order]


def _ciphers(ctx: ssl.SSLContext, settings: TlsSettings, protocols: list[str]) -> None:
    names = settings.cipher_suites or DEFAULT_CIPHER_SUITES
    tls13 = {n for n in names if n in _TLS13_SUITES}
    tls12 = [n for n in names if n not in _TLS13_SUITES]
    if "TLSv1.3" in protocols and settings.cipher_suites is not None and tls13 != _TLS13_SUITES:
        if tls13:
            raise TlsError(
                "ssl.ciphersuites: TLS 1.3 suites cannot be narrowed here; list all of "
                + ", ".join(sorted(_TLS13_SUITES))
                + " or none (which leaves TLS 1.3 off)"
            )
        # Java offers no TLS 1.3 handshake without a TLS 1.3 suite; neither do we.
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if ctx.minimum_version > ssl.TLSVersion.TLSv1_2:
            raise TlsError("ssl.ciphersuites lists no TLS 1.3 suite but only TLSv1.3 is enabled")
    if not tls12:
        if protocols != ["TLSv1.3"]:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        return
    unknown = []
    for name in tls12:
        try:
            ssl.create_default_context().set_ciphers(_OPENSSL_NAMES.get(name, name))
        except ssl.SSLError:
            unknown.append(name)
    if unknown:
        raise TlsError(f"ssl.ciphersuites: unknown or unavailable cipher suites {', '.join(unknown)}")
    ctx.set_ciphers(":".join(_OPENSSL_NAMES.get(n, n) for n in tls12))


def server_context(settings: TlsSettings) -> ssl.SSLContext:
    """The server side of the client port's TLS (see the module docstring); TlsError if it cannot."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    protocols = _protocols(ctx, settings)
    _ciphers(ctx, settings, protocols)
    ctx.verify_mode = _CLIENT_AUTH[settings.client_auth]
    _load_key_store(ctx, settings)
    if settings.client_auth != "none":
        _load_trust_store(ctx, settings)
    # Java's server keeps no TLS 1.3 session tickets of ours to resume; nor do we need them.
    ctx.num_tickets = 0
    return ctx


def _fingerprint(path: Path | None) -> tuple[int, int, int, int] | None:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@attrs.define
class ServerTls:
    """The client port's current TLS context, reloaded by :meth:`watch` (see the module docstring)."""

    settings: TlsSettings
    super_user: str | None = None
    poll_s: float = RELOAD_POLL_S  # how often watch() looks at the files
    context: ssl.SSLContext = attrs.field(init=False)
    _seen: tuple[object, ...] = attrs.field(init=False, default=())

    def __attrs_post_init__(self) -> None:
        self._seen = self._files()
        self.context = server_context(self.settings)

    @property
    def authenticates(self) -> bool:
        """Whether clients are asked for a certificate (ZooKeeper's CertificateVerifier runs)."""
        return self.settings.client_auth != "none"

    def _files(self) -> tuple[object, ...]:
        s = self.settings
        paths = (s.key_store_location, s.key_store_password_path, s.trust_store_location)
        return tuple(_fingerprint(p) for p in (*paths, s.trust_store_password_path))

    def reload_if_changed(self) -> bool:
        """Build a new context if a store changed since the last look; whether one was swapped in."""
        seen = self._files()
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            context = server_context(self.settings)
        except TlsError as exc:
            log.error("client TLS: a key or trust store changed but does not load (%s); keeping the old", exc)
            return False
        self.context = context
        log.info("client TLS: key and trust stores reloaded")
        return True

    async def watch(self) -> None:
        """client.certReload: reload the stores whenever their files change (until cancelled)."""
        while True:
            await trio.sleep(self.poll_s)
            self.reload_if_changed()

    def ids(self, peer_der: bytes | None) -> list[Id]:
        return x509_ids(peer_der, self.super_user)


def x509_ids(peer_der: bytes | None, super_user: str | None) -> list[Id]:
    """``X509AuthenticationProvider.handleAuthentication``: the ids of a verified client certificate."""
    if not peer_der:
        return []
    subject = rfc2253_name(peer_der)
    ids = [Id("x509", subject)]
    if super_user is not None and subject == super_user:
        ids.insert(0, Id("super", subject))
    return ids


# -- X500Principal.getName(), from the certificate's DER --------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of contents, end of contents) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, element start, contents start, contents end) of each element in a constructed one."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(data, pos)
        out.append((tag, pos, cstart, cend))
        pos = cend
    return out


def _oid(body: bytes) -> str:
    first = body[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for b in body[1:]:
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            parts.append(value)
            value = 0
    return ".".join(map(str, parts))


# Java's RFC 2253 keywords (AVAKeyword with rfc2253Compliant); other types are written as OIDs.
_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.9": "STREET",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}
# AVA.isDerString(value, false): the string types written as text (Printable, T61, IA5, General,
# BMP, UTF8); others are written as #hex.  Java decodes the bytes of every one of them as UTF-8
# (so a BMPString "st" comes out as "\00s\00t"), and so do we.
_STRING_TAGS = frozenset({0x13, 0x14, 0x16, 0x1B, 0x1E, 0x0C})
_ESCAPED = ',=+<>#;"\\'


def _ava(data: bytes, start: int, end: int) -> str:
    (_t, _s, ostart, oend), (vtag, vpos, vstart, vend) = _children(data, start, end)[:2]
    oid = _oid(data[ostart:oend])
    keyword = _RFC2253_KEYWORDS.get(oid, oid)
    if keyword[0].isdigit() or vtag not in _STRING_TAGS:
        return f"{keyword}=#{data[vpos:vend].hex()}"
    text = data[vstart:vend].decode("utf-8", "replace")
    out = []
    for ch in text:
        if ch in _ESCAPED:
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    # Leading and trailing spaces (and carriage returns) are escaped too.
    lead = 0
    while lead < len(out) and out[lead] in (" ", "\r"):
        out[lead] = "\\" + out[lead]
        lead += 1
    trail = len(out) - 1
    while trail >= lead and out[trail] in (" ", "\r"):
        out[trail] = "\\" + out[trail]
        trail -= 1
    return f"{keyword}={''.join(out)}"


def rfc2253_name(cert_der: bytes) -> str:
    """The certificate subject as ``X500Principal.getName()`` (RFC 2253) writes it."""
    try:
        _tag, cstart, _end = _tlv(cert_der, 0)  # Certificate
        _tag, tstart, tend = _tlv(cert_der, cstart)  # TBSCertificate
        fields = _children(cert_der, tstart, tend)
        if fields[0][0] == 0xA0:  # [0] version
            fields = fields[1:]
        # serialNumber, signature, issuer, validity, subject
        _t, _p, sstart, send = fields[4]
        rdns = []
        for _t, _p, rstart, rend in _children(cert_der, sstart, send):  # SET OF AttributeTypeAndValue
            avas = [
                _ava(cert_der, astart, aend) for _t2, _p2, astart, aend in _children(cert_der, rstart, rend)
            ]
            rdns.append("+".join(avas))
    except (IndexError, ValueError) as exc:
        raise TlsError(f"cannot read the subject of a client certificate: {exc}") from None
    return ",".join(reversed(rdns))
