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
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs

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

log = logging.getLogger(__name__)

# Every four-letter word ZooKeeper 3.8 knows (FourLetterCommands.java).
ALL_4LW = frozenset(
    "conf cons crst dirs dump envi gtmk ruok stmk srst srvr stat wchc wchp wchs mntr isro hash".split()
)
# ZooKeeper 3.5.3+: only srvr unless configured (isro is added with readonlymode.enabled).
DEFAULT_4LW_WHITELIST = frozenset({"srvr"})


class ConfigError(Exception):
    """A configuration mistake; ``str()`` is one line fit to print before exiting."""


@attrs.frozen
class QuorumServer:
    """``server.N=host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]``."""

    sid: int
    host: str
    quorum_port: int
    election_port: int
    role: str = "participant"
    client_host: str | None = None
    client_port: int | None = None


# ssl.keyStore.type / ssl.trustStore.type: KeyStoreFileType (BCFKS needs BouncyCastle; not here).
STORE_TYPES = ("JKS", "PEM", "PKCS12")
# X509Util.DEFAULT_PROTOCOL in ZooKeeper 3.8: the SSLContext protocol, and the only one enabled
# unless ssl.enabledProtocols says otherwise.
DEFAULT_TLS_PROTOCOL = "TLSv1.2"
TLS_PROTOCOLS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")


@attrs.frozen
class TlsSettings:
    """ZooKeeper's ``ssl.*`` keys (``X509Util``) for one kind of socket; defaults are ZooKeeper's.

    Passwords are kept out of ``repr`` (and so out of logs and tracebacks).
    """

    key_store_location: Path | None = None
    key_store_password: str = attrs.field(default="", repr=False)
    key_store_password_path: Path | None = None
    key_store_type: str | None = None  # None: from the file name's extension, as ZooKeeper does
    trust_store_location: Path | None = None
    trust_store_password: str = attrs.field(default="", repr=False)
    trust_store_password_path: Path | None = None
    trust_store_type: str | None = None
    client_auth: str = "need"  # none, want or need (ZooKeeper's ClientAuth; unset means need)
    protocol: str = DEFAULT_TLS_PROTOCOL
    enabled_protocols: tuple[str, ...] | None = None  # None: just ``protocol``
    cipher_suites: tuple[str, ...] | None = None  # None: ZooKeeper's default list
    handshake_detection_timeout_ms: int = 5000
    # Only the quorum verifies the peer's host against its certificate (QuorumX509Util); the
    # client port never checks a client's host name (ClientX509Util).
    hostname_verification: bool = True
    allow_reverse_dns_lookup: bool = True


@attrs.frozen
class SaslSettings:
    """ZooKeeper's SASL keys: for clients (``ZooKeeperServer``, ``AuthenticationHelper``) and members."""

    # The JAAS file (ZooKeeper: -Djava.security.auth.login.config); None: no SASL users.
    jaas_login_config: Path | None = None
    # zookeeper.sasl.serverconfig: the JAAS section with the client users.
    server_section: str = "Server"
    # authProvider.N=org.apache.zookeeper.server.auth.SASLAuthenticationProvider: the sasl scheme.
    auth_provider: bool = False
    # zookeeper.superUser (and zookeeper.superUser.*): sasl ids that are also super.
    super_users: tuple[str, ...] = ()
    # zookeeper.SASLAuthenticationProvider.superPassword: the password of the JAAS user "super".
    super_password: str | None = attrs.field(default=None, repr=False)
    enforce_auth_enabled: bool = False
    enforce_auth_schemes: tuple[str, ...] = ()
    session_require_client_sasl_auth: bool = False
    # quorum.auth.*: SASL between members (QuorumAuth).
    quorum_enable: bool = False
    quorum_learner_require: bool = False
    quorum_server_require: bool = False
    quorum_learner_login_context: str = "QuorumLearner"
    quorum_server_login_context: str = "QuorumServer"
    # kerberos.removeHostFromPrincipal / removeRealmFromPrincipal: how a GSSAPI client's
    # principal becomes its sasl id (SaslServerCallbackHandler).
    kerberos_remove_host: bool = False
    kerberos_remove_realm: bool = False
    # quorum.auth.kerberos.servicePrincipal: the members' principal with GSSAPI between members
    # ("_HOST": the host of the member connected to).
    quorum_kerberos_service_principal: str = "zkquorum/localhost"

    @property
    def enforced_schemes(self) -> tuple[str, ...]:
        """The schemes a session must have before its first request; () means no enforcement.

        ``AuthenticationHelper``: sessionRequireClientSASLAuth=true means enforce.auth with sasl.
        """
        if self.session_require_client_sasl_auth:
            return ("sasl",)
        return self.enforce_auth_schemes if self.enforce_auth_enabled else ()


