"""What a :class:`~trizab.zab.peer.Peer` asks its driver to do (etcd raft's ``Ready``).

Theory of operation
-------------------
After feeding the peer inputs (``step``, ``tick``, ``propose``), the driver calls
``peer.ready()`` and carries out the returned :class:`Ready` **in this order**:

1. ``snapshot``: install it: drop every logged txn after ``zxid``, then save the
   snapshot durably at ``zxid``, and restore the state machine from ``data``;
2. ``truncate_after``: drop logged txns with a zxid above it (ZAB's TRUNC);
3. ``to_persist``: append these txns to the log, in order;
4. ``hard_state``: persist ``accepted_epoch`` and ``current_epoch``, *after* the
   log writes of 1-3 are durable: a ``currentEpoch`` must never survive a crash
   without the history it was acknowledged with (the simulation's crashes keep
   any prefix of these writes, in this order);
5. storage barrier (``Storage.sync``) covering 1-4;
6. only then send ``messages`` (a ``(to, message)`` or ``Disconnect`` list, in
   order, per-destination FIFO) and ``notifications`` (election port);
7. apply ``committed`` to the state machine, in zxid order;
8. ``peer.advance(ready)``;
9. answer the reads in ``reads_confirmed`` (leader only: the tokens given to
   ``Peer.read_index``, in call order), each once the state machine has applied
   whatever the read must reflect (ZooKeeper's sync: the leader's last zxid at
   the call).  A learner's SYNC answer goes out after this Ready's messages, so
   behind every proposal it covers.

Step 5 before 6 is ZAB's durability rule: a follower's ACKEPOCH leaves only after
its ``accepted_epoch`` is durable, its ACK of a proposal (and of NEWLEADER) only
after the proposal (and ``current_epoch``) is durable.  The leader counts its own
acknowledgement only when ``advance`` reports the barrier done.

One relaxation, ZooKeeper's own: an *established leader* may send a Ready's
``messages`` while its appends are still being synced (the leader logs a proposal
and sends it in parallel), because it counts its own acknowledgement only at
``advance``.  :meth:`Ready.may_send_early` is the one rule for when (the Trio
runtime and the simulation both ask it).  And while such a Ready's barrier runs,
the leader's *new* broadcast messages need not wait for it either:
:meth:`~trizab.zab.peer.Peer.early_messages` hands them out between Readies, so
that a proposal leaves as soon as it is made and a COMMIT as soon as a quorum
acknowledged (ZooKeeper's leader sends from the proposing and acknowledging
threads, never behind its own log's fsync).

The driver may keep calling ``step``/``tick`` while it works on a Ready (that is
how group commit happens), but must not call ``ready()`` again before ``advance``.
``committed`` entries are always ones an earlier or this same Ready persisted.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from trizab.zab.messages import Commit, Disconnect, Entry, Inform, Notification, Ping, Proposal, QuorumMessage

# What an established leader may send before its own storage barrier (Ready.may_send_early,
# Peer.early_messages).
EARLY_MESSAGES = (Proposal, Commit, Inform, Ping)


class Role(enum.Enum):
    LOOKING = "looking"
    FOLLOWING = "following"
    LEADING = "leading"
    OBSERVING = "observing"


@attrs.frozen
class HardState:
    """The persistent ZAB epochs (ZooKeeper's ``acceptedEpoch`` / ``currentEpoch`` files)."""

    accepted_epoch: int
    current_epoch: int


@attrs.frozen
class SoftState:
    """Volatile role information, reported when it changes.

    ``established`` is true on a leader once a quorum acknowledged NEWLEADER (it
    may then propose, and only an established leader expires sessions) and on a
    learner once it received UPTODATE (it may then serve and forward writes).
    """

    role: Role
    leader: int | None
    epoch: int
    established: bool


@attrs.frozen
class SnapshotInstall:
    zxid: int
    data: bytes


@attrs.frozen
class Ready:
    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    snapshot: SnapshotInstall | None = None
    truncate_after: int | None = None
    to_persist: tuple[Entry, ...] = ()
    messages: tuple[tuple[int, QuorumMessage] | Disconnect, ...] = ()
    notifications: tuple[tuple[int, Notification], ...] = ()
    committed: tuple[Entry, ...] = ()
    # Leader only: (learner id, payload, client identities) of forwarded client requests to
    # prep and propose, and (learner id, payload) of session reports carried by learners' pings.
    requests: tuple[tuple[int, bytes, tuple[Any, ...]], ...] = ()
    session_reports: tuple[tuple[int, bytes], ...] = ()
    # Leader only: read_index tokens now confirmed by a quorum's heartbeat echoes, in call order.
    reads_confirmed: tuple[object, ...] = ()

    @property
    def must_sync(self) -> bool:
        """Whether steps 1-5 have anything to do."""
        return bool(
            self.snapshot is not None
            or self.truncate_after is not None
            or self.to_persist
            or self.hard_state is not None
        )

    def may_send_early(self, leader_established: bool) -> bool:
        """Whether the driver may send ``messages`` before this Ready's storage barrier (step 5).

        ``leader_established`` is the peer's ``is_leader_established`` when the Ready was
        taken.  ZAB's durability rule is about what a message *claims*: a follower's ACK
        (or ACKEPOCH, or its ACK of NEWLEADER) says "this is on my disk", so it must wait.
        An established leader's own acknowledgement is its barrier, counted only at
        ``advance``, so the messages whose meaning does not depend on its own disk may
        leave while the log write runs, as ZooKeeper's leader does:

        * PROPOSAL: a follower that logs it holds a genuine proposal of this epoch even if
          the leader then crashes without it; the commit still needs a durable quorum;
        * COMMIT / INFORM: sent only for zxids a quorum has durably acknowledged (the
          leader's own share, if counted, after an *earlier* barrier);
        * PING: a heartbeat round, which carries no history.

        Everything else waits for the barrier: a Ready that writes the epochs
        (``hard_state``), truncates or installs a snapshot is not plain broadcast, and
        neither is one with a learner's sync (DIFF, TRUNC, SNAP, NEWLEADER, UPTODATE),
        LEADERINFO, a ``Disconnect`` or an election notification.  Several of those would
        be harmless early too, but each would need its own argument; they are rare, so
        sending them late costs little and the rule stays checkable message by message.
        It reads nothing but the Ready and that flag, so the runtime and the simulation
        cannot disagree about it.
        """
        if not leader_established:
            return False
        if self.hard_state is not None or self.snapshot is not None or self.truncate_after is not None:
            return False
        if self.notifications:
            return False
        return all(not isinstance(m, Disconnect) and isinstance(m[1], EARLY_MESSAGES) for m in self.messages)
