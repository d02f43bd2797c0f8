"""Key and trust stores in ZooKeeper's formats, and certificate subjects as Java writes them.

``load_key_store`` and ``load_trust_store`` put a ``TlsSettings``' stores into an
``ssl.SSLContext``: PEM as OpenSSL reads it, PKCS12 through cryptography, JKS through pyjks
(a JKS-typed file that is really PKCS12 is read as PKCS12, as Java 9+ does).  A key that did not
come from a PEM file is handed to OpenSSL through an anonymous in-memory file (``memfd``) where
the platform has one, else a temporary file in a private directory removed at once; either way
it is encrypted with a one-off password first, so it never rests on disk in the clear.

``rfc2253_name`` is ``X500Principal.getName()`` on a certificate's subject, read from its DER:
the name ZooKeeper's X509AuthenticationProvider uses as the x509 id.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path

from trizab.config import TlsSettings

__all__ = ["TlsError", "load_key_store", "load_trust_store", "rfc2253_name"]

log = logging.getLogger("trizab.server")


class TlsError(Exception):
    """A store that cannot be loaded or a setting OpenSSL refuses; ``str()`` is one line."""


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


def _no_password() -> bytes:
    return b""


def load_key_store(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    path = settings.key_store_location
    assert path is not None
    what = "ssl.keyStore.location"
    password = _password(settings.key_store_password, settings.key_store_password_path)
    if settings.key_store_type == "PEM":
        # The key and its certificate chain in one file, as ZooKeeper's PemReader reads it; an
        # encrypted key ("ENCRYPTED PRIVATE KEY") is decrypted with the password.
        data = _read(path, what)
        try:
            # Without a password, an empty one: OpenSSL's default would prompt on the terminal.
            ctx.load_cert_chain(str(path), password=password.encode("utf-8") if password else _no_password)
        except (ssl.SSLError, OSError, ValueError) as exc:
            # OpenSSL says only "PEM lib" when an encrypted key does not decrypt.
            reason = _reason(exc)
            if b"ENCRYPTED" in data and isinstance(exc, ssl.SSLError):
                reason = (
                    "its private key does not decrypt with the password (wrong password?)"
                    if password
                    else "its private key is encrypted and no password is set"
                )
            raise TlsError(f"cannot load {what} {path} as PEM: {reason}") from None
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


def load_trust_store(ctx: ssl.SSLContext, settings: TlsSettings) -> None:
    path = settings.trust_store_location
    if path is None:
        ctx.load_default_certs(
            ssl.Purpose.CLIENT_AUTH if ctx.protocol == ssl.PROTOCOL_TLS_SERVER else ssl.Purpose.SERVER_AUTH
        )
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
