"""The simulation driver: the simulated servers (:class:`Node`), a schedule's parameters
(:class:`SimParams`) and :class:`Simulation`, which runs one schedule on its event heap.

:class:`Simulation` owns the clock, the event heap, the servers and the clients, and
drives each peer as the Trio runtime does.  It mixes in the faults a schedule is made of
(:class:`~trizab.testing.sim.faults.FaultSchedule`) and the Zab property checker
(:class:`~trizab.testing.sim.invariants.InvariantChecks`), whose checks it calls at each
step.  See the package docstring (:mod:`trizab.testing.sim`) for the theory of operation.
"""

from __future__ import annotations

import heapq
import pickle
import random
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from trizab.testing.sim.configuration import config_membership, electors, snapshot_membership
from trizab.testing.sim.faults import FaultSchedule
from trizab.testing.sim.invariants import LIVENESS_BOUND_MS, InvariantChecks, InvariantViolation
from trizab.testing.sim.network import SimNetwork
from trizab.testing.sim.storage import SimStorage
from trizab.zab.election import Elector
from trizab.zab.membership import Membership
from trizab.zab.messages import Disconnect, Disconnected, Entry, Notification, QuorumMessage
from trizab.zab.peer import NotLeader, Peer, PeerConfig
from trizab.zab.ready import Ready, Role
from trizab.zab.zxid import fmt


@attrs.define
class Node:
    id: int
    storage: SimStorage
    peer: Peer | None = None
    incarnation: int = 0
    app: list[tuple[int, bytes]] = attrs.Factory(list)
    busy: bool = False
    inflight: Ready | None = None
    submitted: set[bytes] = attrs.Factory(set)
    # Paused (SIGSTOP, a long GC) until then: no ticks, nothing received or completed.
    paused_until: int = 0
    buffered_syncs: list[int] = attrs.Factory(list)  # syncs its clients asked meanwhile
    # The configuration its zoo.cfg lists (a joiner: the ensemble it joins plus itself).
    static: Membership | None = None

    @property
    def app_zxid(self) -> int:
        return self.app[-1][0] if self.app else 0


@attrs.frozen
class SimParams:
    peers: int = 3
    observers: int = 0
    election: str = "fast"
    election_options: tuple[tuple[str, str], ...] = ()
    tick_ms: int = 500
    tick_time_ms: int = 2000
    init_limit: int = 10
    sync_limit: int = 5
    committed_log_size: int = 500
    fault_ms: int = 15_000
    write_every_ms: int = 400
    fault_every_ms: int = 1_500
    leader_sends_early: bool = False
    # Dynamic reconfiguration: servers that may join later, and whether faults include
    # reconfigs (add a voter, remove a voter or the leader, turn a voter into an observer).
    spares: int = 0
    reconfig: bool = False


