"""The LOOKING role of the peer: the election plugin's notifications, and what its decision makes us.

Theory of operation
-------------------
ZooKeeper's ``QuorumPeer`` runs ``FastLeaderElection.lookForLeader`` while LOOKING and
answers LOOKING servers from ``FastLeaderElection.WorkerReceiver`` otherwise.  Here an
:class:`~trizab.zab.election.Elector` plugin does the election itself; this part feeds
it (``_step_election``, ``_tick_looking``), answers LOOKING servers when we are not, and
turns its decision into a role (``_check_decision``), refusing a leader that no
configuration we know lets hold a quorum.  Election notifications carry configurations:
a newer committed one becomes ours (``_adopt_config``), and what an established member
reports decides whom we count as voters meanwhile (``_leader_cfg``); see
:mod:`trizab.zab.peer_membership`.  A removed member takes part in no election but
answers, so that a server that has not heard of its removal learns it.
"""

from __future__ import annotations

from trizab.zab.election import Candidate
from trizab.zab.membership import parse_config_text
from trizab.zab.messages import Notification, PeerState
from trizab.zab.peer_membership import PeerMembership
from trizab.zab.ready import Role

_STATE_OF_ROLE = {
    Role.LOOKING: PeerState.LOOKING,
    Role.FOLLOWING: PeerState.FOLLOWING,
    Role.LEADING: PeerState.LEADING,
    Role.OBSERVING: PeerState.OBSERVING,
}


class LookingRole(PeerMembership):
    """Election while LOOKING, and answers to LOOKING servers: a mixin of :class:`~trizab.zab.peer.Peer`.

    Drives ``elector`` and queues its notifications (``_notes``, with our committed
    configuration); writes ``_leader_cfg``/``_leader_cfg_at`` (what established members
    report) and ``_answered`` (a removed member's answers); adopts newer configurations
    through ``_adopt_config``; changes the role only through ``Peer._become_leading`` and
    ``Peer._become_learner``.  Reads ``role``, ``leader``, ``established``, ``removed``,
    the epochs, ``last_zxid`` and ``ticks``.
    """

    def _step_election(self, n: Notification) -> None:
        if self.role == Role.LOOKING and self.removed:
            # Removed: we take part in no election, but a server that has not heard of
            # the configuration that removed us learns it from our answer (at most one
            # answer per tick to each, so that two such servers cannot echo forever).
            if n.state == PeerState.LOOKING and self._answered.get(n.sender) != self.ticks:
                self._answered[n.sender] = self.ticks
                v = self.elector.vote
                reply = Notification(
                    self.id,
                    v.leader,
                    v.zxid,
                    self.elector.logical_clock,
                    v.peer_epoch,
                    PeerState.LOOKING,
                    self.notified_config,
                )
                self._notes.append((n.sender, reply))
            return
        if self.role == Role.LOOKING:
            if n.config:
                # Every member, of either implementation, sends only its committed one.
                self._adopt_config(n.config)
            if n.config and n.state in (PeerState.LEADING, PeerState.FOLLOWING):
                try:
                    reported = parse_config_text(n.config)
                except ValueError:
                    pass
                else:
                    # One older than what we know committed comes from a member still
                    # syncing with its leader (the leader holds every committed one).
                    if reported.version >= self.active.version:
                        self._leader_cfg = reported
                        self._leader_cfg_at = self.ticks
                        self._reconfigure_elector()
            self.elector.step(n)
            self._check_decision()
        elif n.state == PeerState.LOOKING:
            # Tell a LOOKING peer who leads (FastLeaderElection.WorkerReceiver).  Once
            # established, every member reports the same (leader, epoch), whichever
            # round it joined in, so that a quorum of answers agrees.
            v = self.elector.vote
            peer_epoch = self.current_epoch if self.established else v.peer_epoch
            leader = self.leader if self.leader is not None else v.leader
            state = _STATE_OF_ROLE[self.role]
            # Our committed configuration (WorkerReceiver answers with getQuorumVerifier()):
            # a server with an older one learns which to vote with.
            reply = Notification(
                self.id,
                leader,
                v.zxid,
                self.elector.logical_clock,
                peer_epoch,
                state,
                self.notified_config,
            )
            self._notes.append((n.sender, reply))

    def _tick_looking(self) -> None:
        if self._leader_cfg is not None and self.ticks - self._leader_cfg_at > self.config.sync_limit_ticks:
            # That ensemble has not answered for a while: it may be gone.
            self._leader_cfg = None
            self._reconfigure_elector()
        self.elector.tick()
        self._check_decision()

    def _check_decision(self) -> None:
        self._notes.extend(self._with_config(self.elector.take_notifications()))
        leader = self.elector.decision
        if self.role != Role.LOOKING or leader is None:
            return
        if self.removed:
            return
        voters = self._all_voters()
        if leader not in voters and leader not in self._election_cfg.voters:
            # A leader outside every logged configuration we know of cannot hold a quorum
            # we would recognise: following it could split the ensemble.  Vote again.
            self.elector.start(Candidate(self.current_epoch, self.last_zxid))
            self._notes.extend(self._with_config(self.elector.take_notifications()))
            return
        if leader == self.id:
            in_logged = self.active.version > 0 or self.id in voters
            if not in_logged or self.id not in self._election_cfg.voters:
                # A removed server that does not know it yet may vote for itself; only a
                # voter of the newest configuration we have seen leads.  (It then needs a
                # quorum of every configuration it holds, the active one included.)
                self.elector.start(Candidate(self.current_epoch, self.last_zxid))
                self._notes.extend(self._with_config(self.elector.take_notifications()))
                return
            self._become_leading()
        elif self.id in voters or self.id not in self._all_members():
            # A new server not yet in any logged configuration follows without a vote.
            self._become_learner(leader, observer=False)
        else:
            self._become_learner(leader, observer=True)
