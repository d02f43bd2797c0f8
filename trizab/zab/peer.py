"""The ZAB peer: election, discovery, synchronization and broadcast as one sans-I/O object.

Theory of operation
-------------------
A :class:`Peer` is Apache ZooKeeper's ``QuorumPeer`` + ``Leader``/``LearnerHandler``
+ ``Follower``/``Observer`` reduced to a synchronous state machine shaped like
etcd raft's ``RawNode``: inputs are ``step(message)``, ``tick()``,
``propose(txn)``, ``forward(request)`` and ``advance(ready)`` (which also reports
the storage barrier); outputs are collected in a :class:`~trizab.zab.ready.Ready`
(see that module for the order a driver must follow).  It never reads a clock,
touches a socket or a disk, or draws a random number.

``step`` and ``tick`` dispatch on the role (``_step_leader`` or ``_step_learner``,
``_tick_leader`` or ``_tick_learner``); ``_become_*`` change it, with the role's
state in a ``_Lead`` or ``_Follow``, and each ZAB phase of a role has its own
``_step_<phase>_<role>`` method:

* **LOOKING** (``_step_election``): an :class:`~trizab.zab.election.Elector` plugin
  proposes a leader.  Non-LOOKING peers answer LOOKING peers with their vote.
* **Discovery.**  A follower sends FOLLOWERINFO(acceptedEpoch).  The leader waits
  for a quorum of them (itself included), picks ``newEpoch`` = 1 + the highest
  acceptedEpoch seen, persists it as its own acceptedEpoch and sends
  LEADERINFO(newEpoch, its currentEpoch, its lastZxid).  A follower refuses an
  epoch below its acceptedEpoch, persists the new one **before** answering
  ACKEPOCH(currentEpoch, lastZxid), and, when its own history is better than
  the leader's, attaches the part the leader lacks.
* **Where safety is guaranteed** (:meth:`Peer._finish_discovery`): once a quorum
  of voters (the leader counting itself only after its acceptedEpoch is durable)
  has acknowledged the new epoch, the leader adopts the most up-to-date history
  among them, ordered by (currentEpoch, lastZxid), *before* it sends or proposes
  anything of the new epoch.  Any committed transaction was acknowledged by a
  quorum, which intersects this one, so the adopted history contains it.  The
  election plugin only chooses who runs discovery: a poor choice costs time, it
  cannot lose or reorder a committed transaction.
* **Synchronization.**  For each learner the leader sends DIFF (the proposals the
  learner lacks), TRUNC (drop what the leader does not have, then the
  proposals) or SNAP (when the learner is older than the in-memory committed log
  of the last ``committed_log_size`` transactions), then NEWLEADER; a committed
  proposal goes with its COMMIT, an observer gets only committed ones
  (``LearnerHandler.syncFollower``).  A learner
  persists all of it and ``currentEpoch`` before acknowledging NEWLEADER.  A
  quorum of NEWLEADER acknowledgements commits the leader's initial history;
  the leader sends UPTODATE and is *established*.
* **Broadcast.**  ``propose`` assigns ``zxid(epoch, counter)`` and sends PROPOSAL
  to every synced follower in zxid order over per-learner FIFO connections.  A
  follower acknowledges only after the proposal is durable (the ACK sits in the
  same Ready as the append).  The leader reads acknowledgements cumulatively and
  commits the highest zxid acknowledged by a quorum of voters, itself included
  once its own barrier covers it; on the wire, as ZooKeeper's peers require,
  there is one ACK and one COMMIT per proposal, in zxid order, each COMMIT sent
  once per learner (``_Learner.commit_sent``); observers get INFORM with the
  committed data instead and never vote.  A reconfig's commit is
  COMMITANDACTIVATE/INFORMANDACTIVATE, naming the leader of the new
  configuration.  Proposals that a quorum never accepted are discarded by the
  next leader's TRUNC.
* **Liveness.**  The leader pings every learner whose sync is out every half
  tickTime; a learner answers with a ping carrying its session report.  A learner that hears nothing
  from its leader for syncLimit (initLimit while syncing) goes LOOKING; a leader
  that has not heard from a quorum for syncLimit, or is not established within
  initLimit, steps down.  The counter of a zxid overflowing also ends the epoch.
* **Heartbeat rounds and sync** (etcd raft's ReadIndex).  Each leader ping starts a
  *round*: the PING's zxid field carries the round number, increasing within the
  leader's term, and a learner's reply echoes the zxid of the PING it answers
  (``Learner.ping`` in ZooKeeper echoes it too; a ZooKeeper leader sends its last
  proposed zxid there and ignores what comes back, so either side may be
  ZooKeeper).  ``read_index(token)`` records that the token needs the round
  after the current one and asks for a round, which starts when the next Ready
  is built (every sync that arrived meanwhile shares it), besides the periodic
  ones.  The leader keeps, per learner that acknowledged NEWLEADER, the highest
  round echoed; a token is confirmed once the leader and the voters that echoed
  its round or a later one make a quorum of every configuration in force, and
  comes out in ``Ready.reads_confirmed``, in request order.  Why that makes a
  sync linearizable: each of those voters answered a ping sent after the
  ``read_index`` call while still following us, so a newer leader, which needs
  the epoch acknowledged by a quorum (and every quorum meets this one), had
  not been established when the call was made: nothing was committed then
  outside our history.  A leader that was paused and resumed cannot confirm
  from echoes it buffered meanwhile (they answer older rounds).  Tokens not yet
  handed out are dropped on any role change (the driver closes its clients
  then anyway); a single voter confirms at once.

* **Sessions** are ordinary transactions here (createSession/closeSession are
  proposed like any txn).  Learners piggyback session activity on their pings
  (``report_sessions``); the leader surfaces it in ``Ready.session_reports``.
  Only the leader expires sessions, and only while ``is_leader_established``.

History is kept in memory above ``base`` (the zxid covered by the last snapshot
or trimmed committed prefix); ``snapshot_fn`` returns the state machine's bytes
and the zxid it reflects, for SNAP.

Dynamic reconfiguration (ZooKeeper 3.5+) is in :mod:`trizab.zab.peer_membership`: which
configurations are in force where in the history, and the quorum rule over them.

Layout
------
:class:`Peer` is one object whose code is split by owner into mixins it inherits
(:mod:`trizab.zab.peer_base` says why, and declares the fields they share):

* this module: construction and recovery, ``step``/``tick`` dispatch, the public
  inputs (``propose``, ``forward``, ``read_index``, ``report_sessions``), the outputs
  (``has_ready``, ``ready``, ``early_messages``, ``applicable``, ``advance``), the
  history helpers (append, truncate, install a snapshot, trim) and the role changes
  (``_become_*``);
* :mod:`trizab.zab.peer_looking`: the LOOKING role (``_step_election``,
  ``_tick_looking``, ``_check_decision``);
* :mod:`trizab.zab.peer_leader`: the leader role (``_step_leader`` and its phases,
  ``_leader_progress``, ``_tick_leader``, heartbeat rounds, ``plan_for``);
* :mod:`trizab.zab.peer_learner`: the learner role (``_step_learner`` and its phases,
  ``_tick_learner``);
* :mod:`trizab.zab.peer_membership`: the configurations in force and the quorum rule;
* :mod:`trizab.zab.peer_base`: ``PeerConfig``, ``NotLeader``, ``LeaderView`` (all
  importable from here, as before) and the role records ``_Lead``, ``_Learner``,
  ``_Follow``.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs

from trizab.txn import Txn
from trizab.zab.election import Candidate, Elector
from trizab.zab.membership import (
    Membership,
    MembershipFn,
    SnapshotMembershipFn,
    txn_membership,
)
from trizab.zab.messages import (
    Disconnect,
    Disconnected,
    Entry,
    FollowerInfo,
    Notification,
    Proposal,
    QuorumMessage,
    Request,
)
from trizab.zab.peer_base import LeaderView as LeaderView  # re-exported (leader_view's type)
from trizab.zab.peer_base import NotLeader, PeerConfig, SnapshotFn, _Follow, _Lead
from trizab.zab.peer_leader import LeaderRole
from trizab.zab.peer_learner import LearnerRole
from trizab.zab.peer_looking import LookingRole
from trizab.zab.ready import EARLY_MESSAGES, HardState, Ready, Role, SnapshotInstall, SoftState
from trizab.zab.zxid import MAX_COUNTER, zxid


class Peer(LookingRole, LeaderRole, LearnerRole):
    """One ZAB server.  See the module docstring; inputs never block, outputs come from ``ready()``."""

    def __init__(
        self,
        config: PeerConfig,
        elector: Elector,
        *,
        accepted_epoch: int = 0,
        current_epoch: int = 0,
        base_zxid: int = 0,
        history: Sequence[Entry] = (),
        snapshot_fn: SnapshotFn | None = None,
        membership: Membership | None = None,
        membership_fn: MembershipFn = txn_membership,
        snapshot_membership_fn: SnapshotMembershipFn | None = None,
    ) -> None:
        self.config = config
        self.id = config.my_id
        self.elector = elector
        # Membership (see trizab.zab.peer_membership): the configuration in force at `base`
        # (the static one, or what the snapshot holds), and every reconfig entry of the
        # history above it with the configuration it installs, in zxid order.
        self.membership_fn = membership_fn
        self.snapshot_membership_fn = snapshot_membership_fn
        self._base_cfg = membership or Membership(config.voters, config.observers)
        self._cfgs: list[tuple[int, Membership]] = []
        # Removed from the ensemble by a reconfig: serve nobody, stay LOOKING.  That takes
        # a logged configuration (a reconfig txn, version > 0) that listed us, then one
        # that does not: a new server, whose zoo.cfg lists itself, syncs reconfigs older
        # than its own addition and must not take those for its removal (it follows
        # without a vote until the reconfig that adds it commits).
        self._listed = self._base_cfg.version > 0 and self.id in self._base_cfg.members
        self.removed = False
        # The last configuration a leader's NEWLEADER named, when newer than our history's
        # (ZooKeeper's lastSeenQuorumVerifier from Learner.syncWithLeader): elections only.
        self._seen: Membership | None = None
        self._answered: dict[int, int] = {}  # removed: when we last answered each server
        # What an established member told us while we look: its committed configuration.
        # Ours, if newer, is a reconfig not committed yet (its leader will commit or
        # truncate it): vote like the ensemble meanwhile.
        self._leader_cfg: Membership | None = None
        self._leader_cfg_at = 0
        self.snapshot_fn = snapshot_fn
        self.accepted_epoch = accepted_epoch
        self.current_epoch = current_epoch
        self._durable = HardState(accepted_epoch, current_epoch)
        self.base = base_zxid
        self.history: list[Entry] = list(history)
        self._zxids: list[int] = [e.zxid for e in self.history]
        if any(a >= b for a, b in zip(self._zxids, self._zxids[1:], strict=False)) or (
            self._zxids and self._zxids[0] <= base_zxid
        ):
            raise ValueError("history must have strictly increasing zxids above base_zxid")
        for e in self.history:
            self._note_config(e)
        # After a restart only the snapshot is known to be applied; the rest of the
        # log is delivered once a leader confirms it (UPTODATE or COMMIT).
        self.committed = base_zxid
        self.applied = base_zxid  # handed out and advanced
        self._handed = base_zxid  # handed out in a Ready (maybe not yet advanced)
        self.persisted = self.last_zxid
        self.ticks = 0
        self.role = Role.LOOKING
        self.leader: int | None = None
        self.established = False
        self._lead: _Lead | None = None
        self._follow: _Follow | None = None
        self._session_payload = b""
        # Pending outputs.
        self._msgs: list[Any] = []
        self._notes: list[tuple[int, Notification]] = []
        self._to_persist: list[Entry] = []
        self._truncate: int | None = None
        self._snapshot: SnapshotInstall | None = None
        # A snapshot we installed that the state machine has not restored yet:
        # until it has, snapshot_fn would describe an older state.
        self._unapplied_snapshot: SnapshotInstall | None = None
        self._requests: list[tuple[int, bytes, tuple[Any, ...]]] = []
        self._reports: list[tuple[int, bytes]] = []
        # Leader, ReadIndex: (round needed, token) not yet confirmed, in request order;
        # confirmed tokens not yet handed out; whether a round must start at the next Ready.
        self._reads: deque[tuple[int, object]] = deque()
        self._confirmed: list[object] = []
        self._round_wanted = False
        self._soft_dirty = True
        self._inflight: Ready | None = None
        self._inflight_upto: int | None = None
        self._reconfigure_elector()
        self._become_looking()

    @classmethod
    def recover(
        cls,
        config: PeerConfig,
        elector: Elector,
        recovered: Any,
        snapshot_fn: SnapshotFn | None = None,
        **membership: Any,
    ) -> Peer:
        """Build a peer from :class:`trizab.storage.Recovered` (txns are re-encoded as opaque bytes).

        ``membership`` passes ``membership``, ``membership_fn`` and ``snapshot_membership_fn``
        on: the configuration in force at the snapshot, and how to read later ones.
        """
        return cls(
            config,
            elector,
            accepted_epoch=recovered.accepted_epoch,
            current_epoch=recovered.current_epoch,
            base_zxid=recovered.snapshot_zxid,
            history=[Entry(t.zxid, t.encode()) for t in recovered.txns],
            snapshot_fn=snapshot_fn,
            **membership,
        )

    # ------------------------------------------------------------------ public API

    @property
    def last_zxid(self) -> int:
        return self._zxids[-1] if self._zxids else self.base

    @property
    def epoch(self) -> int:
        lead = self._lead
        if lead is not None and lead.new_epoch is not None:
            return lead.new_epoch
        return self.current_epoch

    @property
    def zab_phase(self) -> str:
        """ZooKeeper's ``QuorumPeer.ZabState``: election, discovery, synchronization or broadcast."""
        phase = self._lead.phase if self._lead is not None else self._follow.phase if self._follow else None
        if phase is None:
            return "election"
        return {"epoch": "discovery", "ackepoch": "discovery", "sync": "synchronization"}.get(phase, phase)

    @property
    def is_leader_established(self) -> bool:
        """True on the leader once a quorum acknowledged NEWLEADER (it may expire sessions)."""
        return self.role == Role.LEADING and self.established

    def step(self, msg: QuorumMessage | Notification | Disconnected) -> None:
        """Feed one input received from the network (or a connection event)."""
        if isinstance(msg, Notification):
            self._step_election(msg)
        elif isinstance(msg, Disconnected):
            self._step_disconnected(msg.peer)
        elif self.role == Role.LEADING:
            self._step_leader(msg)
        elif self.role in (Role.FOLLOWING, Role.OBSERVING):
            self._step_learner(msg)
        else:
            # Nobody should talk ZAB to a LOOKING peer: close that connection.
            self._msgs.append(Disconnect(msg.sender))

    def tick(self) -> None:
        """One tick of abstract time (``config.tick_ms``)."""
        self.ticks += 1
        if self.role == Role.LOOKING:
            self._tick_looking()
        elif self.role == Role.LEADING:
            self._tick_leader()
        else:
            self._tick_learner()

    def propose(self, txn: bytes | Txn) -> int:
        """Leader: propose a transaction; returns its zxid.  Raises NotLeader unless established.

        A :class:`~trizab.txn.Txn` gets its header's zxid set; bytes are taken as opaque.
        The entry keeps the stamped Txn beside its bytes (``Entry.txn``) so that the
        driver need not decode what it just encoded; that is safe because the bytes are
        its exact encoding, and nothing in the protocol reads ``txn``: entries compare,
        travel and persist by zxid and bytes only (the simulation checks histories on
        those).
        """
        lead = self._lead
        if lead is None or not self.established or lead.new_epoch is None:
            raise NotLeader(self.leader if self.role != Role.LEADING else None)
        if lead.counter >= MAX_COUNTER:
            # ZooKeeper: "zxid lower 32 bits have rolled over, forcing re-election".
            self._become_looking()
            raise NotLeader(None)
        lead.counter += 1
        z = zxid(lead.new_epoch, lead.counter)
        if isinstance(txn, bytes):
            entry = Entry(z, txn)
        else:
            stamped = _stamp(txn, z)
            entry = Entry(z, stamped.encode(), stamped)
        data = entry.data
        self._append(entry)
        for lr in lead.learners.values():
            if lr.newleader_upto is not None and not lr.observer:
                self._msgs.append((lr.sid, Proposal(self.id, z, data)))
        return z

    def forward(self, payload: bytes, auth: tuple[Any, ...] = ()) -> None:
        """Learner: forward a client request to the leader (ZooKeeper's REQUEST packet).

        ``auth`` is the client's identities (QuorumPacket.authinfo), handed back with the
        payload in the leader's ``Ready.requests``.
        """
        f = self._follow
        if f is None or not self.established:
            raise NotLeader(self.leader)
        self._msgs.append((f.leader, Request(self.id, payload, auth)))

    def read_index(self, token: object) -> None:
        """Leader: confirm that we still lead before a read (etcd raft's ReadIndex); see the module docstring.

        ``token`` comes back in ``Ready.reads_confirmed`` once a quorum of every
        configuration in force answered a heartbeat round started after this call
        (at once if we alone are such a quorum); tokens come back in call order.
        The driver records what the read must reflect (ZooKeeper's sync: our
        ``last_zxid`` now) and answers once confirmed and applied that far.  Raises
        NotLeader unless established; a role change drops the token silently.
        """
        lead = self._lead
        if lead is None or not self.established:
            raise NotLeader(self.leader if self.role != Role.LEADING else None)
        self._reads.append((lead.round + 1, token))
        self._round_wanted = True
        self._confirm_reads()

    def report_sessions(self, payload: bytes) -> None:
        """Learner: session activity to piggyback on the next ping to the leader."""
        self._session_payload = payload

    def has_ready(self) -> bool:
        return bool(
            self._msgs
            or self._to_persist
            or self._truncate is not None
            or self._snapshot is not None
            or self._requests
            or self._reports
            or self._round_wanted
            or self._confirmed
            or self._soft_dirty
            or self._hard_state() != self._durable
            or self.committed > self._handed
            or self._notes
        )

    def early_messages(self, inflight_sent: bool) -> tuple[tuple[int, QuorumMessage], ...]:
        """Established leader: the pending broadcast messages that may leave now, between Readies.

        ZooKeeper's leader sends a PROPOSAL as soon as it makes it and a COMMIT as soon as a
        quorum acknowledged; here they would otherwise wait for the next Ready, that is for
        the storage barrier of the Ready in flight.  ``inflight_sent`` is whether the driver
        has sent the messages of the Ready in flight (before its barrier, as
        :meth:`Ready.may_send_early` allowed it; or no Ready is in flight): only then can
        newer messages leave without overtaking older ones.  Returns the longest prefix of
        the pending messages made only of what ``may_send_early`` lets an established
        leader send before its barrier, and takes them out of the next Ready; sent now and
        in order, they keep every destination's FIFO order.  Anything else pending (a
        learner's sync, a Disconnect) stops the prefix and waits for the next Ready, as does
        everything while epochs, a truncation or a snapshot wait to be written.  Safe for the
        reasons ``may_send_early`` gives: the leader counts its own acknowledgement only
        once ``advance`` reports its barrier, so a COMMIT still needs a durable quorum.
        """
        msgs = self._msgs
        if (
            not inflight_sent
            or not msgs
            or not self.is_leader_established
            or self._truncate is not None
            or self._snapshot is not None
            or self._hard_state() != self._durable
        ):
            return ()
        n = 0
        for m in msgs:
            if isinstance(m, Disconnect) or not isinstance(m[1], EARLY_MESSAGES):
                break
            n += 1
        if n == 0:
            return ()
        taken = tuple(msgs[:n])
        del msgs[:n]
        return taken

    def applicable(self, applied: int) -> list[Entry]:
        """The history after ``applied`` that a member may apply now, before the next Ready.

        What is committed and, on the leader, in its own log (its applied state never runs
        ahead of its disk); an established learner applies a committed entry even before its
        own barrier covers it, as ZooKeeper's followers do: a quorum holds it durably.
        """
        upto = self.committed if self.established and self.role != Role.LEADING else self.persisted
        upto = min(upto, self.committed)
        if upto <= applied or self.base > applied:
            return []
        lo = bisect.bisect_right(self._zxids, applied)
        return self.history[lo : bisect.bisect_right(self._zxids, upto)]

    def ready(self) -> Ready:
        """Collect everything to do; see :mod:`trizab.zab.ready` for the order."""
        if self._inflight is not None:
            raise RuntimeError("ready() called again before advance()")
        if self._round_wanted:
            # Every read_index since the last Ready shares this round.
            self._start_round()
        hs = self._hard_state()
        upto = self.committed
        committed: tuple[Entry, ...] = ()
        if upto > self._handed:
            lo = bisect.bisect_right(self._zxids, self._handed)
            hi = bisect.bisect_right(self._zxids, upto)
            committed = tuple(self.history[lo:hi])
            self._handed = upto
        rd = Ready(
            soft_state=self._soft_state() if self._soft_dirty else None,
            hard_state=hs if hs != self._durable else None,
            snapshot=self._snapshot,
            truncate_after=self._truncate,
            to_persist=tuple(self._to_persist),
            messages=tuple(self._msgs),
            notifications=tuple(self._notes),
            committed=committed,
            requests=tuple(self._requests),
            session_reports=tuple(self._reports),
            reads_confirmed=tuple(self._confirmed),
        )
        self._soft_dirty = False
        self._snapshot = None
        self._truncate = None
        self._to_persist = []
        self._msgs = []
        self._notes = []
        self._requests = []
        self._reports = []
        self._confirmed = []
        self._inflight = rd
        self._inflight_upto = self.last_zxid if rd.must_sync else None
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver carried out ``rd``: its storage barrier is done and its committed txns applied."""
        if rd is not self._inflight:
            raise RuntimeError("advance() with a Ready that is not the outstanding one")
        self._inflight = None
        if rd.hard_state is not None:
            self._durable = rd.hard_state
        if self._inflight_upto is not None:
            self.persisted = min(self._inflight_upto, self.last_zxid)
        if rd.committed:
            self.applied = max(self.applied, rd.committed[-1].zxid)
        if rd.snapshot is not None:
            self.applied = max(self.applied, rd.snapshot.zxid)
            if rd.snapshot is self._unapplied_snapshot:
                self._unapplied_snapshot = None
        self._trim()
        if self.role == Role.LEADING:
            # The leader's own acknowledgements are its storage barrier.
            self._leader_progress()

    # ------------------------------------------------------------------ history

    def _hard_state(self) -> HardState:
        return HardState(self.accepted_epoch, self.current_epoch)

    def _soft_state(self) -> SoftState:
        return SoftState(self.role, self.leader, self.epoch, self.established)

    def _append(self, e: Entry) -> None:
        if e.zxid <= self.last_zxid:
            raise AssertionError(f"append out of order: {e.zxid:#x} after {self.last_zxid:#x}")
        self.history.append(e)
        self._zxids.append(e.zxid)
        self._to_persist.append(e)
        self._note_config(e)

    def _truncate_after(self, z: int) -> None:
        if z < self._handed:
            # ZAB never truncates a committed transaction: this is a bug, not a bad peer.
            raise AssertionError(f"truncate below applied transactions ({z:#x} < {self._handed:#x})")
        i = bisect.bisect_right(self._zxids, z)
        del self.history[i:]
        del self._zxids[i:]
        self._to_persist = [e for e in self._to_persist if e.zxid <= z]
        self._truncate = z if self._truncate is None else min(self._truncate, z)
        self.persisted = min(self.persisted, z)
        self.committed = min(self.committed, z)
        if self._cfgs and self._cfgs[-1][0] > z:
            self._cfgs = [(cz, m) for cz, m in self._cfgs if cz <= z]
            self._reconfigure_elector()

    def _install_snapshot(self, z: int, data: bytes) -> None:
        # The snapshot holds every committed reconfig up to z; a static configuration
        # (version 0) in it does not replace ours (a joiner's lists itself).
        # (Our own reconfig entries below z prove nothing: the snapshot replaces a
        # history that may have diverged from the leader's.)
        before = self.active
        cfg = before
        if self.snapshot_membership_fn is not None:
            snap_cfg = self.snapshot_membership_fn(data)
            if snap_cfg is not None and snap_cfg.version > cfg.version:
                cfg = snap_cfg
        self._base_cfg = cfg
        self._cfgs = []
        self.history = []
        self._zxids = []
        self._to_persist = []
        self._truncate = None
        self._snapshot = self._unapplied_snapshot = SnapshotInstall(z, data)
        self.base = z
        self.committed = self._handed = z
        self.persisted = min(self.persisted, z)
        if cfg != before:
            self._activated(cfg)

    def _trim(self) -> None:
        keep = self.config.committed_log_size
        if len(self.history) <= 2 * keep + 16:
            return
        # Drop applied entries beyond the last `keep` of them; never drop unapplied ones.
        n_applied = bisect.bisect_right(self._zxids, self.applied)
        cut = n_applied - keep
        if cut <= 0:
            return
        self.base = self._zxids[cut - 1]
        del self.history[:cut]
        del self._zxids[:cut]
        while self._cfgs and self._cfgs[0][0] <= self.base:
            self._base_cfg = self._cfgs.pop(0)[1]

    # ------------------------------------------------------------------ roles

    def _set_role(self, role: Role, leader: int | None) -> None:
        self.role = role
        self.leader = leader
        self.established = False
        self._soft_dirty = True
        # ReadIndex tokens belong to the term that took them, confirmed or not: a driver
        # closes its clients on a role change, and a learner whose sync is dropped
        # re-syncs with the next leader anyway.
        self._reads.clear()
        self._confirmed = []
        self._round_wanted = False

    def _become_looking(self) -> None:
        for sid in self._connected():
            self._msgs.append(Disconnect(sid))
        self._lead = None
        self._follow = None
        if self._leader_cfg is not None:
            self._leader_cfg = None
            self._reconfigure_elector()
        self._set_role(Role.LOOKING, None)
        self.elector.start(Candidate(self.current_epoch, self.last_zxid))
        self._check_decision()

    def _connected(self) -> list[int]:
        if self._lead is not None:
            return sorted(self._lead.learners)
        if self._follow is not None:
            return [self._follow.leader]
        return []

    def _become_leading(self) -> None:
        self._set_role(Role.LEADING, self.id)
        self._lead = _Lead(since=self.ticks)
        self._lead.infos[self.id] = self.accepted_epoch
        self._maybe_choose_epoch()

    def _become_learner(self, leader: int, observer: bool) -> None:
        self._set_role(Role.OBSERVING if observer else Role.FOLLOWING, leader)
        self._follow = _Follow(leader, observer)
        self._msgs.append((leader, FollowerInfo(self.id, self.accepted_epoch, observer)))

    def _step_disconnected(self, peer: int) -> None:
        if self._lead is not None:
            self._lead.learners.pop(peer, None)
            if self._lead.new_epoch is None:
                self._lead.infos.pop(peer, None)
        elif self._follow is not None and self._follow.leader == peer:
            f = self._follow
            if f.phase == "discovery" and f.silence <= self.config.init_limit_ticks:
                # Refused before LEADERINFO: the leader may still be finishing its election.
                f.retry_in = self.config.connect_retry_ticks
                return
            self._follow = None  # the connection is already gone: no Disconnect to send
            self._become_looking()


def _stamp(txn: Txn, z: int) -> Txn:
    if txn.header.zxid == z:
        return txn  # the driver predicted the zxid (the usual case): nothing to change
    return attrs.evolve(txn, header=attrs.evolve(txn.header, zxid=z))


__all__ = ["NotLeader", "Peer", "PeerConfig", "SnapshotFn"]
