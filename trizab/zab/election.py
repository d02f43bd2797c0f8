"""The election plugin interface (entry-point group ``trizab.election``).

Theory of operation
-------------------
Leader election only *proposes* a leader; it is a liveness device.  Safety does
not depend on it: whichever peer an elector names must still run ZAB discovery,
which learns the most up-to-date history of a quorum before anything is
proposed (see :mod:`trizab.zab.peer`).  A bad elector can therefore stall an
ensemble, never lose or reorder a committed transaction.

A plugin is a class registered under ``trizab.election`` and loaded with
``trizab.plugin.load_plugin("trizab.election", name, options)``.  It declares
``description: str`` and ``options: Sequence[trizab.plugin.Option]`` and builds
one :class:`Elector` per peer with :meth:`ElectionPlugin.elector`.

An elector is sans-I/O and synchronous, like the ZAB core that owns it:

* ``start(candidate)`` begins a round (the peer just became LOOKING);
* ``step(notification)`` feeds a notification received while LOOKING;
* ``tick()`` is abstract time (``ElectionTiming`` says how many ticks FLE's
  waits are);
* ``take_notifications()`` returns ``(to, Notification)`` pairs to send on the
  election port (drained by the peer into ``Ready.notifications``);
* ``decision`` is the chosen leader id once the round is over (None before);
* ``vote`` and ``logical_clock`` are what the peer tells a LOOKING peer after
  the round, so that late peers find the current leader.

The peer never calls ``step`` after a decision until the next ``start``.  That is
why this interface lives in :mod:`trizab.zab`, beside the peer that drives it:
the ZAB core depends on it, and plugins depend on the core, never the reverse.

Optionally an elector has ``reconfigure(voters, observers)``: the peer calls it
with the voters to elect among when a reconfig commits or is logged (dynamic
reconfiguration), when a notification brings a newer committed configuration
(before ``step`` of that notification) and when a leader's NEWLEADER names a
newer one, so that it counts the new voters; an elector
without it keeps the voters it was built with.  A member learns of a reconfig
it missed only from notifications, as in ZooKeeper: an elector that sends none
never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from trizab.zab.messages import Notification, PeerState
from trizab.zab.vote import Vote, vote_beats

__all__ = [
    "Candidate",
    "ElectionPlugin",
    "ElectionTiming",
    "Elector",
    "Notification",
    "PeerState",
    "Vote",
    "vote_beats",
]


@attrs.frozen
class ElectionTiming:
    """FLE's waits in ticks of the owning peer."""

    # FastLeaderElection.finalizeWait (200 ms): how long a quorum's agreement must
    # stand unchallenged before the round ends.
    finalize_ticks: int = 2
    # Re-send notifications after this long without receiving any, doubling up to
    # the maximum (FastLeaderElection.maxNotificationInterval, 60 s).
    min_notify_ticks: int = 2
    max_notify_ticks: int = 600


@attrs.frozen
class Candidate:
    """What a LOOKING peer knows of itself: ``currentEpoch`` and last logged zxid."""

    current_epoch: int
    last_zxid: int


@runtime_checkable
class Elector(Protocol):
    decision: int | None
    vote: Vote
    logical_clock: int

    def start(self, me: Candidate) -> None: ...

    def step(self, n: Notification) -> None: ...

    def tick(self) -> None: ...

    def take_notifications(self) -> list[tuple[int, Notification]]: ...


class ElectionPlugin(Protocol):
    description: ClassVar[str]
    options: ClassVar[Sequence[Any]]

    def elector(
        self, my_id: int, voters: frozenset[int], observers: frozenset[int], timing: ElectionTiming
    ) -> Elector: ...
