"""The server core of one ensemble member: :class:`ServerCore` with ZooKeeper's learner/leader split.

Theory of operation
-------------------
A standalone :class:`~trizab.server.core.ServerCore` preps every write itself and
logs it.  In an ensemble only the established leader preps (ZooKeeper's
``LeaderZooKeeperServer`` keeps the ``PrepRequestProcessor``); a follower or an
observer (``FollowerZooKeeperServer`` / ``ObserverZooKeeperServer``) forwards the
raw request to the leader (``FollowerRequestProcessor`` → REQUEST packet) and
replies when the committed transaction comes back with the same
``(session id, cxid)`` (``CommitProcessor`` matching the committed request to the
local one).  :class:`ReplicaCore` adds exactly that, and nothing else changes:

* ``mode`` is ``OFF`` (not part of an established epoch: no clients are served,
  every connection is closed and refused, as ZooKeeper shuts its
  ``ZooKeeperServer`` down while LOOKING), ``READ_ONLY`` (ZooKeeper's
  ``ReadOnlyZooKeeperServer``: cut off from the quorum with
  ``readonlymode.enabled``, it serves read-only clients from its last state,
  with local sessions), ``LEADER`` or ``LEARNER``.
* ``LEARNER``: a write (and a new session's createSession) becomes a
  :class:`Forward` in :attr:`ReplicaReady.forwards` instead of a transaction;
  the driver sends them to the leader in order.  ``sync`` waits for
  :meth:`sync_done` (the leader's SYNC answer once the learner caught up).
  Sessions are never expired here; :meth:`session_report` lists the sessions
  whose clients sent something since the previous report, for the learner's
  ping replies.  A reconnect with a session id waits for the leader's verdict
  (:attr:`ReplicaReady.revalidations` out, :meth:`ReplicaCore.revalidated` in).
* ``LEADER``: :meth:`receive_forwarded` preps a learner's request exactly as a
  local one (with the learner client's auth ids); its reply is dropped here and
  produced by the learner on commit.  :meth:`touch_reported` keeps learners'
  sessions alive; only the leader's :meth:`tick` expires sessions and reaps
  containers.  A client's ``sync`` waits as on a learner (counted in
  :attr:`ReplicaReady.sync_requests`) for :meth:`sync_done`: the driver's word
  that a quorum confirmed, after the sync arrived, that we still lead
  (``Peer.read_index``) and that we applied everything proposed before it.  A
  deposed leader thus never answers a sync from its stale state (a standalone
  :class:`~trizab.server.core.ServerCore` answers at once: it is the only member).
* Sessions have one owner: the leader records who resumed a session (its own
  reconnects in :attr:`ReplicaReady.resumed`; a learner's through REVALIDATE, answered by
  :meth:`revalidate`) and has the previous owner close the session's old
  connection (:meth:`drop_session_connection`).

Dynamic reconfiguration (``reconfigEnabled=true``): the leader turns a reconfig
request into ZooKeeper's transaction, a setData of ``/zookeeper/config`` with the
new configuration text (``server.N=...`` lines, then ``version=<zxid hex>``), so
the ACL of that node (READ for anyone: only ``super`` may write) decides who may
reconfigure, and every member learns the new membership when it applies the
transaction (:attr:`ReplicaCore.ensemble`, :attr:`ReplicaReady.ensemble_changed`).
Voters and observers may be added and removed (the txn's header type is
``OpCode.reconfig``, its body the ``SetDataTxn``, as ZooKeeper logs it; the data
tree applies it as that setData).  As in ZooKeeper one reconfig is in flight at a
time (``ReconfigInProgress``, also while the ZAB core still holds an uncommitted
one), and a change of the voters is refused with ``NewConfigNoQuorum`` unless a
quorum of the new voters is synced with the leader (``Leader.isQuorumSynced``;
:attr:`ReplicaCore.quorum_view`, which the driver points at the ZAB peer).  The
ZAB core reads the membership from the reconfig txns of its own log
(:mod:`trizab.zab.membership`), not from this core.

The forwarded-request encoding is ZooKeeper's ``Request`` serialization in
``Learner.request`` (``long sessionId, int cxid, int type, request bytes``)
followed by the auth ids, all inside the REQUEST packet's data.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from collections.abc import Callable
from typing import Any

import attrs

from trizab import config as cfg
from trizab.server.api import ConnId, Ready, Reply
from trizab.server.core import ServerCore
from trizab.server.pending import CONNECT_KIND, FIXED_KIND, WRITE_KIND, CoreConnection, PendingRequest
from trizab.tree.datatree import Node, Result
from trizab.tree.prep import PrepError
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import Err, OpCode
from trizab.wire.jute import JuteError, decode_prefix, encode
from trizab.wire.requests import decode_request
from trizab.zab.membership import Membership, parse_config_text

CONFIG_PATH = "/zookeeper/config"

__all__ = [
    "Forward",
    "Mode",
    "ReplicaCore",
    "ReplicaReady",
    "decode_forward",
    "decode_report",
    "encode_forward",
]


class Mode(enum.Enum):
    OFF = "off"
    LEADER = "leader"
    LEARNER = "learner"
    READ_ONLY = "read-only"  # cut off from the quorum, readonlymode.enabled: read-only clients only


@attrs.frozen
class Forward:
    """A client request a learner sends to its leader (REQUEST packet data)."""

    session_id: int
    cxid: int
    opcode: int
    payload: bytes
    ids: tuple[r.Id, ...] = ()


_HEAD = struct.Struct(">qii")  # ZooKeeper's REQUEST data: sessionId, cxid, type, then the request
_REPORT = struct.Struct(">qi")


def encode_forward(f: Forward) -> bytes:
    """REQUEST's data as ``Learner.request`` writes it; the ids travel in QuorumPacket.authinfo."""
    return _HEAD.pack(f.session_id, f.cxid, f.opcode) + f.payload


