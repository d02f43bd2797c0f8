"""The leader role of the peer: discovery, synchronization and broadcast as ZooKeeper's ``Leader``.

Theory of operation
-------------------
This is ZooKeeper's ``Leader`` with one ``LearnerHandler`` per connection (a
``_Learner`` record in the peer's ``_Lead``), as the leader's half of the phases that
:mod:`trizab.zab.peer` describes:

* **Discovery** (``_step_discovery_leader``, ``_maybe_choose_epoch``): FOLLOWERINFOs
  until a quorum of every configuration in force, then ``newEpoch`` and LEADERINFO;
  ACKEPOCHs until :meth:`LeaderRole._finish_discovery` can adopt the best history of a
  quorum, the point where ZAB's safety is kept.
* **Synchronization** (``_sync_learner``, with :meth:`LeaderRole.plan_for`, ZooKeeper's
  ``LearnerHandler.syncFollower``): DIFF, TRUNC or SNAP, the proposals, NEWLEADER.
* **Broadcast** (``_step_broadcast_leader_ack``, ``_leader_progress``): acknowledgements
  advance the commit point; COMMIT or INFORM go out once per learner and zxid.
* **Liveness and heartbeat rounds** (``_tick_leader``, ``_start_round``,
  ``_confirm_reads``): pings, dropping silent learners, stepping down without a quorum,
  and the ReadIndex rounds that confirm ``read_index`` tokens.

:meth:`LeaderRole.plan_for` is also how a follower whose history is better than its
leader's says what the leader lacks (in its ACKEPOCH), and
:meth:`LeaderRole._install_plan` how the leader takes it.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from trizab.wire.codes import QuorumPacketType as T
from trizab.zab.membership import Membership, render_membership
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
    Request,
    Snap,
    SyncPlan,
    Trunc,
    UpToDate,
)
from trizab.zab.peer_base import LeaderView, _Learner
from trizab.zab.peer_membership import PeerMembership
from trizab.zab.quorum import commit_point
from trizab.zab.zxid import zxid


class LeaderRole(PeerMembership):
    """The leader's steps and ticks: a mixin of :class:`~trizab.zab.peer.Peer` (see ``peer_base``).

    Owns ``_lead`` (set by ``Peer._become_leading``) and its ``_Learner`` records; starts
    the heartbeat rounds (``_round_wanted``) and confirms the tokens ``Peer.read_index``
    queues (``_reads`` to ``_confirmed``).  Writes
    ``accepted_epoch`` (choosing the epoch) and ``current_epoch`` (discovery done),
    ``established``, ``_listed`` and ``_soft_dirty``; advances ``committed`` through
    ``_set_committed``; changes the history only through ``_install_plan``.  Reads
    ``_durable`` and ``persisted`` (its own acknowledgement is its storage barrier),
    ``ticks`` and ``config``.  Outputs go to ``_msgs``, ``_requests`` and ``_reports``.
    """

    # ------------------------------------------------------------------ what the leader reports

    def leader_view(self) -> LeaderView | None:
        """Leader: its learners as ZooKeeper's ``mntr`` counts them (None unless leading)."""
        lead = self._lead
        if lead is None:
            return None
        learners = lead.learners.values()
        return LeaderView(
            learners=len(lead.learners),
            synced_followers=sum(1 for lr in learners if lr.newleader_acked and not lr.observer),
            synced_observers=sum(1 for lr in learners if lr.uptodate and lr.observer),
            pending_syncs=len(self._reads),
        )

    def synced_voters(self) -> frozenset[int]:
        """Leader: itself and the followers that acknowledged NEWLEADER (ZooKeeper's
        ``isQuorumSynced`` looks at the same set), for the NewConfigNoQuorum check."""
        lead = self._lead
        if lead is None:
            return frozenset()
        out = {self.id}
        out.update(sid for sid, lr in lead.learners.items() if lr.newleader_acked and not lr.observer)
        return frozenset(out)

    # ------------------------------------------------------------------ steps

    def _step_leader(self, msg: QuorumMessage) -> None:
        lead = self._lead
        assert lead is not None
        lr = lead.learners.get(msg.sender)
        if isinstance(msg, FollowerInfo):
            self._step_discovery_leader(msg)
            return
        if lr is None:
            self._msgs.append(Disconnect(msg.sender))
            return
        lr.last_heard = self.ticks
        if isinstance(msg, AckEpoch):
            self._step_discovery_leader(msg)
        elif isinstance(msg, Ack):
            self._step_broadcast_leader_ack(lr, msg)
        elif isinstance(msg, Ping):
            if msg.payload:
                self._reports.append((msg.sender, msg.payload))
            # The echo of a heartbeat round (never one we have not started: a ZooKeeper
            # learner echoes exactly what we sent).  Before NEWLEADER is acknowledged the
            # learner has not taken our epoch: its echo proves nothing.
            if lr.newleader_acked and msg.zxid > lr.echoed:
                lr.echoed = min(msg.zxid, lead.round)
                self._confirm_reads()
        elif isinstance(msg, Request):
            if self.established:
                self._requests.append((msg.sender, msg.payload, msg.auth))
        else:
            self._drop_learner(msg.sender)

    def _step_discovery_leader(self, msg: FollowerInfo | AckEpoch) -> None:
        lead = self._lead
        assert lead is not None
        if isinstance(msg, FollowerInfo):
            lead.learners[msg.sender] = _Learner(msg.sender, msg.observer, self.ticks)
            if lead.new_epoch is None:
                lead.infos[msg.sender] = msg.accepted_epoch
                self._maybe_choose_epoch()
            else:
                self._send_leaderinfo(msg.sender)
            return
        lr = lead.learners[msg.sender]
        if lead.new_epoch is None or lr.ackepoch is not None:
            self._drop_learner(msg.sender)
            return
        lr.ackepoch = msg
        if lead.phase in ("sync", "broadcast"):
            self._sync_learner(lr)
        else:
            self._finish_discovery()

    def _maybe_choose_epoch(self) -> None:
        lead = self._lead
        assert lead is not None
        if lead.new_epoch is not None or not self._quorum_of_all(lead.infos, self._configs_in_force()):
            return
        # Leader.getEpochToPropose: one above every acceptedEpoch of a quorum.
        lead.new_epoch = max(lead.infos.values()) + 1
        lead.phase = "ackepoch"
        self.accepted_epoch = lead.new_epoch
        self._soft_dirty = True
        for sid in sorted(lead.learners):
            self._send_leaderinfo(sid)

    def _send_leaderinfo(self, sid: int) -> None:
        lead = self._lead
        assert lead is not None and lead.new_epoch is not None
        self._msgs.append((sid, LeaderInfo(self.id, lead.new_epoch, self.current_epoch, self.last_zxid)))

    def _finish_discovery(self) -> None:
        """Adopt the best history of the acknowledging quorum: THE point where ZAB's safety is kept.

        Called when ACKEPOCHs arrive and when our own acceptedEpoch becomes durable.
        Nothing of the new epoch (no sync, no proposal) leaves before this runs.
        """
        lead = self._lead
        assert lead is not None
        if lead.phase != "ackepoch" or self._durable.accepted_epoch != lead.new_epoch:
            return
        # Every follower's fresh acknowledgement counts (voters of some configuration
        # or not): quorums are counted per configuration below, and the best history
        # of a superset of a quorum is at least as good as that quorum's best.
        acked = {
            sid: lr.ackepoch
            for sid, lr in lead.learners.items()
            if lr.ackepoch is not None and not lr.observer and lr.ackepoch.current_epoch >= 0
        }
        mine = (self.current_epoch, self.last_zxid)
        best = max(acked.values(), key=lambda a: (a.current_epoch, a.last_zxid), default=None)
        plan: SyncPlan | None = None
        if best is not None and (best.current_epoch, best.last_zxid) > mine:
            if best.history is None:
                # Ahead of us but did not say what we lack (a ZooKeeper follower never does):
                # as ZooKeeper's Leader.waitForEpochAck ("Follower is ahead of the leader"),
                # give up leading; the next election picks a member at least that far.
                self._become_looking()
                return
            plan = best.history
        # The fixpoint: a quorum of EVERY configuration in force anywhere in the history
        # we would adopt, or wait for more acknowledgements (and pick again).
        if not self._quorum_of_all([self.id, *acked], self._configs_after(plan)):
            return
        if plan is not None:
            self._install_plan(plan)
        self.current_epoch = lead.new_epoch
        lead.initial_last = self.last_zxid
        lead.phase = "sync"
        for lr in list(lead.learners.values()):
            if lr.ackepoch is not None:
                self._sync_learner(lr)

    def _configs_after(self, plan: SyncPlan | None) -> list[Membership]:
        """The configurations in force in the history we would have after installing ``plan``."""
        if plan is None:
            return self._configs_in_force()
        keep = plan.zxid if plan.kind == T.TRUNC else None
        out = self._configs_in_force(keep)
        if plan.kind == T.SNAP and plan.snapshot is not None and self.snapshot_membership_fn is not None:
            m = self.snapshot_membership_fn(plan.snapshot)
            if m is not None and m.version > 0:
                out.append(m)
        for e in plan.entries:
            m = self.membership_fn(e.data)
            if m is not None:
                out.append(m)
        # As in pending_configs: a configuration older than the newest committed one we
        # know of is superseded by it.
        floor = self.active.version
        return [out[0]] + [m for m in out[1:] if m.version > floor]

    def _sync_learner(self, lr: _Learner) -> None:
        lead = self._lead
        assert lead is not None and lead.new_epoch is not None and lr.ackepoch is not None
        plan = self.plan_for(lr.ackepoch.last_zxid)
        sid = lr.sid
        if plan.kind == T.SNAP:
            assert plan.snapshot is not None
            self._msgs.append((sid, Snap(self.id, plan.zxid, plan.snapshot)))
        elif plan.kind == T.TRUNC:
            self._msgs.append((sid, Trunc(self.id, plan.zxid)))
        else:
            self._msgs.append((sid, Diff(self.id, plan.zxid)))
        # As LearnerHandler.syncFollower/queueCommittedProposals: every committed proposal
        # with its COMMIT, the outstanding ones (to followers only) without; an observer gets
        # those as INFORM once committed (Leader.startForwarding).
        committed = self.committed
        upto = plan.zxid
        for e in plan.entries:
            if e.zxid > committed and lr.observer:
                break
            self._msgs.append((sid, Proposal(self.id, e.zxid, e.data)))
            upto = e.zxid
            if e.zxid <= committed:
                self._msgs.append((sid, Commit(self.id, e.zxid)))
        self._msgs.append((sid, NewLeader(self.id, lead.new_epoch, render_membership(self.latest))))
        lr.newleader_upto = upto
        # What the learner had before (it committed that itself) or got a COMMIT for.
        lr.commit_sent = max(plan.zxid, min(committed, upto))

    def _step_broadcast_leader_ack(self, lr: _Learner, msg: Ack) -> None:
        lead = self._lead
        assert lead is not None and lead.new_epoch is not None
        if lr.newleader_upto is None:
            self._drop_learner(lr.sid)
            return
        if msg.zxid == zxid(lead.new_epoch, 0):
            # The NEWLEADER acknowledgement; the second one acknowledges UPTODATE
            # (Learner.syncWithLeader sends both).
            if lr.newleader_acked:
                return
            lr.newleader_acked = True
            lr.acked = max(lr.acked, lr.newleader_upto)
            if self.established:
                lr.uptodate = True
                self._msgs.append((lr.sid, UpToDate(self.id, min(self.committed, lr.newleader_upto))))
        elif lr.newleader_acked:
            if msg.zxid > self.last_zxid:
                self._drop_learner(lr.sid)
                return
            lr.acked = max(lr.acked, msg.zxid)
        else:
            # A proposal's ACK before the NEWLEADER one: ZooKeeper 3.8's learner logs what the
            # sync sent when NEWLEADER arrives and may acknowledge it early; the NEWLEADER
            # ACK covers it anyway.
            return
        self._leader_progress()

    def _leader_progress(self) -> None:
        """Establish the epoch and advance the commit point from the acknowledgements."""
        lead = self._lead
        if lead is None:
            return
        if lead.phase == "ackepoch":
            self._finish_discovery()
        if lead.phase not in ("sync", "broadcast"):
            return
        acked = {sid: lr.acked for sid, lr in lead.learners.items() if lr.newleader_acked}
        if self._durable.current_epoch == lead.new_epoch and self.persisted >= lead.initial_last:
            acked[self.id] = self.persisted
        pending = [(z, m.voters) for z, m in self.pending_configs()]
        c = commit_point(acked, self.active.voters, pending)
        if c is not None and pending:
            # Normalize "everything before that reconfig entry" to a zxid of the history.
            i = bisect.bisect_right(self._zxids, c)
            c = self._zxids[i - 1] if i > 0 else self.base
        if c is None or c < lead.initial_last:
            return
        if not self.established:
            self.established = True
            self._soft_dirty = True
            lead.phase = "broadcast"
            # A quorum follows us under our configuration: it is the ensemble's, and it
            # lists us (a new server whose zoo.cfg lists itself never gets here).
            self._listed = True
            for lr in lead.learners.values():
                if lr.newleader_acked and not lr.uptodate:
                    lr.uptodate = True
                    assert lr.newleader_upto is not None
                    self._msgs.append((lr.sid, UpToDate(self.id, min(c, lr.newleader_upto))))
        if c > self.committed:
            lo = bisect.bisect_right(self._zxids, self.committed)
            hi = bisect.bisect_right(self._zxids, c)
            newly = self.history[lo:hi]
            activations = self._designated_leaders(newly, acked)
            self._set_committed(c)
            for lr in lead.learners.values():
                if lr.newleader_upto is None:
                    continue
                if lr.observer:
                    for e in newly:
                        if e.zxid > lr.newleader_upto:
                            self._msgs.append(
                                (lr.sid, Inform(self.id, e.zxid, e.data, activations.get(e.zxid)))
                            )
                else:
                    # One COMMIT per proposal (see _Learner.commit_sent).
                    for e in newly:
                        if e.zxid > lr.commit_sent:
                            self._msgs.append((lr.sid, Commit(self.id, e.zxid, activations.get(e.zxid))))
                    lr.commit_sent = max(lr.commit_sent, c)
            if self.id not in self.active.voters:
                # Leader.tryToCommit: a leader that the committed reconfig removed from the
                # voters steps down once the COMMITs are out; the new voters elect a leader.
                self._become_looking()

    def _designated_leaders(self, newly: Sequence[Entry], acked: dict[int, int]) -> dict[int, int]:
        """The reconfig entries among ``newly`` and the leader each names (COMMITANDACTIVATE).

        ZooKeeper's Leader.getDesignatedLeader: this leader if it is a voter of the new
        configuration, else a new voter that acknowledged the most.  trizab's learners
        activate on the commit and elect again themselves; ZooKeeper's need the word.
        """
        if not self._cfgs or not newly:
            return {}
        lo, hi = newly[0].zxid, newly[-1].zxid
        out: dict[int, int] = {}
        for z, m in self._cfgs:
            if lo <= z <= hi:
                if self.id in m.voters:
                    out[z] = self.id
                else:
                    ackers = [sid for sid in m.voters if acked.get(sid, 0) >= z]
                    out[z] = max(ackers, key=lambda sid: acked[sid]) if ackers else min(m.voters)
        return out

    def _drop_learner(self, sid: int) -> None:
        lead = self._lead
        if lead is not None:
            lead.learners.pop(sid, None)
        self._msgs.append(Disconnect(sid))

    # ------------------------------------------------------------------ liveness, rounds

    def _tick_leader(self) -> None:
        lead = self._lead
        assert lead is not None
        cfg = self.config
        if not self.established:
            if self.ticks - lead.since > cfg.init_limit_ticks:
                self._become_looking()
                return
        else:
            # Leader.lead(): step down without a quorum of synced, live followers.
            live = [self.id] + [
                sid
                for sid, lr in lead.learners.items()
                if lr.newleader_acked and self.ticks - lr.last_heard <= cfg.sync_limit_ticks
            ]
            if not self._quorum_of_all(live, self._configs_in_force()):
                self._become_looking()
                return
        for sid, lr in list(lead.learners.items()):
            limit = cfg.sync_limit_ticks if lr.uptodate else cfg.init_limit_ticks
            if self.ticks - lr.last_heard > limit:
                self._drop_learner(sid)
        if self.ticks % cfg.ping_ticks == 0:
            self._start_round()

    def _start_round(self) -> None:
        """Ping every learner with the next heartbeat round (periodic, or asked for by read_index)."""
        lead = self._lead
        self._round_wanted = False
        if lead is None:
            return
        lead.round += 1
        ping = Ping(self.id, lead.round)
        for sid, lr in sorted(lead.learners.items()):
            # Only learners whose sync went out: a ZooKeeper learner exits on a PING where it
            # reads LEADERINFO or DIFF/TRUNC/SNAP (LearnerHandler.ping waits for its sender too).
            if lr.newleader_upto is not None:
                self._msgs.append((sid, ping))

    def _confirm_reads(self) -> None:
        """Move the read_index tokens whose round a quorum has echoed to ``_confirmed``, in order."""
        reads = self._reads
        lead = self._lead
        if not reads or lead is None:
            return
        configs = self._configs_in_force()
        while reads:
            needed, token = reads[0]
            # Tokens wait in order of their round, so the first unconfirmed one stops the rest.
            ids = [self.id]
            ids.extend(sid for sid, lr in lead.learners.items() if lr.newleader_acked and lr.echoed >= needed)
            if not self._quorum_of_all(ids, configs):
                return
            reads.popleft()
            self._confirmed.append(token)

    # ------------------------------------------------------------------ sync plans

    def plan_for(self, peer_last: int) -> SyncPlan:
        """How to bring a history ending at ``peer_last`` to ours (LearnerHandler.syncFollower)."""
        last = self.last_zxid
        if peer_last == last:
            return SyncPlan(T.DIFF, last)
        if peer_last > last:
            # The peer has proposals we never committed: drop them.
            return SyncPlan(T.TRUNC, last)
        if peer_last == self.base:
            return SyncPlan(T.DIFF, peer_last, tuple(self.history))
        if peer_last > self.base:
            i = bisect.bisect_left(self._zxids, peer_last)
            if self._zxids[i] == peer_last:
                return SyncPlan(T.DIFF, peer_last, tuple(self.history[i + 1 :]))
            if i > 0:
                # The peer's last proposal is not ours: truncate to our previous one.
                return SyncPlan(T.TRUNC, self._zxids[i - 1], tuple(self.history[i:]))
        # Too old for the in-memory committed log (or diverged before it): snapshot.
        if self._unapplied_snapshot is not None:
            sz, data = self._unapplied_snapshot.zxid, self._unapplied_snapshot.data
        elif self.snapshot_fn is not None:
            sz, data = self.snapshot_fn()
        else:
            raise AssertionError("a SNAP is needed but the peer has no snapshot_fn")
        if sz < self.base or sz > last:
            raise AssertionError(f"snapshot at {sz:#x} outside history ({self.base:#x}, {last:#x}]")
        i = bisect.bisect_right(self._zxids, sz)
        return SyncPlan(T.SNAP, sz, tuple(self.history[i:]), data)

    def _install_plan(self, plan: SyncPlan) -> None:
        """Make our history the plan sender's (a learner from its leader, or a leader from a learner)."""
        if plan.kind == T.SNAP:
            if plan.snapshot is None:
                raise ProtocolError("SNAP without a snapshot")
            self._install_snapshot(plan.zxid, plan.snapshot)
        elif plan.kind == T.TRUNC:
            self._truncate_after(plan.zxid)
        elif plan.kind != T.DIFF:
            raise ProtocolError(f"unknown sync kind {plan.kind}")
        for e in plan.entries:
            if e.zxid > self.last_zxid:
                self._append(e)
