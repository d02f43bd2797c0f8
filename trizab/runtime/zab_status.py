"""What the four-letter words and the AdminServer show of an ensemble member: role, mntr's
ensemble keys, conf's members, and (:func:`member_view`) its place in the ensemble.

Kept beside :mod:`trizab.runtime.admin` (which formats nothing member-specific) and out of
:class:`~trizab.runtime.zab_commit.ZabCommit`, which only provides the data: its role, its
peer's :meth:`~trizab.zab.peer.Peer.leader_view`, and the membership its core holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from trizab.frontend.admin_commands import MemberView, ServerAddress
from trizab.runtime.admin import Status
from trizab.server.replica import Mode, render_config
from trizab.zab.ready import Role

if TYPE_CHECKING:
    from trizab.runtime.zab_commit import ZabCommit

__all__ = ["member_status", "member_view"]

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
    name = _MODE_NAMES.get(zab.role, "looking")
    if zab.config.read_replicas and mode != Mode.OFF:
        # A standalone server with read replicas (trizab.runtime.replicas) is one server to its
        # clients, whichever of its processes answers.
        name = "standalone"
    return Status(name, serving=mode != Mode.OFF, **extra)


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


def member_view(zab: ZabCommit, client_address: str) -> MemberView:
    """A member's place in its ensemble, for the AdminServer (``leader``, ``voting_view``, ``zabstate``).

    ``client_address`` is this member's bound client address (``host:port``).
    """
    peer = zab.peer
    core = zab.core
    members = core.ensemble if core is not None and core.ensemble else zab.config.servers
    voters = peer.voters if peer is not None else frozenset(members)
    leader = peer.leader if peer is not None else None
    own_client = client_address
    view: dict[int, ServerAddress] = {}
    for sid in sorted(voters):
        s = members.get(sid)
        if s is None:
            continue
        if sid == zab.my_id:
            client = own_client
        elif s.client_port is not None:
            client = f"{_delimited(s.client_host or '0.0.0.0')}:{s.client_port}"
        else:
            client = ""
        view[sid] = ServerAddress(
            quorum=f"{_delimited(s.host)}:{s.quorum_port}",
            election=f"{_delimited(s.host)}:{s.election_port}",
            client=client,
            participant=s.role == "participant",
        )
    me = members.get(zab.my_id) or zab.config.servers[zab.my_id]
    leader_server = members.get(leader) if leader is not None else None
    return MemberView(
        my_id=zab.my_id,
        is_leader=zab.role == Role.LEADING,
        leader_id=leader if leader is not None else -1,
        leader_host=leader_server.host if leader_server is not None else "",
        voting_view=view,
        quorum_host=me.host,
        quorum_port=me.quorum_port,
        election_host=me.host,
        election_port=me.election_port,
        client_address=own_client,
        voting=zab.my_id in voters,
        zab_state=peer.zab_phase if peer is not None else "election",
    )


def _delimited(host: str) -> str:
    return f"[{host}]" if ":" in host else host
