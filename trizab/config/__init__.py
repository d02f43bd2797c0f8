"""Server configuration: a ZooKeeper ``zoo.cfg`` read into one typed :class:`ServerConfig`.

Theory of operation
-------------------
``zoo.cfg`` is a Java properties file (``key=value`` or ``key: value`` lines,
``#``/``!`` comments, surrounding whitespace ignored), read the way
``QuorumPeerConfig.parseProperties`` reads it, so an existing Apache ZooKeeper
configuration starts a trizab server unchanged.  Each key ZooKeeper knows is
parsed into a typed attribute; a bad value stops start-up with one
:class:`ConfigError` line naming the key, the value and what is allowed.
Keys we do not know are logged as warnings and otherwise ignored (ZooKeeper
itself turns them into system properties), and keys that ZooKeeper knows but
trizab has no use for are logged at info level.  The AdminServer's ``admin.*`` keys
are read into ``admin_*`` attributes, the ``metricsProvider.*`` keys into ``metrics_*``.

Security settings fail closed: a TLS, SASL, Kerberos or authentication-enforcement
key that trizab does not implement stops start-up with one :class:`ConfigError`
line naming it (see ``_SECURITY_KEYS``), because ignoring it would run a server
less secure than its configuration says (plain text where TLS was asked for,
anonymous clients where authentication was required).  A value that turns the
feature off (``sslQuorum=false``, ``secureClientPort=0``) asks for nothing and
is accepted.

TLS towards clients is implemented with ZooKeeper 3.8's keys (``secureClientPort``,
``secureClientPortAddress``, ``client.portUnification``, ``client.certReload``,
the ``ssl.*`` keys of ``X509Util`` read into :class:`TlsSettings`, and
``X509AuthenticationProvider.superUser``); :mod:`trizab.runtime.tls` turns them
into an ``ssl.SSLContext``.  As in ZooKeeper, with ``secureClientPort`` set and
no ``clientPort`` there is no plain-text listener at all.  TLS between members
(``sslQuorum``, ``portUnification``, ``sslQuorumReloadCertFiles``) reads the same
keys under ``ssl.quorum.``.

SASL (DIGEST-MD5) reads ZooKeeper 3.8's keys too: ``authProvider.N=...SASLAuthenticationProvider``
(the ``sasl`` ACL scheme), ``superUser``, ``enforce.auth.enabled``/``enforce.auth.schemes``,
``sessionRequireClientSASLAuth`` and the ``quorum.auth.*`` keys, read into
:class:`SaslSettings`.  The users are in a JAAS file, named here by the key
``java.security.auth.login.config`` (ZooKeeper takes it as a JVM property; the CLI
also reads ``-Djava.security.auth.login.config=`` from ``SERVER_JVMFLAGS``/``JVMFLAGS``);
the runtime reads that file at start-up.

trizab adds ``storage=NAME`` and ``election=NAME`` plus ``storage.<opt>=...``
and ``election.<opt>=...``; those option values stay raw strings here because
each plugin declares and validates its own options (:mod:`trizab.plugin`).

Divergence from ZooKeeper: ``clientPortAddress`` and ``metricsProvider.httpHost``
default to ``127.0.0.1`` rather than every interface, so a server started without
a config is not exposed to the network by accident.

Layout: :mod:`~trizab.config.records` (the records and :class:`ConfigError`),
:mod:`~trizab.config.values` (the value parsers), :mod:`~trizab.config.keys` (the key
tables, refused and ignored keys), :mod:`~trizab.config.parsing` (:func:`parse`, the checks,
:func:`load`).  Everything is imported from here, ``trizab.config``, as before the split
(the tables and parsers too, which the tests and the docs check read).
"""

from __future__ import annotations

# Every name the single-module trizab.config had is imported here so that it stays importable
# from trizab.config (the private tables and parsers too: the tests and tests/docs read them).
# ruff: noqa: F401
from trizab.config.keys import (
    _BUILTIN_AUTH_PROVIDERS,
    _IGNORED_KEYS,
    _IGNORED_PREFIXES,
    _KEYS,
    _SASL_KEYS,
    _SECURITY_KEYS,
    _SECURITY_PREFIXES,
    _STORE_EXTENSIONS,
    _TLS_KEYS,
    _TLS_SUFFIXES,
    SASL_AUTH_PROVIDER,
    X509_AUTH_PROVIDER,
    _any_switch,
    _any_switch_or_int,
    _never,
    _off,
    _security_setting,
)
from trizab.config.parsing import (
    _dynamic_servers,
    _properties,
    _resolve_types,
    _store_type_of,
    _validate,
    _validate_sasl,
    _validate_tls,
    load,
    log,
    parse,
)
from trizab.config.records import (
    ALL_4LW,
    DEFAULT_4LW_WHITELIST,
    DEFAULT_TLS_PROTOCOL,
    STORE_TYPES,
    TLS_PROTOCOLS,
    ConfigError,
    QuorumServer,
    SaslSettings,
    ServerConfig,
    TlsSettings,
)
from trizab.config.values import (
    _SERVER_RE,
    METRICS_PROVIDERS,
    _bool,
    _client_auth,
    _command_url,
    _fraction,
    _host,
    _int,
    _jute_int,
    _metrics_provider,
    _name_list,
    _nonempty,
    _path,
    _peer_type,
    _plugin_name,
    _port,
    _protocol_list,
    _scheme_list,
    _secure_port,
    _server_line,
    _store_type,
    _tls_protocol,
    _whitelist,
)

__all__ = [
    "DEFAULT_4LW_WHITELIST",
    "ConfigError",
    "QuorumServer",
    "SaslSettings",
    "ServerConfig",
    "TlsSettings",
    "load",
    "parse",
]