class Simulation(FaultSchedule, InvariantChecks):
    """One schedule: ``Simulation(params, seed).run()`` raises InvariantViolation or returns stats."""

    def __init__(
        self, params: SimParams, seed: int, make_elector: Callable[[PeerConfig], Elector] | None = None
    ):
        self.p = params
        self.seed = seed
        self.rng = random.Random(seed)
        self.now = 0
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        n = params.peers + params.observers
        self.ids = list(range(1, n + params.spares + 1))
        self.voters = frozenset(range(1, params.peers + 1))
        self.observers = frozenset(range(1, n + 1)) - self.voters
        self.initial = Membership(self.voters, self.observers)
        self.make_elector = make_elector or electors(params.election, dict(params.election_options))
        self.net = SimNetwork(self, self.ids)
        self.nodes = {i: Node(i, SimStorage()) for i in self.ids}
        for i in range(1, n + 1):
            self.nodes[i].static = self.initial
        self._init_checks()
        self.reconfigs = 0  # reconfigs proposed (reconfigs_committed: those delivered)
        # The clients: every payload written, those not yet acknowledged (-> when written),
        # those acknowledged (-> their zxid), and the highest acknowledged zxid.
        self.submitted: set[bytes] = set()
        self.pending: dict[bytes, int] = {}
        self.acked: dict[bytes, int] = {}
        self.writes = 0
        self.reads_asked = 0
        self.max_acked = 0
        # Syncs and pauses draw from their own generator: the times of a seed's writes and
        # faults stay what they were before syncs existed (the rest still moves with them).
        self.read_rng = random.Random(seed ^ 0x5EAD)
        self.events = 0
        self.trace: list[str] | None = None
        self.established_at: list[tuple[int, int, int]] = []
        for i in range(1, n + 1):
            self.start(i)

    # -- event loop ----------------------------------------------------------

    def schedule(self, t: int, fn: Callable[..., None], *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, self._seq, fn, args))

    def run_until(self, t_end: int, stop: Callable[[], bool] | None = None) -> bool:
        heap = self._heap
        while heap and heap[0][0] <= t_end:
            t, _, fn, args = heapq.heappop(heap)
            self.now = t
            self.events += 1
            fn(*args)
            if stop is not None and stop():
                return True
        self.now = max(self.now, t_end)
        return False

    def log(self, text: str) -> None:
        if self.trace is not None:
            self.trace.append(f"{self.now:>8} {text}")

    # -- peers ---------------------------------------------------------------

    def config(self, i: int) -> PeerConfig:
        p = self.p
        static = self.nodes[i].static or self.initial
        return PeerConfig(
            my_id=i,
            voters=static.voters,
            observers=static.observers,
            tick_ms=p.tick_ms,
            tick_time_ms=p.tick_time_ms,
            init_limit=p.init_limit,
            sync_limit=p.sync_limit,
            committed_log_size=p.committed_log_size,
        )

    def start(self, i: int) -> None:
        node = self.nodes[i]
        st = node.storage
        node.incarnation += 1
        node.app = pickle.loads(st.snap_data)
        self._check_prefix(node, "restart from snapshot")
        node.busy = False
        node.inflight = None
        node.paused_until = 0
        node.buffered_syncs = []
        cfg = self.config(i)
        # The configuration in force at the snapshot: its last reconfig, else zoo.cfg's.
        membership = snapshot_membership(st.snap_data) or node.static or self.initial
        node.peer = Peer(
            cfg,
            self.make_elector(cfg),
            accepted_epoch=st.accepted_epoch,
            current_epoch=st.current_epoch,
            base_zxid=st.snap_zxid,
            history=st.recovered_history(),
            snapshot_fn=lambda node=node: (node.app_zxid, pickle.dumps(node.app)),
            membership=membership,
            membership_fn=config_membership,
            snapshot_membership_fn=snapshot_membership,
        )
        self.net.reset_node(i)
        self.log(f"start {i} epochs={st.accepted_epoch}/{st.current_epoch} last={fmt(node.peer.last_zxid)}")
        self.schedule(self.now + self.rng.randint(1, self.p.tick_ms), self._tick, i, node.incarnation)
        self._pump(i)

    def crash(self, i: int) -> None:
        node = self.nodes[i]
        if node.peer is None:
            return
        self.log(f"crash {i}")
        node.peer = None
        node.storage.crash(self.rng)
        node.submitted = set()
        for j in self.ids:
            if j != i:
                self.net.disconnect(i, j)

    def pause(self, i: int, ms: int) -> None:
        """Stop ``i`` for ``ms`` (SIGSTOP, a GC pause); see the module docstring."""
        node = self.nodes.get(i)
        if node is None or node.peer is None or node.paused_until > self.now:
            return
        self.log(f"pause {i} for {ms} ms")
        node.paused_until = self.now + ms
        self.schedule(node.paused_until, self._resume, i, node.incarnation)

    def _resume(self, i: int, incarnation: int) -> None:
        node = self.nodes[i]
        if node.peer is None or node.incarnation != incarnation:
            return
        self.log(f"resume {i}")
        # Scheduled when the pause began, so this runs before the backlog (deliveries,
        # ticks, storage) rescheduled to this moment: the syncs its clients sent are read
        # first, as a resumed ZooKeeper leader may (ZOOKEEPER-1675).
        buffered, node.buffered_syncs = node.buffered_syncs, []
        for token in buffered:
            self._read_index(i, token)
        self._pump(i)

    def step(self, i: int, msg: QuorumMessage | Notification | Disconnected) -> None:
        node = self.nodes[i]
        assert node.peer is not None
        if self.trace is not None:
            self.log(f"{i} <- {msg!r:.160}")
        node.peer.step(msg)
        self._pump(i)

    def _tick(self, i: int, incarnation: int) -> None:
        node = self.nodes[i]
        if node.peer is None or node.incarnation != incarnation:
            return
        if node.paused_until > self.now:
            self.schedule(node.paused_until, self._tick, i, incarnation)
            return
        node.peer.tick()
        self.schedule(self.now + self.p.tick_ms, self._tick, i, incarnation)
        self._pump(i)

    def _pump(self, i: int) -> None:
        node = self.nodes[i]
        peer = node.peer
        if peer is None or node.paused_until > self.now or not peer.has_ready():
            return  # (a paused server carries out nothing; _resume pumps)
        if node.busy:
            if node.inflight is not None:
                # The Ready in flight went out early: so do the broadcast messages made since.
                for to, msg in peer.early_messages(inflight_sent=True):
                    self.net.send(i, to, msg)
            return
        rd = peer.ready()
        if rd.soft_state is not None:
            self._on_soft_state(i, rd)
        if rd.must_sync:
            node.storage.write(rd)
            node.busy = True
            if self.p.leader_sends_early and rd.may_send_early(peer.is_leader_established):
                # ZooKeeper's leader logs a proposal and sends it in parallel.
                self._send(i, rd)
                node.inflight = rd
                rd = attrs.evolve(rd, messages=(), notifications=())
            self.schedule(self.now + self.rng.randint(1, 5), self._synced, i, node.incarnation, rd)
        else:
            self._carry_out(i, rd)

    def _synced(self, i: int, incarnation: int, rd: Ready) -> None:
        node = self.nodes[i]
        if node.peer is None or node.incarnation != incarnation:
            return
        if node.paused_until > self.now:
            # The disk finished; the process notices when it runs again.
            self.schedule(node.paused_until, self._synced, i, incarnation, rd)
            return
        node.storage.sync()
        node.busy = False
        self._carry_out(i, rd)

    def _send(self, i: int, rd: Ready) -> None:
        for m in rd.messages:
            if isinstance(m, Disconnect):
                self.net.disconnect(i, m.peer)
            else:
                self.net.send(i, m[0], m[1])
        for to, n in rd.notifications:
            self._check_notified_config(i, n)
            self.net.send_election(i, to, n)

    def _carry_out(self, i: int, rd: Ready) -> None:
        node = self.nodes[i]
        peer = node.peer
        assert peer is not None
        self._send(i, rd)
        if rd.snapshot is not None:
            node.app = pickle.loads(rd.snapshot.data)
            self._check_prefix(node, "snapshot install")
        for e in rd.committed:
            self._apply(node, e)
        peer.advance(node.inflight if node.inflight is not None else rd)
        node.inflight = None
        if self.p.reconfig:
            self._check_active(node, peer)
        for _, payload, _auth in rd.requests:
            self._propose(i, payload)
        for token in rd.reads_confirmed:
            self._check_sync_confirmed(i, token)
        self._pump(i)

    def _on_soft_state(self, i: int, rd: Ready) -> None:
        ss = rd.soft_state
        assert ss is not None
        self.log(f"{i} soft {ss}")
        if ss.role == Role.LEADING and ss.established:
            self._check_one_leader(i, ss.epoch)
            self.established_at.append((self.now, i, ss.epoch))

    # -- application ---------------------------------------------------------

    def _apply(self, node: Node, e: Entry) -> None:
        app = node.app
        z = e.zxid
        new_cfg = self._check_delivery(node, e)
        app.append((z, e.data))
        if new_cfg is not None:
            # As the runtime does: a snapshot right after a reconfig is applied, so that a
            # restart starts from the new membership.
            self.schedule(self.now + 1, self._snapshot_after_reconfig, node.id, node.incarnation)
        if e.data in node.submitted:
            node.submitted.discard(e.data)
            if e.data not in self.acked:
                self.acked[e.data] = z
                self.max_acked = max(self.max_acked, z)
                self.pending.pop(e.data, None)

    def _snapshot_after_reconfig(self, i: int, incarnation: int) -> None:
        node = self.nodes[i]
        if node.peer is None or node.incarnation != incarnation:
            return
        if node.busy:
            self.schedule(self.now + 1, self._snapshot_after_reconfig, i, incarnation)
            return
        node.storage.save_snapshot(node.app_zxid, pickle.dumps(node.app))

    # -- clients -------------------------------------------------------------

    def write(self, payload: bytes | None = None, at: int | None = None) -> None:
        if payload is None:
            self.writes += 1
            payload = b"w%d" % self.writes
            self.submitted.add(payload)
            self.pending[payload] = self.now
        live = [i for i in self.ids if self.nodes[i].peer is not None]
        if not live:
            return
        i = at if at is not None else self.rng.choice(live)
        node = self.nodes[i]
        peer = node.peer
        if peer is None:
            return
        if node.paused_until > self.now:
            return  # it reads nothing while paused; the client retries
        node.submitted.add(payload)
        if peer.role == Role.LEADING:
            self._propose(i, payload)
        else:
            try:
                peer.forward(payload)
            except NotLeader:
                return
            self._pump(i)

    def _propose(self, i: int, payload: bytes) -> None:
        peer = self.nodes[i].peer
        if peer is None:
            return
        try:
            z = peer.propose(payload)
        except NotLeader:
            return
        self._check_proposal(z, payload, peer.active)
        self._pump(i)

    def client_sync(self) -> None:
        """A client's sync at a peer that believes it leads (a stale leader is as likely)."""
        leaders = [
            i for i in self.ids if (peer := self.nodes[i].peer) is not None and peer.is_leader_established
        ]
        if not leaders:
            return
        i = self.read_rng.choice(leaders)
        self.reads_asked += 1
        node = self.nodes[i]
        if node.paused_until > self.now:
            node.buffered_syncs.append(self.reads_asked)  # read when it resumes
            return
        self._read_index(i, self.reads_asked)
        self._pump(i)

    def _read_index(self, i: int, token: int) -> None:
        peer = self.nodes[i].peer
        assert peer is not None
        try:
            peer.read_index(token)
        except NotLeader:
            return
        self._record_sync(i, token, peer.last_zxid)
        self.log(f"sync #{token} at {i}: last {fmt(peer.last_zxid)}, acked up to {fmt(self.max_acked)}")

    def _retry(self) -> None:
        for payload in list(self.pending):
            self.write(payload)
        self.schedule(self.now + 1000, self._retry)

    # -- one schedule --------------------------------------------------------

    def run(self, actions: Iterable[tuple[int, tuple[Any, ...]]] | None = None) -> dict[str, int]:
        """Fault phase, then heal everything and require liveness and durability.

        ``actions`` (time in ms, action) replaces the generator's own faults, so
        that hypothesis can choose and shrink them.
        """
        p = self.p
        rng = self.rng
        t = 0
        while True:
            t += rng.randint(1, 2 * p.write_every_ms)
            if t >= p.fault_ms:
                break
            self.schedule(t, self.write)
        t = 0
        while True:
            t += self.read_rng.randint(1, 2 * p.write_every_ms)
            if t >= p.fault_ms:
                break
            self.schedule(t, self.client_sync)
        if actions is None:
            for _ in range(self.read_rng.choice([0, 0, 1, 2])):
                t = self.read_rng.randint(1, p.fault_ms - 1)
                ms = self.read_rng.choice([1_000, 5_000, 12_000, 25_000])
                self.schedule(t, self.do, ("pause_leader", ms))
            t = 0
            while True:
                t += rng.randint(1, 2 * p.fault_every_ms)
                if t >= p.fault_ms:
                    break
                self.schedule(t, self._random_fault)
        else:
            for t, action in actions:
                self.schedule(min(t, p.fault_ms - 1), self.do, action)
        self.schedule(1000, self._retry)
        self.run_until(p.fault_ms)
        self.log("faults stop: heal, restart")
        self.net.heal()
        for i in self.ids:
            if self.nodes[i].peer is None and self.nodes[i].incarnation > 0:
                self.start(i)
        healed_at = self.now
        done = self.run_until(healed_at + LIVENESS_BOUND_MS, stop=self._quiet)
        if not done:
            raise InvariantViolation(
                f"liveness: not settled {LIVENESS_BOUND_MS} ms after faults stopped: " + self._describe()
            )
        self._final_check()
        return {
            "events": self.events,
            "writes": self.writes,
            "settle_ms": self.now - healed_at,
            "committed": len(self.ref),
            "reconfigs": self.reconfigs_committed,
            "syncs": self.reads_confirmed,
        }
