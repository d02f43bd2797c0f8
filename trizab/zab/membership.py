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
then ``version=<hex>``) and keeps the roles only.
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
    "sent_by_zookeeper",
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
    version = 0
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if key == "version" and sep:
            version = int(value.strip() or "0", 16)
            continue
        if not sep or not key.startswith("server.") or not key[7:].isdigit():
            continue
        sid = int(key[7:])
        parts = value.split(";", 1)[0].strip().split(":")
        role = parts[3].strip() if len(parts) >= 4 else "participant"
        (observers if role == "observer" else voters).add(sid)
    if not voters:
        raise ValueError("a configuration without voters")
    return Membership(frozenset(voters), frozenset(observers), version)


COMMITTED_LINE = b"committed=true"


def render_membership(m: Membership, committed: bool = False) -> bytes:
    """The roles of ``m`` in the config text format (no addresses): what election
    notifications carry, so that a server with a stale configuration learns the newest
    one from the others (ZooKeeper sends its config there too).  ``committed`` says the
    sender knows it committed (a line the config parser ignores)."""
    lines = [f"server.{sid}=:::participant" for sid in sorted(m.voters)]
    lines += [f"server.{sid}=:::observer" for sid in sorted(m.observers)]
    lines.append(f"version={m.version:x}")
    if committed:
        lines.append(COMMITTED_LINE.decode())
    return "\n".join(lines).encode()


def sent_by_zookeeper(config: bytes) -> bool:
    """Whether an election notification's configuration comes from an Apache ZooKeeper member.

    ZooKeeper puts ``QuorumMaj.toString()`` in every notification it sends, with each
    member's addresses (``server.1=10.0.0.1:2888:3888:participant;...``); trizab sends
    nothing, or :func:`render_membership`'s roles without addresses (``server.1=:::...``).
    So a server line with a host in it is ZooKeeper's.
    """
    for line in config.decode("utf-8", "replace").splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.startswith("server.") and not value.startswith(":"):
            return True
    return False


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
