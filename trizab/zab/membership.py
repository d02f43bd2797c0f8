"""Ensemble membership as the ZAB core sees it, and how it is read out of the log.

Theory of operation
-------------------
A :class:`Membership` is ZooKeeper's ``QuorumVerifier`` reduced to what ZAB needs:
the voting members (quorums are majorities of them) and the observers.  A
configuration change is an ordinary transaction of the replicated log (ZooKeeper's
``OpCode.reconfig`` txn, a ``SetDataTxn`` of ``/zookeeper/config`` holding the new
configuration text), so every member learns it from its own history, in zxid
order, and the :class:`~trizab.zab.peer.Peer` is given a *membership function*
that says, for an entry's bytes, which membership it installs (``None`` for every
other transaction).  :func:`txn_membership` is that function for trizab's
transactions; the simulation passes its own.

:func:`parse_config_text` reads ZooKeeper's dynamic configuration format
(``server.N=host:quorumPort:electionPort[:participant|:observer][;client]`` lines,
then ``version=<hex>``): the roles decide quorums, and each member's line is kept as
it was written so that :func:`render_membership` can give the text back as ZooKeeper's
``QuorumVerifier.toString()`` renders it (election notifications carry that text, and
ZooKeeper members parse it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import attrs

from trizab.txn import Txn
from trizab.wire.codes import OpCode
from trizab.wire.jute import JuteError

__all__ = [
    "Membership",
    "MembershipFn",
    "SnapshotMembershipFn",
    "parse_config_text",
    "render_membership",
    "txn_membership",
]


@attrs.frozen
class Membership:
    """Who votes and who only observes under one configuration."""

    voters: frozenset[int]
    observers: frozenset[int] = frozenset()
    # ZooKeeper's config version: the zxid of the reconfig txn that made it, 0 for a
    # static configuration (zoo.cfg); a higher version supersedes a lower one.
    version: int = 0
    # Each member's ``server.N=`` value (``host:quorumPort:electionPort:role[;clientHost:clientPort]``)
    # as ZooKeeper's ``QuorumServer.toString()`` writes it, in server-id order; empty where the
    # addresses are not known (the simulation).  Not part of equality: a configuration is who
    # votes and who observes, and one text may spell an address two ways.
    servers: tuple[tuple[int, str], ...] = attrs.field(default=(), eq=False)

    @property
    def members(self) -> frozenset[int]:
        return self.voters | self.observers

    def __str__(self) -> str:
        obs = f" observers {sorted(self.observers)}" if self.observers else ""
        return f"voters {sorted(self.voters)}{obs}"


MembershipFn = Callable[[bytes], "Membership | None"]
SnapshotMembershipFn = Callable[[bytes], "Membership | None"]

# TxnHeader: long clientId, int cxid, long zxid, long time, int type.
_TYPE_AT = 8 + 4 + 8 + 8
_INT = struct.Struct(">i")
_RECONFIG = int(OpCode.RECONFIG)


def parse_config_text(text: bytes | str) -> Membership:
    """The roles in a ``/zookeeper/config`` text; raises ValueError when it names no voter."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    voters: set[int] = set()
    observers: set[int] = set()
    servers: dict[int, str] = {}
    version = 0
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if key == "version" and sep:
            version = int(value.strip() or "0", 16)
            continue
        if not sep or not key.startswith("server.") or not key[7:].isdigit():
            continue
        sid = int(key[7:])
        value = value.strip()
        addr = value.split(";", 1)[0].strip()
        # After an IPv6 host's brackets: "", quorumPort, electionPort[, role].
        parts = addr[addr.find("]") + 1 :].split(":") if addr.startswith("[") else addr.split(":")
        role = parts[3].strip() if len(parts) >= 4 else "participant"
        (observers if role == "observer" else voters).add(sid)
        if not value.startswith(":"):
            servers[sid] = _with_role(value, role)
    if not voters:
        raise ValueError("a configuration without voters")
    known = tuple(sorted(servers.items())) if servers.keys() == voters | observers else ()
    return Membership(frozenset(voters), frozenset(observers), version, known)


def _with_role(value: str, role: str) -> str:
    """A ``server.N=`` value as ``QuorumServer.toString()`` writes it: the role always
    spelled out, and a client port given alone bound to the wildcard address."""
    addr, sep, client = (part.strip() for part in value.partition(";"))
    host_end = addr.find("]") + 1 if addr.startswith("[") else 0
    if len(addr[host_end:].split(":")) == 3:
        addr = f"{addr}:{role}"
    if client and ":" not in client:
        client = f"0.0.0.0:{client}"
    return addr + sep + client


def render_membership(m: Membership) -> bytes:
    """``m`` as ZooKeeper's ``QuorumMaj.toString()`` renders it: one ``server.N=`` line per
    member in server-id order (``host:quorumPort:electionPort:role[;clientHost:clientPort]``),
    then ``version=<hex>`` with no newline after it.

    This is what election notifications carry, so that a server with a stale configuration
    learns the newest one from the others, and an Apache ZooKeeper member parses it
    (``QuorumPeer.configFromString``).  Without addresses (the simulation's memberships)
    each line is ``server.N=:::role``, which trizab reads and ZooKeeper would not.
    """
    known = dict(m.servers)
    lines = []
    for sid in sorted(m.members):
        role = "observer" if sid in m.observers else "participant"
        lines.append(f"server.{sid}={known.get(sid, f':::{role}')}\n")
    return ("".join(lines) + f"version={m.version:x}").encode()


def txn_membership(data: bytes) -> Membership | None:
    """The membership a logged transaction installs: only ``reconfig`` txns install one.

    Cheap for every other transaction (one integer read from the header); a reconfig
    txn that cannot be read installs nothing (it could not be applied either).
    """
    if len(data) < _TYPE_AT + 4 or _INT.unpack_from(data, _TYPE_AT)[0] != _RECONFIG:
        return None
    try:
        txn = Txn.decode(data)
        m = parse_config_text(txn.body.data or b"")
    except (JuteError, ValueError, AttributeError):
        return None
    return attrs.evolve(m, version=txn.header.zxid)
