"""SASL GSSAPI (RFC 4752, Kerberos V5) for the server side, wrapping python-gssapi: tokens in, tokens out.

Theory of operation
-------------------
This is what Apache ZooKeeper gets from the JDK's ``GssKrb5Server`` when its JAAS
``Server`` section uses ``com.sun.security.auth.module.Krb5LoginModule``
(``SecurityUtils.createSaslServer`` picks GSSAPI whenever the login subject has a
Kerberos principal), with ZooKeeper's ``SaslServerCallbackHandler`` naming the
authenticated client.  The exchange, one ``sasl`` packet per step::

    client -> server   GSS-API context token (AP-REQ)        the client starts
    server -> client   GSS-API context token (AP-REP)        mutual authentication
    ...                (more context tokens, if the mechanism needs them)
    client -> server   (empty token)                         the context is established
    server -> client   wrap([layers=0x01][max buffer=0,0,0]) RFC 4752 3.1: "none" only
    client -> server   wrap([layer=0x01][max buffer][authzid])
    server -> client   (no token)                            complete

When the context completes on a client token that needs no answer (no mutual
authentication), the security-layer offer is the answer to that token, as the JDK
does.  trizab offers the "none" layer only: ZooKeeper's default qop is ``auth``, and
nothing after authentication is wrapped on a ZooKeeper connection.  A client that
picks another layer, a token that does not unwrap, or a context that fails (wrong
key, a ticket for another service principal, a replay) raises :class:`SaslError`
with one line saying why, never key material.

The authorization id is computed from the client's Kerberos principal as
``SaslServerCallbackHandler.handleAuthorizeCallback`` does with ``KerberosName``
(:func:`authorized_id`); an ``authzid`` the client asks for is not used (see there).
Between members (``SaslQuorumAuthServer``) the principal is kept whole and must be
``name/host@REALM`` with a host of the ensemble's server lines
(``SaslQuorumServerCallbackHandler``: :func:`quorum_authorizer`).

:class:`GssapiClient` is the other side, a member authenticating to another
(``SaslQuorumAuthLearner``) as the ``QuorumLearner`` principal, to the member's
``quorum.auth.kerberos.servicePrincipal``.  Its first step asks the KDC for a service
ticket (network I/O): the runtime runs its steps in a thread.

Every call here is CPU-only (the acceptor reads its keys when the credentials are
acquired, at start-up, by :func:`acquire_acceptor`), so the core can run it inline.
python-gssapi is imported only by :func:`acquire_acceptor`, so a server without
Kerberos does not need it installed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import attrs

from trizab.server.sasl_digest import SaslCompleteError, SaslError

__all__ = [
    "GssapiClient",
    "GssapiServer",
    "GssapiUnavailableError",
    "KerberosAcceptor",
    "KerberosInitiator",
    "KerberosNaming",
    "acquire_acceptor",
    "acquire_initiator",
    "authorized_id",
    "quorum_authorizer",
    "service_principal_for",
]

LAYER_NONE = 0x01  # RFC 4752 3.1: bit 0, no security layer
_KRB5_PRINCIPAL = re.compile(r"([^/@]*)(/([^/@]*))?@([^/@]*)")  # KerberosName.nameParser
INSTALL_HINT = (
    "Kerberos (GSSAPI) needs python-gssapi: pip install 'trizab[kerberos]' "
    "(it builds against the MIT Kerberos headers, Debian package libkrb5-dev)"
)


class GssapiUnavailableError(Exception):
    """python-gssapi is not installed; ``str()`` says what to install."""


@attrs.frozen
class KerberosNaming:
    """How a client principal becomes its ``sasl`` id (ZooKeeper's system properties)."""

    # KerberosName's defaultRealm: the default_realm of the Kerberos configuration ("" if none).
    default_realm: str = ""
    # zookeeper.kerberos.removeHostFromPrincipal / removeRealmFromPrincipal.
    remove_host: bool = False
    remove_realm: bool = False


def authorized_id(principal: str, naming: KerberosNaming) -> str:
    """The ``sasl`` id ZooKeeper gives the client ``principal`` (``user[/host]@REALM``).

    ``KerberosName.getShortName`` with the ``DEFAULT`` auth_to_local rule gives the first
    component when the realm is the default realm; then ``/host`` and ``@REALM`` are
    appended unless removed.  When no rule applies (a principal of another realm),
    ZooKeeper logs the failure and keeps the SASL authorization id, which the client
    chooses (its ``authzid``, by default its principal); trizab keeps the principal
    itself, so a client can never name itself someone else.
    """
    m = _KRB5_PRINCIPAL.fullmatch(principal)
    if m is None:
        # KerberosName: a name without "@" is a simple name; with one it is malformed.
        if "@" in principal:
            raise SaslError("GSSAPI: malformed Kerberos principal")
        return principal
    service, host, realm = m[1], m[3], m[4]
    if realm != naming.default_realm:
        return principal
    out = service
    if host is not None and not naming.remove_host:
        out += "/" + host
    if not naming.remove_realm:
        out += "@" + realm
    return out


@attrs.frozen
class KerberosAcceptor:
    """The service principal's acceptor credentials (from its keytab) and the naming rules."""

    principal: str
    credentials: Any = attrs.field(repr=False)  # gssapi.Credentials, usage "accept"
    naming: KerberosNaming


def acquire_acceptor(
    principal: str, keytab: str, *, remove_host: bool = False, remove_realm: bool = False
) -> KerberosAcceptor:
    """Read ``principal``'s keys from ``keytab`` (what ``Krb5LoginModule`` does at login).

    GssapiUnavailableError without python-gssapi; SaslError (one line) when the keytab
    cannot be read or has no key for the principal.
    """
    try:
        import gssapi
    except ImportError:
        raise GssapiUnavailableError(INSTALL_HINT) from None
    try:
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        creds = gssapi.Credentials(name=name, usage="accept", store={"keytab": keytab})
        # The keys are read now, not at the first client: a wrong keytab stops start-up.
        creds.inquire(name=True)
    except gssapi.exceptions.GSSError as exc:
        raise SaslError(f"cannot use the keytab {keytab} for {principal}: {_gss_message(exc)}") from None
    naming = KerberosNaming(_default_realm(gssapi), remove_host, remove_realm)
    return KerberosAcceptor(principal, creds, naming)


@attrs.frozen
class KerberosInitiator:
    """A member's own principal and its initiator credentials (keytab; tickets kept in memory)."""

    principal: str
    credentials: Any = attrs.field(repr=False)  # gssapi.Credentials, usage "initiate"


def acquire_initiator(principal: str, keytab: str) -> KerberosInitiator:
    """Credentials to authenticate as ``principal`` with the keys of ``keytab``.

    The ticket-granting ticket is asked for at the first authentication (and again when it
    expires) and kept in a memory credential cache of this process.
    GssapiUnavailableError without python-gssapi; SaslError when the keytab has no key for
    the principal.
    """
    try:
        import gssapi
    except ImportError:
        raise GssapiUnavailableError(INSTALL_HINT) from None
    import secrets

    try:
        name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
        store = {"client_keytab": keytab, "ccache": f"MEMORY:trizab-{secrets.token_hex(8)}"}
        creds = gssapi.Credentials(name=name, usage="initiate", store=store)
    except gssapi.exceptions.GSSError as exc:
        raise SaslError(f"cannot use the keytab {keytab} for {principal}: {_gss_message(exc)}") from None
    return KerberosInitiator(principal, creds)


def service_principal_for(configured: str, host: str) -> str:
    """``SecurityUtils.getServerPrincipal``: ``_HOST`` in the service principal becomes the
    (lower-cased) host of the member being connected to."""
    service, sep, rest = configured.partition("/")
    if not sep:
        return configured
    host_part, at, realm = rest.partition("@")
    if host_part == "_HOST":
        host_part = host.lower()
    return f"{service}/{host_part}{at}{realm}"


def quorum_authorizer(hosts: frozenset[str]) -> Callable[[str], str]:
    """``SaslQuorumServerCallbackHandler``: a learner's principal must be ``name/host@REALM``
    with a host of the ensemble (``authzHosts``, the server lines' hosts); its id is itself."""

    def authorize(principal: str) -> str:
        parts = re.split("[/@]", principal)
        if len(parts) != 3 or parts[1] not in hosts:
            raise SaslError(
                f"GSSAPI: {principal} is not authorized to connect (not name/host@REALM "
                "with a host of the server lines)"
            )
        return principal

    return authorize


def _default_realm(gssapi: Any) -> str:
    """The Kerberos configuration's default realm, "" without one (KerberosUtil.getDefaultRealm)."""
    try:
        name = gssapi.Name("x", gssapi.NameType.kerberos_principal)
        return str(name.canonicalize(gssapi.MechType.kerberos)).partition("@")[2]
    except gssapi.exceptions.GSSError:
        return ""


def _gss_message(exc: Exception) -> str:
    """GSSError's text on one line (major and minor status messages)."""
    gen = getattr(exc, "gen_message", None)
    text = gen() if callable(gen) else str(exc)
    return " ".join(str(text).split())


class GssapiServer:
    """One client's GSSAPI exchange; :meth:`evaluate` each token the client sends."""

    def __init__(self, acceptor: KerberosAcceptor, authorize: Callable[[str], str] | None = None) -> None:
        import gssapi  # already imported by acquire_acceptor: this only binds the name

        self._gssapi = gssapi
        naming = acceptor.naming
        # principal -> authorization id (SaslError: not authorized); clients: ZooKeeper's naming.
        self._authorize = authorize or (lambda principal: authorized_id(principal, naming))
        self._context = gssapi.SecurityContext(creds=acceptor.credentials, usage="accept")
        self._offered = False  # the security-layer offer was sent; the client's choice comes next
        self.complete = False
        self.authorization_id: str | None = None
        self.principal: str | None = None  # the client's Kerberos principal, once the context is up

    def evaluate(self, token: bytes) -> bytes | None:
        """The answer to ``token`` (None: no token), or SaslError."""
        if self.complete:
            raise SaslCompleteError("GSSAPI: authentication already complete")
        errors = self._gssapi.exceptions.GSSError
        try:
            if not self._context.complete:
                return self._step_context(token)
            if not self._offered:
                # GssKrb5Server.doHandshake1: the client's token after the context is empty.
                if token:
                    raise SaslError("GSSAPI: unexpected token after the security context was established")
                return self._offer()
            return self._choose(token)
        except errors as exc:
            raise SaslError(f"GSSAPI: {_gss_message(exc)}") from None

    def _step_context(self, token: bytes) -> bytes | None:
        if not token:
            raise SaslError("GSSAPI: empty initial token")
        out = self._context.step(token)
        if not self._context.complete:
            return out or b""
        self.principal = str(self._context.initiator_name)
        if out:
            return out
        return self._offer()

    def _offer(self) -> bytes:
        self._offered = True
        # RFC 4752 3.1: the layers the server supports, then its maximum buffer size (0: no layer).
        return self._context.wrap(bytes([LAYER_NONE, 0, 0, 0]), False).message

    def _choose(self, token: bytes) -> None:
        data = self._context.unwrap(token).message
        if len(data) < 4:
            raise SaslError("GSSAPI: the client's security-layer choice is too short")
        if data[0] != LAYER_NONE:
            raise SaslError(f"GSSAPI: the client chose security layer 0x{data[0]:02x}; only none is offered")
        assert self.principal is not None  # set when the context completed
        self.authorization_id = self._authorize(self.principal)
        self.complete = True
        return None


class GssapiClient:
    """A member's side of GSSAPI towards another: :meth:`initial`, then :meth:`evaluate` each
    server token until :attr:`complete`.  The first step talks to the KDC: run it in a thread."""

    def __init__(self, initiator: KerberosInitiator, service_principal: str) -> None:
        import gssapi  # already imported by acquire_initiator: this only binds the name

        self._gssapi = gssapi
        target = gssapi.Name(service_principal, gssapi.NameType.kerberos_principal)
        self._context = gssapi.SecurityContext(
            name=target, creds=initiator.credentials, usage="initiate", mech=gssapi.MechType.kerberos
        )
        self.complete = False

    def initial(self) -> bytes:
        try:
            return self._context.step() or b""
        except self._gssapi.exceptions.GSSError as exc:
            raise SaslError(f"GSSAPI: {_gss_message(exc)}") from None

    def evaluate(self, token: bytes) -> bytes:
        if self.complete:
            raise SaslCompleteError("GSSAPI: authentication already complete")
        try:
            if not self._context.complete:
                out = self._context.step(token)
                # Established: an empty token asks the server for its security-layer offer.
                return out or b""
            offer = self._context.unwrap(token).message
        except self._gssapi.exceptions.GSSError as exc:
            raise SaslError(f"GSSAPI: {_gss_message(exc)}") from None
        if len(offer) != 4 or not offer[0] & LAYER_NONE:
            raise SaslError("GSSAPI: the server does not offer the security layer none")
        self.complete = True
        # RFC 4752 3.1: layer none, no buffer, no authzid (the principal is the id).
        return self._context.wrap(bytes([LAYER_NONE, 0, 0, 0]), False).message
