"""SASL at start-up: the JAAS file read once, into the users and logins the server needs.

Theory of operation
-------------------
ZooKeeper's ``ServerCnxnFactory.configureSaslLogin`` and ``QuorumPeer.initialize``
read the JAAS file named by ``java.security.auth.login.config`` when the server
starts; a file that is missing or does not parse stops the server.  :func:`load_sasl`
does the same with :mod:`trizab.server.jaas` and gives :class:`SaslLogins`:

* ``client_users``: the ``user_<name>`` entries of the ``Server`` section
  (``zookeeper.sasl.serverconfig``), for the client port's DIGEST-MD5 server; None
  when the file has no such section (ZooKeeper then has no SASL server and answers a
  client's SASL packets without one).
* ``client_kerberos``: instead, when that section logs in with ``Krb5LoginModule``,
  the service principal's acceptor credentials read from its keytab, for the client
  port's GSSAPI server.  python-gssapi is imported only then; without it, or with a
  keytab that has no key for the principal, start-up stops.
* ``quorum_users`` / ``quorum_login``: the ``QuorumServer`` section's users and the
  ``QuorumLearner`` section's ``username``/``password``, needed only with
  ``quorum.auth.enableSasl=true`` (and then required, as ZooKeeper's login fails
  without them); ``quorum_kerberos`` / ``quorum_kerberos_login`` instead when those
  sections log in with ``Krb5LoginModule`` (GSSAPI between members).

Every failure is a :class:`StartupError` of one line that names the file and never a
password.  ``nonce`` is where DIGEST-MD5's random nonces come from.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import attrs

from trizab import config as cfg
from trizab.runtime.disk import StartupError
from trizab.server.jaas import (
    JaasError,
    JaasSection,
    KerberosLogin,
    digest_login,
    digest_users,
    is_kerberos,
    kerberos_login,
    parse_jaas,
)
from trizab.server.sasl_digest import SaslError
from trizab.server.sasl_gssapi import (
    GssapiUnavailableError,
    KerberosAcceptor,
    KerberosInitiator,
    acquire_acceptor,
    acquire_initiator,
)

__all__ = ["SaslLogins", "load_sasl", "nonce"]


def nonce(size: int) -> bytes:
    """Random bytes for a DIGEST-MD5 nonce or cnonce."""
    return secrets.token_bytes(size)


@attrs.frozen
class SaslLogins:
    client_users: dict[str, str] | None = attrs.field(default=None, repr=False)
    quorum_users: dict[str, str] = attrs.field(factory=dict, repr=False)
    quorum_login: tuple[str, str] | None = attrs.field(default=None, repr=False)
    client_kerberos: KerberosAcceptor | None = None
    # GSSAPI between members instead of DIGEST-MD5: QuorumServer / QuorumLearner with Krb5LoginModule.
    quorum_kerberos: KerberosAcceptor | None = None
    quorum_kerberos_login: KerberosInitiator | None = None


def _read(path: Path) -> dict[str, JaasSection]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StartupError(f"cannot read the JAAS file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise StartupError(f"the JAAS file {path} is not UTF-8 text") from None
    try:
        return parse_jaas(text)
    except JaasError as exc:
        raise StartupError(f"the JAAS file {path}: {exc}") from None


def load_sasl(config: cfg.ServerConfig) -> SaslLogins:
    """What the JAAS file gives this server (StartupError if it is needed and unusable)."""
    sasl = config.sasl
    path = sasl.jaas_login_config
    if path is None:
        if sasl.quorum_enable:
            raise StartupError(
                "quorum.auth.enableSasl=true needs a JAAS file with the QuorumServer and QuorumLearner "
                "sections (java.security.auth.login.config)"
            )
        if "sasl" in sasl.enforced_schemes:
            raise StartupError(
                "SASL authentication is enforced but no JAAS file names the users "
                "(java.security.auth.login.config)"
            )
        return SaslLogins()
    sections = _read(path)
    try:
        server = sections.get(sasl.server_section)
        if server is not None and is_kerberos(server):
            kerberos = _acceptor(sasl, kerberos_login(server), path, server.name)
            client_users = None
        else:
            kerberos = None
            client_users = digest_users(server) if server is not None else None
        if client_users is not None and "super" in client_users and sasl.super_password is not None:
            # SaslServerCallbackHandler: the property replaces the password of a JAAS user "super"
            # (and only of one the file lists).
            client_users["super"] = sasl.super_password
        quorum_users: dict[str, str] = {}
        quorum_login = None
        quorum_kerberos = quorum_kerberos_login = None
        if sasl.quorum_enable:
            for name in (sasl.quorum_server_login_context, sasl.quorum_learner_login_context):
                if name not in sections:
                    raise JaasError(f"no section {name} (quorum.auth.enableSasl=true needs it)")
            server_section = sections[sasl.quorum_server_login_context]
            learner_section = sections[sasl.quorum_learner_login_context]
            if is_kerberos(server_section):
                quorum_kerberos = _acceptor(sasl, kerberos_login(server_section), path, server_section.name)
            else:
                quorum_users = digest_users(server_section)
            if is_kerberos(learner_section):
                quorum_kerberos_login = _initiator(
                    kerberos_login(learner_section), path, learner_section.name
                )
            else:
                quorum_login = digest_login(learner_section)
    except JaasError as exc:
        raise StartupError(f"the JAAS file {path}: {exc}") from None
    if client_users is None and kerberos is None and "sasl" in sasl.enforced_schemes:
        raise StartupError(
            f"SASL authentication is enforced but the JAAS file {path} has no {sasl.server_section} section"
        )
    return SaslLogins(
        client_users, quorum_users, quorum_login, kerberos, quorum_kerberos, quorum_kerberos_login
    )


def _acceptor(sasl: cfg.SaslSettings, login: KerberosLogin, path: Path, section: str) -> KerberosAcceptor:
    """The GSSAPI acceptor for a Krb5LoginModule section (StartupError if it cannot be had)."""
    try:
        return acquire_acceptor(
            login.principal,
            login.keytab,
            remove_host=sasl.kerberos_remove_host,
            remove_realm=sasl.kerberos_remove_realm,
        )
    except (GssapiUnavailableError, SaslError) as exc:
        raise StartupError(f"the JAAS file {path}: section {section}: {exc}") from None


def _initiator(login: KerberosLogin, path: Path, section: str) -> KerberosInitiator:
    """A member's own Kerberos login, for GSSAPI towards the others (StartupError if unusable)."""
    try:
        return acquire_initiator(login.principal, login.keytab)
    except (GssapiUnavailableError, SaslError) as exc:
        raise StartupError(f"the JAAS file {path}: section {section}: {exc}") from None
