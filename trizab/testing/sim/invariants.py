"""The Zab properties the simulation checks, and what a failed one raises.

:class:`InvariantChecks` holds what the checker remembers of a schedule (the one
global delivered sequence, what was proposed at each zxid, which zxids a quorum held
durably, the leader of each epoch, the syncs asked) and the checks themselves:

* at each delivery (:meth:`~InvariantChecks._check_delivery`): the txn was submitted
  by a client and proposed with that data, a quorum of the configuration in force (and,
  for a reconfig, of the new one) held it durably, primary order, agreement;
* at each proposal, established leader, notification sent, Ready carried out, snapshot
  installed and sync confirmed: no two proposals at one zxid, one established leader per
  epoch, only committed configurations announced or active, a prefix of the global
  sequence, linearizability of sync + read;
* after the faults: liveness (:meth:`~InvariantChecks._quiet` within
  :data:`LIVENESS_BOUND_MS`) and durability (:meth:`~InvariantChecks._final_check`).

Why a mixin of :class:`~trizab.testing.sim.simulation.Simulation`, not a checker object:
the checks run inside the driver's steps and read the whole simulated world at that
moment (every server's disk, its peer's active configuration, the clients'
acknowledged writes), so a checker object would hold the simulation and reach through
it everywhere (``self.sim.nodes[v].storage``), the same coupling one hop further; what
the checker remembers is read by the driver too (``current_config`` picks the voters
that a reconfig changes and the servers that must settle).  And a test switches one
check off by patching the class it runs on, ``Simulation``, as the deliberate-bug tests
in ``tests/sim/`` do.  The price is that the mixin reads attributes the driver sets;
they are declared on the class below, and the mixin sets only its own state
(:meth:`~InvariantChecks._init_checks`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from trizab.server.replica import config_membership as replica_config_membership
from trizab.testing.sim.configuration import config_membership
from trizab.zab.membership import Membership
from trizab.zab.messages import Entry, Notification
from trizab.zab.peer import Peer
from trizab.zab.quorum import is_quorum
from trizab.zab.zxid import counter_of, epoch_of, fmt

if TYPE_CHECKING:
    from trizab.testing.sim.simulation import Node

# Once faults stop (everything healed and restarted), this much simulated time is
# allowed for a leader to be established and every pending write to be applied
# everywhere.  Derivation for the defaults (tickTime 2 s, initLimit 10, syncLimit 5):
# stale followers notice a silent leader within syncLimit (10 s); an election
# then needs a notification round (a LOOKING peer re-sends after at most the
# 60 s maxNotificationInterval in ZooKeeper, capped here by the backoff reached
# during the fault phase) and finalizeWait; a failed discovery costs initLimit
# (20 s) before the next try; the slowest path measured in soaks is well under
# this bound.
LIVENESS_BOUND_MS = 120_000


class InvariantViolation(AssertionError):
    """A Zab property failed; the message says which and where."""


class InvariantChecks:
    """The Zab property checker, mixed into the simulation driver (see the module docstring)."""

    # What the checks read of the driver (set by Simulation).
    nodes: dict[int, Node]
    initial: Membership  # the configuration every original server's zoo.cfg lists
    submitted: set[bytes]  # every payload a client (or a reconfig) submitted
    pending: dict[bytes, int]  # client writes not acknowledged yet
    acked: dict[bytes, int]  # acknowledged client writes -> their zxid
    max_acked: int
    log: Callable[[str], None]

    def _init_checks(self) -> None:
        # The global delivered sequence: every peer's delivered zxids are a prefix of it.
        self.ref: list[int] = []
        # Positions in the global delivered sequence where a reconfig took effect.
        self.ref_cfgs: list[tuple[int, Membership]] = []
        self.proposals: dict[int, bytes] = {}  # zxid -> what a leader proposed there
        self.quorum_stored: set[int] = set()  # zxids a quorum held durably when first delivered
        self.leaders: dict[int, int] = {}  # epoch -> its established leader
        self.cfg_zxid: dict[int, int] = {}  # reconfig version -> the zxid it was proposed at
        # reconfig version -> the proposing leader's active configuration (its commit needs
        # a durable quorum of that one and of the new one).
        self.cfg_prev: dict[int, Membership] = {}
        self.notified_reconfigs = 0  # notifications sent with a reconfigured configuration
        self.reconfigs_committed = 0
        # Syncs: token -> (leader, its last zxid at the call, the highest acknowledged zxid then).
        self.reads: dict[int, tuple[int, int, int]] = {}
        self.reads_confirmed = 0

    # -- while the schedule runs ---------------------------------------------

    def _check_delivery(self, node: Node, e: Entry) -> Membership | None:
        """Check ``node``'s delivery of ``e`` before it is applied, and extend the global
        sequence with it if ``node`` is the first to deliver it; the configuration it
        installs if it is a reconfig."""
        app = node.app
        z = e.zxid
        if e.data not in self.submitted:
            raise InvariantViolation(f"{node.id} delivered {fmt(z)} that no client submitted")
        if self.proposals.get(z) != e.data:
            raise InvariantViolation(f"{node.id} delivered {fmt(z)} that no leader proposed with that data")
        new_cfg = config_membership(e.data)
        if z not in self.quorum_stored:
            # A commit is a durable quorum of the configuration in force (and, for a
            # reconfig, of the new one too).
            for m in [self.config_before(len(app))] + ([new_cfg] if new_cfg is not None else []):
                stored = [v for v in m.voters if self.nodes[v].storage.has(z)]
                if not is_quorum(stored, m.voters):
                    raise InvariantViolation(
                        f"{node.id} delivered {fmt(z)} while only {len(stored)} of voters"
                        f" {sorted(m.voters)} had it durably (no quorum)"
                    )
            self.quorum_stored.add(z)
        if app:
            pz = app[-1][0]
            if epoch_of(z) == epoch_of(pz):
                ok = counter_of(z) == counter_of(pz) + 1
            else:
                ok = epoch_of(z) > epoch_of(pz) and counter_of(z) == 1
        else:
            ok = counter_of(z) == 1
        if not ok:
            prev = fmt(app[-1][0]) if app else "nothing"
            raise InvariantViolation(f"primary order: {node.id} delivered {fmt(z)} after {prev}")
        k = len(app)
        if k < len(self.ref):
            if self.ref[k] != z:
                raise InvariantViolation(
                    f"agreement: {node.id} delivered {fmt(z)} at position {k}, others {fmt(self.ref[k])}"
                )
        else:
            self.ref.append(z)
            if new_cfg is not None:
                self.ref_cfgs.append((k, new_cfg))
                self.reconfigs_committed += 1
                self.log(f"reconfig committed at {fmt(z)}: {new_cfg}")
        return new_cfg

    def _check_proposal(self, z: int, payload: bytes, active: Membership) -> None:
        """A leader proposed ``payload`` at ``z`` with ``active`` in force."""
        prior = self.proposals.setdefault(z, payload)
        if prior != payload:
            raise InvariantViolation(f"two proposals at {fmt(z)}")
        m = config_membership(payload)
        if m is not None:
            self.cfg_zxid[m.version] = z
            self.cfg_prev[m.version] = active

    def _check_one_leader(self, i: int, epoch: int) -> None:
        """``i`` became the established leader of ``epoch``."""
        other = self.leaders.get(epoch)
        if other is not None and other != i:
            raise InvariantViolation(f"two established leaders in epoch {epoch}: {other} and {i}")
        self.leaders[epoch] = i

    def _check_active(self, node: Node, peer: Peer) -> None:
        """A peer's active configuration is a committed one (or its zoo.cfg's): one whose
        reconfig entry was skipped by the delivered sequence never committed."""
        active = peer.active
        if active.version == 0:
            if active not in (self.initial, node.static):
                raise InvariantViolation(f"{node.id} holds a static configuration it was not given: {active}")
            return
        z = self.cfg_zxid.get(active.version)
        if z is None:
            raise InvariantViolation(f"{node.id} holds {active} active, never proposed")
        if z not in self.quorum_stored and self.ref and z < self.ref[-1]:
            raise InvariantViolation(f"{node.id} holds {active} active, a reconfig that never committed")

    def _check_notified_config(self, i: int, n: Notification) -> None:
        """An election notification carries a committed configuration (or the sender's
        zoo.cfg's), never a reconfig only proposed: a LOOKING ZooKeeper member makes any
        newer one its own.  Committed here means durable at a quorum of the configuration it
        replaces and of itself when sent (a commit is such a quorum's acknowledgement)."""
        if not n.config:
            raise InvariantViolation(f"{i} sent a notification without its configuration")
        m = replica_config_membership(n.config)
        if m is None:
            raise InvariantViolation(f"{i} sent a configuration nobody can read: {n.config!r}")
        if m.version == 0:
            if m not in (self.initial, self.nodes[i].static):
                raise InvariantViolation(f"{i} sent a static configuration it was not given: {m}")
            return
        z = self.cfg_zxid.get(m.version)
        if z is None:
            raise InvariantViolation(f"{i} sent {m}, never proposed")
        self.notified_reconfigs += 1
        if z in self.quorum_stored:
            return
        for needed in (self.cfg_prev[m.version], m):
            stored = [v for v in needed.voters if self.nodes[v].storage.has(z)]
            if not is_quorum(stored, needed.voters):
                raise InvariantViolation(
                    f"{i} sent {m} (reconfig {fmt(z)}) in a notification before it committed:"
                    f" durable at only {sorted(stored)} of voters {sorted(needed.voters)}"
                )

    def _check_prefix(self, node: Node, why: str) -> None:
        """An application restarted from a snapshot or given one is a prefix of the global sequence."""
        for k, (z, data) in enumerate(node.app):
            if k >= len(self.ref):
                raise InvariantViolation(f"{why}: {node.id} has {fmt(z)} at {k} that was never delivered")
            if self.ref[k] != z or self.proposals.get(z) != data:
                raise InvariantViolation(f"{why}: {node.id} disagrees at position {k}")

    def _record_sync(self, i: int, token: int, last_zxid: int) -> None:
        """Leader ``i`` took sync ``token`` with ``last_zxid`` its last: what its confirmation must cover."""
        self.reads[token] = (i, last_zxid, self.max_acked)

    def _check_sync_confirmed(self, i: int, token: object) -> None:
        """``i`` confirmed sync ``token``: the read that follows sees every write acknowledged before it."""
        assert isinstance(token, int)
        leader, last, acked = self.reads.pop(token)
        if leader != i:
            raise InvariantViolation(f"sync #{token} asked of {leader} confirmed by {i}")
        if acked > last:
            raise InvariantViolation(
                f"linearizability: {i} confirmed sync #{token} at {fmt(last)} although"
                f" {fmt(acked)} was acknowledged before it was asked (a stale leader)"
            )
        self.reads_confirmed += 1

    def config_before(self, k: int) -> Membership:
        """The configuration in force before position ``k`` of the delivered sequence."""
        cfg = self.initial
        for pos, m in self.ref_cfgs:
            if pos >= k:
                break
            cfg = m
        return cfg

    @property
    def current_config(self) -> Membership:
        return self.ref_cfgs[-1][1] if self.ref_cfgs else self.initial

    # -- after the faults: liveness and durability ------------------------------

    def _quiet(self) -> bool:
        """Settled: no write pending, one established leader, and every server of the final
        configuration established with the whole global sequence applied."""
        if self.pending:
            return False
        leader = [n for n in self.nodes.values() if n.peer is not None and n.peer.is_leader_established]
        if len(leader) != 1:
            return False
        target = len(self.ref)
        return all(
            len(n.app) == target and n.peer is not None and n.peer.established for n in self._members()
        )

    def _members(self) -> list[Node]:
        """The servers of the final configuration (removed ones and never-added spares stop)."""
        m = self.current_config.members
        return [n for n in self.nodes.values() if n.id in m]

    def _final_check(self) -> None:
        """Durability: every server of the final configuration has every acknowledged write."""
        for node in self._members():
            have = {data for _, data in node.app}
            lost = [d for d in self.acked if d not in have]
            if lost:
                raise InvariantViolation(f"durability: {node.id} lacks acknowledged writes {lost[:3]}")

    def _describe(self) -> str:
        """Where each server stands, for a liveness failure's message."""
        parts = []
        for n in self.nodes.values():
            if n.peer is None:
                parts.append(f"{n.id}:down")
            else:
                pr = n.peer
                parts.append(
                    f"{n.id}:{pr.role.value}/{pr.leader}/e{pr.epoch}/est={pr.established}/app={len(n.app)}"
                )
        return f"pending={len(self.pending)} ref={len(self.ref)} " + " ".join(parts)
