"""``priority``: Fast Leader Election that prefers configured servers among equals.

Theory of operation
-------------------
Votes are still ordered by peer epoch, then zxid, so a candidate that lacks a
transaction another candidate has always loses, whatever its priority; only the
final tie breaker changes: among equally up-to-date candidates the one listed
first in ``election.prefer`` wins, listed servers beat unlisted ones, and the
server id decides among the unlisted.  (Discovery, not this order, is what keeps
committed transactions safe; see :mod:`trizab.zab.election`.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import ClassVar

from trizab.plugins.election.fast import FastElector

from trizab.plugin import Option
from trizab.zab.election import ElectionTiming

_LISTED = 1 << 62


def parse_ids(raw: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(part, 10) for part in raw.replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError("expected comma-separated server ids, e.g. 3,1") from None
    if len(set(ids)) != len(ids):
        raise ValueError("a server id is listed twice")
    return ids


def priority_rank(prefer: Sequence[int]) -> Callable[[int], int]:
    """A rank function: earlier in ``prefer`` ranks higher; unlisted servers rank by id."""
    position = {sid: len(prefer) - i for i, sid in enumerate(prefer)}

    def rank(sid: int) -> int:
        p = position.get(sid)
        return _LISTED + p if p is not None else sid

    return rank


class PriorityElectionPlugin:
    description: ClassVar[str] = (
        "Fast Leader Election preferring the servers in election.prefer among equally up-to-date candidates"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option("prefer", parse_ids, (), "server ids in order of preference, e.g. 3,1", kind="ids"),
    )

    def __init__(self, prefer: Sequence[int] = ()) -> None:
        self.prefer = tuple(prefer)

    def elector(
        self, my_id: int, voters: frozenset[int], observers: frozenset[int], timing: ElectionTiming
    ) -> FastElector:
        return FastElector(my_id, voters, observers, timing, rank=priority_rank(self.prefer))