def decode_forward(data: bytes, ids: tuple[r.Id, ...] = ()) -> Forward:
    """Raises ValueError on malformed data (a learner's bug, never a client's)."""
    if len(data) < _HEAD.size:
        raise ValueError(f"malformed forwarded request: {len(data)} bytes")
    sid, cxid, op = _HEAD.unpack_from(data)
    return Forward(sid, cxid, op, bytes(data[_HEAD.size :]), tuple(ids))


def encode_report(sessions: list[tuple[int, int]]) -> bytes:
    return b"".join(_REPORT.pack(sid, timeout) for sid, timeout in sessions)


def decode_report(data: bytes) -> list[tuple[int, int]]:
    n = len(data) // _REPORT.size
    return [_REPORT.unpack_from(data, k * _REPORT.size) for k in range(n)]


@attrs.frozen
class ReplicaReady(Ready):
    """A member core's outputs: :class:`~trizab.server.api.Ready`'s, then, in this order,
    what the driver sends the leader or tells the ZAB layer (see the module docstring)."""

    # Learner: writes and new sessions to forward to the leader (REQUEST), in order.
    forwards: list[Forward] = attrs.Factory(list)
    # Learner: (session id, timeout) of reconnects the leader must revalidate (REVALIDATE).
    revalidations: list[tuple[int, int]] = attrs.Factory(list)
    # How many client syncs arrived: each needs a SYNC barrier (learner) or a read index (leader).
    sync_requests: int = 0
    # Leader: sessions a reconnect here resumed (we are their owner now).
    resumed: list[int] = attrs.Factory(list)
    # A committed reconfig changed :attr:`ReplicaCore.ensemble`.
    ensemble_changed: bool = False


