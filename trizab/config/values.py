"""Value parsers: each returns the value or raises ValueError("expected ...").

:mod:`trizab.config.parsing` turns the ValueError into a :class:`~trizab.config.records.ConfigError`
line naming the key and the value; :mod:`trizab.config.keys` says which key takes which parser.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from trizab.config.records import ALL_4LW, STORE_TYPES, TLS_PROTOCOLS, QuorumServer

# The package's logger, as when this was one module: log lines keep naming trizab.config.
log = logging.getLogger("trizab.config")


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


def _scheme_list(raw: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in raw.split(",") if s.strip())
