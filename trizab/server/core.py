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

A request enters through :meth:`ServerCore.receive` (``processPacket``), which hands it
to the part that owns it.  The parts are classes that :class:`ServerCore` inherits,
one module each; they share its state (built in ``__init__``; each part's docstring
says what it reads and writes), and a call between them is an ordinary method call:

- :mod:`trizab.server.session_handling` (``SessionHandling``): connect, reconnects,
  lost connections, a session's end;
- :mod:`trizab.server.auth` (``Authentication``): addauth, SASL, enforce.auth;
- :mod:`trizab.server.writes` (``Writes``): prep, log, :meth:`~ServerCore.committed`
  and :meth:`~ServerCore.abandon`, watch events, and replies in request order;
- :mod:`trizab.server.reads` (``Reads``): the reads, watches set and removed;
- :mod:`trizab.server.reaping` (``Reaping``): :meth:`~ServerCore.tick`, session
  expiry, containers and TTL nodes.

This module keeps the configuration, the construction, what the four-letter words
read, and the driver API (:meth:`~ServerCore.ready`, :meth:`~ServerCore.next_zxid`,
the snapshots and :meth:`~ServerCore.load`).  :class:`~trizab.server.replica.ReplicaCore`
extends :class:`ServerCore` for an ensemble member.

Each connection has a FIFO of requests (``CommitProcessor``'s per-session queue):
a read behind an uncommitted write of the same connection waits and runs after
it, so replies leave in request order and a read sees its own session's writes;
notifications leave before any later reply (event-before-reply).

Watches belong to sessions, not TCP connections; events for a session that has
no live connection are queued (bounded) and flushed after its reconnect's
``Connected``.

Zxids come from :meth:`ServerCore.next_zxid`, a counter restored from the
recovered state (standalone: the epoch part never changes); a ZAB leader can
replace it by assigning ``zxid_source`` (the zxid its next proposal will get; the
core adds the transactions it logged since the last :meth:`ready`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from trizab.server.api import ConnId, Ready, Reply
from trizab.server.auth import Authentication
from trizab.server.pending import READ_KIND, CoreConnection, PendingRequest
from trizab.server.reads import Reads
from trizab.server.reaping import Reaping
from trizab.server.sasl_gssapi import KerberosAcceptor
from trizab.server.session_handling import SessionHandling
from trizab.server.sessions import SessionTracker, initial_session_id
from trizab.server.writes import Writes
from trizab.tree.datatree import DataTree
from trizab.tree.prep import Prep
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

__all__ = ["CoreConfig", "ServerCore"]

_MAX_QUEUED_EVENTS = 10_000
PROGRESS_TXNS = 20_000  # replayed transactions between two progress reports at start-up

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

# Plain ints for the opcodes receive() compares with (see the note at _CREATE in trizab.server.writes).
_AUTH = int(OpCode.AUTH)
_SASL = int(OpCode.SASL)
_DELETE_CONTAINER = int(OpCode.DELETE_CONTAINER)
_READ_OP_CODES = frozenset(int(op) for op in _READ_OPS)
_WRITE_OP_CODES = frozenset(int(op) for op in _WRITE_OPS)


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


class ServerCore(SessionHandling, Authentication, Writes, Reads, Reaping):
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
        # The state the parts share (each part's class lists, annotated, what it uses of it).
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