class ReplicaCore(ServerCore):
    """See the module docstring.  The driver sets :attr:`mode` through :meth:`set_mode`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.mode = Mode.OFF
        self._forwards: list[Forward] = []
        self._learner_conn: CoreConnection | None = None  # leader: stands in for learners' clients
        # Learner: sync requests waiting for the leader, in the order they were forwarded.
        self._syncs: deque[tuple[PendingRequest, str]] = deque()
        self._sync_requests = 0  # how many SYNCs the driver must still send to the leader
        # The ensemble's membership as /zookeeper/config holds it, and its version (a zxid).
        self.ensemble: dict[int, cfg.QuorumServer] = {}
        self.config_version = 0
        self._ensemble_changed = False
        self._reconfig_pending = False
        self._newleader_text: bytes | None = None  # learner: NEWLEADER's configuration text
        # Leader: (voters synced with us, whether the ZAB core holds an uncommitted reconfig).
        self.quorum_view: Callable[[], tuple[frozenset[int], bool]] | None = None
        # Leader: sessions resumed by a reconnect here since the driver last looked (the
        # driver records us as their owner).
        self._resumed: list[int] = []
        # Learner: (session id, timeout) of reconnects the leader must revalidate (the
        # driver sends REVALIDATE), and the connections waiting for its answer.
        self._revalidations: list[tuple[int, int]] = []
        self._revalidating: dict[int, list[tuple[ConnId, int]]] = {}
        # Learner: sessions whose clients sent something since the last report, with their
        # timeouts (ZooKeeper's LearnerSessionTracker touchTable).
        self._touched: dict[int, int] = {}

    # -- dynamic configuration ------------------------------------------------------------

    def init_ensemble(
        self,
        servers: dict[int, cfg.QuorumServer],
        my_id: int,
        client_port: int,
        now_ms: int,
        *,
        reinstall: bool = False,
    ) -> None:
        """At start-up and after a SNAP: the config the tree holds once a reconfig made one
        (version > 0), else this member's own server lines.

        Before any reconfig the text in a leader's snapshot is the leader's view; as ZooKeeper's
        ``Learner`` (``initConfigInZKDatabase`` with its own ``QuorumVerifier`` after a SNAP),
        a learner keeps its own, so members whose zoo.cfg reach each other by different
        addresses (through a proxy, a NAT) keep using theirs.

        The node's Stat is the one ``ZKDatabase.initConfigInZKDatabase`` leaves (a
        ``DataTree.setData`` with version -1, the configuration's version as mzxid, the wall
        time as mtime): installed at the first start, kept from the snapshot on a restart (a
        ZooKeeper member reloads it from its own), and installed again after a SNAP
        (``reinstall``), as ZooKeeper's learner does after syncing."""
        node = self.tree.nodes.get(CONFIG_PATH)
        if node is not None and node.data:
            self._load_config_text(node.data)
            if self.config_version > 0:
                if reinstall:
                    self._install_config(node, node.data, now_ms)
                return
        # Only what the server lines say, so that every member holds the same text.
        members = dict(servers)
        self.ensemble = members
        self.config_version = 0
        # A standalone server with read replicas shows a standalone server's empty node.
        if node is not None and not self.config.hide_membership:
            text = render_config(members, 0)
            installed = node.data == text and node.version == -1 and node.mzxid == 0 and node.mtime != 0
            if reinstall or not installed:
                self._install_config(node, text, now_ms)

    def _install_config(self, node: Node, text: bytes, now_ms: int) -> None:
        """``ZKDatabase.initConfigInZKDatabase``: ``setData(CONFIG_NODE, qv.toString(), -1,
        qv.getVersion(), Time.currentWallTime())`` (no watch fires: nobody is connected yet,
        or the tree was just replaced by a snapshot)."""
        node.data = text
        node.version = -1
        node.mzxid = self.config_version
        node.mtime = now_ms
        node._stat = None

    def newleader_config(self, text: bytes | None) -> None:
        """A learner: the configuration text the leader's NEWLEADER carries, for
        :meth:`_take_established_version` once the sync ends (UPTODATE)."""
        self._newleader_text = text

    def _take_established_version(self, now_ms: int) -> None:
        """ZOOKEEPER-1783: with reconfigEnabled, a ZooKeeper leader whose configuration still
        has version 0 (never reconfigured) gives it the NEWLEADER zxid as version once
        established (``Leader.lead``), and its learners install the text at UPTODATE
        (``Learner.syncWithLeader``, ``QuorumPeer.processReconfig``), so every ZooKeeper member
        then shows ``version=<that zxid>``.  A learner takes the same: only that renumbering,
        when the leader's text names exactly our members; a membership of its own comes from
        the synced history (a leader's last seen configuration may be a reconfig that never
        commits)."""
        text, self._newleader_text = self._newleader_text, None
        node = self.tree.nodes.get(CONFIG_PATH)
        # Without reconfigEnabled ZooKeeper neither renumbers nor takes a renumbering
        # (setLastSeenQuorumVerifier and processReconfig return at once).
        if not text or node is None or not node.data or not self.config.reconfig_enabled:
            return
        members, version = _parse_config_text(text)
        if version <= self.config_version or _server_lines(text) != _server_lines(node.data):
            return
        self.ensemble, self.config_version = members, version
        self._install_config(node, text, now_ms)
        self._ensemble_changed = True  # snapshot it, so that a restart starts from it

    def _load_config_text(self, data: bytes) -> None:
        self.ensemble, self.config_version = _parse_config_text(data)

    def _prep_reconfig(
        self, conn: CoreConnection, payload: bytes | memoryview, zxid: int, now_ms: int
    ) -> tuple[int, Any]:
        """``PrepRequestProcessor`` for OpCode.reconfig (incremental and non-incremental)."""
        try:
            req = decode_request(OpCode.RECONFIG, payload)
        except JuteError:
            raise PrepError(Err.MARSHALLING_ERROR) from None
        if not self.config.reconfig_enabled:
            raise PrepError(Err.RECONFIG_DISABLED)
        if self.config.hide_membership:
            # A standalone server with read replicas answers as a standalone server does.
            raise PrepError(Err.UNIMPLEMENTED)
        view = self.quorum_view() if self.quorum_view is not None else None
        if self._reconfig_pending or (view is not None and view[1]):
            raise PrepError(Err.RECONFIG_IN_PROGRESS)
        if req.new_members:
            members = {}
            for sid, spec in _server_specs(req.new_members):
                members[sid] = spec
        else:
            members = dict(self.ensemble)
            for sid, spec in _server_specs(req.joining_servers or ""):
                members[sid] = spec
            for raw in (req.leaving_servers or "").split(","):
                if raw.strip():
                    try:
                        members.pop(int(raw.strip()), None)
                    except ValueError:
                        raise PrepError(Err.BAD_ARGUMENTS) from None
        if req.cur_config_id not in (-1, self.config_version):
            raise PrepError(Err.BAD_VERSION)
        voters = {sid for sid, s in members.items() if s.role == "participant"}
        if not voters:
            raise PrepError(Err.BAD_ARGUMENTS)
        if voters != {sid for sid, s in self.ensemble.items() if s.role == "participant"}:
            # Leader.isQuorumSynced: the new voters must already hold a synced quorum.
            synced = view[0] if view is not None else frozenset()
            if len(voters & synced) < len(voters) // 2 + 1:
                raise PrepError(Err.NEW_CONFIG_NO_QUORUM)
        data = render_config(members, zxid)
        # The node's ACL (READ for anyone) makes this a super-user operation, as in ZooKeeper.
        txn_type, body = self.prep.prep(
            OpCode.SET_DATA, r.SetDataRequest(CONFIG_PATH, data, -1), conn.session_id, conn.ids, zxid, now_ms
        )
        self._reconfig_pending = True
        if txn_type == OpCode.SET_DATA:
            # DataTree.processTxn applies it as the setData.  PrepRequestProcessor writes version
            # -1 into the txn and its change record (not the node's version plus one), so every
            # member, of either implementation, shows version -1 after a reconfig.
            txn_type = OpCode.RECONFIG
            body = r.SetDataTxn(CONFIG_PATH, data, -1)
            rec = self.prep.changes.get(CONFIG_PATH)
            if rec is not None:
                rec.version = -1
        return txn_type, body

    def committed(self, txns: list[Txn], now_ms: int) -> None:
        super().committed(txns, now_ms)
        for txn in txns:
            t = txn.header.type
            is_config = t == OpCode.RECONFIG or t == OpCode.SET_DATA
            if is_config and getattr(txn.body, "path", None) == CONFIG_PATH:
                node = self.tree.nodes.get(CONFIG_PATH)
                if node is not None:
                    self._load_config_text(node.data)
                    self._ensemble_changed = True
                self._reconfig_pending = False

    def _write_reply(self, entry: PendingRequest, rc: Result, txn: Txn) -> Reply:
        if entry.op == OpCode.RECONFIG and rc.type != OpCode.ERROR and not rc.err:
            node = self.tree.nodes.get(CONFIG_PATH)
            if node is not None:
                header = r.ReplyHeader(entry.xid, self.last_zxid, 0)
                return Reply(header, r.GetDataResponse(node.data, node.stat()))
        return super()._write_reply(entry, rc, txn)

    # -- driver API ------------------------------------------------------------------

    def ready(self) -> ReplicaReady:
        """:meth:`ServerCore.ready` plus what only a member's driver acts on."""
        rd = ReplicaReady(
            self._to_log,
            self._outputs,
            self._close,
            forwards=self._forwards,
            revalidations=self._revalidations,
            sync_requests=self._sync_requests,
            resumed=self._resumed,
            ensemble_changed=self._ensemble_changed,
        )
        self._to_log = []
        self._outputs = []
        self._close = []
        self._forwards = []
        self._revalidations = []
        self._sync_requests = 0
        self._resumed = []
        self._ensemble_changed = False
        return rd

    # -- mode ----------------------------------------------------------------------

    def set_mode(self, mode: Mode, now_ms: int) -> None:
        """Change role; leaving or entering service drops every client (they reconnect)."""
        if mode == self.mode:
            return
        self.mode = mode
        self.now_ms = now_ms
        if mode == Mode.LEARNER:
            self._take_established_version(now_ms)
        self._newleader_text = None
        # ReadOnlyZooKeeperServer: only read-only clients, local sessions, writes get NotReadOnly.
        self.config.read_only = mode == Mode.READ_ONLY
        for conn in list(self.conns.values()):
            self._drop_conn(conn)
        # Whatever was prepared but not committed belongs to an epoch that is over.
        self.prep.clear()
        self._pending.clear()
        self._to_log.clear()
        self._forwards.clear()
        self._resumed.clear()
        self._revalidations.clear()
        self._revalidating.clear()
        self._touched.clear()
        self._syncs.clear()
        self._sync_requests = 0
        self._reaping.clear()
        self._reconfig_pending = False
        if mode == Mode.LEADER:
            # SessionTrackerImpl on a new leader: every session gets a full timeout from now.
            for sid in list(self.tracker.sessions):
                s = self.tracker.sessions[sid]
                if s.closing:
                    s.closing = False
                    self.tracker.live[sid] = s
                self.tracker.touch(sid, now_ms)

    # -- clients ---------------------------------------------------------------------

    def connect(self, conn_id: int, request: Any, **kwargs: Any) -> None:
        if self.mode == Mode.OFF:
            # Not serving (no quorum, election in progress): close so the client tries another.
            self.conns[conn_id] = conn = CoreConnection(
                conn_id, kwargs.get("client_addr", ""), False, kwargs["now_ms"]
            )
            self._drop_conn(conn)
            return
        super().connect(conn_id, request, **kwargs)
        conn = self.conns.get(conn_id)
        sid = conn.session_id if conn is not None else 0
        if sid and self.session_conn.get(sid) is conn and self.mode == Mode.LEADER:
            # A session (new or resumed) is now served here: record us as its owner and have
            # the previous one, if any, close its connection.
            self._resumed.append(sid)

    def _resume_session(self, conn: CoreConnection, sid: int, timeout: int, now_ms: int) -> None:
        if self.mode != Mode.LEARNER:
            super()._resume_session(conn, sid, timeout, now_ms)
            return
        # Learner.validateSession: only the leader knows whether a session is still alive
        # (our copy of the session table can lag behind, or miss a createSession not yet
        # applied); the client waits for its answer, as in ZooKeeper.
        self._revalidating.setdefault(sid, []).append((conn.conn_id, timeout))
        self._revalidations.append((sid, timeout))

    def revalidated(self, sid: int, valid: bool, now_ms: int) -> None:
        """Learner: the leader's answer to a REVALIDATE (``Learner.revalidate``)."""
        self.now_ms = now_ms
        for conn_id, timeout in self._revalidating.pop(sid, ()):
            conn = self.conns.get(conn_id)
            if conn is None:
                continue  # the client gave up meanwhile
            if valid:
                # Alive on the leader: its createSession may not have reached us yet.
                self.tracker.add(sid, timeout, now_ms)
                self._bind(conn, sid)
                self._send_connected(conn, timeout)
            else:
                self._refuse_session(conn)

    def revalidate(self, sid: int, timeout: int, now_ms: int) -> bool:
        """Leader: whether a learner's client may resume ``sid`` (``revalidateSession``)."""
        self.now_ms = now_ms
        return self.tracker.touch(sid, now_ms, timeout)

    def drop_session_connection(self, session_id: int) -> None:
        """The session moved to another member: close its connection here (it lives on there)."""
        conn = self.session_conn.get(session_id)
        if conn is not None:
            self._drop_conn(conn)

    def receive(self, conn_id: int, xid: int, opcode: int, payload: bytes | memoryview, now_ms: int) -> None:
        if self._enforcing:
            # enforce.auth before anything, the sync barrier below included.
            conn = self.conns.get(conn_id)
            if conn is not None and not conn.auth_enforced and not self.enforce_auth(conn, xid, opcode):
                return
        if self.mode == Mode.LEARNER:
            conn = self.conns.get(conn_id)
            if conn is None:
                return
            if conn.session_id:
                # The session lives by what its client sends (touchSession), reported to the
                # leader with the next ping; an idle or half-open connection keeps nothing alive.
                s = self.tracker.sessions.get(conn.session_id)
                if s is not None:
                    self._touched[conn.session_id] = s.timeout
        if opcode == OpCode.SYNC and (self.mode == Mode.LEARNER or self.mode == Mode.LEADER):
            # A barrier: it waits for the driver (sync_requests, then sync_done) behind the
            # connection's earlier requests, and so do the requests after it.
            conn = self.conns.get(conn_id)
            if conn is None:
                return
            if self.mode == Mode.LEADER and not self.tracker.is_live(conn.session_id):
                # Expired or closing: the read path answers SessionExpired, in order.
                super().receive(conn_id, xid, opcode, payload, now_ms)
                return
            conn.received += 1
            self.now_ms = now_ms
            self.tracker.touch(conn.session_id, now_ms)
            try:
                path = decode_request(opcode, payload).path
            except JuteError:
                self._fixed(conn, Reply(r.ReplyHeader(xid, self.last_zxid, Err.MARSHALLING_ERROR)))
                return
            entry = PendingRequest(conn, FIXED_KIND, xid, opcode)
            conn.queue.append(entry)
            self._syncs.append((entry, path))
            self._sync_requests += 1
            return
        super().receive(conn_id, xid, opcode, payload, now_ms)

    def sync_done(self) -> None:
        """The oldest outstanding sync is confirmed and we applied up to its point: answer it.

        Learner: the leader answered its SYNC packet.  Leader: a quorum confirmed, after
        the sync arrived, that we still lead (``Peer.read_index``).
        """
        if not self._syncs:
            return
        entry, path = self._syncs.popleft()
        entry.reply = Reply(r.ReplyHeader(entry.xid, self.last_zxid, 0), r.SyncResponse(path))
        entry.done = True
        if entry.conn is not None:
            self._drain(entry.conn)

    def _write(
        self, conn: CoreConnection, xid: int, opcode: int, payload: bytes | memoryview, now_ms: int
    ) -> None:
        if self.mode == Mode.LEADER and opcode == OpCode.RECONFIG:
            entry = PendingRequest(conn, WRITE_KIND, xid, opcode)
            conn.queue.append(entry)
            zxid = self.next_zxid()
            try:
                if not self.tracker.is_live(conn.session_id):
                    raise PrepError(Err.SESSION_EXPIRED)
                txn_type, body = self._prep_reconfig(conn, payload, zxid, now_ms)
            except PrepError as e:
                txn_type, body = OpCode.ERROR, r.ErrorTxn(e.code)
            self._log(conn.session_id, xid, txn_type, body, entry, now_ms, zxid)
            return
        if self.mode != Mode.LEARNER:
            super()._write(conn, xid, opcode, payload, now_ms)
            return
        if self.config.read_only:
            super()._write(conn, xid, opcode, payload, now_ms)
            return
        sid = conn.session_id
        if opcode == OpCode.CLOSE_SESSION:
            self.tracker.set_closing(sid)
        entry = PendingRequest(conn, WRITE_KIND, xid, opcode)
        conn.queue.append(entry)
        self._add_pending(sid, xid, entry)
        self._forwards.append(Forward(sid, xid, opcode, bytes(payload), tuple(conn.ids)))

    def _log(
        self,
        client_id: int,
        cxid: int,
        txn_type: int,
        body: Any,
        entry: PendingRequest | None,
        now_ms: int,
        zxid: int | None = None,
    ) -> Any:
        if self.mode != Mode.LEARNER:
            return super()._log(client_id, cxid, txn_type, body, entry, now_ms, zxid)
        if txn_type == OpCode.CREATE_SESSION and entry is not None and entry.kind == CONNECT_KIND:
            self._add_pending(client_id, cxid, entry)
            self._forwards.append(Forward(client_id, cxid, OpCode.CREATE_SESSION, encode(body)))
        # Anything else a learner would log (expiry, container reaping) is the leader's job.
        return None

    # -- leader side -------------------------------------------------------------------

    def receive_forwarded(self, f: Forward, now_ms: int) -> None:
        """Leader: prep a learner's request as if its client were connected here."""
        self.now_ms = now_ms
        if f.opcode == OpCode.CREATE_SESSION:
            try:
                body = decode_prefix(r.CreateSessionTxn, f.payload, 0)[0]
            except JuteError:
                return
            self.tracker.add(f.session_id, body.time_out, now_ms)
            self._log(f.session_id, f.cxid, OpCode.CREATE_SESSION, body, None, now_ms)
            return
        self.tracker.touch(f.session_id, now_ms)
        # One stand-in connection for every forwarded request (a new one per request cost
        # more than the prep: its address parse); it holds nothing between calls.
        conn = self._learner_conn
        if conn is None:
            conn = self._learner_conn = CoreConnection(-1, "learner", False, now_ms)
        conn.session_id = f.session_id
        conn.ids = list(f.ids)
        try:
            self._write(conn, f.cxid, f.opcode, f.payload, now_ms)
        except PrepError:  # pragma: no cover - _write turns these into ErrorTxns
            pass
        # The reply to this request is the learner's to send; ours would go nowhere.
        for pending in conn.queue:
            pending.conn = None
        conn.queue.clear()

    def touch_reported(self, sessions: list[tuple[int, int]], now_ms: int) -> None:
        for sid, _timeout in sessions:
            self.tracker.touch(sid, now_ms)

    def session_report(self) -> list[tuple[int, int]]:
        """Learner: the sessions touched since the last report (``getTouchSnapshot``), then forget them."""
        out = list(self._touched.items())
        self._touched.clear()
        return out

    def tick(self, now_ms: int) -> None:
        if self.mode == Mode.LEADER:
            super().tick(now_ms)
        else:
            self.now_ms = now_ms


