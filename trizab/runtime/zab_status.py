"""What the four-letter words show of an ensemble member: role, mntr's ensemble keys, conf's members.

Kept beside :mod:`trizab.runtime.admin` (which formats nothing member-specific) and out of
:class:`~trizab.runtime.zab_commit.ZabCommit`, which only provides the data: its role, its
peer's :meth:`~trizab.zab.peer.Peer.leader_view`, and the membership its core holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trizab.runtime.admin import Status
from trizab.server.replica import Mode, render_config
from trizab.zab.ready import Role

if TYPE_CHECKING:
    from trizab.runtime.zab_commit import ZabCommit

__all__ = ["member_status"]

_MODE_NAMES = {Role.LEADING: "leader", Role.FOLLOWING: "follower", Role.OBSERVING: "observer"}


def member_status(zab: ZabCommit) -> Status:
    """What the four-letter words show of a member (see the module docstring)."""
    mode = zab.core.mode if zab.core is not None else Mode.OFF
    metrics: list[tuple[str, int]] = []
    view = zab.peer.leader_view() if zab.peer is not None and zab.role == Role.LEADING else None
    if view is not None:
        # ZooKeeper 3.8's leader-only mntr keys, in its order.
        metrics += [
            ("synced_followers", view.synced_followers),
            ("synced_non_voting_followers", 0),
            ("synced_observers", view.synced_observers),
            ("pending_syncs", view.pending_syncs),
            ("learners", view.learners),
        ]
    if zab.peer is not None:
        metrics.append(("quorum_size", len(zab.peer.voters)))
    extra = {"ensemble_metrics": tuple(metrics), "ensemble_conf": _conf_lines(zab)}
    if mode == Mode.READ_ONLY:
        return Status("read-only", serving=True, read_only=True, **extra)
    return Status(_MODE_NAMES.get(zab.role, "looking"), serving=mode != Mode.OFF, **extra)


def _conf_lines(zab: ZabCommit) -> tuple[tuple[str, str | None], ...]:
    """``conf``'s member lines after ZooKeeper's standalone ones, as QuorumPeerConfig prints."""
    me = zab.config.servers.get(zab.my_id)
    lines: list[tuple[str, str | None]] = [("electionAlg", "3")]
    if me is not None:
        lines += [("electionPort", str(me.election_port)), ("quorumPort", str(me.quorum_port))]
    lines.append(("peerType", "1" if zab.my_id in zab.peer_config.observers else "0"))
    core = zab.core
    members = core.ensemble if core is not None and core.ensemble else zab.config.servers
    version = core.config_version if core is not None else 0
    lines.append(("membership: ", None))
    for line in render_config(members, version).decode().splitlines():
        key, _, value = line.partition("=")
        lines.append((key, value))
    return tuple(lines)
