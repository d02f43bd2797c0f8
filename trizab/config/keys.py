"""The key tables: which zoo.cfg key sets which attribute with which parser, and which are refused or ignored.

``_KEYS`` (ServerConfig), ``_TLS_KEYS``, ``_TLS_SUFFIXES`` (TlsSettings) and ``_SASL_KEYS``
(SaslSettings) map a key to ``(attribute, parser)``; ``_SECURITY_KEYS``/``_SECURITY_PREFIXES``
are the security settings trizab does not implement, each with the predicate of its harmless
values; ``_IGNORED_KEYS``/``_IGNORED_PREFIXES`` are ZooKeeper's keys trizab has no use for.
:func:`trizab.config.parsing.parse` dispatches on them; ``tests/docs/config_keys.py`` reads them
to check docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trizab.config.values import (
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
    _protocol_list,
    _scheme_list,
    _secure_port,
    _store_type,
    _tls_protocol,
    _whitelist,
)

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
