"""The typed events the runtime's tasks post to the core task's inbox.

Every hand-off that crosses tasks asynchronously is one of these frozen records
(never a tagged tuple); the core task dispatches on the type, to the handler the
part that owns the event registered (:meth:`trizab.runtime.core_task.CoreTask.on`).
Calls that need no task switch (the socket reader feeding requests, the storage
worker reporting a durable batch) are plain method calls on the core task
instead: it is one thread, and those calls never await, so the core still has
one user at a time.
"""

from __future__ import annotations

from typing import Any

import attrs

from trizab.wire import records as r
from trizab.zab.messages import Notification as ElectionNotification

__all__ = [
    "ConnectionsLost",
    "ElectionReceived",
    "PeerTick",
    "Persisted",
    "PumpWanted",
    "QuorumAccepted",
    "QuorumLinkLost",
    "QuorumReceived",
    "Tick",
]


@attrs.frozen(slots=True)
class Tick:
    """Standalone: every tickTime/2, the core's session expiry and container reaping."""


@attrs.frozen(slots=True)
class ConnectionsLost:
    """A wake-up: client connections ended (the list is :attr:`Connections.lost`)."""


@attrs.frozen(slots=True)
class PeerTick:
    """Member: every ``tick_ms``, the ZAB peer's timers (and every tickTime/2 the core's)."""


@attrs.frozen(slots=True)
class PumpWanted:
    """Member: the client port fed the core (a leader's proposals wait for the next pump)."""


@attrs.frozen(slots=True)
class QuorumAccepted:
    """A learner's new link to us and its first packet (FOLLOWERINFO/OBSERVERINFO)."""

    link: Any  # trizab.runtime.quorum.Link
    packet: r.QuorumPacket


@attrs.frozen(slots=True)
class QuorumReceived:
    """Every packet one read of ``link`` completed, in order."""

    link: Any  # trizab.runtime.quorum.Link
    packets: list[r.QuorumPacket]


@attrs.frozen(slots=True)
class QuorumLinkLost:
    """A wake-up: quorum links ended (the transport's ``take_lost`` lists them)."""


@attrs.frozen(slots=True)
class ElectionReceived:
    """A leader-election notification from another member."""

    notification: ElectionNotification


@attrs.frozen(slots=True)
class Persisted:
    """The storage worker carried out steps 1-5 of this ZAB Ready (it is durable)."""

    ready: Any  # trizab.zab.ready.Ready
