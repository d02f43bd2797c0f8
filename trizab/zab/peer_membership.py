"""The peer's membership bookkeeping: which configurations are in force, and quorums of all of them.

Dynamic reconfiguration (ZooKeeper 3.5+; ``Leader.tryToCommit``, ``QuorumPeer.processReconfig``)
-------------------------------------------------------------------------------------------------
A configuration change is an ordinary proposal of the log; ``membership_fn`` tells
which entries are reconfigs and the :class:`~trizab.zab.membership.Membership`
(voters, observers, version) each installs.  So every peer knows, for every
position of its history, which configurations are in force there: the **active**
one (of the last reconfig it knows committed, or the configuration at ``base``:
zoo.cfg's, or what the snapshot holds) and those of the reconfig entries above
its commit point (**pending**, ``pending_configs``).

* **Quorum rule.**  Wherever ZAB needs a quorum (commit of a proposal, choosing the
  epoch, the ACKEPOCH quorum of discovery, NEWLEADER, the leader's "I still hear a
  quorum" check) it needs a quorum of *every* configuration in force at that point:
  the active one and each pending one at or before it (``commit_point``).  A
  reconfig entry itself needs its own new voters too, which is why the prep step
  refuses a new configuration without a synced quorum (NewConfigNoQuorum).
* **Discovery reaches a fixpoint.**  The leader picks the best history among every
  acknowledging follower (voter of some configuration or not) and proceeds only once
  the acknowledgements hold a quorum of its active configuration and of every
  configuration in force in the history it would adopt; otherwise it waits for more
  (and picks again).
* **Why this is safe.**  A committed transaction t was acknowledged by a quorum of
  every configuration in force at t.  Let C be the newest configuration committed
  at or before t: t was acknowledged by a quorum of C (t is C's reconfig entry, or
  comes after it).  A later leader's discovery hears from a quorum of its active
  configuration A.  If A is C or newer, induction over committed reconfigs gives
  a quorum of A that intersects every quorum of C's successors up to A, each
  committed by quorums of both itself and its predecessor; if A is older than C,
  then C's reconfig entry R was committed by a quorum of A's successors down to A
  (same induction), so the best history of the discovery quorum contains R, and
  the fixpoint then requires a quorum of C too.  Either way some acknowledging
  follower had t (or a later-epoch history, which by induction on epochs contains
  t), and the best history contains t.  Requiring more quorums never breaks this:
  it can only cost liveness.  A configuration older than the newest one known
  committed is superseded and no longer required.
* **Activation and hand-over.**  When the commit point passes a reconfig the new
  configuration becomes active (on the leader at commit, on learners with COMMIT,
  UPTODATE or INFORM, and from a snapshot).  A leader that is not a voter of it
  steps down once its COMMITs are out (the remaining voters elect a new one); a
  follower demoted to observer re-joins as one; a member that a logged
  configuration listed and a committed one no longer does is **removed**: it stays
  LOOKING and serves nobody.
* **New servers** start with zoo.cfg listing the ensemble plus themselves.  A server
  that is not yet a voter of any configuration in its log follows without a vote:
  it gets PROPOSAL/COMMIT, and its ACKs count for no configuration until the
  reconfig adding it is in the leader's history.  A follower refuses a leader
  that is a voter of no configuration it knows (logged, or reported in election
  notifications): that keeps a new server's own zoo.cfg, which no quorum ever
  agreed on, from gathering a quorum of servers that do not know it.  (A known
  limit: new servers whose zoo.cfgs list each other may follow one another; give
  each new server a zoo.cfg of the running ensemble plus itself only.)
* **Elections** count the voters of the newest configuration seen (our log, the
  leader's NEWLEADER, or the committed one an established member reports), and
  never vote for a server outside them.  Notifications carry the sender's
  *committed* configuration only (``notified_config``; ZooKeeper sends
  ``getQuorumVerifier()``), so a configuration a notification brings that is newer
  than ours becomes our configuration at ``base``, as ZooKeeper's FastLeaderElection
  makes it its own.  All of this only decides whom to follow; the quorum rule
  above decides what commits.

Who owns what
-------------
:class:`PeerMembership` is the part of :class:`~trizab.zab.peer.Peer` that keeps the
configurations: it is a mixin (see :mod:`trizab.zab.peer_base`), so its state is the
peer's.  The history helpers of :mod:`trizab.zab.peer` also rewrite ``_cfgs`` and
``_base_cfg`` when they truncate, trim or replace the history the configurations are
read from; everything else about membership is here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from trizab.zab.membership import Membership, parse_config_text, render_membership
from trizab.zab.messages import Entry, Notification
from trizab.zab.peer_base import PeerBase
from trizab.zab.quorum import is_quorum


class PeerMembership(PeerBase):
    """The configurations of the history and the quorum rule (a mixin of :class:`~trizab.zab.peer.Peer`).

    Reads ``membership_fn``, ``committed``, ``id`` and ``_leader_cfg``; writes the
    configuration fields (``_base_cfg``, ``_cfgs``, ``_seen``, ``_listed``, ``removed``),
    ``committed`` (only through :meth:`_set_committed`, which activates what a commit
    covers) and ``_soft_dirty``; tells the elector who votes (``_reconfigure_elector``).
    """

    @property
    def active(self) -> Membership:
        """The configuration of the last committed reconfig (or the initial one)."""
        cfg = self._base_cfg
        committed = self.committed
        for z, m in self._cfgs:
            if z > committed:
                break
            if m.version >= cfg.version:  # a configuration learned elsewhere may be newer
                cfg = m
        return cfg

    @property
    def voters(self) -> frozenset[int]:
        return self.active.voters

    def pending_configs(self, upto: int | None = None) -> list[tuple[int, Membership]]:
        """Reconfig entries of the history not known committed (up to ``upto``), in zxid order.

        One older than the active configuration (learned from a snapshot or another
        server) is superseded: a committed configuration's quorums contain everything
        committed under its predecessors, so requiring those too would add nothing.
        """
        committed = self.committed
        floor = self.active.version
        return [
            (z, m)
            for z, m in self._cfgs
            if z > committed and m.version > floor and (upto is None or z <= upto)
        ]

    @property
    def reconfig_in_flight(self) -> bool:
        """Whether the history holds a reconfig not yet known committed."""
        return bool(self._cfgs) and self._cfgs[-1][0] > self.committed and bool(self.pending_configs())

    def _configs_in_force(self, upto: int | None = None) -> list[Membership]:
        return [self.active] + [m for _, m in self.pending_configs(upto)]

    def _quorum_of_all(self, ids: Any, configs: Sequence[Membership]) -> bool:
        ids = set(ids)
        return all(is_quorum(ids, m.voters) for m in configs)

    def _all_voters(self) -> frozenset[int]:
        out = set(self.active.voters)
        for _, m in self.pending_configs():
            out |= m.voters
        return frozenset(out)

    def _all_members(self) -> frozenset[int]:
        out = set(self.active.members)
        for _, m in self.pending_configs():
            out |= m.members
        return frozenset(out)

    def _note_config(self, e: Entry) -> None:
        m = self.membership_fn(e.data)
        if m is not None:
            self._cfgs.append((e.zxid, m))
            self._reconfigure_elector()

    def _set_committed(self, c: int) -> None:
        """Advance the commit point; a reconfig it covers becomes active (QuorumPeer.processReconfig)."""
        if c <= self.committed:
            return
        before = self.active
        self.committed = c
        if self._cfgs and self.active != before:
            self._activated(self.active)

    def _activated(self, m: Membership) -> None:
        self._reconfigure_elector()
        self._soft_dirty = True
        if m.version > 0:
            if self.id in m.members:
                self._listed = True
                self.removed = False
            elif self._listed:
                self.removed = True

    @property
    def latest(self) -> Membership:
        """The last configuration of the history, committed or not (ZooKeeper's lastSeenQuorumVerifier)."""
        cfg = self._base_cfg
        for _, m in self._cfgs:
            if m.version >= cfg.version:
                cfg = m
        return cfg

    def _adopt_config(self, text: bytes) -> None:
        """LOOKING: another server told us a configuration it knows committed (its
        notification's config); a newer one than ours replaces what we hold at ``base``
        (QuorumPeer.processReconfig from FastLeaderElection).  Safe: a committed config
        was acknowledged by quorums of itself and of its predecessor, so every later
        discovery that hears from a quorum of it finds it and all that came before."""
        try:
            m = parse_config_text(text)
        except ValueError:
            return
        before = self.active
        if m.version <= max(before.version, self._base_cfg.version):
            return
        self._base_cfg = m
        if self.active != before:
            self._activated(self.active)

    @property
    def _election_cfg(self) -> Membership:
        """Who votes in elections: the configuration an established member reports, else the
        newest we have seen, in our log or in a leader's NEWLEADER (ZooKeeper's
        lastSeenQuorumVerifier).  Liveness only: quorums for ZAB itself always come from our
        own history."""
        if self._leader_cfg is not None:
            return self._leader_cfg
        seen = self._seen
        latest = self.latest
        return seen if seen is not None and seen.version > latest.version else latest

    def _reconfigure_elector(self) -> None:
        # Optional in the Elector protocol: plugins that count votes learn the voters.
        reconfigure = getattr(self.elector, "reconfigure", None)
        if reconfigure is not None:
            m = self._election_cfg
            reconfigure(m.voters, m.observers)

    def _see_config(self, text: bytes) -> None:
        """The leader's last seen configuration (NEWLEADER): a newer one than we hold makes
        us vote like it (Learner.syncWithLeader: ``setLastSeenQuorumVerifier``).  Liveness
        only; it becomes active when our history commits it."""
        try:
            m = parse_config_text(text)
        except ValueError:
            return
        if m.version > self._election_cfg.version:
            self._seen = m
            self._reconfigure_elector()

    @property
    def notified_config(self) -> bytes:
        """The configuration our election notifications carry: the active one, which we
        know committed, as ZooKeeper sends ``getQuorumVerifier().toString()`` and never its
        last seen one.  A LOOKING ZooKeeper member makes a newer one its own at once
        (``processReconfig`` from FastLeaderElection), and so do we (:meth:`_adopt_config`):
        a reconfig we logged but do not know committed must never travel here."""
        return render_membership(self.active)

    def _with_config(self, notes: list[tuple[int, Notification]]) -> list[tuple[int, Notification]]:
        if not notes:
            return notes
        text = self.notified_config
        return [(to, attrs.evolve(n, config=text)) for to, n in notes]
