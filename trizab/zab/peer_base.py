"""What the parts of a :class:`~trizab.zab.peer.Peer` share: its configuration, its role records, its fields.

Theory of operation
-------------------
The peer is one object, as ZooKeeper's ``QuorumPeer`` is one server, but its code is
split by owner (see :mod:`trizab.zab.peer` for the layout): the membership
bookkeeping (:mod:`trizab.zab.peer_membership`), the LOOKING role
(:mod:`trizab.zab.peer_looking`), the leader role (:mod:`trizab.zab.peer_leader`), the
learner role (:mod:`trizab.zab.peer_learner`), and the peer itself (construction,
dispatch, the public inputs, ``ready``/``advance`` and the history).  Each part is a
mixin class that :class:`~trizab.zab.peer.Peer` inherits, so every field stays on the
peer.  :class:`PeerBase` declares those fields with their types (``Peer.__init__``
sets them all); ``PeerMembership`` derives from it and the three roles from
``PeerMembership`` (every role counts quorums), so a reader or a type checker of any
part sees every field and every membership method.  The few methods a role calls on
the peer itself or on another role are declared here for type checkers only.
Nothing here holds state or runs.

Why mixins rather than role objects holding a reference to the peer: the roles share
nearly all of the peer's state (history, epochs, commit point, outputs), which a role
object would reach through its reference at every line, and a role change stays what
it is in etcd raft, a switch of the functions ``step`` and ``tick`` dispatch to, with
the role's own state in ``_lead`` or ``_follow``.

The role records live here too: ``_Lead`` (a leader's term: discovery, its learners,
heartbeat rounds) with a ``_Learner`` per connection (ZooKeeper's ``LearnerHandler``),
and ``_Follow`` (a follower's or observer's link to its leader).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from trizab.zab.election import ElectionTiming, Elector
from trizab.zab.membership import Membership, MembershipFn, SnapshotMembershipFn
from trizab.zab.messages import AckEpoch, Entry, Notification, SyncPlan
from trizab.zab.ready import HardState, Ready, Role, SnapshotInstall

SnapshotFn = Callable[[], tuple[int, bytes]]


class NotLeader(Exception):
    """``propose``/``forward`` called on a peer that cannot take it; ``leader`` is who might."""

    def __init__(self, leader: int | None) -> None:
        super().__init__(f"not the established leader (leader: {leader})")
        self.leader = leader


@attrs.frozen
class PeerConfig:
    """Static configuration.  Limits are in tickTimes, as in zoo.cfg; ``tick_ms`` is one ``tick()``."""

    my_id: int
    voters: frozenset[int]
    observers: frozenset[int] = frozenset()
    tick_ms: int = 100
    tick_time_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    finalize_wait_ms: int = 200
    max_notification_interval_ms: int = 60_000
    committed_log_size: int = 500
    # Learner.connectToLeader: a follower that reaches its leader before the leader
    # has finished its own election is refused; it retries after this long
    # (ZooKeeper's leaderConnectDelayDuringRetryMs), within initLimit.
    connect_retry_ms: int = 100

    @property
    def ticks_per_tick_time(self) -> int:
        return max(1, self.tick_time_ms // self.tick_ms)

    @property
    def ping_ticks(self) -> int:
        return max(1, self.ticks_per_tick_time // 2)

    @property
    def connect_retry_ticks(self) -> int:
        return max(1, -(-self.connect_retry_ms // self.tick_ms))

    @property
    def init_limit_ticks(self) -> int:
        return self.init_limit * self.ticks_per_tick_time

    @property
    def sync_limit_ticks(self) -> int:
        return self.sync_limit * self.ticks_per_tick_time

    def election_timing(self) -> ElectionTiming:
        def ticks(ms: int) -> int:
            return max(1, -(-ms // self.tick_ms))

        return ElectionTiming(
            finalize_ticks=ticks(self.finalize_wait_ms),
            min_notify_ticks=ticks(self.finalize_wait_ms),
            max_notify_ticks=ticks(self.max_notification_interval_ms),
        )


@attrs.define
class _Learner:
    """The leader's view of one learner connection (ZooKeeper's ``LearnerHandler``)."""

    sid: int
    observer: bool
    last_heard: int
    ackepoch: AckEpoch | None = None
    # The last zxid the learner was sent before NEWLEADER; its NEWLEADER ACK covers it.
    newleader_upto: int | None = None
    newleader_acked: bool = False
    acked: int = 0
    uptodate: bool = False
    # The highest heartbeat round this learner echoed (ReadIndex, see read_index).
    echoed: int = 0
    # The highest zxid this learner was sent a COMMIT for, or had before its sync: ZooKeeper's
    # learners need exactly one COMMIT per proposal they were sent, in order
    # (FollowerZooKeeperServer.commit), so COMMITs are per zxid and never repeated.
    commit_sent: int = 0


@attrs.frozen
class LeaderView:
    """What a leader reports about its learners (``mntr``'s leader-only keys)."""

    learners: int  # connected learners, followers and observers
    synced_followers: int  # followers that acknowledged NEWLEADER
    synced_observers: int  # observers that are up to date
    pending_syncs: int  # syncs (ReadIndex requests) waiting for a quorum's confirmation


@attrs.define
class _Lead:
    phase: str = "epoch"  # epoch -> ackepoch -> sync -> broadcast
    new_epoch: int | None = None
    infos: dict[int, int] = attrs.Factory(dict)
    learners: dict[int, _Learner] = attrs.Factory(dict)
    initial_last: int = 0
    counter: int = 0
    since: int = 0
    # The last heartbeat round started in this term: PING's zxid field (see read_index).
    round: int = 0


@attrs.define
class _Follow:
    leader: int
    observer: bool
    phase: str = "discovery"  # discovery -> sync -> broadcast (after NEWLEADER)
    silence: int = 0
    # Ticks until FOLLOWERINFO is sent again after the leader refused the connection.
    retry_in: int | None = None
    # The end of our own history that the leader's DIFF or TRUNC kept: part of the leader's
    # history. A ZooKeeper leader never commits it explicitly (see _step_broadcast_learner).
    synced_upto: int | None = None


class PeerBase:
    """The fields of a :class:`~trizab.zab.peer.Peer` that its parts share, with their types.

    ``Peer.__init__`` sets every one (its comments say what each holds); the mixins read
    and write them as their docstrings say.  Declarations only: no values, no methods at
    run time.
    """

    # Static: set once by Peer.__init__.
    config: PeerConfig
    id: int
    elector: Elector
    membership_fn: MembershipFn
    snapshot_membership_fn: SnapshotMembershipFn | None
    snapshot_fn: SnapshotFn | None
    # Membership bookkeeping (peer_membership, and the history helpers of peer.py that
    # truncate, trim or replace the history the configurations come from).
    _base_cfg: Membership
    _cfgs: list[tuple[int, Membership]]
    _listed: bool
    removed: bool
    _seen: Membership | None
    _answered: dict[int, int]
    _leader_cfg: Membership | None
    _leader_cfg_at: int
    # Epochs: what the protocol has reached, and what advance() reported durable.
    accepted_epoch: int
    current_epoch: int
    _durable: HardState
    # The history and how far it is committed, handed out, applied and persisted.
    base: int
    history: list[Entry]
    _zxids: list[int]
    committed: int
    applied: int
    _handed: int
    persisted: int
    # Role: who we are now, and the record of the role (one of _lead, _follow, or neither).
    ticks: int
    role: Role
    leader: int | None
    established: bool
    _lead: _Lead | None
    _follow: _Follow | None
    _session_payload: bytes
    # Outputs collected for the next Ready.
    _msgs: list[Any]
    _notes: list[tuple[int, Notification]]
    _to_persist: list[Entry]
    _truncate: int | None
    _snapshot: SnapshotInstall | None
    _unapplied_snapshot: SnapshotInstall | None
    _requests: list[tuple[int, bytes, tuple[Any, ...]]]
    _reports: list[tuple[int, bytes]]
    # Leader, ReadIndex (peer_leader): tokens waiting for a round, tokens confirmed.
    _reads: deque[tuple[int, object]]
    _confirmed: list[object]
    _round_wanted: bool
    _soft_dirty: bool
    _inflight: Ready | None
    _inflight_upto: int | None

    if TYPE_CHECKING:
        # What the roles call on the peer itself (trizab.zab.peer) and on one another; the
        # membership methods they all use come from PeerMembership, their common base.

        @property
        def last_zxid(self) -> int: ...
        def _append(self, e: Entry) -> None: ...
        def _truncate_after(self, z: int) -> None: ...
        def _install_snapshot(self, z: int, data: bytes) -> None: ...
        def _become_looking(self) -> None: ...
        def _become_leading(self) -> None: ...
        def _become_learner(self, leader: int, observer: bool) -> None: ...
        def plan_for(self, peer_last: int) -> SyncPlan: ...  # peer_leader; a follower's ACKEPOCH too
