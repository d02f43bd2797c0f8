"""The faults a schedule is made of, and reconfigs asked for as a client and an operator would.

An action is a tuple, chosen by the schedule's generator (:meth:`FaultSchedule.random_action`)
or given to :meth:`~trizab.testing.sim.simulation.Simulation.run` (hypothesis chooses and
shrinks them in ``tests/sim/``), and carried out by :meth:`FaultSchedule.do`:

* ``("crash", i)``, ``("restart", i)``, ``("crash_leader",)`` and ``("crash_leader", i)``
  (the leader and one more: a rack, a power feed);
* ``("partition", side)`` (``side`` against the rest), ``("heal",)``, ``("break", a, b)``
  (the network closes one connection), ``("slow", a, b, ms)`` (extra delay from a to b);
* ``("pause", i, ms)`` and ``("pause_leader", ms)`` (SIGSTOP, a long GC);
* ``("snapshot", i)``;
* reconfigs: ``("add_voter",)`` (a new server joins and is added), ``("remove_voter", i)``,
  ``("remove_leader",)``, ``("demote", i)`` (a voter becomes an observer).

A mixin of :class:`~trizab.testing.sim.simulation.Simulation`, like the checks
(:mod:`trizab.testing.sim.invariants`): each action is one or two of the driver's own
verbs (crash, start, pause, partition the network, propose at the leader) and the
schedule's generator is the driver's, so the fault vocabulary lives here and the verbs
stay there.  What it uses of the driver is declared on the class.
"""

from __future__ import annotations

import pickle
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trizab.testing.sim.configuration import encode_config
from trizab.zab.membership import Membership
from trizab.zab.quorum import is_quorum
from trizab.zab.ready import Role
from trizab.zab.zxid import fmt

if TYPE_CHECKING:
    from trizab.testing.sim.network import SimNetwork
    from trizab.testing.sim.simulation import Node, SimParams


