"""TLS: ``ssl.SSLContext`` s from ZooKeeper's ``ssl.*`` / ``ssl.quorum.*`` keys, and x509 ids.

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

The stores themselves are read by :mod:`trizab.runtime.tls_stores`.

:class:`ServerTls` holds the current context.  With ``client.certReload`` its
:meth:`~ServerTls.watch` task notices a changed key or trust store (size, mtime, inode),
builds a new context and swaps it in for new connections (existing ones keep theirs);
a store that does not load is logged and the previous context kept.

:func:`x509_ids` is ZooKeeper's ``X509AuthenticationProvider``: a client that presented
a certificate the handshake verified (``want`` or ``need``) is authenticated as
``x509:<subject>``, the subject being the certificate's X.500 name exactly as Java's
``X500Principal.getName()`` (RFC 2253) writes it (:func:`rfc2253_name`), plus
``super:<subject>`` when it equals ``X509AuthenticationProvider.superUser``.

:class:`PeerTls` is the same for the quorum and election ports (``sslQuorum``,
``portUnification``, ``ssl.quorum.*``, ``sslQuorumReloadCertFiles``): both sides present
their certificate, and with ``ssl.quorum.hostnameVerification`` (the default) each checks
that the other's certificate names its address (the connecting side through the TLS
library's host name check, the accepting side against the peer's IP address, or its
reverse-DNS names with ``ssl.quorum.allowReverseDnsLookup``), as ZooKeeper's
``ZKTrustManager`` does.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
from pathlib import Path
from typing import Any

import attrs
import trio

from trizab.config import TLS_PROTOCOLS, TlsSettings
from trizab.runtime.tls_stores import TlsError, load_key_store, load_trust_store, rfc2253_name
from trizab.wire.records import Id

__all__ = [
    "PeerTls",
    "ServerTls",
    "TlsError",
    "TlsHandshakeError",
    "TlsSession",
    "client_context",
    "rfc2253_name",
    "server_context",
    "x509_ids",
]

log = logging.getLogger("trizab.server")

RELOAD_POLL_S = 1.0
# Netty's SslHandler default; a client that does not finish its handshake by then is dropped.
HANDSHAKE_TIMEOUT_S = 10.0


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
    load_key_store(ctx, settings)
    if settings.client_auth != "none":
        load_trust_store(ctx, settings)
    # Java's server keeps no TLS 1.3 session tickets of ours to resume; nor do we need them.
    ctx.num_tickets = 0
    # A client's TLS 1.2 renegotiation would need our answer while we only read (TlsSession
    # writes when it has a reply); ZooKeeper clients never renegotiate.
    ctx.options |= ssl.OP_NO_RENEGOTIATION
    return ctx


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The connecting side of a member's quorum or election link: its certificate (from the key
    store) for the other member's ``need``, and the other member's certificate checked against
    the trust store, and against its host when ``hostnameVerification`` (the default)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    protocols = _protocols(ctx, settings)
    _ciphers(ctx, settings, protocols)
    ctx.check_hostname = settings.hostname_verification
    ctx.verify_mode = ssl.CERT_REQUIRED
    load_key_store(ctx, settings)
    load_trust_store(ctx, settings)
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
        return _store_files(self.settings)

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


class TlsHandshakeError(Exception):
    """A client's handshake failed; ``str()`` is OpenSSL's reason (e.g. ``CERTIFICATE_VERIFY_FAILED``)."""


class TlsSession:
    """One client connection's TLS, driven synchronously over memory BIOs.

    The handshake is the only part that awaits.  After it, :meth:`decrypt` turns what the
    socket delivered into plain bytes and :meth:`encrypt` turns replies into records, both
    without a task switch, so a TLS connection's replies are written straight from the flush
    that produced them, as a plain connection's are (no writer task wake-up, no
    ``trio.SSLStream`` lock round per read and write).  Reads and writes happen in one thread,
    in the order the runtime does them, so the records go out in order.
    """

    __slots__ = ("incoming", "obj", "outgoing")

    def __init__(self, context: ssl.SSLContext) -> None:
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=True)

    async def handshake(self, stream: trio.abc.Stream) -> None:
        """Complete the server side of the handshake over ``stream``; TlsHandshakeError if it fails
        (the alert OpenSSL prepared is sent first, so the client learns why)."""
        try:
            while True:
                try:
                    self.obj.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
                except ssl.SSLError as exc:
                    alert = self.outgoing.read()
                    if alert:
                        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                            await stream.send_all(alert)
                    raise TlsHandshakeError(exc.reason or str(exc)) from None
                out = self.outgoing.read()
                if out:
                    await stream.send_all(out)
                if done:
                    return
                data = await stream.receive_some(65536)
                if not data:
                    raise TlsHandshakeError("connection closed")
                self.incoming.write(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise TlsHandshakeError(f"connection lost ({exc})") from None

    def decrypt(self, data: bytes | memoryview | None) -> tuple[bytes, str | None]:
        """The plain bytes of the records completed by ``data`` (None: only those already
        received; empty: the socket's end), and why the connection ends (None: it goes on)."""
        if data is not None:
            if data:
                self.incoming.write(data)
            else:
                self.incoming.write_eof()
        parts = []
        read = self.obj.read
        while True:
            try:
                chunk = read(262144)
            except ssl.SSLWantReadError:
                return b"".join(parts), None
            except ssl.SSLZeroReturnError:
                return b"".join(parts), "eof"
            except ssl.SSLError as exc:
                return b"".join(parts), f"TLS error: {exc.reason or exc}"
            if not chunk:
                return b"".join(parts), "eof"
            parts.append(chunk)

    def encrypt(self, data: bytes | bytearray) -> bytes:
        """``data`` as TLS records (plus anything OpenSSL queued meanwhile, in order); nothing
        once the session is unusable (the connection is ending anyway)."""
        try:
            self.obj.write(data)
        except ssl.SSLError:
            return b""
        return self.outgoing.read()

    def peer_der(self) -> bytes | None:
        return self.obj.getpeercert(binary_form=True)


def _host_matches(cert: dict[str, Any], ip: str) -> bool:
    """ZKTrustManager's check of a connecting member: its address among the certificate's names."""
    names = cert.get("subjectAltName", ())
    if any(kind == "IP Address" and value.strip() == ip for kind, value in names):
        return True
    return False


async def _peer_host_names(ip: str) -> list[str]:
    try:
        host, aliases, _ = await trio.to_thread.run_sync(socket.gethostbyaddr, ip)
    except OSError:
        return []
    return [host, *aliases]


@attrs.define
class PeerTls:
    """TLS on a member's quorum and election ports: ``sslQuorum``, ``portUnification``, ``ssl.quorum.*``.

    ``accept`` secures an accepted connection (TLS only; or, with port unification, whatever the
    first byte says), ``connect`` one we open (TLS when ``sslQuorum``).  A member whose certificate
    does not chain to the trust store, or (with ``ssl.quorum.hostnameVerification``, the default)
    does not name the address it connects from, is refused.  :meth:`watch` reloads the stores
    with ``sslQuorumReloadCertFiles``.
    """

    settings: TlsSettings
    ssl_quorum: bool
    unification: bool
    reload: bool = False
    poll_s: float = RELOAD_POLL_S
    server: ssl.SSLContext = attrs.field(init=False)
    client: ssl.SSLContext = attrs.field(init=False)
    _seen: tuple[object, ...] = attrs.field(init=False, default=())

    def __attrs_post_init__(self) -> None:
        self._seen = _store_files(self.settings)
        self.server, self.client = server_context(self.settings), client_context(self.settings)

    def reload_if_changed(self) -> bool:
        seen = _store_files(self.settings)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            server, client = server_context(self.settings), client_context(self.settings)
        except TlsError as exc:
            log.error("quorum TLS: a key or trust store changed but does not load (%s); keeping the old", exc)
            return False
        self.server, self.client = server, client
        log.info("quorum TLS: key and trust stores reloaded")
        return True

    async def watch(self) -> None:
        while True:
            await trio.sleep(self.poll_s)
            self.reload_if_changed()

    async def accept(self, stream: trio.SocketStream, what: str) -> trio.abc.Stream | None:
        """The stream to use for an accepted connection; None if it must be closed (logged)."""
        remote = stream.socket.getpeername()
        ip = str(remote[0])
        if not self.ssl_quorum and not self.unification:
            return stream
        if self.unification:
            try:
                with trio.fail_after(self.settings.handshake_detection_timeout_ms / 1000):
                    first = await stream.socket.recv(1, socket.MSG_PEEK)
            except (OSError, trio.TooSlowError):
                return None
            if not first or first[0] != 0x16:
                return stream
        wrapped = trio.SSLStream(stream, self.server, server_side=True)
        if not await _handshake(wrapped, f"{what} connection from {ip}", ip):
            return None
        if self.settings.hostname_verification:
            cert = wrapped.getpeercert() or {}
            if not _host_matches(cert, ip):
                names = await _peer_host_names(ip) if self.settings.allow_reverse_dns_lookup else []
                dns = [v for k, v in cert.get("subjectAltName", ()) if k == "DNS"]
                if not any(n in dns for n in names):
                    log.warning(
                        "%s connection from %s: its certificate does not name that address; closing", what, ip
                    )
                    return None
        return wrapped

    async def connect(self, stream: trio.SocketStream, host: str, what: str) -> trio.abc.Stream | None:
        """The stream to use for a connection we opened to ``host``; None if TLS failed (logged)."""
        if not self.ssl_quorum:
            return stream
        name = host if self.settings.hostname_verification else None
        wrapped = trio.SSLStream(stream, self.client, server_hostname=name)
        if not await _handshake(wrapped, f"{what} connection to {host}", host):
            return None
        return wrapped


async def _handshake(stream: trio.SSLStream[Any], what: str, peer: str) -> bool:
    """``peer`` keys the failure's log line for the flood limit (trizab.logflood)."""
    with trio.move_on_after(HANDSHAKE_TIMEOUT_S):
        try:
            await stream.do_handshake()
            return True
        except trio.BrokenResourceError as exc:
            cause = exc.__cause__
            reason = (
                getattr(cause, "verify_message", None) or getattr(cause, "reason", None) or str(cause or exc)
            )
            log.warning("TLS handshake on %s failed: %s", what, reason, extra={"peer": peer})
            return False
    log.warning(
        "TLS handshake on %s did not finish in %.0f s", what, HANDSHAKE_TIMEOUT_S, extra={"peer": peer}
    )
    return False


def _store_files(s: TlsSettings) -> tuple[object, ...]:
    paths = (
        s.key_store_location,
        s.key_store_password_path,
        s.trust_store_location,
        s.trust_store_password_path,
    )
    return tuple(_fingerprint(p) for p in paths)


def x509_ids(peer_der: bytes | None, super_user: str | None) -> list[Id]:
    """``X509AuthenticationProvider.handleAuthentication``: the ids of a verified client certificate."""
    if not peer_der:
        return []
    subject = rfc2253_name(peer_der)
    ids = [Id("x509", subject)]
    if super_user is not None and subject == super_user:
        ids.insert(0, Id("super", subject))
    return ids