@attrs.frozen
class ServerConfig:
    """Everything a trizab server needs to start; defaults are ZooKeeper's unless noted."""

    tick_time: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    data_dir: Path | None = None
    data_log_dir: Path | None = None
    # ZooKeeper's dynamic configuration file: its server.N lines join zoo.cfg's (read, never written).
    dynamic_config_file: Path | None = None
    # None: no plain-text listener (ZooKeeper: secureClientPort set and clientPort not).
    client_port: int | None = 2181
    client_port_address: str = "127.0.0.1"
    # None: no TLS listener.  Like clientPortAddress, the address defaults to 127.0.0.1.
    secure_client_port: int | None = None
    secure_client_port_address: str = "127.0.0.1"
    # client.portUnification: the plain clientPort also accepts TLS (sniffed from the first byte).
    client_port_unification: bool = False
    # client.certReload: reload the key and trust stores when their files change.
    client_cert_reload: bool = False
    client_tls: TlsSettings = attrs.Factory(TlsSettings)
    # authProvider.N=...X509AuthenticationProvider (a secure port registers it too, as in ZooKeeper).
    x509_auth_provider: bool = False
    x509_super_user: str | None = None
    sasl: SaslSettings = attrs.Factory(SaslSettings)
    # TLS between members: sslQuorum (outgoing quorum and election connections use TLS, and
    # the ports take only TLS unless portUnification), the ssl.quorum.* keys, and
    # sslQuorumReloadCertFiles.
    ssl_quorum: bool = False
    quorum_port_unification: bool = False
    ssl_quorum_reload: bool = False
    quorum_tls: TlsSettings = attrs.Factory(TlsSettings)
    max_client_cnxns: int = 60
    # Connections over every address (ZooKeeper 3.6's maxCnxns); 0: no limit.
    max_cnxns: int = 0
    # Requests received and not yet answered, over every connection: past it, a connection
    # with requests in flight is not read until one is answered (ZooKeeper's
    # globalOutstandingLimit); 0: no limit.
    global_outstanding_limit: int = 1000
    # trizab only: requests in flight on one connection before it is no longer read; 0: no limit.
    connection_outstanding_limit: int = 0
    # trizab only: reply bytes queued for a connection that is not reading them before it is
    # dropped.
    connection_max_outbound_bytes: int = 32 * 1024 * 1024
    # Connection-rate throttling (ZooKeeper 3.6's BlueThrottle token bucket): each session
    # request takes a token, connectionTokenFillCount come back every connectionTokenFillTime ms
    # up to connectionMaxTokens; a request that finds none is closed.  0 tokens: off.
    connection_max_tokens: int = 0
    connection_token_fill_time: int = 1
    connection_token_fill_count: int = 1
    # BlueThrottle's probabilistic dropping on top of the bucket; -1 ms: off (ZooKeeper's default).
    connection_freeze_time: int = -1
    connection_drop_increase: float = 0.02
    connection_drop_decrease: float = 0.002
    connection_decrease_ratio: float = 0.0
    # -1 means "derive from tickTime" (2x and 20x), as in ZooKeeper.
    min_session_timeout_raw: int = -1
    max_session_timeout_raw: int = -1
    snap_count: int = 100_000
    autopurge_snap_retain_count: int = 3
    autopurge_purge_interval: int = 0  # hours; 0 disables purging
    jute_max_buffer: int = 0xFFFFF
    # None: ZooKeeper's default whitelist (srvr, plus isro in read-only mode).
    four_letter_whitelist: frozenset[str] | None = None
    servers: dict[int, QuorumServer] = attrs.Factory(dict)
    peer_type: str = "participant"
    read_only_mode: bool = False
    reconfig_enabled: bool = False
    standalone_enabled: bool = True
    force_sync: bool = True
    extended_types_enabled: bool = False
    # DigestAuthenticationProvider.superDigest: out of repr, like the TLS passwords.
    super_digest: str | None = attrs.field(default=None, repr=False)
    # ContainerManager's period (ZooKeeper's znode.container.checkIntervalMs system property).
    container_check_interval_ms: int = 60_000
    # trizab only: also reap a container the moment its last child goes (ZooKeeper waits for
    # the periodic check); false behaves exactly like ZooKeeper.
    reap_containers_immediately: bool = True
    # The AdminServer (ZooKeeper's admin.* keys): on by default as in ZooKeeper, but on
    # 127.0.0.1 rather than every interface; a port already taken is logged, not fatal.
    admin_enable_server: bool = True
    admin_server_address: str = "127.0.0.1"
    admin_server_port: int = 8080
    admin_command_url: str = "/commands"
    admin_idle_timeout_ms: int = 30_000
    # ZooKeeper 3.9's snapshot command, and the least time between two of them.
    admin_snapshot_enabled: bool = True
    admin_snapshot_interval_ms: int = 300_000
    # metricsProvider.*: "prometheus" serves /metrics (PrometheusMetricsProvider), None does not
    # (ZooKeeper's DefaultMetricsProvider: mntr only).  The address defaults to 127.0.0.1, not
    # ZooKeeper's 0.0.0.0 (as clientPortAddress); exportJvmInfo exports the Python process's.
    metrics_provider: str | None = None
    metrics_http_host: str = "127.0.0.1"
    metrics_http_port: int = 7000
    metrics_export_process_info: bool = True
    # trizab plugins; storage_name None means "txnlog if installed, else memory".
    storage_name: str | None = None
    storage_options: dict[str, str] = attrs.Factory(dict)
    election_name: str | None = None
    election_options: dict[str, str] = attrs.Factory(dict)
    # trizab only: readReplicas=N starts N sibling processes serving reads on the same client
    # port, observers of this (standalone) server over loopback (trizab.runtime.replicas).
    read_replicas: int = 0
    # Set by the launcher, never by a key: this process is one of those read replicas.
    is_read_replica: bool = False
    # dataDir/myid; 0 for a standalone server without one.
    server_id: int = 0
    # Where the config came from (for `conf` and log lines); None for defaults.
    source: Path | None = None

    @property
    def min_session_timeout(self) -> int:
        return self.min_session_timeout_raw if self.min_session_timeout_raw >= 0 else 2 * self.tick_time

    @property
    def max_session_timeout(self) -> int:
        return self.max_session_timeout_raw if self.max_session_timeout_raw >= 0 else 20 * self.tick_time

    @property
    def effective_4lw_whitelist(self) -> frozenset[str]:
        if self.four_letter_whitelist is not None:
            return self.four_letter_whitelist
        return DEFAULT_4LW_WHITELIST | ({"isro"} if self.read_only_mode else set())

    @property
    def client_tls_enabled(self) -> bool:
        """Whether some client listener speaks TLS (a secure port, or a unified plain port)."""
        return self.secure_client_port is not None or (
            self.client_port_unification and self.client_port is not None
        )

    @property
    def x509_enabled(self) -> bool:
        """Whether the x509 scheme exists (ZooKeeper's configureSSLAuth, or an authProvider line)."""
        return self.x509_auth_provider or self.secure_client_port is not None or self.client_port_unification

    def evolve(self, **changes: Any) -> ServerConfig:
        return attrs.evolve(self, **changes)


