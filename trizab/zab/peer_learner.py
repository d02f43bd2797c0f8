"""The learner role of the peer: a follower or an observer, as ZooKeeper's ``Learner``.

Theory of operation
-------------------
This is ZooKeeper's ``Follower``/``Observer`` (``Learner.registerWithLeader``,
``Learner.syncWithLeader``, ``Follower.processPacket``) as the learner's half of the
phases that :mod:`trizab.zab.peer` describes, one ``_step_<phase>_learner`` per phase
of the peer's ``_Follow`` record:

* **Discovery** (``_step_discovery_learner``): LEADERINFO; refuse an epoch below our
  acceptedEpoch, persist a new one **before** ACKEPOCH leaves (it sits in the same
  Ready's hard state), and attach what the leader lacks when our history is better.
* **Synchronization** (``_step_sync_learner``): DIFF, TRUNC or SNAP, the proposals and
  COMMITs of the sync, then NEWLEADER, acknowledged once all of it and
  ``currentEpoch`` are durable.
* **Broadcast** (``_step_broadcast_learner``): PROPOSAL acknowledged after its append
  is durable, COMMIT/UPTODATE/INFORM advance the commit point, PING is echoed with our
  session report.
* **Liveness** (``_tick_learner``): silence beyond syncLimit (initLimit while syncing)
  sends us LOOKING; a refused connection retries FOLLOWERINFO.

After a commit, ``_check_learner_membership`` makes a follower that a reconfig turned
into an observer (or back) re-join as one, and a removed member stop.
"""

from __future__ import annotations

from trizab.zab.messages import (
    Ack,
    AckEpoch,
    Commit,
    Diff,
    Disconnect,
    Entry,
    FollowerInfo,
    Inform,
    LeaderInfo,
    NewLeader,
    Ping,
    Proposal,
    ProtocolError,
    QuorumMessage,
    Snap,
    Trunc,
    UpToDate,
)
from trizab.zab.peer_base import _Follow
from trizab.zab.peer_membership import PeerMembership
from trizab.zab.zxid import epoch_of, zxid