def _server_specs(text: str) -> list[tuple[int, cfg.QuorumServer]]:
    """``server.N=host:q:e[:role][;client]`` entries separated by commas or newlines."""
    out = []
    for raw in text.replace("\n", ",").split(","):
        raw = raw.strip()
        if not raw:
            continue
        key, sep, value = raw.partition("=")
        if not sep or not key.startswith("server.") or not key[7:].isdigit():
            raise PrepError(Err.BAD_ARGUMENTS)
        try:
            out.append((int(key[7:]), cfg._server_line(int(key[7:]), value.strip())))
        except ValueError:
            raise PrepError(Err.BAD_ARGUMENTS) from None
    return out


def render_config(members: dict[int, cfg.QuorumServer], version: int) -> bytes:
    """``QuorumVerifier.toString``: one ``server.N=`` line per member, then ``version=<hex>``."""
    lines = []
    for sid in sorted(members):
        s = members[sid]
        # QuorumServer.delimitedHostString: an IPv6 address in brackets.
        host = f"[{s.host}]" if ":" in s.host else s.host
        line = f"server.{sid}={host}:{s.quorum_port}:{s.election_port}:{s.role}"
        if s.client_port is not None:
            line += f";{s.client_host or '0.0.0.0'}:{s.client_port}"
        lines.append(line)
    lines.append(f"version={version:x}")
    return "\n".join(lines).encode()