# ---------------------------------------------------------------------------
# Value parsers: each returns the value or raises ValueError("expected ...").


def _int(minimum: int | None = None, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw, 10)
        except ValueError:
            raise ValueError("expected an integer") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"expected an integer >= {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"expected an integer <= {maximum}")
        return value

    return parse


def _jute_int(raw: str) -> int:
    # jute.maxbuffer is read with Integer.decode in ZooKeeper, so 0xfffff works too.
    try:
        value = int(raw, 0)
    except ValueError:
        raise ValueError("expected an integer (decimal or 0x hex)") from None
    if value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _fraction(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError("expected a number") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError("expected a number from 0 to 1")
    return value


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in ("yes", "true", "on", "1"):
        return True
    if value in ("no", "false", "off", "0"):
        return False
    raise ValueError("expected yes/no or true/false")


def _path(raw: str) -> Path:
    if not raw:
        raise ValueError("expected a directory path")
    return Path(raw)


def _whitelist(raw: str) -> frozenset[str]:
    words = {w.strip() for w in raw.split(",") if w.strip()}
    if "*" in words:
        return ALL_4LW
    unknown = sorted(words - ALL_4LW)
    if unknown:
        # ZooKeeper ignores unknown words with a log line; a typo here silently
        # disables a command, so say so but do not stop.
        log.warning("4lw.commands.whitelist: ignoring unknown commands %s", ", ".join(unknown))
    return frozenset(words & ALL_4LW)


def _command_url(raw: str) -> str:
    if not raw.startswith("/") or any(c in raw for c in "?# "):
        raise ValueError("expected a URL path starting with /")
    return raw.rstrip("/") or "/"


def _peer_type(raw: str) -> str:
    value = raw.lower()
    if value not in ("participant", "observer"):
        raise ValueError("expected participant or observer")
    return value


# metricsProvider.className values: the Prometheus provider is served, ZooKeeper's built-in
# ones (mntr only, or nothing) need no endpoint; any other class does not exist here.
METRICS_PROVIDERS: dict[str, str | None] = {
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider": "prometheus",
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider": None,
    "org.apache.zookeeper.metrics.impl.NullMetricsProvider": None,
}


def _metrics_provider(raw: str) -> str | None:
    if raw not in METRICS_PROVIDERS:
        # ZooKeeper: "metrics provider class was not found" (QuorumPeerConfig.parseProperties).
        known = ", ".join(METRICS_PROVIDERS)
        raise ValueError(f"metrics provider class not available; expected one of {known}")
    return METRICS_PROVIDERS[raw]


def _host(raw: str) -> str:
    if not raw:
        raise ValueError("expected a host name or address")
    return raw


def _plugin_name(raw: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", raw):
        raise ValueError("expected a plugin name (see `trizab plugins`)")
    return raw


_SERVER_RE = re.compile(
    r"(?P<host>\[[^\]]+\]|[^:;\s]+):(?P<qport>\d+):(?P<eport>\d+)(?::(?P<role>[A-Za-z]+))?"
    r"(?:;(?:(?P<chost>[^:;\s]+):)?(?P<cport>\d+))?"
)


def _port(raw: str) -> int:
    value = int(raw)
    if not 0 < value < 65536:
        raise ValueError(f"port {value} out of range 1..65535")
    return value


def _server_line(sid: int, raw: str) -> QuorumServer:
    m = _SERVER_RE.fullmatch(raw)
    if m is None:
        raise ValueError(
            "expected host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]"
        )
    role = (m["role"] or "participant").lower()
    if role not in ("participant", "observer"):
        raise ValueError("role must be participant or observer")
    return QuorumServer(
        sid=sid,
        host=m["host"].strip("[]"),
        quorum_port=_port(m["qport"]),
        election_port=_port(m["eport"]),
        role=role,
        client_host=m["chost"],
        client_port=_port(m["cport"]) if m["cport"] else None,
    )


def _secure_port(raw: str) -> int | None:
    # secureClientPort=0 is ZooKeeper's "not set".
    value = _int(0, 65535)(raw)
    return value or None


def _store_type(raw: str) -> str | None:
    if not raw:
        return None  # empty: from the file name, as when unset
    value = raw.upper()
    if value not in STORE_TYPES:
        raise ValueError("expected JKS, PEM or PKCS12")
    return value


def _client_auth(raw: str) -> str:
    value = raw.lower() or "need"  # X509Util.ClientAuth.fromPropertyValue: empty means NEED
    if value not in ("none", "want", "need"):
        raise ValueError("expected none, want or need")
    return value


def _tls_protocol(raw: str) -> str:
    if raw not in (*TLS_PROTOCOLS, "TLS"):
        raise ValueError(f"expected one of {', '.join(TLS_PROTOCOLS)} or TLS")
    return raw


def _protocol_list(raw: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values or any(v not in TLS_PROTOCOLS for v in values):
        raise ValueError(f"expected a comma-separated list of {', '.join(TLS_PROTOCOLS)}")
    return values


def _name_list(raw: str) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    if not values:
        raise ValueError("expected a comma-separated list of cipher suite names")
    return values


def _nonempty(raw: str) -> str:
    if not raw:
        raise ValueError("expected a value")
    return raw


# key in zoo.cfg -> (attribute, parser).  A key ZooKeeper reads as a Java system property is
# accepted under its zoo.cfg name, its property name, and the property name without "zookeeper.":
# ZooKeeper's QuorumPeerConfig turns an unknown zoo.cfg key into the property "zookeeper.<key>",
# which is how its documented connectionMaxTokens & co. actually take effect there
# (connection_throttle_tokens=...; a zoo.cfg line connectionMaxTokens=... sets a property
# BlueThrottle never reads).
_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "tickTime": ("tick_time", _int(1)),
    "initLimit": ("init_limit", _int(1)),
    "syncLimit": ("sync_limit", _int(1)),
    "dataDir": ("data_dir", _path),
    "dataLogDir": ("data_log_dir", _path),
    "dynamicConfigFile": ("dynamic_config_file", _path),
    "clientPort": ("client_port", _int(0, 65535)),
    "clientPortAddress": ("client_port_address", str),
    "metricsProvider.className": ("metrics_provider", _metrics_provider),
    "metricsProvider.httpHost": ("metrics_http_host", _host),
    # 0: any free port (the log line and `trizab` tests say which).
    "metricsProvider.httpPort": ("metrics_http_port", _int(0, 65535)),
    "metricsProvider.exportJvmInfo": ("metrics_export_process_info", _bool),
    "maxClientCnxns": ("max_client_cnxns", _int(0)),
    "maxCnxns": ("max_cnxns", _int(0)),
    "zookeeper.maxCnxns": ("max_cnxns", _int(0)),
    "globalOutstandingLimit": ("global_outstanding_limit", _int(0)),
    "zookeeper.globalOutstandingLimit": ("global_outstanding_limit", _int(0)),
    "connectionOutstandingLimit": ("connection_outstanding_limit", _int(0)),
    "connectionMaxOutboundBytes": ("connection_max_outbound_bytes", _int(1)),
    "connectionMaxTokens": ("connection_max_tokens", _int(0)),
    "zookeeper.connection_throttle_tokens": ("connection_max_tokens", _int(0)),
    "connection_throttle_tokens": ("connection_max_tokens", _int(0)),
    "connectionTokenFillTime": ("connection_token_fill_time", _int(1)),
    "zookeeper.connection_throttle_fill_time": ("connection_token_fill_time", _int(1)),
    "connection_throttle_fill_time": ("connection_token_fill_time", _int(1)),
    "connectionTokenFillCount": ("connection_token_fill_count", _int(1)),
    "zookeeper.connection_throttle_fill_count": ("connection_token_fill_count", _int(1)),
    "connection_throttle_fill_count": ("connection_token_fill_count", _int(1)),
    "connectionFreezeTime": ("connection_freeze_time", _int(-1)),
    "zookeeper.connection_throttle_freeze_time": ("connection_freeze_time", _int(-1)),
    "connection_throttle_freeze_time": ("connection_freeze_time", _int(-1)),
    "connectionDropIncrease": ("connection_drop_increase", _fraction),
    "zookeeper.connection_throttle_drop_increase": ("connection_drop_increase", _fraction),
    "connection_throttle_drop_increase": ("connection_drop_increase", _fraction),
    "connectionDropDecrease": ("connection_drop_decrease", _fraction),
    "zookeeper.connection_throttle_drop_decrease": ("connection_drop_decrease", _fraction),
    "connection_throttle_drop_decrease": ("connection_drop_decrease", _fraction),
    "connectionDecreaseRatio": ("connection_decrease_ratio", _fraction),
    "zookeeper.connection_throttle_decrease_ratio": ("connection_decrease_ratio", _fraction),
    "connection_throttle_decrease_ratio": ("connection_decrease_ratio", _fraction),
    "minSessionTimeout": ("min_session_timeout_raw", _int(-1)),
    "maxSessionTimeout": ("max_session_timeout_raw", _int(-1)),
    "snapCount": ("snap_count", _int(2)),
    "autopurge.snapRetainCount": ("autopurge_snap_retain_count", _int(1)),
    "autopurge.purgeInterval": ("autopurge_purge_interval", _int(0)),
    "jute.maxbuffer": ("jute_max_buffer", _jute_int),
    "4lw.commands.whitelist": ("four_letter_whitelist", _whitelist),
    "peerType": ("peer_type", _peer_type),
    "readonlymode.enabled": ("read_only_mode", _bool),
    "reconfigEnabled": ("reconfig_enabled", _bool),
    "standaloneEnabled": ("standalone_enabled", _bool),
    "forceSync": ("force_sync", _bool),
    "zookeeper.forceSync": ("force_sync", _bool),
    "extendedTypesEnabled": ("extended_types_enabled", _bool),
    "zookeeper.extendedTypesEnabled": ("extended_types_enabled", _bool),
    "DigestAuthenticationProvider.superDigest": ("super_digest", str),
    "zookeeper.DigestAuthenticationProvider.superDigest": ("super_digest", str),
    "znode.container.checkIntervalMs": ("container_check_interval_ms", _int(1)),
    "reapContainersImmediately": ("reap_containers_immediately", _bool),
    "readReplicas": ("read_replicas", _int(0, 64)),
    "storage": ("storage_name", _plugin_name),
    "election": ("election_name", _plugin_name),
}
# The AdminServer's keys, under their zoo.cfg names and their system property names.
for _name, _entry in {
    "admin.enableServer": ("admin_enable_server", _bool),
    "admin.serverAddress": ("admin_server_address", _nonempty),
    "admin.serverPort": ("admin_server_port", _int(0, 65535)),
    "admin.commandURL": ("admin_command_url", _command_url),
    "admin.idleTimeout": ("admin_idle_timeout_ms", _int(1)),
    "admin.snapshot.enabled": ("admin_snapshot_enabled", _bool),
    "admin.snapshot.intervalInMS": ("admin_snapshot_interval_ms", _int(0)),
}.items():
    _KEYS[_name] = _KEYS["zookeeper." + _name] = _entry
del _name, _entry

# TLS towards clients and between members; like the security keys below, these match with or
# without "zookeeper.".
_TLS_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "secureClientPort": ("secure_client_port", _secure_port),
    "secureClientPortAddress": ("secure_client_port_address", _nonempty),
    "client.portUnification": ("client_port_unification", _bool),
    "client.certReload": ("client_cert_reload", _bool),
    "X509AuthenticationProvider.superUser": ("x509_super_user", str),
    "sslQuorum": ("ssl_quorum", _bool),
    "portUnification": ("quorum_port_unification", _bool),
    "sslQuorumReloadCertFiles": ("ssl_quorum_reload", _bool),
}


def _scheme_list(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())


# SASL keys (with or without "zookeeper."): key -> (SaslSettings attribute, parser).
_SASL_KEYS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "java.security.auth.login.config": ("jaas_login_config", _path),
    "sasl.serverconfig": ("server_section", _nonempty),
    "SASLAuthenticationProvider.superPassword": ("super_password", str),
    "enforce.auth.enabled": ("enforce_auth_enabled", _bool),
    "enforce.auth.schemes": ("enforce_auth_schemes", _scheme_list),
    "sessionRequireClientSASLAuth": ("session_require_client_sasl_auth", _bool),
    "quorum.auth.enableSasl": ("quorum_enable", _bool),
    "quorum.auth.learnerRequireSasl": ("quorum_learner_require", _bool),
    "quorum.auth.serverRequireSasl": ("quorum_server_require", _bool),
    "quorum.auth.learner.saslLoginContext": ("quorum_learner_login_context", _nonempty),
    "quorum.auth.server.saslLoginContext": ("quorum_server_login_context", _nonempty),
    "kerberos.removeHostFromPrincipal": ("kerberos_remove_host", _bool),
    "kerberos.removeRealmFromPrincipal": ("kerberos_remove_realm", _bool),
    "quorum.auth.kerberos.servicePrincipal": ("quorum_kerberos_service_principal", _nonempty),
}
SASL_AUTH_PROVIDER = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider"

