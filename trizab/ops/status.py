"""``trizab status``: each member's role, zxid, epoch, connections and lag, and the leader.

Each member is asked with ``srvr`` (the one four-letter word ZooKeeper enables by
default), through :func:`fetch_server_facts`, the only place that talks to a member:
an AdminServer (``/commands/srvr``) can replace it without touching the rest.
Works against Apache ZooKeeper as well as trizab.  The lag is the leader's zxid minus
the member's, in transactions, when both are in the same epoch (a member still in an
older epoch shows no number: it is resynchronising).

The command fails (status 1) when a member does not answer or does not serve, or
when no member leads (a lone standalone server is fine).
"""

from __future__ import annotations

import json
import socket
from collections.abc import Sequence

import attrs

from trizab import config as cfg

__all__ = [
    "MemberStatus",
    "ServerFacts",
    "collect",
    "fetch_server_facts",
    "format_table",
    "healthy",
    "members_from_config",
    "parse_address",
]

DEFAULT_CLIENT_PORT = 2181
UNREACHABLE = "unreachable"
NOT_SERVING = "not serving"  # a member that is electing a leader, or has lost its quorum


class StatusError(Exception):
    """A bad ``--server`` or ``--config``; ``str()`` is one line."""


@attrs.frozen
class ServerFacts:
    """What a member says of itself (``srvr``): its mode and counters."""

    mode: str  # leader, follower, observer, standalone, read-only
    zxid: int
    connections: int
    outstanding: int


@attrs.frozen
class MemberStatus:
    address: str
    role: str  # a mode, or "unreachable" / "not serving"
    zxid: int | None = None
    connections: int | None = None
    outstanding: int | None = None
    lag: int | None = None
    error: str | None = None

    @property
    def epoch(self) -> int | None:
        return None if self.zxid is None else self.zxid >> 32

    def as_json(self) -> dict[str, object]:
        out = attrs.asdict(self)
        out["zxid"] = None if self.zxid is None else f"0x{self.zxid:x}"
        out["epoch"] = self.epoch
        return out


def parse_address(raw: str) -> tuple[str, int]:
    """``host:port``, ``host`` (port 2181) or ``[v6]:port``."""
    host, sep, port = raw.rpartition(":")
    if not sep or "]" in port:
        host, port = raw, str(DEFAULT_CLIENT_PORT)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise StatusError(f"bad server address {raw!r}: expected host:port")
    return host, int(port)


def members_from_config(path: str) -> list[tuple[str, int]]:
    """The members a zoo.cfg names: each ``server.N`` line's host with its client port."""
    try:
        config = cfg.load(path)
    except cfg.ConfigError as exc:
        raise StatusError(str(exc)) from None
    if not config.servers:
        port = config.client_port or DEFAULT_CLIENT_PORT
        return [(config.client_port_address or "127.0.0.1", port)]
    out = []
    for sid in sorted(config.servers):
        s = config.servers[sid]
        port = s.client_port or config.client_port
        if port is None:
            raise StatusError(f"{path}: server.{sid} has no client port and there is no clientPort")
        out.append((s.client_host or s.host, port))
    return out


def fetch_server_facts(host: str, port: int, timeout: float) -> ServerFacts | str:
    """Ask one member with ``srvr``: its facts, or why it has none (an answer it gave instead).

    OSError when it cannot be reached.
    """
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(b"srvr")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    text = b"".join(chunks).decode("utf-8", "replace")
    fields = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    try:
        return ServerFacts(
            mode=fields["Mode"],
            zxid=int(fields["Zxid"], 16),
            connections=int(fields["Connections"]),
            outstanding=int(fields["Outstanding"]),
        )
    except (KeyError, ValueError):
        return text.strip() or "closed the connection without an answer"


def collect(addresses: Sequence[tuple[str, int]], timeout: float = 2.0) -> list[MemberStatus]:
    """Every member's status, with lags measured against the leader's zxid."""
    found: list[MemberStatus] = []
    for host, port in addresses:
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            facts = fetch_server_facts(host, port, timeout)
        except OSError as exc:
            found.append(MemberStatus(address, UNREACHABLE, error=exc.strerror or str(exc)))
            continue
        if isinstance(facts, str):
            found.append(MemberStatus(address, NOT_SERVING, error=facts.splitlines()[0]))
            continue
        found.append(MemberStatus(address, facts.mode, facts.zxid, facts.connections, facts.outstanding))
    leaders = [m for m in found if m.role == "leader" and m.zxid is not None]
    if len(leaders) == 1:
        top = leaders[0].zxid
        assert top is not None
        found = [
            attrs.evolve(m, lag=top - m.zxid)
            if m.zxid is not None and m.role != "standalone" and m.zxid >> 32 == top >> 32
            else m
            for m in found
        ]
    return found


def leader_of(members: Sequence[MemberStatus]) -> MemberStatus | None:
    leaders = [m for m in members if m.role == "leader"]
    return leaders[0] if len(leaders) == 1 else None


def healthy(members: Sequence[MemberStatus]) -> bool:
    """Every member serves, and one leads (or each is a standalone server)."""
    if any(m.role in (UNREACHABLE, NOT_SERVING, "read-only") for m in members):
        return False
    return leader_of(members) is not None or all(m.role == "standalone" for m in members)


def format_table(members: Sequence[MemberStatus]) -> str:
    rows = [("SERVER", "ROLE", "ZXID", "EPOCH", "CONNECTIONS", "OUTSTANDING", "LAG")]
    for m in members:
        rows.append(
            (
                m.address,
                m.role,
                "-" if m.zxid is None else f"0x{m.zxid:x}",
                "-" if m.epoch is None else str(m.epoch),
                "-" if m.connections is None else str(m.connections),
                "-" if m.outstanding is None else str(m.outstanding),
                "-" if m.lag is None else str(m.lag),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for m in members:
        if m.error:
            lines.append(f"{m.address}: {m.error}")
    leader = leader_of(members)
    if leader is not None:
        lines.append(f"leader: {leader.address}")
    elif not all(m.role == "standalone" for m in members):
        lines.append("leader: none")
    return "\n".join(lines) + "\n"


def format_json(members: Sequence[MemberStatus]) -> str:
    leader = leader_of(members)
    return (
        json.dumps(
            {
                "members": [m.as_json() for m in members],
                "leader": None if leader is None else leader.address,
                "healthy": healthy(members),
            },
            indent=2,
        )
        + "\n"
    )
