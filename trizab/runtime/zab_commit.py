"""A member's commit path: ZAB, with the peer pumped by the core task.

Theory of operation
-------------------
:class:`ZabCommit` is what an ensemble member has instead of the standalone
server's local group commit.  It owns the :class:`~trizab.zab.peer.Peer` and the
member's transports, and all of its code runs in the core task (its inbox
handlers, and the :class:`~trizab.runtime.core_task.CommitPath` calls), so the
peer and the member's core are touched by one task::

    election listener + connectors (FLE) ──┐                     ┌─> quorum links (one task group each)
    quorum listener + links ───────────────┼─> core task inbox ──┼─> election links
    peer ticker (every tick_ms) ───────────┤   (ZabCommit's      └─> storage worker (ZabStorage)
    storage worker (Persisted) ────────────┘    handlers)

* **Writes**: the leader's core logs a transaction (``to_log``): :meth:`log`
  proposes it (``Peer.propose``; the core predicted its zxid exactly from
  ``zxid_source``).  A learner's core forwards the request instead
  (:mod:`trizab.runtime.zab_sessions`).
* **Pumping** (:meth:`end_batch`, after every batch of inputs): if no Ready is
  outstanding and the peer has one, take it.  Steps 1-5 (disk) are carried out by
  :class:`~trizab.runtime.zab_storage.ZabStorage`, inline or by its worker; only
  once they are done are the Ready's messages and notifications sent, its
  committed transactions applied to the core (replies and watch events leave),
  and the peer advanced.  Two exceptions keep the barrier off the critical path
  where ZAB allows it: an established leader sends a Ready made only of
  PROPOSAL/COMMIT/INFORM/PING before its own barrier (``Ready.may_send_early``),
  and committed transactions that an *earlier* barrier made durable are applied
  (and answered) without waiting for the one in flight (:meth:`_apply_durable`).
  While that early-sent Ready's barrier runs, the proposals and COMMITs made
  meanwhile leave at the end of every batch (``Peer.early_messages``) instead of
  waiting for it, as ZooKeeper's leader sends a proposal before logging it: the
  followers' fsyncs never wait for the leader's.  A Ready's messages go out as one chunk per destination.
* **Role → service**: the Ready's soft state sets the core's mode: an
  established leader preps writes and proposes them, an established follower or
  observer forwards them, anything else closes every client (they reconnect to a
  member that serves); after max(2 s, tickTime) without a quorum,
  ``readonlymode.enabled`` serves read-only clients.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import trio

from trizab import config as cfg
from trizab.runtime.clock import Clock
from trizab.runtime.core_task import CoreTask
from trizab.runtime.disk import Disk, StartupError
from trizab.runtime.election import ElectionTransport
from trizab.runtime.events import (
    ElectionReceived,
    PeerTick,
    Persisted,
    PumpWanted,
    QuorumAccepted,
    QuorumLinkLost,
    QuorumReceived,
)
from trizab.runtime.quorum import Link, QuorumTransport, encode_packet, encode_simple, packet_limit
from trizab.runtime.quorum_auth import QuorumSasl, quorum_sasl
from trizab.runtime.sasl import load_sasl
from trizab.runtime.snapshots import Snapshotter
from trizab.runtime.tls import PeerTls, TlsError
from trizab.runtime.zab_sessions import ZabSessions
from trizab.runtime.zab_storage import ZabStorage
from trizab.server.distribution import ElectionTimer
from trizab.server.replica import (
    CONFIG_PATH,
    Mode,
    ReplicaCore,
    config_membership,
    encode_report,
    render_config,
    snapshot_membership,
)
from trizab.storage import Recovered
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.zab.membership import Membership
from trizab.zab.messages import (
    Ack,
    Commit,
    Disconnect,
    Disconnected,
    Entry,
    Ping,
    Proposal,
    ProtocolError,
    from_packet,
    to_packet,
    worth_stepping,
)
from trizab.zab.peer import NotLeader, Peer, PeerConfig
from trizab.zab.ready import Ready, Role
from trizab.zab.zxid import counter_of, epoch_of, zxid

__all__ = ["TICK_MS", "ZabCommit", "peer_config"]

log = logging.getLogger("trizab.ensemble")

TICK_MS = 50
_SIMPLE = {Proposal: int(T.PROPOSAL), Commit: int(T.COMMIT)}
_ACK = int(T.ACK)
_SYNC_KINDS = frozenset({int(T.DIFF), int(T.TRUNC), int(T.SNAP)})


def peer_config(config: cfg.ServerConfig, tick_ms: int = TICK_MS) -> PeerConfig:
    servers = config.servers
    observers = {s.sid for s in servers.values() if s.role == "observer"}
    if config.peer_type == "observer":
        observers.add(config.server_id)
    return PeerConfig(
        my_id=config.server_id,
        voters=frozenset(servers) - observers,
        observers=frozenset(observers),
        tick_ms=tick_ms,
        tick_time_ms=config.tick_time,
        init_limit=config.init_limit,
        sync_limit=config.sync_limit,
    )


def _log_sync(my_id: int, pkt: r.QuorumPacket, verb: str, other: int) -> None:
    """One line per DIFF/TRUNC/SNAP: rare, and what an operator looks for after a restart.

    (Every ACK and COMMIT goes out, one per proposal, never coalesced: ZooKeeper's leader
    counts a follower's ACK per zxid (Leader.processAck) and its followers need a COMMIT per
    proposal (FollowerZooKeeperServer.commit).)
    """
    if pkt.type in _SYNC_KINDS:
        where = "to" if verb == "sending" else "from"
        log.info("member %d: %s %s at %#x %s %d", my_id, verb, T(pkt.type).name, pkt.zxid, where, other)


def _recovered_membership(core: ReplicaCore, pc: PeerConfig) -> Membership:
    """The configuration at the recovered snapshot: a reconfigured one from the tree's
    ``/zookeeper/config`` (its version is the reconfig's zxid), else zoo.cfg's server lines.
    Reconfigs in the log after the snapshot the peer reads itself."""
    node = core.tree.nodes.get(CONFIG_PATH)
    m = config_membership(node.data if node is not None else None)
    if m is not None and m.version > 0:
        return m
    # zoo.cfg's server lines, with their addresses for the election notifications' text.
    static = config_membership(render_config(core.ensemble, 0))
    return Membership(pc.voters, pc.observers, servers=static.servers if static is not None else ())


def _peer_tls(config: cfg.ServerConfig) -> PeerTls | None:
    """TLS on the quorum and election ports, if sslQuorum or portUnification asks for it."""
    if not (config.ssl_quorum or config.quorum_port_unification):
        return None
    try:
        return PeerTls(
            config.quorum_tls,
            ssl_quorum=config.ssl_quorum,
            unification=config.quorum_port_unification,
            reload=config.ssl_quorum_reload,
        )
    except TlsError as exc:
        raise StartupError(f"quorum TLS: {exc}") from None


def _transports(
    config: cfg.ServerConfig, my_id: int, core_task: CoreTask, tls: PeerTls | None, auth: QuorumSasl | None
) -> tuple[QuorumTransport, ElectionTransport]:
    """The member's quorum and election transports, posting to the core task's inbox."""
    servers = config.servers.values()
    quorum = QuorumTransport(
        my_id,
        {s.sid: (s.host, s.quorum_port) for s in servers},
        core_task.post,
        core_task.wake,
        heartbeat_s=max(1.0, config.sync_limit * config.tick_time / 1000.0),
        max_packet=packet_limit(config.jute_max_buffer),
        tls=tls,
        auth=auth,
    )
    election = ElectionTransport(
        my_id,
        {s.sid: (s.host, s.election_port) for s in servers},
        core_task.post,
        tls=tls,
        auth=auth,
        policy=config.election_name,
    )
    return quorum, election


class ZabCommit:
    """A member's commit path (see the module docstring)."""

    def __init__(self, config: cfg.ServerConfig, clock: Clock, disk: Disk, tick_ms: int = TICK_MS) -> None:
        self.config = config
        self.clock = clock
        self.disk = disk
        self.my_id = config.server_id
        self.tick_ms = tick_ms
        self.peer_config = peer_config(config, tick_ms)
        # Set by start() once recovery built them.
        self.core_task: CoreTask = None  # type: ignore[assignment]
        self.core: ReplicaCore = None  # type: ignore[assignment]
        self.peer: Peer = None  # type: ignore[assignment]
        self.snapshots: Snapshotter | None = None
        self.storage: ZabStorage = None  # type: ignore[assignment]
        self.serving = trio.Event()  # set once first leading or synced (a read replica listens then)
        self.quorum: QuorumTransport = None  # type: ignore[assignment]
        self.election: ElectionTransport = None  # type: ignore[assignment]
        self.sessions = ZabSessions(self)
        self.ready_seq = 0
        self.role = Role.LOOKING
        self.elections = ElectionTimer()  # ZooKeeper's election_time summary
        self.leader: int | None = None
        self.established = False
        self.epoch = 0
        self._inflight: Ready | None = None
        self._sent_early = False
        self._applied_zxid = 0  # the last zxid applied to the core
        self._ticks = 0
        self._off_ticks = 0
        self._parked: dict[int, tuple[Link, r.QuorumPacket]] = {}
        self._pump_wanted = False  # a PumpWanted wake-up is on the core task's inbox
        self._client_port = config.client_port or 0
        self.tls = _peer_tls(config)
        self.auth = quorum_sasl(config, load_sasl(config))  # quorum.auth.*: SASL between members

    # -- lifetime ---------------------------------------------------------------------

    def start(
        self, core_task: CoreTask, recovered: Recovered, client_port: int, snapshots: Snapshotter
    ) -> None:
        """Wire up with the recovered core (before any task runs)."""
        self.elections.looking(True, self.clock.monotonic())  # a member starts LOOKING
        from trizab.plugin import load_plugin

        config, pc = self.config, self.peer_config
        self.core_task, self.core, self.snapshots = core_task, core_task.core, snapshots
        self._client_port = client_port
        self.storage = ZabStorage(self.disk, core_task.post)
        self.quorum, self.election = _transports(config, self.my_id, core_task, self.tls, self.auth)
        self.core.init_ensemble(config.servers, self.my_id, client_port, self.clock.now_ms())
        self._apply_ensemble()
        self._applied_zxid = recovered.snapshot_zxid
        plugin = load_plugin("trizab.election", config.election_name or "fast", config.election_options)
        elector = plugin.elector(pc.my_id, pc.voters, pc.observers, pc.election_timing())
        core = self.core
        self.peer = peer = Peer.recover(
            pc,
            elector,
            recovered,
            lambda: (core.last_zxid, core.snapshot()),
            membership=_recovered_membership(self.core, self.peer_config),
            snapshot_membership_fn=snapshot_membership,
        )
        core.quorum_view = lambda: (peer.synced_voters(), peer.reconfig_in_flight)
        for event_type, handler in (
            (QuorumAccepted, self._accepted),
            (QuorumReceived, self._received),
            (QuorumLinkLost, lambda _: None),  # a wake-up: end_batch takes the lost links
            (ElectionReceived, lambda ev: self.peer.step(ev.notification)),
            (PeerTick, self._tick),
            (PumpWanted, lambda _: None),  # a wake-up: end_batch pumps
            (Persisted, lambda ev: self._carry_out(ev.ready)),
        ):
            core_task.on(event_type, handler)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.quorum.serve)
            await nursery.start(self.election.serve)
            nursery.start_soon(self.storage.run)
            nursery.start_soon(self._ticker)
            if self.tls is not None and self.tls.reload:
                nursery.start_soon(self.tls.watch)
            task_status.started()

    async def _ticker(self) -> None:
        while True:
            await trio.sleep(self.tick_ms / 1000.0)
            await self.core_task.post(PeerTick())

    def _apply_ensemble(self) -> None:
        """Make the transports know every member of the current configuration (reconfig)."""
        core = self.core
        for sid, s in core.ensemble.items():
            if sid != self.my_id:
                self.quorum.addresses[sid] = (s.host, s.quorum_port)
                self.election.add_peer(sid, (s.host, s.election_port))
        if core.config_version > 0:
            for sid in list(self.election.peers):
                if sid not in core.ensemble:
                    self.election.remove_peer(sid)

    # -- CommitPath -------------------------------------------------------------------

    def log(self, txns: list[Txn]) -> None:
        for txn in txns:
            try:
                z = self.peer.propose(txn)
            except NotLeader:
                log.info("dropping a transaction: no longer the established leader")
                return
            if z != txn.zxid:
                log.error("zxid prediction failed: prepared 0x%x, proposed 0x%x", txn.zxid, z)

    def on_ready(self, rd: Any) -> bool:
        if rd.ensemble_changed:
            # A committed reconfig: reach the new members, and snapshot now, so that a
            # restart starts from the new membership instead of taking the logged reconfig
            # for one still uncommitted.
            self._apply_ensemble()
            if self.snapshots is not None:
                self.snapshots.request()
        return self.sessions.on_ready(rd)

    def after_input(self) -> None:
        if not self._pump_wanted:
            self._pump_wanted = True
            self.core_task.wake(PumpWanted())

    def end_batch(self) -> None:
        self._pump_wanted = False
        peer = self.peer
        for sid in self.quorum.take_lost():
            log.debug("member %d: quorum link with %d lost", self.my_id, sid)
            self._parked.pop(sid, None)
            peer.step(Disconnected(sid))
        self._pump()
        self._apply_durable()

    # -- quorum packets ---------------------------------------------------------------

    def _accepted(self, ev: QuorumAccepted) -> None:
        link = ev.link
        log.debug("member %d: quorum link from %d (%s)", self.my_id, link.sid, self.peer.role.value)
        if self.peer.role in (Role.FOLLOWING, Role.OBSERVING):
            # Only a leader takes learners (ZooKeeper's followers do not even listen): a
            # connection to a learner's quorum port is refused, and cannot displace its links.
            log.info("member %d: refusing a quorum connection from %s: not leading", self.my_id, link.sid)
            self.quorum.refuse(link)
            return
        if self.quorum.register(link, self.ready_seq + 1) is not None:
            self._parked.pop(link.sid, None)
            self.peer.step(Disconnected(link.sid))
        if self.peer.role == Role.LOOKING:
            # A learner that finished the election before us: keep its FOLLOWERINFO
            # until we know whether we lead, instead of turning it away.
            self._parked[link.sid] = (link, ev.packet)
        else:
            self._step_packet(link, ev.packet)

    def _received(self, ev: QuorumReceived) -> None:
        peer = self.peer
        # Under load a read brings runs of per-zxid ACKs or COMMITs: only the last counts.
        for pkt in worth_stepping(ev.packets, lambda: peer.established and not peer.reconfig_in_flight):
            if not self.quorum.current(ev.link):  # a packet can end the link: drop the rest then
                break
            self._step_packet(ev.link, pkt)

    def _step_packet(self, link: Link, pkt: r.QuorumPacket) -> None:
        peer, core = self.peer, self.core
        if pkt.type == T.SYNC:
            self.sessions.on_sync_packet(link, pkt)
            return
        if pkt.type == T.REVALIDATE:
            self.sessions.on_revalidate(link.sid, pkt)
            return
        if pkt.type == T.REQUEST and core.mode == Mode.LEADER and pkt.data:
            # Prepped and proposed now rather than after the storage barrier in flight.
            self.sessions.forwarded(link.sid, pkt.data, tuple(pkt.authinfo or ()), link)
            self.core_task.handle_ready()
            return
        if pkt.type == T.NEWLEADER:
            core.newleader_config(pkt.data)  # its configuration's version, see ReplicaCore
        try:
            m = from_packet(pkt, link.sid)
        except ProtocolError as e:
            log.warning("protocol error from server %d: %s; dropping the link", link.sid, e)
            self.quorum.disconnect(link.sid)
            peer.step(Disconnected(link.sid))
            return
        _log_sync(self.my_id, pkt, "received", link.sid)
        if isinstance(m, Ping) and core.mode == Mode.LEARNER:
            # The reply to the leader's ping carries the sessions our clients touched since
            # the previous one (Learner.ping), so idle sessions are not kept alive.
            peer.report_sessions(encode_report(core.session_report()))
        peer.step(m)

    def send_packet(self, to: int, pkt: r.QuorumPacket) -> None:
        if not self.quorum.send_packet(to, pkt, self.ready_seq, connect=False):
            self.peer.step(Disconnected(to))

    # -- the peer's Ready -------------------------------------------------------------

    def _pump(self) -> None:
        peer = self.peer
        if self._parked and peer.role != Role.LOOKING:
            parked, self._parked = self._parked, {}
            for link, pkt in parked.values():
                if not self.quorum.current(link):
                    continue
                if peer.role == Role.LEADING:
                    self._step_packet(link, pkt)
                else:
                    self.quorum.disconnect(link.sid)
        while self._inflight is None and peer.has_ready():
            rd = peer.ready()
            self.ready_seq += 1
            self._inflight = rd
            if rd.must_sync:
                if rd.may_send_early(peer.is_leader_established):
                    self._send_messages(rd.messages, rd.notifications)
                    self._sent_early = True
                if self.storage.persist_inline(rd):
                    self._carry_out(rd)
                    continue
                if rd.snapshot is not None and self.snapshots is not None:
                    self.snapshots.abandon()  # the tree a walk in progress reads is replaced
                self.storage.hand_over(rd)
                break
            self._carry_out(rd)
        if self._inflight is not None and self._sent_early:
            # While our barrier runs, new proposals and commits leave at once (Peer.early_messages).
            early = peer.early_messages(inflight_sent=True)
            if early:
                self._send_messages(early)

    def _carry_out(self, rd: Ready) -> None:
        """Steps 6-8 of the Ready contract (its writes are durable)."""
        peer, core = self.peer, self.core
        assert rd is self._inflight
        if not self._sent_early:
            self._send_messages(rd.messages, rd.notifications)
        self._sent_early = False
        if rd.snapshot is not None or rd.truncate_after is not None or len(self.storage.decoded) > 100_000:
            self.storage.forget_decoded()  # what was truncated is never applied: do not keep it
        elif rd.to_persist and rd.to_persist[0].zxid <= self._applied_zxid:  # applied before durable
            self.storage.forget_applied(rd.to_persist, self._applied_zxid)
        if rd.snapshot is not None:
            core.load(Recovered(rd.snapshot.data, rd.snapshot.zxid, [], 0, 0))
            core.init_ensemble(
                self.config.servers, self.my_id, self._client_port, self.clock.now_ms(), reinstall=True
            )
            self._apply_ensemble()
            self._applied_zxid = rd.snapshot.zxid
        self._apply_committed([e for e in rd.committed if e.zxid > self._applied_zxid])
        self._inflight = None
        peer.advance(rd)
        if rd.soft_state is not None:
            self._on_soft_state(rd)
        if rd.requests:
            for sid, payload, auth in rd.requests:
                self.sessions.forwarded(sid, payload, auth)
            self.core_task.handle_ready()
        if rd.session_reports:
            self.sessions.reports(rd.session_reports)
        if rd.reads_confirmed:
            self.sessions.reads_confirmed(rd.reads_confirmed)
        self.sessions.check_syncs()

    def _apply_committed(self, entries: Sequence[Entry]) -> None:
        if not entries:
            return
        take = self.storage.take_decoded
        txns = [e.txn or take(e.zxid) or Txn.decode(e.data) for e in entries]
        self._applied_zxid = txns[-1].zxid
        self.core_task.committed(txns)

    def _apply_durable(self) -> None:
        """Apply what is committed (the leader: and in its own log) without waiting for a Ready.

        A quorum holds it durably, so its reply need not wait for the fsync in flight (see
        ``Peer.applicable``; a slow fsync here held up our client's reply to a write already
        committed).  A Ready skips them later (``_applied_zxid``).  Committed transactions are
        never truncated; a Ready in flight that installs a snapshot or truncates (only while
        syncing) is waited for.
        """
        rd = self._inflight
        if rd is None or (rd.snapshot is None and rd.truncate_after is None):
            self._apply_committed(self.peer.applicable(self._applied_zxid))

    def _send_messages(self, messages: Sequence[Any], notifications: Sequence[Any] = ()) -> None:
        peer = self.peer
        seq = self.ready_seq
        # One chunk (one socket write) per destination: per-destination order is all ZAB needs.
        # A PROPOSAL or COMMIT goes to every follower alike: encoded once.
        batches: dict[int, list[bytes]] = {}
        encoded: dict[tuple[type, int, int], bytes] = {}

        def flush(to: int) -> None:
            frames = batches.pop(to, None)
            if not frames:
                return
            # A learner opens the link to its leader with its first message.
            connect = peer.role in (Role.FOLLOWING, Role.OBSERVING) and to == peer.leader
            if not self.quorum.send_frames(to, b"".join(frames), seq, connect=connect):
                peer.step(Disconnected(to))

        for m in messages:  # ACKs and COMMITs are per zxid: none is coalesced (see _log_sync)
            if isinstance(m, Disconnect):
                flush(m.peer)
                log.debug("member %d: disconnect %d", self.my_id, m.peer)
                self.quorum.disconnect(m.peer)
                continue
            to, msg = m
            kind = type(msg)
            if kind is Proposal or (kind is Commit and msg.activate is None):
                data = msg.data if kind is Proposal else None
                key = (kind, msg.zxid, id(data))  # id: the very same bytes, alive in messages
                f = encoded.get(key)
                if f is None:
                    f = encoded[key] = encode_simple(_SIMPLE[kind], msg.zxid, data)
            elif kind is Ack:
                f = encode_simple(_ACK, msg.zxid, None)
            else:
                pkt = to_packet(msg)
                _log_sync(self.my_id, pkt, "sending", to)
                f = encode_packet(pkt)
            batches.setdefault(to, []).append(f)
        for to in list(batches):
            flush(to)
        for to, n in notifications:
            self.election.send(to, n)

    def _on_soft_state(self, rd: Ready) -> None:
        ss = rd.soft_state
        core = self.core
        assert ss is not None
        if (ss.role, ss.leader, ss.established) != (self.role, self.leader, self.established):
            extra = ", established" if ss.established else ""
            log.info(
                "member %d: %s (leader %s, epoch %d%s)", self.my_id, ss.role.value, ss.leader, ss.epoch, extra
            )
        self.elections.looking(ss.role == Role.LOOKING, self.clock.monotonic())
        self.role, self.leader, self.established, self.epoch = ss.role, ss.leader, ss.established, ss.epoch
        if ss.established and ss.role == Role.LEADING:
            mode = Mode.LEADER
        elif ss.established and ss.role in (Role.FOLLOWING, Role.OBSERVING):
            mode = Mode.LEARNER
        elif core.mode == Mode.READ_ONLY and ss.role == Role.LOOKING:
            mode = Mode.READ_ONLY  # still cut off: keep serving read-only clients
        else:
            mode = Mode.OFF
        if mode in (Mode.LEADER, Mode.LEARNER):
            self.serving.set()
        core.zxid_source = self._next_zxid if mode == Mode.LEADER else None
        if mode != core.mode:
            self.sessions.mode_changed()
        core.set_mode(mode, self.clock.now_ms())
        self.core_task.handle_ready()

    def _next_zxid(self) -> int:
        """The zxid ``Peer.propose`` gives the next proposal."""
        peer = self.peer
        last = peer.last_zxid
        counter = counter_of(last) if epoch_of(last) == peer.epoch else 0
        return zxid(peer.epoch, counter + 1)

    def _tick(self, _: PeerTick) -> None:
        peer, core = self.peer, self.core
        self._ticks += 1
        peer.tick()
        if self._ticks % max(1, self.config.tick_time // 2 // self.tick_ms) == 0:
            self.core_task.tick()
            self.sessions.prune_owners()
        if core.mode != Mode.OFF:
            self._off_ticks = 0
            return
        self._off_ticks += 1
        # QuorumPeer starts its ReadOnlyZooKeeperServer after max(2 s, tickTime) without a quorum.
        ro_after = max(2000, self.config.tick_time) // self.tick_ms
        if (
            self.config.read_only_mode
            and self._off_ticks >= ro_after
            and peer.role == Role.LOOKING
            and not peer.removed
        ):
            log.info("member %d: no quorum; serving read-only clients", self.my_id)
            core.set_mode(Mode.READ_ONLY, self.clock.now_ms())
            self.core_task.handle_ready()