# ssl.<suffix> (X509Util's keys) -> (TlsSettings attribute, parser).
_TLS_SUFFIXES: dict[str, tuple[str, Callable[[str], Any]]] = {
    "keyStore.location": ("key_store_location", _path),
    "keyStore.password": ("key_store_password", str),
    "keyStore.passwordPath": ("key_store_password_path", _path),
    "keyStore.type": ("key_store_type", _store_type),
    "trustStore.location": ("trust_store_location", _path),
    "trustStore.password": ("trust_store_password", str),
    "trustStore.passwordPath": ("trust_store_password_path", _path),
    "trustStore.type": ("trust_store_type", _store_type),
    "clientAuth": ("client_auth", _client_auth),
    "protocol": ("protocol", _tls_protocol),
    "enabledProtocols": ("enabled_protocols", _protocol_list),
    "ciphersuites": ("cipher_suites", _name_list),
    "handshakeDetectionTimeoutMillis": ("handshake_detection_timeout_ms", _int(1)),
    "hostnameVerification": ("hostname_verification", _bool),
    "allowReverseDnsLookup": ("allow_reverse_dns_lookup", _bool),
}
# Store file extensions ZooKeeper 3.8 recognises when the type is not set (KeyStoreFileType).
_STORE_EXTENSIONS = {".jks": "JKS", ".pem": "PEM", ".p12": "PKCS12"}