class FaultSchedule:
    """Faults and reconfigs, mixed into the simulation driver (see the module docstring)."""

    # What the faults use of the driver (set by Simulation and its InvariantChecks).
    p: SimParams
    rng: random.Random  # the schedule's generator
    ids: list[int]
    nodes: dict[int, Node]
    net: SimNetwork
    now: int
    submitted: set[bytes]
    reconfigs: int  # reconfigs proposed so far: the next one's version
    current_config: Membership
    crash: Callable[[int], None]
    start: Callable[[int], None]
    pause: Callable[[int, int], None]
    schedule: Callable[..., None]
    log: Callable[[str], None]
    _propose: Callable[[int, bytes], None]

    def random_action(self) -> tuple[Any, ...]:
        """A fault chosen by the schedule's generator."""
        rng = self.rng
        if self.p.reconfig and rng.random() < 0.2:
            r = rng.random()
            if r < 0.4:
                return ("add_voter",)
            if r < 0.65:
                return ("remove_voter", rng.choice(self.ids))
            if r < 0.8:
                return ("remove_leader",)
            return ("demote", rng.choice(self.ids))
        r = rng.random()
        if r < 0.25:
            return ("crash", rng.choice(self.ids))
        if r < 0.45:
            return ("restart", rng.choice(self.ids))
        if r < 0.5:
            return ("crash_leader",)
        if r < 0.55:
            # Correlated failure (a rack, a power feed): the leader and one more.
            return ("crash_leader", rng.choice(self.ids))
        if r < 0.7:
            ids = self.ids[:]
            rng.shuffle(ids)
            return ("partition", tuple(sorted(ids[: rng.randint(1, len(ids) - 1)])))
        if r < 0.8:
            return ("heal",)
        if r < 0.88:
            return ("break", *rng.sample(self.ids, 2))
        if r < 0.94:
            return ("slow", *rng.sample(self.ids, 2), rng.choice([50, 200, 1000, 3000]))
        return ("snapshot", rng.choice(self.ids))

    def do(self, action: tuple[Any, ...]) -> None:
        """Carry out one fault; actions that do not apply right now (crash a dead peer) do nothing."""
        kind = action[0]
        nodes = self.nodes
        if kind == "crash":
            self.crash(action[1])
        elif kind == "restart":
            if nodes[action[1]].peer is None and nodes[action[1]].incarnation > 0:
                self.start(action[1])
        elif kind == "crash_leader":
            # Crash whoever leads right now: the interesting moment.
            for n in nodes.values():
                if n.peer is not None and n.peer.role == Role.LEADING:
                    self.crash(n.id)
                    break
            for other in action[1:]:
                self.crash(other)
        elif kind == "partition":
            side = set(action[1]) & set(self.ids)
            self.log(f"partition {sorted(side)} | {sorted(set(self.ids) - side)}")
            self.net.partition([side, set(self.ids) - side])
        elif kind == "heal":
            self.log("heal")
            self.net.heal()
        elif kind == "break":
            a, b = action[1], action[2]
            if a != b and a in nodes and b in nodes:
                self.log(f"break {a}-{b}")
                self.net.disconnect(a, b, notify_a=True)
        elif kind == "slow":
            self.net.slow[(action[1], action[2])] = action[3]
        elif kind == "pause":
            self.pause(action[1], action[2])
        elif kind == "pause_leader":
            for n in nodes.values():
                if n.peer is not None and n.peer.is_leader_established:
                    self.pause(n.id, action[1])
                    break
        elif kind == "snapshot":
            node = nodes[action[1]]
            if node.peer is not None and not node.busy:
                self.log(f"snapshot {node.id} at {fmt(node.app_zxid)}")
                node.storage.save_snapshot(node.app_zxid, pickle.dumps(node.app))
        elif kind == "add_voter":
            # As an operator does: start a new server whose zoo.cfg lists the current
            # ensemble plus itself, then ask for the reconfig.
            spare = next((n for n in nodes.values() if n.incarnation == 0), None)
            if spare is not None:
                cur = self.current_config
                spare.static = Membership(cur.voters | {spare.id}, cur.observers - {spare.id})
                self.start(spare.id)
                self.schedule(self.now + self.rng.randint(0, 3000), self.reconfig, ("add", spare.id), 8)
        elif kind in ("remove_voter", "demote"):
            self.reconfig((kind, action[1]), 8)
        elif kind == "remove_leader":
            self.reconfig(("remove_voter", None), 8)
        else:
            raise ValueError(f"unknown action {action!r}")

    def reconfig(self, op: tuple[str, int | None], tries: int) -> None:
        """A client's reconfig, prepped at the established leader as ZooKeeper's PrepRequestProcessor
        does: one in flight at a time, and refused unless the new voters hold a synced quorum.
        Refusals are retried a few times (every 500 ms), never once proposed."""
        leader = next(
            (n for n in self.nodes.values() if n.peer is not None and n.peer.is_leader_established), None
        )
        if leader is None or leader.peer is None or leader.peer.reconfig_in_flight:
            if tries > 1:
                self.schedule(self.now + 500, self.reconfig, op, tries - 1)
            return
        peer = leader.peer
        cur = peer.active
        kind, sid = op
        if sid is None:
            sid = leader.id
        if kind == "add":
            new = (cur.voters | {sid}, cur.observers - {sid})
        elif kind == "remove_voter":
            new = (cur.voters - {sid}, cur.observers - {sid})
        else:
            new = (cur.voters - {sid}, cur.observers | {sid} if sid in cur.voters else cur.observers)
        if new == (cur.voters, cur.observers) or len(new[0]) < 2:
            return
        static_leader = dict(self.p.election_options).get("leader")
        if static_leader is not None and int(static_leader) not in new[0]:
            return  # the static plugin would wait for a leader that no longer votes
        if not is_quorum(peer.synced_voters(), new[0]):
            # Err.NEW_CONFIG_NO_QUORUM
            if tries > 1:
                self.schedule(self.now + 500, self.reconfig, op, tries - 1)
            return
        self.reconfigs += 1
        payload = encode_config(Membership(new[0], new[1], self.reconfigs))
        self.submitted.add(payload)
        self.log(f"reconfig {op} at {leader.id}: {payload!r}")
        self._propose(leader.id, payload)

    def _random_fault(self) -> None:
        self.do(self.random_action())
