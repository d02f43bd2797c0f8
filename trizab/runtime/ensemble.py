"""One member of a replicated ensemble: the ZAB peer and the server core, pumped by Trio.

Theory of operation
-------------------
A :class:`Member` is the standalone :class:`~trizab.runtime.server.Server` (client
listener, client connections, four-letter words) with its storage path replaced
by ZAB.  One nursery owns everything::

    client listener, socket reader (all clients) ─┐                       ┌─> client writers
    election listener + connectors (FLE) ─────────┤                       ├─> quorum links
    quorum listener + links (sender/receiver) ────┼─> inbox ─> peer task ─┼─> election links
    ticker (peer.tick every tick_ms) ─────────────┤   (owns the Peer AND  └─> ZAB storage worker
    ZAB storage worker (Ready persisted) ─────────┘    the ReplicaCore)

* **Clients** are read as by the standalone server: one task reads every client
  socket (:mod:`trizab.runtime.ready_sockets`) and parses it, but here it puts
  the requests on the inbox for the peer task; each connection's writer task
  sends its replies.
* **The peer task** (the server's core task) is the only code that touches the
  :class:`~trizab.zab.peer.Peer` and the :class:`~trizab.server.replica.ReplicaCore`,
  and the only one that registers or forgets quorum links.  After each batch of
  inbox messages it *pumps* the peer: if no Ready is outstanding and the peer
  has one, it takes it; a Ready that must touch the disk goes to the storage
  worker, the others are carried out at once.
* **Ready order** (:mod:`trizab.zab.ready`): steps 1-5 (install a snapshot,
  truncate, append ``to_persist``, write the epochs, storage barrier) run
  either in the peer task itself, for a Ready of appends only (one write and
  an fdatasync: cheaper than two thread hand-offs, see ``_persist_inline``),
  or in the storage worker's thread for the rest (snapshots, truncations,
  epoch changes, very large batches); only once they are done does the peer
  task send the Ready's messages and notifications, then apply its committed
  transactions to the core (replies and watch events leave), then
  ``advance``.  Inputs keep arriving meanwhile: everything that arrived while
  one barrier ran shares the next one (group commit).  A Ready's messages go
  out as one chunk per destination, every ACK or COMMIT covered by a later one
  to the same peer left out (``_coalesce``).  Two exceptions keep the
  barrier off the critical path where ZAB allows it: an established leader
  sends a Ready made only of PROPOSAL/COMMIT/INFORM/PING before its own barrier
  (``Ready.may_send_early``: it counts its own acknowledgement only after it,
  as ZooKeeper's leader does), and committed transactions that an *earlier* barrier made durable are
  applied (and answered) without waiting for the one in flight.
* **Forwarding**: a learner puts a client's write straight on its leader's link
  (REQUEST), and the leader preps and proposes it on arrival; neither waits for
  a Ready.
* **Role → service.**  The Ready's soft state sets the core's mode: an
  established leader preps writes and proposes them (``to_log`` →
  ``Peer.propose``, zxids predicted exactly by ``zxid_source``); an established
  follower or observer forwards writes (``Peer.forward``); anything else
  closes every client (they reconnect to a member that serves).
* **Sessions**: a learner's reply to each leader ping carries the sessions its
  clients touched (sent a request or a ping) since the previous reply
  (``Peer.report_sessions``, ZooKeeper's touch table); only the leader's core
  expires, so a silent or half-open connection keeps no session alive.
* **sync** is a barrier (etcd raft's ReadIndex, see :mod:`trizab.zab.peer`): a
  learner sends a SYNC packet on its quorum link; the leader records its last
  proposed zxid and ``Peer.read_index``; once a quorum has echoed a heartbeat
  round started after that, it answers SYNC with that zxid, behind every
  proposal it covers on the FIFO link; the learner replies to the client once it
  has applied that far.  A sync from the leader's own client takes the same
  path without the link.  So a leader that was paused and replaced answers no
  sync from its stale state (ZooKeeper's does: ZOOKEEPER-1675).
* **Session owner**: a client that reconnects to a learner with a session id
  waits while the learner asks the leader (REVALIDATE, as ZooKeeper's
  ``Learner.validateSession``): an expired session gets the expired answer
  whatever the learner's copy of the session table says.  The leader records
  the new owner and tells the previous one (REVALIDATE without data, the
  session id in the zxid field), which closes the session's old connection.
* **Read-only mode** (``readonlymode.enabled``): after max(2 s, tickTime)
  without a quorum the member serves read-only clients (``isro`` says ``ro``).

Shutdown: cancelling :meth:`Member.run` cancels every task; the storage is
closed shielded.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import logging
import struct
import time
from collections.abc import Callable, Sequence
from typing import Any

import trio

from trizab import config as cfg
from trizab.runtime.election import ElectionTransport
from trizab.runtime.quorum import Link, QuorumTransport, encode_packet, encode_simple
from trizab.runtime.server import (
    _CLOSE,
    SHUTDOWN_GRACE_S,
    Server,
    StartupError,
    _core_config,
)
from trizab.server.replica import (
    CONFIG_PATH,
    Mode,
    ReplicaCore,
    config_membership,
    decode_forward,
    decode_report,
    encode_forward,
    encode_report,
    snapshot_membership,
)
from trizab.storage import Recovered, Storage
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode
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
    QuorumMessage,
    Request,
    from_packet,
    to_packet,
)
from trizab.zab.peer import NotLeader, Peer, PeerConfig
from trizab.zab.ready import Ready, Role
from trizab.zab.zxid import counter_of, epoch_of, zxid

__all__ = ["Member", "peer_config", "serve_member"]

log = logging.getLogger("trizab.ensemble")

TICK_MS = 50

# REVALIDATE's data, as ZooKeeper's Learner.validateSession and LearnerHandler write it.
_REVALIDATE_ASK = struct.Struct(">qi")  # session id, timeout
_REVALIDATE_ANSWER = struct.Struct(">q?")  # session id, valid

# The largest batch of appends the peer task persists itself (see Member._persist_inline).
INLINE_PERSIST_MAX = 4096
# A barrier slower than this sends the next ones to the storage worker's thread.
SLOW_BARRIER_S = 0.02
_perf_counter = time.perf_counter


def _zxid_of(e: Entry) -> int:
    return e.zxid


_SIMPLE = {Proposal: int(T.PROPOSAL), Commit: int(T.COMMIT)}
_ACK = int(T.ACK)


def peer_config(config: cfg.ServerConfig, tick_ms: int = TICK_MS) -> PeerConfig:
    servers = config.servers
    observers = {s.sid for s in servers.values() if s.role == "observer"}
    if config.peer_type == "observer":
        observers.add(config.server_id)
    voters = frozenset(servers) - observers
    return PeerConfig(
        my_id=config.server_id,
        voters=voters,
        observers=frozenset(observers),
        tick_ms=tick_ms,
        tick_time_ms=config.tick_time,
        init_limit=config.init_limit,
        sync_limit=config.sync_limit,
    )


def _elector(config: cfg.ServerConfig, pc: PeerConfig) -> Any:
    from trizab.plugin import load_plugin

    plugin = load_plugin("trizab.election", config.election_name or "fast", config.election_options)
    return plugin.elector(pc.my_id, pc.voters, pc.observers, pc.election_timing())


def _coalesce(
    messages: Sequence[tuple[int, QuorumMessage] | Disconnect],
) -> list[tuple[int, QuorumMessage] | Disconnect]:
    """A Ready's messages with every ACK and COMMIT that a later one to the same peer covers left out.

    ZAB acknowledgements and commits are cumulative in trizab (:mod:`trizab.zab.peer`: the
    leader keeps ``max`` of a learner's ACKs, a learner ``max`` of the COMMITs), and within one
    Ready they only grow.  ACK(z2) after ACK(z1) to the same leader says everything ACK(z1)
    says, and it leaves in the same socket write, so the leader learns nothing later; the same
    holds for COMMIT(c2) after COMMIT(c1) to one learner (everything up to c2 was proposed to
    it before COMMIT(c2) was queued, so it still follows the proposals it covers).  The
    NEWLEADER acknowledgement (counter 0) is a different message and is always kept, and a
    ``Disconnect`` ends the run (later messages are for a new connection).  At high load a
    follower's Ready then carries one ACK for its whole batch instead of one per proposal, and
    the leader answers with one COMMIT per learner instead of one per ACK.
    """
    out: list[tuple[int, QuorumMessage] | Disconnect] = []
    seen: set[tuple[int, type]] = set()
    for m in reversed(messages):
        if isinstance(m, Disconnect):
            seen.discard((m.peer, Ack))
            seen.discard((m.peer, Commit))
        else:
            to, msg = m
            kind = type(msg)
            if kind is Commit or (kind is Ack and counter_of(msg.zxid) != 0):
                key = (to, kind)
                if key in seen:
                    continue
                seen.add(key)
        out.append(m)
    out.reverse()
    return out


class Member(Server):
    """One ensemble member; :meth:`run` is its whole lifetime (see the module docstring)."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        *,
        storage: Storage | None = None,
        clock: Any = None,
        tick_ms: int = TICK_MS,
        on_tree_settled: Callable[[int], None] | None = None,
    ) -> None:
        if config.server_id not in config.servers:
            where = config.data_dir / "myid" if config.data_dir else "dataDir/myid"
            raise StartupError(
                f"this server's id ({where}) must name one of the server.N lines: "
                + ", ".join(map(str, sorted(config.servers)))
            )
        super().__init__(config, storage=storage, clock=clock, on_tree_settled=on_tree_settled)
        self.my_id = config.server_id
        self.tick_ms = tick_ms
        self.peer_config = peer_config(config, tick_ms)
        self.peer: Peer | None = None
        self.core: ReplicaCore | None = None
        servers = config.servers
        self.quorum = QuorumTransport(
            self.my_id,
            {s.sid: (s.host, s.quorum_port) for s in servers.values()},
            self._inbox_send.send,
            self._inbox_send.send_nowait,
            heartbeat_s=max(1.0, config.sync_limit * config.tick_time / 1000.0),
        )
        self.election = ElectionTransport(
            self.my_id, {s.sid: (s.host, s.election_port) for s in servers.values()}, self._inbox_send.send
        )
        self._zab_send, self._zab_recv = trio.open_memory_channel[tuple[Any, ...]](float("inf"))
        self._inflight: Ready | None = None
        self._ready_seq = 0
        # The core's waiting syncs, in order: the zxid each must have applied before it is
        # answered (a learner: the leader's SYNC answers; the leader: confirmed read_index).
        self._sync_waits: collections.deque[int] = collections.deque()
        self._ticks = 0
        self.role = Role.LOOKING
        self.leader: int | None = None
        self.established = False
        self.epoch = 0
        self.stopped = False
        self._durable_epochs = (-1, -1)
        self._off_ticks = 0
        self._parked: dict[int, tuple[Link, r.QuorumPacket]] = {}
        self._sent_early = False
        self._applied_zxid = 0  # the last zxid applied to the core
        # Txns the storage worker decoded for the log, by zxid, until they are applied.
        self._decoded: dict[int, Txn] = {}
        self._zab_jobs = 0  # jobs handed to the storage worker and not finished
        self._slow_disk = False  # the last barrier took over SLOW_BARRIER_S
        # Leader: which member each session's client is connected to (None: unknown).
        self._owners: dict[int, int] = {}

    # -- lifetime ----------------------------------------------------------------------

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
        listeners: list[trio.abc.Listener[Any]] | None = None,
    ) -> None:
        config = self.config
        listeners, recovered = await self._bind_and_recover(listeners)
        try:
            now = self.clock.now_ms()
            self._started_ms = now
            core = ReplicaCore(_core_config(config), now_ms=now)
            # Only the snapshot is known committed; the log after it is delivered
            # again once a leader confirms it (see trizab.zab.peer).
            core.load(
                Recovered(
                    recovered.snapshot,
                    recovered.snapshot_zxid,
                    [],
                    recovered.accepted_epoch,
                    recovered.current_epoch,
                )
            )
            self.core = core
            self._tree_settled()
            self._init_ensemble()
            self._last_committed_zxid = self._applied_zxid = recovered.snapshot_zxid
            self.peer = peer = Peer.recover(
                self.peer_config,
                _elector(config, self.peer_config),
                recovered,
                self._snapshot_fn,
                membership=self._recovered_membership(),
                snapshot_membership_fn=snapshot_membership,
            )
            core.quorum_view = lambda: (peer.synced_voters(), peer.reconfig_in_flight)
            log.info(
                "member %d: snapshot 0x%x + %d logged txns, epochs %d/%d; voters %s observers %s",
                self.my_id,
                recovered.snapshot_zxid,
                len(recovered.txns),
                recovered.accepted_epoch,
                recovered.current_epoch,
                sorted(peer.voters),
                sorted(peer.active.observers),
            )
            async with trio.open_nursery() as nursery:
                await nursery.start(self.quorum.serve)
                await nursery.start(self.election.serve)
                nursery.start_soon(self._core_task)
                nursery.start_soon(self._zab_storage_worker)
                nursery.start_soon(self._peer_ticker)
                self._start_socket_reader(nursery)
                await nursery.start(trio.serve_listeners, self._handle_connection, listeners)
                log.info(
                    "member %d serving clients on %s, quorum %s, election %s",
                    self.my_id,
                    ", ".join(f"{h}:{p}" for h, p in self.addresses),
                    self.quorum.listen_address,
                    self.election.listen_address,
                )
                task_status.started(self.addresses)
        finally:
            self.stopped = True
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + SHUTDOWN_GRACE_S
                for ln in listeners:
                    with contextlib.suppress(Exception):
                        await trio.aclose_forcefully(ln)
                try:
                    await self._blocking(self.storage.close)
                except Exception:
                    log.exception("closing storage failed")
                finally:
                    self._release_directories()

    def _init_ensemble(self) -> None:
        core = self.core
        assert core is not None
        port = self.addresses[0][1] if self.addresses else self.config.client_port
        core.init_ensemble(self.config.servers, self.my_id, port)
        self._apply_ensemble()

    def _recovered_membership(self) -> Membership:
        """The configuration in force at the recovered snapshot: a reconfigured one from the
        tree's ``/zookeeper/config`` (its version is the reconfig's zxid), else zoo.cfg's
        server lines.  Reconfigs in the log after the snapshot the peer reads itself."""
        core = self.core
        assert core is not None
        node = core.tree.nodes.get(CONFIG_PATH)
        m = config_membership(node.data if node is not None else None)
        if m is not None and m.version > 0:
            return m
        pc = self.peer_config
        return Membership(pc.voters, pc.observers)

    def _apply_ensemble(self) -> None:
        """Make the transports know every member of the current configuration (reconfig):
        connect to new members, forget the election connections of removed ones."""
        core = self.core
        assert core is not None
        for sid, s in core.ensemble.items():
            if sid == self.my_id:
                continue
            self.quorum.addresses[sid] = (s.host, s.quorum_port)
            self.election.add_peer(sid, (s.host, s.election_port))
        if core.config_version > 0:
            for sid in list(self.election.peers):
                if sid not in core.ensemble:
                    self.election.remove_peer(sid)

    def _snapshot_fn(self) -> tuple[int, bytes]:
        core = self.core
        assert core is not None
        return core.last_zxid, core.snapshot()

    # -- the peer task -------------------------------------------------------------------

    async def _core_task(self) -> None:
        recv = self._inbox_recv
        while True:
            msg = await recv.receive()
            self._dispatch(msg)
            for _ in range(1024):
                try:
                    msg = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                self._dispatch(msg)
            self._process_lost()
            self._process_lost_links()
            self._pump()
            self._apply_durable()
            self._flush()

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        peer = self.peer
        assert peer is not None
        if kind == "qpackets":
            _, link, pkts = msg
            for pkt in pkts:
                # A packet can end the link (protocol error, overflow): drop the rest then.
                if not self.quorum.current(link):
                    break
                self._step_packet(link, pkt)
        elif kind == "qaccept":
            _, link, pkt = msg
            log.debug("member %d: quorum link from %d (%s)", self.my_id, link.sid, peer.role.value)
            old = self.quorum.register(link, self._ready_seq + 1)
            if old is not None:
                self._parked.pop(link.sid, None)
                peer.step(Disconnected(link.sid))
            if peer.role == Role.LOOKING:
                # A learner that finished the election before us: keep its FOLLOWERINFO
                # until we know whether we lead, instead of turning it away.
                self._parked[link.sid] = (link, pkt)
            else:
                self._step_packet(link, pkt)
        elif kind == "qlost":
            pass  # handled after the batch (_process_lost_links)
        elif kind == "note":
            log.debug("member %d <- %s", self.my_id, msg[1])
            peer.step(msg[1])
        elif kind == "ptick":
            self._peer_tick()
        elif kind == "synced":
            rd = msg[1]
            self._carry_out(rd)
        elif kind == "tick":
            pass
        else:
            super()._dispatch(msg)

    def _step_packet(self, link: Link, pkt: r.QuorumPacket) -> None:
        peer = self.peer
        assert peer is not None
        if pkt.type == T.SYNC:
            self._on_sync_packet(link, pkt)
            return
        core = self.core
        assert core is not None
        if pkt.type == T.REVALIDATE:
            self._on_revalidate(link.sid, pkt)
            return
        if pkt.type == T.REQUEST and core.mode == Mode.LEADER and pkt.data:
            # A learner's client request: prep and propose it now rather than after the
            # storage barrier in flight (Ready.requests would hold it until then).
            try:
                f = decode_forward(pkt.data)
            except ValueError as e:
                log.warning("bad forwarded request from %d: %s", link.sid, e)
                return
            if f.opcode == OpCode.CREATE_SESSION:
                self._owners[f.session_id] = link.sid
            core.receive_forwarded(f, self.clock.now_ms())
            self._handle_ready()
            return
        try:
            m = from_packet(pkt, link.sid)
        except ProtocolError as e:
            log.warning("protocol error from server %d: %s; dropping the link", link.sid, e)
            self.quorum.disconnect(link.sid)
            peer.step(Disconnected(link.sid))
            return
        if isinstance(m, Ping) and core.mode == Mode.LEARNER:
            # The reply to the leader's ping carries the sessions our clients touched since
            # the previous one (Learner.ping), so idle sessions are not kept alive.
            peer.report_sessions(encode_report(core.session_report()))
        peer.step(m)

    def _on_revalidate(self, sender: int, pkt: r.QuorumPacket) -> None:
        """ZooKeeper's REVALIDATE, and trizab's session-moved notice.

        * learner -> leader, data ``(long session id, int timeout)``: a client resumes the
          session on the learner.  The leader answers ``(long session id, boolean
          valid)`` (``LearnerHandler``/``Learner.revalidate``), touching the session and
          recording the learner as its owner when it is valid.
        * leader -> learner with that data: the answer; the waiting connect finishes.
        * leader -> learner without data, the session id in the zxid field: the session
          moved to another member; close its connection here.
        """
        core = self.core
        peer = self.peer
        assert core is not None and peer is not None
        now = self.clock.now_ms()
        data = pkt.data or b""
        if core.mode == Mode.LEADER:
            if len(data) < _REVALIDATE_ASK.size:
                return
            session_id, timeout = _REVALIDATE_ASK.unpack_from(data)
            valid = core.revalidate(session_id, timeout, now)
            if valid:
                self._session_moved(session_id, sender)
            answer = _REVALIDATE_ANSWER.pack(session_id, valid)
            self._send_packet(sender, r.QuorumPacket(int(T.REVALIDATE), pkt.zxid, answer, None))
        elif sender == peer.leader:
            if len(data) >= _REVALIDATE_ANSWER.size:
                session_id, valid = _REVALIDATE_ANSWER.unpack_from(data)
                core.revalidated(session_id, valid, now)
            else:
                core.drop_session_connection(pkt.zxid)
            super()._handle_ready()

    def _session_moved(self, session_id: int, owner: int) -> None:
        core = self.core
        assert core is not None
        previous = self._owners.get(session_id)
        self._owners[session_id] = owner
        if previous is None or previous == owner:
            return
        if previous == self.my_id:
            core.drop_session_connection(session_id)
        else:
            self._send_packet(previous, r.QuorumPacket(int(T.REVALIDATE), session_id, None, None))

    def _on_sync_packet(self, link: Link, pkt: r.QuorumPacket) -> None:
        peer = self.peer
        assert peer is not None
        if peer.role == Role.LEADING:
            # Answered once a quorum confirms we still lead (_reads_confirmed); the zxid is
            # what the learner must apply first: everything proposed before the sync arrived.
            try:
                peer.read_index(("learner", link, peer.last_zxid))
            except NotLeader:
                pass  # not established: neither is the learner, and its link goes with this epoch
        elif peer.leader == link.sid:
            self._sync_waits.append(pkt.zxid)
            self._check_syncs()

    def _reads_confirmed(self, tokens: Sequence[Any]) -> None:
        """Leader: a quorum confirmed that we led after these syncs arrived (Ready.reads_confirmed)."""
        for kind, link, z in tokens:
            if kind == "learner":
                # After this Ready's messages and every earlier one: behind every proposal up
                # to z on the learner's FIFO link.  A link replaced meanwhile belongs to a
                # learner that re-synced and dropped its syncs: the answer is not for it.
                if self.quorum.current(link):
                    self._send_packet(link.sid, r.QuorumPacket(int(T.SYNC), z, None, None))
            else:
                self._sync_waits.append(z)  # our own client's: answered once applied up to z

    def _check_syncs(self) -> None:
        core = self.core
        assert core is not None
        done = False
        while self._sync_waits and core.last_zxid >= self._sync_waits[0]:
            self._sync_waits.popleft()
            core.sync_done()
            done = True
        if core.mode != Mode.LEARNER and core.mode != Mode.LEADER:
            self._sync_waits.clear()
        if done:
            self._handle_ready()

    def _send_packet(self, to: int, pkt: r.QuorumPacket) -> None:
        if not self.quorum.send_packet(to, pkt, self._ready_seq, connect=False):
            assert self.peer is not None
            self.peer.step(Disconnected(to))

    def _process_lost_links(self) -> None:
        peer = self.peer
        assert peer is not None
        for sid in self.quorum.take_lost():
            log.debug("member %d: quorum link with %d lost", self.my_id, sid)
            self._parked.pop(sid, None)
            peer.step(Disconnected(sid))

    def _peer_tick(self) -> None:
        peer = self.peer
        core = self.core
        assert peer is not None and core is not None
        self._ticks += 1
        peer.tick()
        half = max(1, self.config.tick_time // 2 // self.tick_ms)
        if self._ticks % half == 0:
            core.tick(self.clock.now_ms())
            self._handle_ready()
            if len(self._owners) > 2 * len(core.tracker.sessions) + 64:
                self._owners = {s: o for s, o in self._owners.items() if s in core.tracker.sessions}
        if core.mode == Mode.OFF:
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
                self._handle_ready()
        else:
            self._off_ticks = 0

    async def _peer_ticker(self) -> None:
        interval = self.tick_ms / 1000.0
        while True:
            await trio.sleep(interval)
            await self._inbox_send.send(("ptick",))

    def _pump(self) -> None:
        peer = self.peer
        assert peer is not None
        if self._parked and peer.role != Role.LOOKING:
            parked, self._parked = self._parked, {}
            for link, pkt in parked.values():
                if not self.quorum.current(link):
                    continue
                log.debug("member %d: parked link from %d: %s", self.my_id, link.sid, peer.role.value)
                if peer.role == Role.LEADING:
                    self._step_packet(link, pkt)
                else:
                    self.quorum.disconnect(link.sid)
        while self._inflight is None and peer.has_ready():
            rd = peer.ready()
            self._ready_seq += 1
            self._inflight = rd
            if rd.must_sync:
                if rd.may_send_early(peer.is_leader_established):
                    self._send_messages(rd)
                    self._sent_early = True
                if self._persist_inline(rd):
                    self._persist(rd)
                    self._carry_out(rd)
                    continue
                self._zab_jobs += 1
                self._zab_send.send_nowait(("ready", rd))
                return
            self._carry_out(rd)

    def _carry_out(self, rd: Ready) -> None:
        """Steps 6-8 of the Ready contract (its writes are durable)."""
        peer = self.peer
        core = self.core
        assert peer is not None and core is not None and rd is self._inflight
        if self._sent_early:
            self._sent_early = False
        else:
            self._send_messages(rd)
        now = self.clock.now_ms()
        if rd.snapshot is not None or rd.truncate_after is not None or len(self._decoded) > 100_000:
            self._decoded.clear()  # what was truncated is never applied: do not keep it
        if rd.snapshot is not None:
            core.load(Recovered(rd.snapshot.data, rd.snapshot.zxid, [], 0, 0))
            self._init_ensemble()
            self._last_committed_zxid = self._applied_zxid = rd.snapshot.zxid
        self._apply_committed([e for e in rd.committed if e.zxid > self._applied_zxid], now)
        self._inflight = None
        peer.advance(rd)
        if rd.soft_state is not None:
            self._on_soft_state(rd)
        for _sid, payload in rd.requests:
            try:
                f = decode_forward(payload)
            except ValueError as e:
                log.warning("bad forwarded request from %d: %s", _sid, e)
                continue
            core.receive_forwarded(f, now)
        if rd.requests:
            self._handle_ready()
        for _sid, payload in rd.session_reports:
            core.touch_reported(decode_report(payload), now)
        if rd.reads_confirmed:
            self._reads_confirmed(rd.reads_confirmed)
        self._check_syncs()

    def _apply_committed(self, entries: Sequence[Entry], now: int) -> None:
        core = self.core
        assert core is not None
        if not entries:
            return
        decoded = self._decoded
        txns = [e.txn or decoded.pop(e.zxid, None) or Txn.decode(e.data) for e in entries]
        core.committed(txns, now)
        self._last_committed_zxid = self._applied_zxid = txns[-1].zxid
        self._since_snapshot += len(txns)
        reconfigured = core.ensemble_changed
        if reconfigured:
            core.ensemble_changed = False
            self._apply_ensemble()
        self._handle_ready()
        # After a reconfig, a snapshot: a restart then starts from the new membership
        # instead of taking the logged reconfig for one still uncommitted.
        if reconfigured or self._since_snapshot >= self._next_snapshot:
            self._since_snapshot = 0
            self._next_snapshot = self._snapshot_threshold()
            self._zab_jobs += 1
            self._zab_send.send_nowait(("snapshot", core.last_zxid, core.snapshot()))

    def _apply_durable(self) -> None:
        """Apply what is committed *and* already durable here, without waiting for a Ready.

        A committed transaction that an earlier barrier made durable needs nothing from
        the Ready in flight (which only persists newer proposals), so its reply need
        not wait for that fsync.  Entries applied here are skipped when a Ready hands
        them out later (``_applied_zxid``).  Committed transactions are never
        truncated by a later leader, so applying them early is safe; a snapshot
        being installed (the peer's history no longer starts at what we applied)
        or a Ready in flight that installs one or truncates waits for that Ready.
        """
        peer = self.peer
        assert peer is not None
        rd = self._inflight
        if rd is not None and (rd.snapshot is not None or rd.truncate_after is not None):
            return
        upto = min(peer.committed, peer.persisted)
        applied = self._applied_zxid
        if upto <= applied or peer.base > applied:
            return
        history = peer.history
        lo = bisect.bisect_right(history, applied, key=_zxid_of)
        hi = bisect.bisect_right(history, upto, key=_zxid_of)
        if lo < hi:
            self._apply_committed(history[lo:hi], self.clock.now_ms())

    def _send_messages(self, rd: Ready) -> None:
        peer = self.peer
        assert peer is not None
        seq = self._ready_seq
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
            data = frames[0] if len(frames) == 1 else b"".join(frames)
            if not self.quorum.send_frames(to, data, seq, connect=connect):
                peer.step(Disconnected(to))

        for m in _coalesce(rd.messages):
            if isinstance(m, Disconnect):
                flush(m.peer)
                log.debug("member %d: disconnect %d", self.my_id, m.peer)
                self.quorum.disconnect(m.peer)
                continue
            to, msg = m
            kind = type(msg)
            if kind is Proposal or kind is Commit:
                data = msg.data if kind is Proposal else None
                # id(data): the very same bytes (alive in rd.messages while this runs).
                key = (kind, msg.zxid, id(data))
                f = encoded.get(key)
                if f is None:
                    f = encoded[key] = encode_simple(_SIMPLE[kind], msg.zxid, data)
            elif kind is Ack:
                f = encode_simple(_ACK, msg.zxid, None)
            else:
                f = encode_packet(to_packet(msg))
            batches.setdefault(to, []).append(f)
        for to in list(batches):
            flush(to)
        for to, n in rd.notifications:
            log.debug("member %d -> %d %s", self.my_id, to, n)
            self.election.send(to, n)

    def _on_soft_state(self, rd: Ready) -> None:
        ss = rd.soft_state
        core = self.core
        peer = self.peer
        assert ss is not None and core is not None and peer is not None
        changed = (ss.role, ss.leader, ss.established) != (self.role, self.leader, self.established)
        self.role, self.leader, self.established, self.epoch = ss.role, ss.leader, ss.established, ss.epoch
        if ss.established and ss.role == Role.LEADING:
            mode = Mode.LEADER
        elif ss.established and ss.role in (Role.FOLLOWING, Role.OBSERVING):
            mode = Mode.LEARNER
        elif core.mode == Mode.READ_ONLY and ss.role == Role.LOOKING:
            mode = Mode.READ_ONLY  # still cut off: keep serving read-only clients
        else:
            mode = Mode.OFF
        if changed:
            log.info(
                "member %d: %s (leader %s, epoch %d%s)",
                self.my_id,
                ss.role.value,
                ss.leader,
                ss.epoch,
                ", established" if ss.established else "",
            )
        now = self.clock.now_ms()
        core.zxid_source = self._next_zxid if mode == Mode.LEADER else None
        if mode != core.mode:
            self._sync_waits.clear()  # set_mode drops the syncs waiting in the core
        core.set_mode(mode, now)
        self._handle_ready()

    def _next_zxid(self) -> int:
        """The zxid ``Peer.propose`` will give the next transaction the core logs."""
        peer = self.peer
        core = self.core
        assert peer is not None and core is not None
        epoch = peer.epoch
        last = peer.last_zxid
        counter = counter_of(last) if epoch_of(last) == epoch else 0
        return zxid(epoch, counter + 1 + len(core._to_log))

    def _handle_ready(self) -> None:
        core = self.core
        peer = self.peer
        assert core is not None and peer is not None
        txns = core._to_log
        if txns:
            core._to_log = []
            for txn in txns:
                try:
                    z = peer.propose(txn)
                except NotLeader:
                    log.info("dropping a transaction: no longer the established leader")
                    break
                if z != txn.zxid:
                    log.error("zxid prediction failed: prepared 0x%x, proposed 0x%x", txn.zxid, z)
        forwards = core.take_forwards()
        if forwards:
            leader = peer.leader
            if core.mode == Mode.LEARNER and leader is not None and leader in self.quorum.links:
                # Straight onto the leader's link: a REQUEST carries no ZAB state, so it need
                # not wait behind our own storage barrier in the next Ready (it would wait
                # for an fsync of proposals it has nothing to do with).
                pkts = [to_packet(Request(self.my_id, encode_forward(f))) for f in forwards]
                if not self.quorum.send_many(leader, pkts, self._ready_seq, connect=False):
                    peer.step(Disconnected(leader))
            else:
                for f in forwards:
                    try:
                        peer.forward(encode_forward(f))
                    except NotLeader:
                        break
        if core.resumed:
            resumed, core.resumed = core.resumed, []
            for session_id in resumed:
                self._session_moved(session_id, self.my_id)
        for session_id, timeout in core.take_revalidations():
            if core.mode == Mode.LEARNER and peer.leader is not None:
                ask = _REVALIDATE_ASK.pack(session_id, timeout)
                self._send_packet(peer.leader, r.QuorumPacket(int(T.REVALIDATE), -1, ask, None))
        while core.sync_requests:
            core.sync_requests -= 1
            if core.mode == Mode.LEADER:
                # Our own client's sync: answered by _reads_confirmed, as a learner's.
                try:
                    peer.read_index(("client", None, peer.last_zxid))
                except NotLeader:
                    pass  # stepping down: the core drops the client with the mode change
            elif peer.leader is not None:
                self._send_packet(peer.leader, r.QuorumPacket(int(T.SYNC), 0, None, None))
        super()._handle_ready()

    # -- storage ---------------------------------------------------------------------

    async def _zab_storage_worker(self) -> None:
        storage = self.storage
        while True:
            job = await self._zab_recv.receive()
            if job[0] == "ready":
                rd: Ready = job[1]
                await self._blocking(self._persist, rd)
                self._zab_jobs -= 1
                await self._inbox_send.send(("synced", rd))
            else:
                _, z, data = job
                await self._blocking(storage.save_snapshot, z, data)
                if self.config.autopurge_purge_interval > 0:
                    await self._blocking(storage.purge, self.config.autopurge_snap_retain_count)
                self._zab_jobs -= 1

    def _persist_inline(self, rd: Ready) -> bool:
        """Whether to carry out steps 1-5 of ``rd`` right here, in the peer task.

        A storage barrier on this log is one small write and an fdatasync (about 0.1 ms
        here), while handing it to a worker thread and back costs several wake-ups, a
        GIL hand-off and the same again in CPU: at low load most of a write's latency,
        at high load a good part of the CPU.  Blocking the peer task that long is cheaper
        than either, so appends are persisted inline; a worker thread still takes what
        may be long (a snapshot to install, a large batch, an epoch change's several
        fsyncs) and anything queued behind a job it is running (order of storage calls).
        Group commit is unchanged: everything that arrived while the peer task was busy
        shares the next barrier.  A disk that turns slow (a barrier over ``SLOW_BARRIER_S``)
        sends barriers back to the thread until one is fast again, so that pings, reads
        and elections never wait long behind an fsync.
        """
        return (
            self._zab_jobs == 0
            and not self._slow_disk
            and rd.snapshot is None
            and rd.hard_state is None
            and rd.truncate_after is None
            and len(rd.to_persist) <= INLINE_PERSIST_MAX
        )

    def _persist(self, rd: Ready) -> None:
        """Steps 1-5 of the Ready contract, in the peer task or the worker thread."""
        started = _perf_counter()
        self._persist_steps(rd)
        self._slow_disk = _perf_counter() - started > SLOW_BARRIER_S

    def _persist_steps(self, rd: Ready) -> None:
        storage = self.storage
        if rd.snapshot is not None:
            storage.truncate_after(rd.snapshot.zxid)
            storage.save_snapshot(rd.snapshot.zxid, rd.snapshot.data)
        if rd.truncate_after is not None:
            storage.truncate_after(rd.truncate_after)
        if rd.to_persist:
            # Decoded once: the state machine takes these from _decoded when it applies them
            # (a zxid names one transaction in ZAB, so a stale entry left by a truncation is
            # still the right one if that zxid comes back).
            decoded = self._decoded
            txns = []
            for e in rd.to_persist:
                t = e.txn
                if t is None:
                    t = decoded[e.zxid] = Txn.decode(e.data)
                txns.append(t)
            storage.append(txns)
        hs = rd.hard_state
        if hs is not None:
            # Each epoch file costs an fsync; write only the one that changed.
            if hs.accepted_epoch != self._durable_epochs[0]:
                storage.set_accepted_epoch(hs.accepted_epoch)
            if hs.current_epoch != self._durable_epochs[1]:
                storage.set_current_epoch(hs.current_epoch)
            self._durable_epochs = (hs.accepted_epoch, hs.current_epoch)
        storage.sync()

    # -- four-letter words ---------------------------------------------------------------

    def _four_letter_word(self, conn_id: int, word: str, argument: int | None) -> None:
        core = self.core
        serving = core is not None and core.mode != Mode.OFF
        if serving or word in ("ruok", "envi") or word not in self.config.effective_4lw_whitelist:
            super()._four_letter_word(conn_id, word, argument)
            return
        # As ZooKeeper while it has no running ZooKeeperServer (electing, or syncing).
        c = self._conns.get(conn_id)
        if c is None:
            return
        text = "null" if word == "isro" else "This ZooKeeper instance is not currently serving requests\n"
        self._forget(conn_id)
        c.closing = True
        c.send.send_nowait(text.encode())
        c.send.send_nowait(_CLOSE)

    def _snapshot_for_4lw(self) -> Any:
        snap = super()._snapshot_for_4lw()
        import attrs

        mode = {
            Role.LEADING: "leader",
            Role.FOLLOWING: "follower",
            Role.OBSERVING: "observer",
            Role.LOOKING: "looking",
        }[self.role]
        core = self.core
        read_only = core is not None and core.mode == Mode.READ_ONLY
        if read_only:
            mode = "read-only"
        changes: dict[str, Any] = {"mode": mode, "read_only": read_only}
        return attrs.evolve(snap, **changes)


async def serve_member(
    config: cfg.ServerConfig,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    storage: Storage | None = None,
) -> None:
    member = Member(config, storage=storage)
    await member.run(task_status=task_status)


def is_ensemble(config: cfg.ServerConfig) -> bool:
    """Whether ``config`` describes a replicated member (ZooKeeper: more than one server line)."""
    return len(config.servers) > 1 or (bool(config.servers) and not config.standalone_enabled)