def _off(raw: str) -> bool:
    """A switch set to false: the feature is off, which is what trizab does anyway."""
    return not _bool(raw)


def _never(raw: str) -> bool:
    return False


def _any_switch_or_int(raw: str) -> bool:
    _int(0)(raw)
    return True


def _any_switch(raw: str) -> bool:
    """A yes/no setting with nothing to do either way here (a bad value is still refused)."""
    _bool(raw)
    return True


_BUILTIN_AUTH_PROVIDERS = frozenset(
    f"org.apache.zookeeper.server.auth.{name}AuthenticationProvider" for name in ("Digest", "IP")
)
X509_AUTH_PROVIDER = "org.apache.zookeeper.server.auth.X509AuthenticationProvider"

# Security settings of Apache ZooKeeper 3.8 that trizab does not implement (zookeeperAdmin.md:
# "Encryption, Authentication, Authorization Options", "Quorum TLS", the quorum SASL options, and
# enforce.auth.* from ZOOKEEPER-3561).  Accepting one and ignoring it would run a server less
# secure than its configuration says, so each stops start-up unless its value is harmless: the
# predicate says which values turn the feature off or name something trizab does implement.
# Keys match with or without the "zookeeper." prefix of their Java system property.  This is
# the one list; README.md's configuration section states the rule.
_SECURITY_KEYS: dict[str, Callable[[str], bool]] = {
    # TLS is implemented (_TLS_KEYS, _TLS_SUFFIXES); of the other ssl.* keys these ask for
    # nothing trizab does not do, or are refused when on (no CRL or OCSP checks).
    "ssl.authProvider": lambda raw: raw == "x509",
    "ssl.crl": _off,
    "ssl.ocsp": _off,
    "ssl.quorum.crl": _off,
    "ssl.quorum.ocsp": _off,
    # Authentication: trizab has digest, ip, x509 and sasl (DIGEST-MD5 and, for clients,
    # GSSAPI: _SASL_KEYS) built in, nothing else (no ensemble provider).
    "DigestAuthenticationProvider.enabled": _bool,
    "DigestAuthenticationProvider.digestAlg": lambda raw: raw.upper() in ("SHA1", "SHA-1"),
    "ensembleAuthName": _never,
    # The Kerberos ticket renewal periods: a GSSAPI server accepts with the keys of its keytab
    # and holds no ticket to renew.
    "jaasLoginRenew": _any_switch_or_int,
    "kerberos.minReLoginTimeMs": _any_switch_or_int,
    # Host name canonicalization (DNS) of the server lines for GSSAPI between members: not
    # implemented, the hosts are used as written.
    "kerberos.canonicalizeHostNames": _off,
    # KerberosName's auth_to_local rules: only ZooKeeper's default rule is implemented.
    "security.auth_to_local": lambda raw: raw.strip() == "DEFAULT",
    # The AdminServer over HTTPS (and its client certificates): not implemented.
    "admin.forceHttps": _off,
    "admin.portUnification": _off,
    "admin.needClientAuth": _off,
}
_SECURITY_PREFIXES: dict[str, Callable[[str], bool]] = {
    # ssl.context.supplier.class (a Java class), ssl.sslProvider, ...: not implemented.
    "ssl.": _never,
    # authProvider.N=class: digest and ip are built in (ZooKeeper always loads them too), x509 is
    # parsed above.
    "authProvider.": lambda raw: raw in _BUILTIN_AUTH_PROVIDERS,
    # quorum.auth.* keys other than _SASL_KEYS' (none in ZooKeeper 3.8; a future one).
    "quorum.auth.": _never,
    "kerberos.": _never,
    "X509AuthenticationProvider.": _never,
}


