"""The standalone server core: ZooKeeper's request pipeline as one synchronous object.

Theory of operation
-------------------
:class:`ServerCore` plays the parts of Apache ZooKeeper's ``ZooKeeperServer``
(handshake, ``processPacket``), ``PrepRequestProcessor`` (:mod:`trizab.tree.prep`),
``SyncRequestProcessor`` (the driver: it logs ``Ready.to_log`` and calls
:meth:`ServerCore.committed`), ``FinalRequestProcessor`` (apply, reply, watches)
and ``SessionTrackerImpl`` (:mod:`trizab.server.sessions`).  It does no I/O and
reads no clock: every entry point gets ``now_ms`` (wall-clock milliseconds since
the epoch; they become ctime/mtime and seed session ids).

A write is decoded, prepared against the tree plus the outstanding changes, and
becomes a transaction (failures too: an ``ErrorTxn``, as ZooKeeper logs them and
spends a zxid on them).  The transaction goes out in ``Ready.to_log``; once the
driver reports it committed, :meth:`committed` applies it, emits the watch events
it fired, and completes the waiting request.

Each connection has a FIFO of requests (``CommitProcessor``'s per-session queue):
a read behind an uncommitted write of the same connection waits and runs after
it, so replies leave in request order and a read sees its own session's writes.
Notifications are appended to the outputs the moment their transaction is
applied, hence before any later reply (event-before-reply).

Watches belong to sessions, not TCP connections; events for a session that has
no live connection are queued (bounded) and flushed after its reconnect's
``Connected``.

Zxids come from :meth:`ServerCore.next_zxid`, a counter restored from the
recovered state (standalone: the epoch part never changes); a ZAB leader can
replace it by assigning ``zxid_source`` (the zxid its next proposal will get; the
core adds the transactions it logged since the last :meth:`ready`).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from trizab.server.api import ConnId, Notification, Ready, Reply
from trizab.server.auth import Authentication
from trizab.server.pending import (
    CONNECT_KIND,
    FIXED_KIND,
    READ_KIND,
    WRITE_KIND,
    CoreConnection,
    PendingRequest,
)
from trizab.server.reads import Reads
from trizab.server.reaping import Reaping
from trizab.server.sasl_gssapi import KerberosAcceptor
from trizab.server.session_handling import SessionHandling
from trizab.server.sessions import SessionTracker, initial_session_id
from trizab.tree.datatree import DataTree, Result, TreeError
from trizab.tree.prep import Prep, PrepError
from trizab.tree.snapshot import (
    ProgressCallback,
    SnapshotWriter,
    deserialize_snapshot,
    gc_paused,
    serialize_snapshot,
)
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import WRITE_OPCODES, Err, OpCode
from trizab.wire.jute import JuteError
from trizab.wire.requests import REQUEST_RECORD, MultiResponse, OpResult, decode_multi, decode_request

__all__ = ["CoreConfig", "ServerCore"]

log = logging.getLogger(__name__)

_MAX_QUEUED_EVENTS = 10_000
PROGRESS_TXNS = 20_000  # replayed transactions between two progress reports at start-up
_STAMP = object()  # PendingRequest.payload of a fixed reply that takes the zxid current when it is sent
_SASL = int(OpCode.SASL)

_WRITE_OPS = WRITE_OPCODES
_READ_OPS = frozenset(
    {
        OpCode.EXISTS,
        OpCode.GET_DATA,
        OpCode.GET_ACL,
        OpCode.GET_CHILDREN,
        OpCode.GET_CHILDREN2,
        OpCode.SYNC,
        OpCode.PING,
        OpCode.SET_WATCHES,
        OpCode.SET_WATCHES2,
        OpCode.CHECK_WATCHES,
        OpCode.REMOVE_WATCHES,
        OpCode.GET_EPHEMERALS,
        OpCode.GET_ALL_CHILDREN_NUMBER,
        OpCode.MULTI_READ,
        OpCode.ADD_WATCH,
        OpCode.WHO_AM_I,
    }
)

# Plain ints for the per-request paths: an IntEnum attribute lookup (OpCode.X) costs about ten
# times an int comparison on CPython 3.11, and the write path made dozens of them.  Measured
# with bench.pipeline: with OpCode.X at each use a setData costs about 11% more CPU (6.63
# against 5.95 us per request).
_CREATE = int(OpCode.CREATE)
_SET_DATA = int(OpCode.SET_DATA)
_ERROR = int(OpCode.ERROR)
_MULTI = int(OpCode.MULTI)
_RECONFIG = int(OpCode.RECONFIG)
_CREATE_SESSION = int(OpCode.CREATE_SESSION)
_CLOSE_SESSION = int(OpCode.CLOSE_SESSION)
_CHECK = int(OpCode.CHECK)
_DELETE_CONTAINER = int(OpCode.DELETE_CONTAINER)
_SET_ACL = int(OpCode.SET_ACL)
_AUTH = int(OpCode.AUTH)
_CREATE2_LIKE = frozenset({int(OpCode.CREATE2), int(OpCode.CREATE_TTL), int(OpCode.CREATE_CONTAINER)})
_MAY_EMPTY_CONTAINER = frozenset(
    {int(OpCode.DELETE), int(OpCode.CLOSE_SESSION), int(OpCode.MULTI), int(OpCode.DELETE_CONTAINER)}
)
_READ_OP_CODES = frozenset(int(op) for op in _READ_OPS)
_WRITE_OP_CODES = frozenset(int(op) for op in _WRITE_OPS)
_MARSHALLING_ERROR = int(Err.MARSHALLING_ERROR)
# The body decoder of each write that _write decodes itself (those with a request record).
_DECODE = {
    op: cls.jute_decode  # type: ignore[attr-defined]
    for op in _WRITE_OP_CODES
    if (cls := REQUEST_RECORD.get(op)) is not None
}


@attrs.define
class CoreConfig:
    server_id: int = 0
    tick_time_ms: int = 2000
    min_session_timeout_ms: int | None = None  # None: 2 * tick_time_ms
    max_session_timeout_ms: int | None = None  # None: 20 * tick_time_ms
    # "super:base64(sha1(super:password))": kept out of repr (a hash a password can be guessed from).
    super_digest: str | None = attrs.field(default=None, repr=False)
    # The x509 scheme is registered (a TLS client port, or authProvider.N naming it).
    x509_enabled: bool = False
    # SASL DIGEST-MD5 users (the JAAS Server section); None: no SASL server, as ZooKeeper without one.
    sasl_users: Mapping[str, str] | None = attrs.field(default=None, repr=False)
    # GSSAPI instead (the JAAS Server section logs in with Krb5LoginModule): the service
    # principal's acceptor credentials, read from its keytab at start-up.
    sasl_kerberos: KerberosAcceptor | None = None
    # Nonces for DIGEST-MD5 challenges (the runtime passes secrets.token_bytes; the core draws none).
    sasl_nonce: Callable[[int], bytes] | None = None
    # The sasl scheme is registered (authProvider.N=...SASLAuthenticationProvider).
    sasl_enabled: bool = False
    # zookeeper.superUser: sasl ids that are also super.
    sasl_super_users: frozenset[str] = frozenset()
    # AuthenticationHelper: schemes a connection needs before any request but auth and sasl;
    # empty: not enforced.
    enforce_auth_schemes: frozenset[str] = frozenset()
    extended_types_enabled: bool = False
    container_check_interval_ms: int = 60_000
    # Also reap a container as soon as its last child goes (ZooKeeper only has the periodic check).
    reap_containers_immediately: bool = True
    local_reads: bool = True
    read_only: bool = False
    # Standalone ZooKeeper answers reconfig with ReconfigDisabled, or Unimplemented when enabled.
    reconfig_enabled: bool = False
    # A standalone server with read replicas: /zookeeper/config stays empty, as a standalone
    # server's, although its processes form a loopback ensemble (trizab.runtime.replicas).
    hide_membership: bool = False
    jute_max_buffer: int = 0xFFFFF
    max_queued_events: int = _MAX_QUEUED_EVENTS

    @property
    def min_timeout(self) -> int:
        return (
            self.min_session_timeout_ms if self.min_session_timeout_ms is not None else 2 * self.tick_time_ms
        )

    @property
    def max_timeout(self) -> int:
        return (
            self.max_session_timeout_ms if self.max_session_timeout_ms is not None else 20 * self.tick_time_ms
        )


class ServerCore(SessionHandling, Authentication, Reads, Reaping):
    """See the module docstring.  Feed it events, then act on :meth:`ready`."""

    def __init__(self, config: CoreConfig, *, now_ms: int) -> None:
        self.config = config
        self.tree = DataTree(extended_types=config.extended_types_enabled)
        self._enforcing = bool(config.enforce_auth_schemes)  # read per request: one attribute
        if config.sasl_users is not None and config.sasl_nonce is None:
            raise ValueError("CoreConfig.sasl_users needs sasl_nonce (a source of random bytes)")
        self.prep = Prep(
            self.tree,
            extended_types=config.extended_types_enabled,
            x509=config.x509_enabled,
            sasl=config.sasl_enabled,
        )
        # Standalone ZooKeeper seeds session ids with server id 1 (createSessionTrackerServerId).
        self.tracker = SessionTracker(config.tick_time_ms, initial_session_id(now_ms, config.server_id or 1))
        self.conns: dict[ConnId, CoreConnection] = {}
        self.session_conn: dict[int, CoreConnection] = {}
        self._queued_events: dict[int, deque[r.WatcherEvent]] = {}
        # (session id, cxid) -> its writes in flight, oldest first.
        self._pending: dict[tuple[int, int], list[PendingRequest]] = {}
        self._hzxid = 0
        # A ZAB leader's zxids: the one its next proposal gets, for the first of the txns
        # logged since the last ready() (the driver proposes them in order); None: our counter.
        self.zxid_source: Callable[[], int] | None = None
        self._to_log: list[Txn] = []
        self._outputs: list[tuple[ConnId, Any]] = []
        self._close: list[ConnId] = []
        self._reaping: set[str] = set()
        self._next_container_check = now_ms + config.container_check_interval_ms
        self.now_ms = now_ms

    # -- introspection ------------------------------------------------------------

    @property
    def last_zxid(self) -> int:
        return self.tree.last_processed_zxid

    @property
    def node_count(self) -> int:
        # ZooKeeper's NodeHashMap holds the root twice ("" and "/"); zk_znode_count shows that.
        return len(self.tree.nodes) + 1

    @property
    def approximate_data_size(self) -> int:
        return self.tree.approximate_data_size()

    @property
    def outstanding_requests(self) -> int:
        return sum(len(c.queue) for c in self.conns.values())

    def sessions(self) -> list[tuple[int, int, ConnId | None]]:
        """(session id, timeout ms, connection id or None) for every live session."""
        out = []
        for sid, s in self.tracker.sessions.items():
            conn = self.session_conn.get(sid)
            out.append((sid, s.timeout, conn.conn_id if conn else None))
        return out

    def ephemerals_by_session(self) -> dict[int, list[str]]:
        return {sid: list(paths) for sid, paths in self.tree.ephemerals.items()}

    def watches_by_session(self) -> dict[int, list[str]]:
        return {sid: list(paths) for sid, paths in self.tree.data_watches.by_watcher.items()}

    def watches_by_path(self) -> dict[str, list[int]]:
        return {path: list(ws) for path, ws in self.tree.data_watches.table.items()}

    # -- driver API -----------------------------------------------------------------

    def ready(self) -> Ready:
        rd = Ready(self._to_log, self._outputs, self._close)
        self._to_log = []
        self._outputs = []
        self._close = []
        return rd

    def next_zxid(self) -> int:
        if self.zxid_source is not None:
            return self.zxid_source() + len(self._to_log)
        self._hzxid += 1
        return self._hzxid

    def snapshot(self) -> bytes:
        """The whole tree now, in one go (its zxid is :attr:`last_zxid`)."""
        return serialize_snapshot(self.tree)

    def start_snapshot(self) -> SnapshotWriter:
        """A fuzzy snapshot to advance with ``step()`` between other calls (zxid: ``.zxid``).

        The driver may feed the core anything between steps; the result is a snapshot
        as of ``.zxid`` plus some later transactions, which :meth:`load` corrects by
        replaying the log after ``.zxid`` (ZooKeeper's fuzzy snapshot).
        """
        return SnapshotWriter(self.tree)

    def load(self, recovered: Any, progress: ProgressCallback | None = None) -> None:
        """Restore a snapshot and replay the log after it (start-up, before any connection).

        ``progress(what, done, total, unit)`` hears how far loading got, every few
        tens of thousands of nodes or transactions.
        """
        tree = DataTree(extended_types=self.config.extended_types_enabled)
        with gc_paused():  # restart time: see gc_paused
            if recovered.snapshot is not None:
                deserialize_snapshot(tree, recovered.snapshot, progress)
                tree.last_processed_zxid = recovered.snapshot_zxid
                if progress is not None:
                    size = len(recovered.snapshot)
                    progress("loading snapshot", size, size, "bytes")
            total = len(recovered.txns)
            for i, txn in enumerate(recovered.txns, start=1):
                tree.process_txn(txn.header, txn.body, stats=False)
                tree.events.clear()
                if progress is not None and i % PROGRESS_TXNS == 0:
                    progress("replaying log", i, total, "txns")
            if progress is not None and total:
                progress("replaying log", total, total, "txns")
        self.tree = tree
        self.prep = Prep(
            tree,
            extended_types=self.config.extended_types_enabled,
            x509=self.config.x509_enabled,
            sasl=self.config.sasl_enabled,
        )
        self._hzxid = max(self._hzxid, tree.last_processed_zxid)
        # Which sessions exist is replicated state: exactly the loaded tree's.  A session the
        # tracker knew but the tree does not was closed (expired) meanwhile; a learner that
        # catches up by SNAP must forget it, or a reconnect could bring it back to life.
        for sid in [sid for sid in self.tracker.sessions if sid not in tree.sessions]:
            self._session_closed(sid, None)
        for sid, timeout in tree.sessions.items():
            self.tracker.add(sid, timeout, self.now_ms)

    # -- requests -------------------------------------------------------------------

    def receive(
        self, conn_id: ConnId, xid: int, opcode: int, payload: bytes | memoryview, now_ms: int
    ) -> None:
        """One request (``ZooKeeperServer.processPacket`` then the processor chain)."""
        self.now_ms = now_ms
        conn = self.conns.get(conn_id)
        if conn is None:
            return
        conn.received += 1
        if self._enforcing and not conn.auth_enforced and not self.enforce_auth(conn, xid, opcode):
            return
        sid = conn.session_id
        if conn.touched_ms != now_ms:
            # Requests arrive in bursts with one clock reading: the first one touches the
            # session, the rest would only recompute the same deadline.
            conn.touched_ms = now_ms
            self.tracker.touch(sid, now_ms)
        if opcode in _READ_OP_CODES:
            if not conn.queue:
                # Fast path: nothing in flight on this connection, answer now.
                self._emit(conn, self._read(conn, xid, opcode, payload))
            else:
                conn.queue.append(PendingRequest(conn, READ_KIND, xid, opcode, bytes(payload)))
            return
        if opcode in _WRITE_OP_CODES:
            self._write(conn, xid, opcode, payload, now_ms)
            return
        if opcode == _AUTH:
            self._auth(conn, xid, payload)
            return
        if opcode == _DELETE_CONTAINER:
            # Server-internal (ContainerManager): ZooKeeper 3.8 answers a client's with
            # BadArguments and an ErrorTxn, whatever the body (_write).
            self._write(conn, xid, opcode, payload, now_ms)
            return
        if opcode == _SASL:
            self._sasl(conn, xid, payload)
            return
        # Unknown opcode (deleteContainer included: it is server-internal): ZooKeeper's
        # UnimplementedRequestProcessor, whose reply header carries zxid -1.  ZooKeeper then
        # closes the connection; trizab keeps it open (deliberate, see compat/README.md).
        self._fixed(conn, Reply(r.ReplyHeader(xid, -1, Err.UNIMPLEMENTED)))

    def _fixed(self, conn: CoreConnection, reply: Reply, *, stamp: bool = False) -> None:
        """Send ``reply`` in order; ``stamp``: with the last zxid at sending time, as
        FinalRequestProcessor would (the request waits behind the connection's earlier writes)."""
        if not conn.queue:
            self._emit(conn, reply)
        else:
            entry = PendingRequest(conn, FIXED_KIND, reply.header.xid, 0, _STAMP if stamp else None)
            entry.reply = reply
            entry.done = True
            conn.queue.append(entry)

    def _emit(self, conn: CoreConnection, reply: Reply) -> None:
        conn.sent += 1
        conn.last_zxid = reply.header.zxid
        self._outputs.append((conn.conn_id, reply))

    def _log(
        self,
        client_id: int,
        cxid: int,
        txn_type: int,
        body: Any,
        entry: PendingRequest | None,
        now_ms: int,
        zxid: int | None = None,
    ) -> Txn:
        if zxid is None:
            zxid = self.next_zxid()
        txn = Txn(r.TxnHeader(client_id, cxid, zxid, now_ms, txn_type), body)
        self._to_log.append(txn)
        if entry is not None:
            self._add_pending(client_id, cxid, entry)
        return txn

    def _add_pending(self, client_id: int, cxid: int, entry: PendingRequest) -> None:
        """Remember ``entry`` until its txn comes back committed (taken in :meth:`committed`)."""
        q = self._pending.get((client_id, cxid))
        if q is None:
            # A list, not a deque: a deque allocates a 64-slot block, and this runs per
            # write while the list almost always holds one entry.
            self._pending[(client_id, cxid)] = [entry]
        else:
            q.append(entry)

    def _write(
        self, conn: CoreConnection, xid: int, opcode: int, payload: bytes | memoryview, now_ms: int
    ) -> None:
        """``PrepRequestProcessor.pRequest`` for one write."""
        sid = conn.session_id
        entry = PendingRequest(conn, WRITE_KIND, xid, opcode)
        if self.config.read_only:
            # ReadOnlyRequestProcessor answers writes itself.
            self._fixed(conn, Reply(r.ReplyHeader(xid, self.last_zxid, Err.NOT_READONLY)))
            return
        if opcode == _RECONFIG:
            try:
                decode_request(opcode, payload)
            except JuteError:
                # ZooKeeper decodes a reconfig before it takes a zxid: MarshallingError, no txn.
                self._fixed(conn, Reply(r.ReplyHeader(xid, self.last_zxid, _MARSHALLING_ERROR)), stamp=True)
                return
        ops = None
        if opcode == _MULTI:
            try:
                ops = decode_multi(payload, read=False)
                null_path = any(op.request.path is None for op in ops)
            except JuteError:
                # Below: an ErrorTxn, as ZooKeeper logs one for a multi it cannot use.  Read ops
                # only do decode there, so a null path among them still fails first.
                try:
                    null_path = any(op.request.path is None for op in decode_multi(payload, read=True))
                except JuteError:
                    null_path = False
            if null_path:
                # ZooKeeper's getPendingChanges dereferences every op's path before preparing
                # any: a NullPointerException, answered MarshallingError with an empty
                # MultiResponse and without a transaction.
                reply = Reply(r.ReplyHeader(xid, self.last_zxid, _MARSHALLING_ERROR), MultiResponse([]))
                self._fixed(conn, reply, stamp=True)
                return
        conn.queue.append(entry)
        if self.zxid_source is None:  # next_zxid(), inlined for the write path
            self._hzxid = zxid = self._hzxid + 1
        else:
            zxid = self.zxid_source() + len(self._to_log)
        prep = self.prep
        try:
            if opcode == _CLOSE_SESSION:
                self.tracker.set_closing(sid)
                txn_type, body = prep.close_session(sid, zxid)
            elif sid not in self.tracker.live:
                raise PrepError(Err.SESSION_EXPIRED)
            elif opcode == _MULTI:
                if ops is None:
                    raise PrepError(Err.MARSHALLING_ERROR)
                body, _err = prep.multi(ops, sid, conn.ids, zxid, now_ms)
                txn_type = OpCode.MULTI
            elif opcode == _RECONFIG:
                decode_request(opcode, payload)
                raise PrepError(Err.UNIMPLEMENTED if self.config.reconfig_enabled else Err.RECONFIG_DISABLED)
            elif opcode == _DELETE_CONTAINER:
                raise PrepError(Err.BAD_ARGUMENTS)  # see receive()
            else:
                try:
                    # decode_request, minus two calls (every write body has a record).
                    req = _DECODE[opcode](payload, 0, len(payload))[0]
                except JuteError:
                    raise PrepError(Err.MARSHALLING_ERROR) from None
                txn_type, body = prep.prep(opcode, req, sid, conn.ids, zxid, now_ms)
        except JuteError:
            txn_type, body = OpCode.ERROR, r.ErrorTxn(Err.MARSHALLING_ERROR)
        except PrepError as e:
            txn_type, body = OpCode.ERROR, r.ErrorTxn(e.code)
        self._log(sid, xid, txn_type, body, entry, now_ms, zxid)

    # -- commit / apply -----------------------------------------------------------

    def committed(self, txns: list[Txn], now_ms: int) -> None:
        """Apply durable transactions in zxid order; reply and notify (``FinalRequestProcessor``)."""
        if not txns:
            return
        self.now_ms = now_ms
        tree = self.tree
        process_txn = tree.process_txn
        pending = self._pending
        set_data = tree.set_data
        for txn in txns:
            header = txn.header
            t = header.type
            if t == _SET_DATA:
                # The hottest write, without the Result that process_txn would build: its
                # setData branch, spelled out (the reply is made from ``stat`` below).
                # Measured with bench.pipeline: through process_txn and _write_reply a setData
                # costs about 5% more CPU (6.27 against 5.95 us per request).
                body = txn.body
                try:
                    stat = set_data(body.path, body.data, body.version, header.zxid, header.time)
                    set_data_err = 0
                except TreeError as e:
                    stat, set_data_err = None, e.code
                if header.zxid > tree.last_processed_zxid:
                    tree.last_processed_zxid = header.zxid
                rc = None
            else:
                rc = process_txn(header, txn.body)
            if tree.events:
                self._deliver(tree.events)
                tree.events = []
            if t == _CREATE_SESSION:
                if header.client_id not in self.tracker.sessions:
                    self.tracker.add(header.client_id, txn.body.time_out, now_ms)
                self._log_session_opened(header.client_id, txn.body.time_out)
            # The oldest pending entry for this (session, cxid), if any: see _add_pending.
            key = (header.client_id, header.cxid)
            q = pending.get(key)
            if q:
                entry = q.pop(0)
                if not q:
                    del pending[key]
            else:
                entry = None
            if t == _CLOSE_SESSION:
                self.prep.applied(header.zxid)  # what follows may prepare txns of its own
                self._session_closed(header.client_id, entry)
            elif entry is not None and entry.conn is not None:
                if entry.kind == CONNECT_KIND:
                    conn = entry.conn
                    if conn.queue and conn.queue[0] is entry:
                        conn.queue.popleft()
                    self._send_connected(conn, entry.timeout)
                    self._drain(conn)
                else:
                    if rc is None and entry.op != _SET_DATA:  # a setData txn for another request
                        rc = Result(header)
                        rc.path, rc.stat, rc.err = txn.body.path, stat, set_data_err
                    if rc is not None:
                        entry.reply = self._write_reply(entry, rc, txn)
                    elif set_data_err:  # _write_reply's answers for a setData, as it gives them
                        entry.reply = Reply(r.ReplyHeader(entry.xid, tree.last_processed_zxid, set_data_err))
                    else:
                        entry.reply = Reply(
                            r.ReplyHeader(entry.xid, tree.last_processed_zxid, 0), r.SetDataResponse(stat)
                        )
                    entry.done = True
                    self._drain(entry.conn)
            if t in _MAY_EMPTY_CONTAINER and self.config.reap_containers_immediately:
                self.prep.applied(header.zxid)  # it may prepare a deleteContainer
                self._check_containers_after(txn)
        # Once per batch rather than per txn: nothing in between prepares a txn except the
        # two paths above, which drop the applied change records first.
        last = txns[-1].zxid
        self.prep.applied(last)
        if last > self._hzxid and self.zxid_source is None:
            self._hzxid = last

    def abandon(self, txns: list[Txn], now_ms: int) -> None:
        """The driver could not log ``txns`` (its disk is full): they never happened.

        Their requests are answered ``ThrottledOp`` ("not executed at all; retry with
        back off", which clients know), a new session whose createSession is among them
        is closed without an answer (the client connects again), and a session whose
        closeSession (expiry or the client's) is among them lives on.  Every write
        prepared after them was in ``txns`` too (the driver abandons everything from
        the first txn it could not log): the prepared changes are dropped and the zxid
        counter goes back to the last applied transaction.
        """
        self.now_ms = now_ms
        pending = self._pending
        for txn in txns:
            header = txn.header
            sid = header.client_id
            key = (sid, header.cxid)
            q = pending.get(key)
            entry = q.pop(0) if q else None
            if q is not None and not q:
                del pending[key]
            if header.type == _CREATE_SESSION:
                self.tracker.remove(sid)
                if entry is not None and entry.conn is not None:
                    self._drop_conn(entry.conn)
                continue
            if header.type == _CLOSE_SESSION:
                session = self.tracker.sessions.get(sid)
                if session is not None and session.closing:
                    session.closing = False
                    self.tracker.live[sid] = session
                    self.tracker.touch(sid, now_ms)
            if entry is not None and entry.conn is not None:
                entry.reply = Reply(r.ReplyHeader(entry.xid, self.last_zxid, Err.THROTTLED_OP))
                entry.done = True
                self._drain(entry.conn)
        self.prep.clear()
        self._reaping.clear()
        if self.zxid_source is None:
            self._hzxid = self.last_zxid

    def _deliver(self, events: list[tuple[list[int], r.WatcherEvent]]) -> None:
        outputs = self._outputs
        session_conn = self.session_conn
        for watchers, ev in events:
            note = None
            for sid in watchers:
                conn = session_conn.get(sid)
                if conn is not None and conn.established:
                    if note is None:
                        note = Notification(-1, ev)
                    outputs.append((conn.conn_id, note))
                elif sid in self.tracker.sessions:
                    q = self._queued_events.get(sid)
                    if q is None:
                        q = self._queued_events[sid] = deque(maxlen=self.config.max_queued_events)
                    q.append(ev)

    def _drain(self, conn: CoreConnection) -> None:
        """Send every reply at the head of the connection's queue that is ready."""
        q = conn.queue
        while q:
            head = q[0]
            if head.kind == READ_KIND:
                q.popleft()
                self._emit(conn, self._read(conn, head.xid, head.op, head.payload))
            elif head.done:
                q.popleft()
                reply = head.reply
                if reply is not None:
                    if head.payload is _STAMP:
                        h = reply.header
                        reply = Reply(r.ReplyHeader(h.xid, self.last_zxid, h.err), reply.body)
                    self._emit(conn, reply)
            else:
                break

    def _write_reply(self, entry: PendingRequest, rc: Result, txn: Txn) -> Reply:
        zxid = self.last_zxid
        op = entry.op
        if rc.type == _ERROR:
            return Reply(r.ReplyHeader(entry.xid, zxid, rc.err))
        if op == _MULTI:
            return Reply(r.ReplyHeader(entry.xid, zxid, 0), MultiResponse(self._multi_results(rc)))
        if rc.err:
            return Reply(r.ReplyHeader(entry.xid, zxid, rc.err))
        header = r.ReplyHeader(entry.xid, zxid, 0)
        if op == _SET_DATA:
            return Reply(header, r.SetDataResponse(rc.stat))
        if op == _CREATE:
            return Reply(header, r.CreateResponse(rc.path))
        if op in _CREATE2_LIKE:
            return Reply(header, r.Create2Response(rc.path, rc.stat))
        if op == _SET_ACL:
            return Reply(header, r.SetACLResponse(rc.stat))
        if op == _CHECK:
            node = self.tree.nodes.get(rc.path or "")
            return Reply(header, r.SetDataResponse(node.stat() if node else _EMPTY_STAT))
        return Reply(header)

    @staticmethod
    def _multi_results(rc: Result) -> list[OpResult]:
        out: list[OpResult] = []
        for sub in rc.multi or ():
            t = sub.type
            if t == OpCode.ERROR:
                out.append(OpResult(OpCode.ERROR, sub.err))
            elif t == OpCode.CHECK:
                out.append(OpResult(OpCode.CHECK))
            elif t == OpCode.CREATE:
                out.append(OpResult(OpCode.CREATE, 0, r.CreateResponse(sub.path)))
            elif t in (OpCode.CREATE2, OpCode.CREATE_TTL, OpCode.CREATE_CONTAINER):
                out.append(OpResult(OpCode.CREATE2, 0, r.Create2Response(sub.path, sub.stat)))
            elif t in (OpCode.DELETE, OpCode.DELETE_CONTAINER):
                out.append(OpResult(OpCode.DELETE))
            elif t == OpCode.SET_DATA:
                out.append(OpResult(OpCode.SET_DATA, 0, r.SetDataResponse(sub.stat)))
        return out


_EMPTY_STAT = r.Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
_ = REQUEST_RECORD
