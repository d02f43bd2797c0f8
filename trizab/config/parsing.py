"""Reading a zoo.cfg: :func:`load` and :func:`parse`, the properties lines, the dynamic file, the checks.

:func:`parse` reads each ``key=value`` line (:func:`_properties`, as ``java.util.Properties``),
sends it to its parser through the tables of :mod:`trizab.config.keys`, builds one
:class:`~trizab.config.records.ServerConfig` and checks it the way ``QuorumPeerConfig`` does.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import attrs

from trizab.config.keys import (
    _IGNORED_KEYS,
    _IGNORED_PREFIXES,
    _KEYS,
    _SASL_KEYS,
    _STORE_EXTENSIONS,
    _TLS_KEYS,
    _TLS_SUFFIXES,
    SASL_AUTH_PROVIDER,
    X509_AUTH_PROVIDER,
    _security_setting,
)
from trizab.config.records import ConfigError, QuorumServer, SaslSettings, ServerConfig, TlsSettings
from trizab.config.values import _server_line

# The package's logger, as when this was one module: log lines keep naming trizab.config.
log = logging.getLogger("trizab.config")


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