def _security_setting(key: str) -> Callable[[str], bool] | None:
    """The harmless-value predicate of a security key trizab does not implement, else None."""
    name = key.removeprefix("zookeeper.")
    if name in _SECURITY_KEYS:
        return _SECURITY_KEYS[name]
    for prefix, harmless in _SECURITY_PREFIXES.items():
        if name.startswith(prefix):
            return harmless
    return None


# Keys Apache ZooKeeper understands that trizab accepts and ignores (logged at info).
# serverCnxnFactory stays here: Netty without TLS serves the same protocol as NIO, and Netty with
# TLS needs secureClientPort or client.portUnification, which are refused above.
_IGNORED_PREFIXES = (
    "admin.",
    "metricsProvider.",
    "quorum.",
    "zookeeper.",
    "group.",
    "weight.",
    "serverCnxnFactory",
    "jvm.",
)
_IGNORED_KEYS = frozenset(
    {
        "clientPortListenBacklog",
        "electionAlg",
        "electionPortBindRetry",
        "localSessionsEnabled",
        "localSessionsUpgradingEnabled",
        "quorumListenOnAllIPs",
        "maxSessionTimeoutMultiplier",
        "connectToLearnerMasterLimit",
        "syncEnabled",
        "multiAddress.enabled",
        "multiAddress.reachabilityCheckEnabled",
        "multiAddress.reachabilityCheckTimeoutMs",
        "observerMasterPort",
        "metricsProvider",
        "preAllocSize",
        "maxResponseCacheSize",
        "learnerMasterConnectionLimit",
        "netty.server.outstandingHandshake.limit",
        "fsync.warningthresholdms",
        "txnLogSizeLimitInKb",
        "snapSizeLimitInKb",
        "skipACL",
        "audit.enable",
        "version",
    }
)