def _parse_config_text(data: bytes) -> tuple[dict[int, cfg.QuorumServer], int]:
    """The members and version of a ``/zookeeper/config`` text (lines it cannot read skipped)."""
    members: dict[int, cfg.QuorumServer] = {}
    version = 0
    for line in data.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        if key.startswith("server.") and key[7:].isdigit():
            try:
                members[int(key[7:])] = cfg._server_line(int(key[7:]), value)
            except ValueError:
                continue
        elif key == "version":
            try:
                version = int(value, 16)
            except ValueError:
                continue  # a leader's NEWLEADER text is not ours to trust: read it as version 0
    return members, version


def _server_lines(data: bytes) -> list[bytes]:
    return [line for line in data.splitlines() if line.startswith(b"server.")]


def config_membership(data: bytes | None) -> Membership | None:
    """The ZAB membership a ``/zookeeper/config`` text describes (None if it has no voter)."""
    if not data:
        return None
    try:
        return parse_config_text(data)
    except ValueError:
        return None


def snapshot_membership(data: bytes) -> Membership | None:
    """The ZAB peer's ``snapshot_membership_fn``: the configuration a snapshot's tree holds."""
    from trizab.tree.datatree import DataTree
    from trizab.tree.snapshot import deserialize_snapshot

    tree = DataTree()
    try:
        deserialize_snapshot(tree, data)
    except Exception:  # not ours to judge here: installing the snapshot reports a bad one
        return None
    node = tree.nodes.get(CONFIG_PATH)
    return config_membership(node.data if node is not None else None)
