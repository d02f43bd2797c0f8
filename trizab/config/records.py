"""The configuration records: :class:`ServerConfig` and the parts it holds, and :class:`ConfigError`.

Plain frozen attrs classes whose defaults are ZooKeeper's unless noted, with the constants
their defaults and checks name (the four-letter words, the TLS store types and protocols).
How ``zoo.cfg`` keys become these attributes is in :mod:`trizab.config.keys`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

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