def parse(text: str, *, source: Path | None = None, read_myid: bool = True) -> ServerConfig:
    """Parse the text of a zoo.cfg.  ``source`` is used for messages and relative dataDirs."""
    values: dict[str, Any] = {}
    servers: dict[int, QuorumServer] = {}
    storage_options: dict[str, str] = {}
    election_options: dict[str, str] = {}
    tls: dict[str, Any] = {}
    quorum_tls: dict[str, Any] = {}
    sasl: dict[str, Any] = {}
    super_users: list[str] = []
    where = str(source) if source is not None else "config"
    for lineno, key, raw in _properties(text, where):
        name = key.removeprefix("zookeeper.")
        try:
            if key in _KEYS:
                attr, parser = _KEYS[key]
                values[attr] = parser(raw)
            elif name in _TLS_KEYS:
                attr, parser = _TLS_KEYS[name]
                values[attr] = parser(raw)
            elif name.startswith("ssl.quorum.") and name[11:] in _TLS_SUFFIXES:
                attr, parser = _TLS_SUFFIXES[name[11:]]
                quorum_tls[attr] = parser(raw)
            elif name.startswith("ssl.") and name[4:] in _TLS_SUFFIXES:
                attr, parser = _TLS_SUFFIXES[name[4:]]
                tls[attr] = parser(raw)
            elif name.startswith("authProvider.") and raw == X509_AUTH_PROVIDER:
                values["x509_auth_provider"] = True
            elif name.startswith("authProvider.") and raw == SASL_AUTH_PROVIDER:
                sasl["auth_provider"] = True
            elif name in _SASL_KEYS:
                attr, parser = _SASL_KEYS[name]
                sasl[attr] = parser(raw)
            elif name == "superUser" or name.startswith("superUser."):
                # ZooKeeperServer.isSaslSuperUser: zookeeper.superUser and zookeeper.superUser.*.
                super_users.append(raw)
            elif key.startswith("server.") and key[7:].isdigit():
                sid = int(key[7:])
                servers[sid] = _server_line(sid, raw)
            elif key.startswith("storage."):
                storage_options[key[8:]] = raw
            elif key.startswith("election."):
                election_options[key[9:]] = raw
            elif (harmless := _security_setting(key)) is not None:
                if not harmless(raw):
                    # The value is not echoed: ssl.keyStore.password and the like are secrets.
                    raise ConfigError(
                        f"{where}:{lineno}: {key} is a security setting trizab does not implement yet; "
                        "refusing to start rather than ignore it"
                    )
                log.info("%s:%d: %s=%s asks for nothing trizab does not do; ignored", where, lineno, key, raw)
            elif key in _IGNORED_KEYS or key.startswith(_IGNORED_PREFIXES):
                log.info("%s:%d: %s is not used by trizab; ignored", where, lineno, key)
            else:
                log.warning("%s:%d: unknown key %s; ignored", where, lineno, key)
        except ValueError as exc:
            raise ConfigError(f"{where}:{lineno}: bad value {key}={raw}: {exc}") from None
    if values.get("dynamic_config_file") is not None:
        servers = {**_dynamic_servers(values["dynamic_config_file"], where), **servers}
    if values.get("secure_client_port") is not None and not values.get("client_port"):
        # ZooKeeper: no clientPort (or clientPort=0) with a secureClientPort means TLS only.
        values["client_port"] = None
    config = ServerConfig(
        servers=servers,
        storage_options=storage_options,
        election_options=election_options,
        client_tls=TlsSettings(**tls),
        quorum_tls=TlsSettings(**quorum_tls),
        sasl=SaslSettings(**sasl, super_users=tuple(super_users)),
        source=source,
        **values,
    )
    config = _validate_tls(config, where, "secure_client_port_address" in values)
    _validate_sasl(config, where)
    config = _validate(config, where, read_myid=read_myid)
    own = config.servers.get(config.server_id) if config.server_id else None
    if "client_port" not in values and "secure_client_port" not in values and own and own.client_port:
        # ZooKeeper (QuorumPeerConfig): without clientPort, the client address is the one in this
        # member's server line, which is where a ZooKeeper that rewrote its zoo.cfg for
        # reconfigEnabled=true keeps it (in the dynamicConfigFile).
        # (Without a host there, trizab's own default address stands, as for clientPort.)
        address = values.get("client_port_address") or own.client_host or config.client_port_address
        config = config.evolve(client_port=own.client_port, client_port_address=address)
    return config


def _dynamic_servers(path: Path, where: str) -> dict[int, QuorumServer]:
    """The ``server.N`` lines of ZooKeeper's dynamic configuration file (``dynamicConfigFile``:
    ZooKeeper 3.5+ with ``reconfigEnabled=true`` moves them there from zoo.cfg on its first start,
    and the client address with them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read dynamicConfigFile {path}: {exc}") from None
    servers: dict[int, QuorumServer] = {}
    for dyn_lineno, key, raw in _properties(text, str(path)):
        if key.startswith("server.") and key[7:].isdigit():
            try:
                servers[int(key[7:])] = _server_line(int(key[7:]), raw)
            except ValueError as exc:
                raise ConfigError(f"{path}:{dyn_lineno}: bad value {key}={raw}: {exc}") from None
        elif key != "version":
            raise ConfigError(f"{path}:{dyn_lineno}: {key} does not belong in a dynamic configuration file")
    return servers


def _validate_sasl(config: ServerConfig, where: str) -> None:
    """``AuthenticationHelper.validateConfiguredProperties`` and ``QuorumPeerConfig``'s quorum.auth checks."""
    sasl = config.sasl
    if sasl.enforce_auth_enabled and not sasl.session_require_client_sasl_auth and not sasl.enforced_schemes:
        raise ConfigError(
            f"{where}: enforce.auth.enabled is true, so enforce.auth.schemes must be configured"
        )
    available = {"digest", "ip"} | ({"x509"} if config.x509_enabled else set())
    available |= {"sasl"} if sasl.auth_provider else set()
    for scheme in sasl.enforced_schemes:
        if scheme not in available:
            hint = f" (authProvider.N={SASL_AUTH_PROVIDER} registers it)" if scheme == "sasl" else ""
            raise ConfigError(f"{where}: authentication scheme {scheme!r} is not available{hint}")
    if sasl.quorum_server_require and not sasl.quorum_enable:
        raise ConfigError(
            f"{where}: quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.serverRequireSasl"
        )
    if sasl.quorum_learner_require and not sasl.quorum_enable:
        raise ConfigError(
            f"{where}: quorum.auth.enableSasl is disabled, so cannot enable quorum.auth.learnerRequireSasl"
        )
    if sasl.quorum_server_require and not sasl.quorum_learner_require:
        raise ConfigError(
            f"{where}: quorum.auth.learnerRequireSasl is disabled, "
            "so cannot enable quorum.auth.serverRequireSasl"
        )


