"""The server core's connections and sessions: the handshake, reconnects, and a session's end.

Theory of operation
-------------------
:meth:`SessionHandling.connect` is ``ZooKeeperServer.processConnectRequest``.  A client
that has seen a newer zxid than ours is refused (it tries another server), as is a
client that cannot live with a read-only server when this one is.  The session
timeout is clamped to ``[min_timeout, max_timeout]``.  A new session is a
createSession transaction: its ``Connected`` answer leaves when that transaction is
committed (:meth:`~trizab.server.writes.Writes.committed`), unless the server is
read-only (local sessions only).  A reconnect with the right password resumes a live
session (:meth:`SessionHandling._resume_session`, which :class:`ReplicaCore
<trizab.server.replica.ReplicaCore>` extends to ask the session's owner); anything
else gets the expired answer (timeout 0, session id 0).

A session has at most one connection (``session_conn``): a reconnect elsewhere drops
the stale one.  Losing a connection (:meth:`SessionHandling.connection_lost`) does not
end the session; it lives on until it expires or a reconnect resumes it, and events
for it meanwhile wait in ``_queued_events`` until its next ``Connected``.  A session
ends when its closeSession transaction is applied (:meth:`SessionHandling._session_closed`):
the tracker forgets it, its watches and queued events go, and its connection is closed
after the reply.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from trizab.server.api import Connected, ConnId, Notification, Reply
from trizab.server.pending import CONNECT_KIND, CoreConnection, PendingRequest
from trizab.server.sessions import SessionTracker, generate_password
from trizab.tree import acl as acls
from trizab.tree.datatree import DataTree
from trizab.wire import records as r
from trizab.wire.codes import OpCode

if TYPE_CHECKING:
    from trizab.server.core import CoreConfig

# The server core's one logger, whichever of its parts logs (log configurations name it).
log = logging.getLogger("trizab.server.core")

_ZERO_PASSWD = bytes(16)


class SessionHandling:
    """Part of :class:`~trizab.server.core.ServerCore`: connections and sessions (see the module docstring).

    Reads ``config`` (timeouts, read-only) and the last zxid; writes ``conns`` (the live
    connections), ``session_conn`` (each session's connection), ``tracker`` (which
    sessions exist and when they expire), ``_queued_events`` (flushed on ``Connected``,
    dropped with the session), ``tree``'s watches of a closed session, ``now_ms``, and
    appends to ``_outputs`` and ``_close``.  A new session is logged through
    :meth:`~trizab.server.writes.Writes._log`; a closed session's reply leaves through
    :meth:`~trizab.server.writes.Writes._drain`.
    """

    config: CoreConfig
    tree: DataTree
    tracker: SessionTracker
    conns: dict[ConnId, CoreConnection]  # every connection past its ConnectRequest
    session_conn: dict[int, CoreConnection]  # session id -> its one live connection
    _queued_events: dict[int, deque[r.WatcherEvent]]  # events for sessions without a connection
    _outputs: list[tuple[ConnId, Any]]  # what ready() hands the driver: (connection, reply or event)
    _close: list[ConnId]  # connections the driver closes once their outputs are written
    now_ms: int

    def connect(
        self,
        conn_id: ConnId,
        request: Any,
        *,
        has_read_only_flag: bool,
        client_addr: str,
        now_ms: int,
        auth_ids: Sequence[r.Id] = (),
    ) -> None:
        """``ZooKeeperServer.processConnectRequest``.

        ``auth_ids``: what the connection authenticated as before its first request (the
        x509 ids of a verified client certificate, ZooKeeper's CertificateVerifier).
        """
        self.now_ms = now_ms
        conn = CoreConnection(conn_id, client_addr, has_read_only_flag, now_ms)
        if auth_ids:
            conn.cert_ids = list(auth_ids)
            conn.ids = acls.java_set_order([*conn.ids, *(i for i in auth_ids if i not in conn.ids)])
        self.conns[conn_id] = conn
        cfg = self.config
        if request.last_zxid_seen > self.last_zxid:
            # The client has seen a newer state than ours: refuse so it tries another server.
            log.info(
                "refusing session for client %s: it has seen zxid 0x%x, our last zxid is 0x%x",
                client_addr,
                request.last_zxid_seen,
                self.last_zxid,
            )
            self._drop_conn(conn)
            return
        if not getattr(request, "read_only", False) and cfg.read_only:
            self._drop_conn(conn)
            return
        timeout = min(max(request.time_out, cfg.min_timeout), cfg.max_timeout)
        sid = request.session_id
        if sid == 0:
            sid = self.tracker.new_session_id()
            self.tracker.add(sid, timeout, now_ms)
            self._bind(conn, sid)
            if cfg.read_only:
                # A read-only server has no quorum to log with: local sessions only.
                self._send_connected(conn, timeout)
                return
            entry = PendingRequest(conn, CONNECT_KIND, 0, OpCode.CREATE_SESSION)
            entry.timeout = timeout
            conn.queue.append(entry)
            self._log(sid, 0, OpCode.CREATE_SESSION, r.CreateSessionTxn(timeout), entry, now_ms)
            return
        passwd = request.passwd
        if passwd is not None and passwd == generate_password(sid):
            self._resume_session(conn, sid, timeout, now_ms)
        else:
            self._refuse_session(conn)

    def _resume_session(self, conn: CoreConnection, sid: int, timeout: int, now_ms: int) -> None:
        """A reconnect with a valid password: resume the session if it is live here."""
        if self.tracker.touch(sid, now_ms, timeout):
            self._bind(conn, sid)
            self._send_connected(conn, timeout)
        else:
            self._refuse_session(conn)

    def _refuse_session(self, conn: CoreConnection) -> None:
        """The expired answer (timeOut 0, session id 0): the client's session is gone."""
        resp = r.ConnectResponse(0, 0, 0, _ZERO_PASSWD, self.config.read_only)
        self._outputs.append((conn.conn_id, Connected(resp, conn.send_ro_flag)))
        self._drop_conn(conn)

    def _bind(self, conn: CoreConnection, sid: int) -> None:
        old = self.session_conn.get(sid)
        if old is not None and old is not conn:
            # The client moved to a new connection; the old one is stale.
            self._drop_conn(old)
        conn.session_id = sid
        self.session_conn[sid] = conn

    def _send_connected(self, conn: CoreConnection, timeout: int) -> None:
        sid = conn.session_id
        resp = r.ConnectResponse(0, timeout, sid, generate_password(sid), self.config.read_only)
        self._outputs.append((conn.conn_id, Connected(resp, conn.send_ro_flag)))
        conn.established = True
        queued = self._queued_events.pop(sid, None)
        if queued:
            for ev in queued:
                self._outputs.append((conn.conn_id, Notification(-1, ev)))

    def _drop_conn(self, conn: CoreConnection) -> None:
        """Forget a connection and ask the driver to close it (after its outputs)."""
        if self.conns.get(conn.conn_id) is conn:
            del self.conns[conn.conn_id]
            self._close.append(conn.conn_id)
        self._forget(conn)

    def _forget(self, conn: CoreConnection) -> None:
        if conn.session_id and self.session_conn.get(conn.session_id) is conn:
            del self.session_conn[conn.session_id]
        for entry in conn.queue:
            entry.conn = None
        conn.queue.clear()
        conn.established = False

    def connection_lost(self, conn_id: ConnId, now_ms: int) -> None:
        """The socket is gone; the session lives on until it expires or is resumed."""
        self.now_ms = now_ms
        conn = self.conns.pop(conn_id, None)
        if conn is not None:
            self._forget(conn)

    def _log_session_opened(self, sid: int, timeout: int) -> None:
        conn = self.session_conn.get(sid)
        where = conn.client_addr if conn is not None else "a client of another server"
        log.info(
            "session 0x%x established for %s, timeout %d ms",
            sid,
            where,
            timeout,
            extra={"session_id": f"0x{sid:x}", "client": where},
        )

    def _session_closed(self, sid: int, entry: PendingRequest | None) -> None:
        if entry is not None and entry.conn is not None:
            client = entry.conn.client_addr
            log.info(
                "session 0x%x closed by its client %s",
                sid,
                client,
                extra={"session_id": f"0x{sid:x}", "client": client},
            )
        else:
            log.info("session 0x%x closed", sid, extra={"session_id": f"0x{sid:x}"})
        self.tracker.remove(sid)
        self.tree.remove_watcher(sid)
        self._queued_events.pop(sid, None)
        conn = self.session_conn.get(sid)
        if entry is not None and entry.conn is not None:
            entry.reply = Reply(r.ReplyHeader(entry.xid, self.last_zxid, 0))
            entry.done = True
            conn = entry.conn
            self._drain(conn)
        if conn is not None:
            self._drop_conn(conn)