class LearnerRole(PeerMembership):
    """A follower's or observer's steps and ticks: a mixin of :class:`~trizab.zab.peer.Peer`.

    Owns ``_follow`` (set by ``Peer._become_learner``).  Writes ``accepted_epoch``
    (LEADERINFO) and ``current_epoch`` (NEWLEADER), both persisted before the answer
    leaves; ``established``, ``_soft_dirty``, ``_leader_cfg`` (cleared by NEWLEADER) and
    ``_session_payload`` (sent with a ping); changes the history only through
    ``_append``, ``_truncate_after`` and ``_install_snapshot``, and the commit point
    through ``_set_committed``.  Reads ``last_zxid``, ``config``, ``removed`` and the
    configurations.  Outputs go to ``_msgs``.
    """

    def _step_learner(self, msg: QuorumMessage) -> None:
        f = self._follow
        assert f is not None
        if msg.sender != f.leader:
            self._msgs.append(Disconnect(msg.sender))
            return
        f.silence = 0
        try:
            if f.phase == "discovery":
                self._step_discovery_learner(f, msg)
            elif f.phase == "sync":
                self._step_sync_learner(f, msg)
            else:
                self._step_broadcast_learner(f, msg)
        except ProtocolError:
            self._become_looking()

    def _step_discovery_learner(self, f: _Follow, msg: QuorumMessage) -> None:
        if isinstance(msg, Ping):
            return
        if not isinstance(msg, LeaderInfo):
            raise ProtocolError(f"expected LEADERINFO, got {type(msg).__name__}")
        if msg.epoch < self.accepted_epoch:
            # Learner.registerWithLeader: never go back to an older epoch.
            raise ProtocolError(f"leader epoch {msg.epoch} is below our accepted epoch")
        fresh = msg.epoch > self.accepted_epoch
        if fresh:
            self.accepted_epoch = msg.epoch  # persisted (Ready.hard_state) before ACKEPOCH leaves
        history = None
        if (
            fresh
            and not f.observer
            and msg.current_epoch is not None
            and msg.last_zxid is not None
            and (self.current_epoch, self.last_zxid) > (msg.current_epoch, msg.last_zxid)
        ):
            history = self.plan_for(msg.last_zxid)
        # An epoch we had already accepted was perhaps acknowledged to another leader:
        # ZooKeeper then answers currentEpoch -1 and the leader does not count us.
        self._msgs.append(
            (f.leader, AckEpoch(self.id, self.current_epoch if fresh else -1, self.last_zxid, history))
        )
        f.phase = "sync"

    def _step_sync_learner(self, f: _Follow, msg: QuorumMessage) -> None:
        if isinstance(msg, Diff):
            # A ZooKeeper leader's DIFF zxid is our last zxid or its last committed one (which
            # may be beyond ours); either way our history up to the smaller is the leader's.
            f.synced_upto = min(msg.zxid, self.last_zxid)
            return
        if isinstance(msg, Trunc):
            self._truncate_after(msg.zxid)
            f.synced_upto = self.last_zxid
        elif isinstance(msg, Snap):
            self._install_snapshot(msg.zxid, msg.snapshot)
        elif isinstance(msg, Proposal):
            if msg.zxid > self.last_zxid:
                self._append(Entry(msg.zxid, msg.data))
        elif isinstance(msg, Commit):
            # A proposal the leader had committed (LearnerHandler sends it with its COMMIT).
            if msg.zxid > self.last_zxid:
                raise ProtocolError(f"commit of {msg.zxid:#x} beyond our last {self.last_zxid:#x}")
            self._set_committed(msg.zxid)
        elif isinstance(msg, Inform):
            if msg.zxid > self.last_zxid:
                self._append(Entry(msg.zxid, msg.data))
            self._set_committed(msg.zxid)
        elif isinstance(msg, NewLeader):
            if msg.epoch != self.accepted_epoch:
                raise ProtocolError(f"NEWLEADER for epoch {msg.epoch}, accepted {self.accepted_epoch}")
            # The leader's last seen configuration: we vote with it from now on if it is
            # newer than ours (Learner.syncWithLeader: setLastSeenQuorumVerifier).  A
            # ZooKeeper learner also makes it its committed one at UPTODATE; we activate a
            # configuration only when our synced history commits it: the leader's last seen
            # one may be a reconfig it proposed after it was established that never commits
            # (see docs/mixed-ensembles.md).
            # (What members told us while we looked is superseded by the leader's own word.)
            self._leader_cfg = None
            if msg.config:
                self._see_config(msg.config)
            self._reconfigure_elector()
            self.current_epoch = msg.epoch  # persisted with the synced history before the ACK
            self._msgs.append((f.leader, Ack(self.id, zxid(msg.epoch, 0))))
            f.phase = "broadcast"
            self._soft_dirty = True
        elif isinstance(msg, Ping):
            return
        else:
            raise ProtocolError(f"unexpected {type(msg).__name__} during sync")

    def _step_broadcast_learner(self, f: _Follow, msg: QuorumMessage) -> None:
        if isinstance(msg, Proposal):
            if f.observer:
                raise ProtocolError("PROPOSAL sent to an observer")
            if msg.zxid > self.last_zxid:
                if epoch_of(msg.zxid) != self.current_epoch:
                    raise ProtocolError(f"proposal {msg.zxid:#x} outside epoch {self.current_epoch}")
                self._append(Entry(msg.zxid, msg.data))
                # Leaves after the barrier that covers the append (Ready order).
                self._msgs.append((f.leader, Ack(self.id, msg.zxid)))
        elif isinstance(msg, Commit | UpToDate):
            if msg.zxid > self.last_zxid:
                raise ProtocolError(f"commit of {msg.zxid:#x} beyond our last {self.last_zxid:#x}")
            self._set_committed(msg.zxid)
            if isinstance(msg, UpToDate) and msg.zxid < 0 and f.synced_upto is not None:
                # ZooKeeper's leader sends UPTODATE with zxid -1 and never COMMITs the history
                # its DIFF or TRUNC kept: a ZooKeeper learner applied its whole log at start-up.
                # That history is in the leader's, which is committed once it is established
                # (UPTODATE); without this a trizab learner would serve its snapshot's state
                # until the next write's COMMIT. A trizab leader names its commit point here
                # instead (its DIFF may end at a proposal still outstanding).
                self._set_committed(f.synced_upto)
            if isinstance(msg, UpToDate) and not self.established:
                self.established = True
                self._soft_dirty = True
                # Learner.syncWithLeader acknowledges UPTODATE too (zxid newEpoch << 32).
                self._msgs.append((f.leader, Ack(self.id, zxid(self.current_epoch, 0))))
            self._check_learner_membership()
        elif isinstance(msg, Inform):
            if msg.zxid > self.last_zxid:
                self._append(Entry(msg.zxid, msg.data))
            self._set_committed(msg.zxid)
            self._check_learner_membership()
        elif isinstance(msg, Ping):
            # Echo the leader's zxid field (its heartbeat round, see read_index), as
            # ZooKeeper's Learner.ping does.
            self._msgs.append((f.leader, Ping(self.id, msg.zxid, self._session_payload)))
            self._session_payload = b""
        else:
            raise ProtocolError(f"unexpected {type(msg).__name__} while broadcasting")

    def _tick_learner(self) -> None:
        f = self._follow
        assert f is not None
        f.silence += 1
        if f.retry_in is not None:
            f.retry_in -= 1
            if f.retry_in <= 0:
                f.retry_in = None
                self._msgs.append((f.leader, FollowerInfo(self.id, self.accepted_epoch, f.observer)))
        limit = self.config.sync_limit_ticks if self.established else self.config.init_limit_ticks
        if f.silence > limit:
            self._become_looking()

    # ------------------------------------------------------------------ membership

    def _check_learner_membership(self) -> None:
        """After a commit: a follower removed from the voters re-joins as observer or leaves."""
        f = self._follow
        if f is None:
            return
        if self.removed:
            # A committed reconfig removed us: stop serving, stay LOOKING.
            self._become_looking()
            return
        if self.id not in self._all_members():
            # A new server syncing history older than its own addition: it follows
            # without a vote (its ACKs count for no configuration).
            return
        voter = self.id in self._all_voters()
        if voter == (not f.observer):
            return
        leader = f.leader
        self._msgs.append(Disconnect(leader))
        self._follow = None
        self._become_learner(leader, observer=not voter)