def _store_type_of(location: Path, configured: str | None, key: str, where: str) -> str:
    if configured is not None:
        return configured
    found = _STORE_EXTENSIONS.get(location.suffix)
    if found is None:
        raise ConfigError(
            f"{where}: cannot tell the type of {key}.location={location} from its name "
            f"(.jks, .pem or .p12); set {key}.type to JKS, PEM or PKCS12"
        )
    return found


def _resolve_types(tls: TlsSettings, prefix: str, where: str) -> TlsSettings:
    changes: dict[str, Any] = {}
    if tls.key_store_location is not None:
        changes["key_store_type"] = _store_type_of(
            tls.key_store_location, tls.key_store_type, f"{prefix}keyStore", where
        )
    if tls.trust_store_location is not None:
        changes["trust_store_type"] = _store_type_of(
            tls.trust_store_location, tls.trust_store_type, f"{prefix}trustStore", where
        )
    return attrs.evolve(tls, **changes) if changes else tls


def _validate_tls(config: ServerConfig, where: str, address_given: bool) -> ServerConfig:
    """ZooKeeper's checks of the TLS keys, and the store types resolved from file names."""
    if address_given and config.secure_client_port is None:
        raise ConfigError(f"{where}: secureClientPortAddress is set but secureClientPort is not")
    tls = _resolve_types(config.client_tls, "ssl.", where)
    quorum = _resolve_types(config.quorum_tls, "ssl.quorum.", where)
    if config.client_tls_enabled and tls.key_store_location is None:
        what = "secureClientPort" if config.secure_client_port is not None else "client.portUnification"
        raise ConfigError(
            f"{where}: {what} needs ssl.keyStore.location (the server's certificate and private key)"
        )
    if (config.ssl_quorum or config.quorum_port_unification) and quorum.key_store_location is None:
        what = "sslQuorum" if config.ssl_quorum else "portUnification"
        raise ConfigError(
            f"{where}: {what} needs ssl.quorum.keyStore.location (this member's certificate and private key)"
        )
    return config.evolve(client_tls=tls, quorum_tls=quorum)


def _validate(config: ServerConfig, where: str, *, read_myid: bool) -> ServerConfig:
    if config.min_session_timeout > config.max_session_timeout:
        raise ConfigError(
            f"{where}: minSessionTimeout={config.min_session_timeout} must not exceed "
            f"maxSessionTimeout={config.max_session_timeout}"
        )
    if config.connection_max_outbound_bytes < config.jute_max_buffer:
        raise ConfigError(
            f"{where}: connectionMaxOutboundBytes={config.connection_max_outbound_bytes} must be at "
            f"least jute.maxbuffer={config.jute_max_buffer} (one reply may be that large)"
        )
    if config.data_log_dir is not None and config.data_dir is None:
        raise ConfigError(f"{where}: dataLogDir={config.data_log_dir} is set but dataDir is missing")
    if read_myid and config.data_dir is not None:
        myid = config.data_dir / "myid"
        if myid.is_file():
            try:
                raw = myid.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(f"cannot read {myid}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"{myid}: bad server id: not UTF-8 text") from None
            try:
                sid = int(raw, 10)
            except ValueError:
                raise ConfigError(f"{myid}: bad server id {raw!r}: expected an integer") from None
            config = config.evolve(server_id=sid)
    if config.servers and config.server_id and config.server_id not in config.servers:
        raise ConfigError(
            f"{where}: myid={config.server_id} has no server.{config.server_id}= line; "
            f"servers: {', '.join(map(str, sorted(config.servers)))}"
        )
    return config


def _properties(text: str, where: str) -> Iterable[tuple[int, str, str]]:
    """Java-properties-ish lines: ``key=value``, ``key: value`` or ``key value``; comments skipped."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        line = lines[i].strip()
        i += 1
        # A trailing backslash continues the line, as java.util.Properties does.
        while line.endswith("\\") and not line.endswith("\\\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line[0] in "#!":
            continue
        m = re.match(r"([^=:\s]+)\s*(?:[=:]\s*|\s+)(.*)$", line)
        if m is None:
            if re.fullmatch(r"[^=:\s]+", line):
                # A bare key has an empty value in Java properties; for zoo.cfg it is a mistake.
                raise ConfigError(f"{where}:{lineno}: key {line} has no value; expected key=value")
            raise ConfigError(f"{where}:{lineno}: cannot parse line {line!r}; expected key=value")
        yield lineno, m[1], m[2].strip()


def load(path: str | Path) -> ServerConfig:
    """Read and parse a zoo.cfg file; any problem is one :class:`ConfigError` line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    config = parse(text, source=path)
    # ZooKeeper resolves a relative dataDir against the working directory; so do we.
    return config
