"""Quorum arithmetic: pure functions over server ids (ZooKeeper's ``QuorumMaj``).

Theory of operation
-------------------
A quorum is a strict majority of the voting members; observers never count.
The leader counts itself like any voter, but only for what its own storage has
made durable.  Acknowledgements are cumulative (an ACK for zxid z from a learner
covers every proposal up to z on that connection, because a learner persists and
acknowledges in zxid order), so "which zxids are committed" is an order
statistic: the largest z that a quorum of voters has acknowledged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def quorum_size(voters: frozenset[int]) -> int:
    """The number of voters that makes a majority."""
    return len(voters) // 2 + 1


def is_quorum(members: Iterable[int], voters: frozenset[int]) -> bool:
    """Whether ``members`` contains a majority of ``voters`` (non-voters are ignored)."""
    return len(voters.intersection(members)) >= quorum_size(voters)


def quorum_acked(acked: Mapping[int, int], voters: frozenset[int]) -> int | None:
    """The largest zxid acknowledged by a quorum of voters, or None if no quorum acked anything.

    ``acked`` maps a server id to the highest zxid it has acknowledged (cumulatively).
    """
    values = sorted((acked[v] for v in voters if v in acked), reverse=True)
    q = quorum_size(voters)
    if len(values) < q:
        return None
    return values[q - 1]


def commit_point(
    acked: Mapping[int, int], active: frozenset[int], pending: Sequence[tuple[int, frozenset[int]]]
) -> int | None:
    """The largest zxid z such that every proposal up to z has the quorums it needs.

    During a reconfiguration (ZooKeeper's ``Leader.tryToCommit`` with two quorum
    verifiers) a proposal at or after an uncommitted reconfig entry needs a quorum
    of the active voters *and* of the voters of every such pending configuration;
    ``pending`` lists them as ``(zxid of the reconfig entry, its voters)`` in zxid
    order.  Anything returned below a pending entry's zxid means "everything
    before that entry".  None if not even the active voters acknowledged anything.
    """
    c = quorum_acked(acked, active)
    if c is None:
        return None
    for z, voters in pending:
        if z > c:
            break
        q = quorum_acked(acked, voters)
        if q is None or q < z:
            return z - 1
        c = min(c, q)
    return c
