"""Votes and their total order (FastLeaderElection's ``totalOrderPredicate``).

Theory of operation
-------------------
A vote names a candidate together with how up to date the voter believes the
candidate is: its peer epoch (``currentEpoch``) and its last zxid.  Votes are
ordered by (peer epoch, zxid, server id): the most up-to-date history wins and
the server id breaks ties.  ``vote_beats`` is that predicate as a pure
function; the ``rank`` argument lets an election policy replace the final tie
breaker (the ``priority`` plugin prefers configured servers among candidates
that are *equally* up to date, so it can never prefer a peer that lacks a
committed transaction that another candidate has).

This order only makes elections converge on a good leader quickly.  Safety does
not depend on it: see :mod:`trizab.zab.peer`, where discovery makes the chosen
leader learn the best history of a quorum before it proposes anything.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs


@attrs.frozen
class Vote:
    """A candidate and the (peer epoch, zxid) it was proposed with."""

    leader: int
    zxid: int
    peer_epoch: int


def default_rank(server_id: int) -> int:
    """ZooKeeper's tie breaker: the higher server id wins."""
    return server_id


def vote_beats(new: Vote, cur: Vote, rank: Callable[[int], int] = default_rank) -> bool:
    """Whether ``new`` should replace ``cur`` (``FastLeaderElection.totalOrderPredicate``)."""
    return (new.peer_epoch, new.zxid, rank(new.leader)) > (cur.peer_epoch, cur.zxid, rank(cur.leader))
