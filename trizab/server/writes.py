"""The server core's writes: prep, log, commit, apply, and replies in request order.

Theory of operation
-------------------
A write is decoded and prepared (:meth:`Writes._write`, ``PrepRequestProcessor.pRequest``
over :mod:`trizab.tree.prep`) against the tree plus the outstanding changes, and
becomes a transaction; failures too become one (an ``ErrorTxn``), as ZooKeeper logs
them and spends a zxid on them.  The transaction goes out in ``Ready.to_log``
(:meth:`Writes._log`), and its request waits in ``_pending`` under (session id, cxid).
Once the driver reports it committed, :meth:`Writes.committed` (``FinalRequestProcessor``)
applies it to the tree, emits the watch events it fired (:meth:`Writes._deliver`), and
completes the waiting request.  If the driver cannot log it, :meth:`Writes.abandon`
answers the request ThrottledOp and forgets every prepared change.

Replies leave in request order: a request that cannot be answered at once (a write,
or anything behind one) waits in its connection's queue, and :meth:`Writes._drain`
sends what is ready at the head of the queue, running queued reads when their turn
comes.  Notifications are appended to the outputs the moment their transaction is
applied, hence before any later reply (event-before-reply).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from trizab.server.api import ConnId, Notification, Reply
from trizab.server.pending import (
    CONNECT_KIND,
    FIXED_KIND,
    READ_KIND,
    WRITE_KIND,
    CoreConnection,
    PendingRequest,
)
from trizab.server.sessions import SessionTracker
from trizab.tree.datatree import DataTree, Result, TreeError
from trizab.tree.prep import Prep, PrepError
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import WRITE_OPCODES, Err, OpCode
from trizab.wire.jute import JuteError
from trizab.wire.requests import REQUEST_RECORD, MultiResponse, OpResult, decode_multi, decode_request

if TYPE_CHECKING:
    from collections.abc import Callable

    from trizab.server.core import CoreConfig

_STAMP = object()  # PendingRequest.payload of a fixed reply that takes the zxid current when it is sent

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
_CREATE2_LIKE = frozenset({int(OpCode.CREATE2), int(OpCode.CREATE_TTL), int(OpCode.CREATE_CONTAINER)})
_MAY_EMPTY_CONTAINER = frozenset(
    {int(OpCode.DELETE), int(OpCode.CLOSE_SESSION), int(OpCode.MULTI), int(OpCode.DELETE_CONTAINER)}
)
_MARSHALLING_ERROR = int(Err.MARSHALLING_ERROR)
# The body decoder of each write that _write decodes itself (those with a request record);
# keyed by plain ints, as the opcodes it is looked up with.
_DECODE = {
    op: cls.jute_decode  # type: ignore[attr-defined]
    for op in frozenset(int(op) for op in WRITE_OPCODES)
    if (cls := REQUEST_RECORD.get(op)) is not None
}
_EMPTY_STAT = r.Stat(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


class Writes:
    """Part of :class:`~trizab.server.core.ServerCore`: writes and replies (see the module docstring).

    Reads ``config``, ``tree`` (applies to it), ``prep`` (prepares against it, drops what
    is applied or abandoned), ``tracker`` (live and closing sessions; adds and removes
    them as createSession and abandoned txns say), ``session_conn`` and ``zxid_source``;
    writes ``_hzxid``, ``_to_log``, ``_pending``, ``_outputs``, ``_queued_events`` (events for
    a session without a connection), ``_reaping`` (cleared on abandon) and ``now_ms``.
    Calls :meth:`~trizab.server.core.ServerCore.next_zxid` and ``last_zxid``, the reads
    (:meth:`~trizab.server.reads.Reads._read`, for queued reads), the session handling
    (:meth:`~trizab.server.session_handling.SessionHandling._send_connected`, ``_drop_conn``,
    ``_session_closed``, ``_log_session_opened``) and
    :meth:`~trizab.server.reaping.Reaping._check_containers_after`.
    """

    config: CoreConfig
    tree: DataTree
    prep: Prep
    tracker: SessionTracker
    session_conn: dict[int, CoreConnection]  # session id -> its one live connection
    _queued_events: dict[int, deque[r.WatcherEvent]]  # events for sessions without a connection
    _pending: dict[tuple[int, int], list[PendingRequest]]  # (session id, cxid) -> writes in flight
    _hzxid: int  # the last zxid given out, when zxid_source is None
    zxid_source: Callable[[], int] | None  # a ZAB leader's next proposal zxid (see ServerCore)
    _to_log: list[Txn]  # what ready() hands the driver to log
    _outputs: list[tuple[ConnId, Any]]  # what ready() hands the driver: (connection, reply or event)
    _reaping: set[str]  # see trizab.server.reaping
    now_ms: int

    # -- writes (PrepRequestProcessor) --------------------------------------------------

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

    # -- commit / apply (FinalRequestProcessor) -------------------------------------------

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

    # -- replies in request order ---------------------------------------------------

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
