"""Client connections as the runtime keeps them: reply buffers, writer queues and statistics.

Theory of operation
-------------------
:class:`Connections` owns one :class:`Connection` per client socket from the
moment its handler registers it until it is forgotten.  The core task hands it
the core's outputs (:meth:`Connections.deliver`): each is encoded into its
connection's buffer (the frontend's :func:`encode_output`), and
:meth:`Connections.flush` sends every buffer as one chunk once a batch is
done, so a burst of pipelined requests costs one ``send``: written directly
when the connection's writer task is idle, else queued to it.  The queue is
bounded in bytes, not messages: a client that stops reading is dropped once its
backlog passes ``connectionMaxOutboundBytes`` (default ``MAX_OUTBOUND_BYTES``) and
never slows anybody else down.

Requests in flight (received, not yet answered) are counted here, per connection
(``Connection.pending``) and over all of them (:attr:`Connections.outstanding`),
for the client port's ``globalOutstandingLimit``: when an answer goes to a
connection the client port stopped reading (``interest_ops`` 0), it is told
(``on_answer``) so that it can read that connection again.

A connection that ends (its handler returned, or we dropped it) is put on
:attr:`Connections.lost` for the core task, which tells the core
(``connection_lost``) at the end of its batch.  A connection the core asked to
close, or that answered a four-letter word, is forgotten without that: the core
already knows, or never knew it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
from collections.abc import Callable
from typing import Any

import attrs
import trio

from trizab.frontend import fourletter
from trizab.frontend.connection import LARGE_VALUE, encode_around_value, encode_output
from trizab.server.api import Connected, Output, Reply
from trizab.server.distribution import EXACT, UPDATE_OPCODES, Distribution

__all__ = ["CLOSE", "MAX_OUTBOUND_BYTES", "Connection", "Connections", "write_out"]

log = logging.getLogger("trizab.server")

MAX_OUTBOUND_BYTES = 32 * 1024 * 1024
CLOSE = object()  # in a writer's queue: flush, then close the connection
_WRITEV_PARTS = 512  # at most this many buffers in one writev (Linux takes 1,024)


@attrs.define(eq=False)
class Connection:
    """The runtime's side of one client connection."""

    conn_id: int
    remote: str
    host: str
    send: trio.MemorySendChannel[Any]  # to the connection's writer task
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    outbuf: bytearray = attrs.Factory(bytearray)
    # What goes out before ``outbuf``: buffers, and the large values of getData replies sent from
    # the tree's own bytes (frontend.connection.encode_around_value), in order.
    parts: list[bytes | bytearray] = attrs.Factory(list)
    queued_bytes: int = 0
    closing: bool = False  # we asked for the close (core, overload, 4lw): no connection_lost
    interest_ops: int = 1  # as ZooKeeper shows it in cons: 0 once we stopped reading
    received: int = 0
    sent: int = 0
    session_id: int | None = None
    timeout_ms: int = 0
    established_ms: int = 0
    last_op: int | None = None
    last_cxid: int = -1
    last_zxid: int = -1
    last_response_ms: int = 0
    last_latency: int = 0
    min_latency: int | None = None
    max_latency: int = 0
    total_latency: int = 0
    replies: int = 0
    # (xid, opcode, received_ms) of requests still waiting for their reply, in order.
    pending: collections.deque[tuple[int, int, int]] = attrs.Factory(collections.deque)
    # The socket's descriptor for direct writes (-1: not a socket, TLS, or closed).
    fd: int = -1
    # Of ``pending``, the requests counted in Connections.outstanding.
    in_flight: int = 0
    # Its ConnectRequest asked for a new session (a createSession txn: ZooKeeper's updatelatency).
    new_session: bool = False
    # What the connection authenticated as before its first request: the x509 (and super) ids
    # of a client certificate its TLS handshake verified.
    auth_ids: tuple[Any, ...] = ()
    # TLS: turns reply bytes into records (TlsSession.encrypt); what is queued or written is then
    # already encrypted.  None for plain text.
    encrypt: Callable[[bytes | bytearray], bytes] | None = None


class Connections:
    """Every registered client connection (see the module docstring)."""

    def __init__(
        self,
        stats: fourletter.ServerStats,
        now_ms: Callable[[], int],
        wake: Callable[[], None],
        *,
        max_outbound_bytes: int = MAX_OUTBOUND_BYTES,
    ) -> None:
        self.by_id: dict[int, Connection] = {}
        self.per_host: collections.Counter[str] = collections.Counter()
        self.lost: list[int] = []  # ended connections the core has not heard about yet
        self.max_outbound_bytes = max_outbound_bytes
        self.outstanding = 0  # requests in flight over every registered connection
        # The client port's: an answer went to a connection it stopped reading.
        self.on_answer: Callable[[Connection], None] = lambda c: None
        self._stats = stats
        self._now_ms = now_ms
        self._wake = wake  # tells the core task that ``lost`` grew
        self._dirty: set[int] = set()
        # ZooKeeper's readlatency and updatelatency summaries (ServerMetrics), counted per reply.
        self.read_latency = Distribution("readlatency", detailed=True)
        self.update_latency = Distribution("updatelatency", detailed=True)
        self._read_counts = self.read_latency.counts
        self._update_counts = self.update_latency.counts
        stats.latencies = (self.read_latency, self.update_latency)  # mntr's min/avg/max latency

    def add(self, c: Connection) -> None:
        self.by_id[c.conn_id] = c
        self.per_host[c.host] += 1

    def forget(self, conn_id: int) -> None:
        c = self.by_id.pop(conn_id, None)
        if c is not None:
            self.outstanding -= c.in_flight
            c.in_flight = 0
            self.per_host[c.host] -= 1
            if self.per_host[c.host] <= 0:
                del self.per_host[c.host]

    def ended(self, c: Connection) -> None:
        """Its handler is gone (sync, so it works while cancelled): the core must hear of it."""
        if not c.closing and c.conn_id in self.by_id:
            self.forget(c.conn_id)
            self.lost.append(c.conn_id)
            self._wake()

    def abort(self, c: Connection) -> None:
        """Drop a connection now (internal error, slow reader); the core hears connection_lost."""
        if c.closing:
            return
        c.closing = True
        c.outbuf.clear()
        c.parts.clear()
        c.scope.cancel()
        self.forget(c.conn_id)
        self.lost.append(c.conn_id)
        self._wake()

    def fed(self, c: Connection, before: int) -> None:
        """The core was fed requests for ``c``, which had ``before`` pending: count them in flight.

        A connection dropped meanwhile (the core failed on its request) is not counted again.
        """
        if c.conn_id in self.by_id:
            n = len(c.pending) - before
            c.in_flight += n
            self.outstanding += n

    # -- replies ----------------------------------------------------------------------

    def deliver(self, outputs: list[tuple[int, Output]]) -> None:
        """Encode the core's outputs into their connections' buffers (sent by :meth:`flush`)."""
        by_id = self.by_id
        dirty = self._dirty
        now = -1
        sent = 0
        for conn_id, output in outputs:
            c = by_id.get(conn_id)
            if c is None or c.closing:
                continue
            rest = encode_around_value(c.outbuf, output) if c.encrypt is None else None
            if rest is None:
                encode_output(c.outbuf, output)
            else:
                c.parts += (c.outbuf, output.body.data)  # type: ignore[union-attr]
                c.outbuf = bytearray(rest)
            c.sent += 1
            sent += 1
            dirty.add(conn_id)
            if output.__class__ is Reply:
                if now < 0:
                    now = self._now_ms()
                self._account_reply(c, output, now)  # type: ignore[arg-type]
            elif isinstance(output, Connected):
                resp = output.response
                if resp.time_out > 0:
                    c.session_id = resp.session_id
                    c.timeout_ms = resp.time_out
                    if c.new_session:  # FinalRequestProcessor times createSession as an update
                        self.update_latency.record(self._now_ms() - c.established_ms)
                        c.new_session = False
        self._stats.packets_sent += sent

    def _account_reply(self, c: Connection, reply: Reply, now: int) -> None:
        header = reply.header
        pending = c.pending
        rxid = header.xid
        while pending:
            xid, opcode, started = pending.popleft()
            if c.in_flight:
                c.in_flight -= 1
                self.outstanding -= 1
            if xid == rxid:
                # Runs for every reply: plain comparisons instead of max()/min().  The server's
                # latencies (mntr's min/avg/max and the readlatency/updatelatency summaries) are
                # one list increment, Distribution.record spelled out; ServerStats reads them.
                latency = now - started
                if latency < 0:
                    latency = 0
                c.last_op = opcode
                c.last_cxid = xid
                c.last_latency = latency
                c.replies += 1
                c.total_latency += latency
                if latency > c.max_latency:
                    c.max_latency = latency
                if c.min_latency is None or latency < c.min_latency:
                    c.min_latency = latency
                if latency < EXACT:
                    (self._update_counts if opcode in UPDATE_OPCODES else self._read_counts)[latency] += 1
                elif opcode in UPDATE_OPCODES:
                    self.update_latency.record_large(latency)
                else:
                    self.read_latency.record_large(latency)
                break
        c.last_zxid = header.zxid
        c.last_response_ms = now
        if not c.interest_ops:
            self.on_answer(c)

    def flush(self) -> None:
        """Send every buffer filled since the last flush, one chunk per connection."""
        dirty, self._dirty = self._dirty, set()
        for conn_id in dirty:
            c = self.by_id.get(conn_id)
            if c is None or not c.outbuf or c.closing:
                continue
            if c.parts:
                self._flush_parts(c)
                continue
            if c.encrypt is not None:
                c.outbuf[:] = c.encrypt(c.outbuf)
            if c.queued_bytes == 0 and c.fd >= 0:
                # The writer is idle (nothing handed to it is unsent), so nothing can overtake
                # this chunk: try the socket now and save the writer task a wake-up.  What the
                # socket does not take, and any error, goes to the writer, which reports it.
                try:
                    sent = os.write(c.fd, c.outbuf)
                except OSError:
                    sent = 0
                if sent == len(c.outbuf):
                    c.outbuf.clear()
                    continue
                del c.outbuf[:sent]  # O(1): a bytearray drops its head by moving its start
            # The writer takes the buffer itself: a copy (bytes(outbuf)) would cost as much as
            # the send for a large reply (a 1 MiB getData).
            chunk, c.outbuf = c.outbuf, bytearray()
            self._enqueue(c, chunk)

    def _flush_parts(self, c: Connection) -> None:
        """:meth:`flush` for a connection with large values to send: one writev, the rest queued."""
        parts = [*c.parts, c.outbuf]
        c.parts = []
        c.outbuf = bytearray()
        if c.queued_bytes == 0 and c.fd >= 0 and len(parts) <= _WRITEV_PARTS:
            try:
                sent = os.writev(c.fd, parts)
            except OSError:
                sent = 0
            while parts and sent >= len(parts[0]):
                sent -= len(parts.pop(0))
            if parts and sent:
                parts[0] = memoryview(parts[0])[sent:]  # type: ignore[call-overload]
        for part in parts:
            if not c.closing:
                self._enqueue(c, part)

    def _enqueue(self, c: Connection, chunk: bytes | bytearray | memoryview) -> None:
        c.queued_bytes += len(chunk)
        if c.queued_bytes > self.max_outbound_bytes:
            log.warning(
                "closing connection %s: client is not reading (%d bytes queued)", c.remote, c.queued_bytes
            )
            self.abort(c)
            return
        c.send.send_nowait(chunk)  # the queue is unbounded in count; bytes are bounded above

    def close(self, conn_ids: list[int]) -> None:
        """The core asked to close these: flush what it sent before, then close."""
        for conn_id in conn_ids:
            c = self.by_id.get(conn_id)
            if c is None or c.closing:
                continue
            if c.outbuf or c.parts:
                chunks = [*c.parts, bytes(c.outbuf) if c.encrypt is None else c.encrypt(c.outbuf)]
                c.parts = []
                c.outbuf.clear()
                for chunk in chunks:
                    if not c.closing:
                        self._enqueue(c, chunk)
                if c.closing:
                    continue
            c.closing = True
            c.send.send_nowait(CLOSE)
            self.forget(conn_id)

    def answer_and_close(self, c: Connection, text: str) -> None:
        """A four-letter word's answer: not a client, so never listed by cons nor lost."""
        self.forget(c.conn_id)
        c.closing = True
        answer = text.encode("utf-8", "replace")
        c.send.send_nowait(answer if c.encrypt is None else c.encrypt(answer))
        c.send.send_nowait(CLOSE)

    # -- four-letter words --------------------------------------------------------

    def describe(self) -> list[fourletter.ConnectionInfo]:
        return [
            fourletter.ConnectionInfo(
                remote=c.remote,
                interest_ops=c.interest_ops,
                queued=len(c.pending),
                received=c.received,
                sent=c.sent,
                session_id=c.session_id,
                last_op=c.last_op,
                established_ms=c.established_ms,
                timeout_ms=c.timeout_ms,
                last_cxid=c.last_cxid,
                last_zxid=c.last_zxid,
                last_response_ms=c.last_response_ms,
                last_latency=c.last_latency,
                min_latency=c.min_latency or 0,
                avg_latency=c.total_latency // c.replies if c.replies else 0,
                max_latency=c.max_latency,
            )
            for c in self.by_id.values()
        ]

    def reset_statistics(self) -> None:
        for c in self.by_id.values():
            c.received = c.sent = c.replies = c.total_latency = c.max_latency = 0
            c.min_latency = None
            c.last_latency = 0


async def write_out(stream: trio.abc.Stream, recv: trio.MemoryReceiveChannel[Any], c: Connection) -> None:
    """A connection's writer task: send what is queued, batched; CLOSE flushes and ends it."""
    try:
        while True:
            item = await recv.receive()
            chunks = []
            close = False
            while True:
                if item is CLOSE:
                    close = True
                    break
                chunks.append(item)
                try:
                    item = recv.receive_nowait()
                except trio.WouldBlock:
                    break
            if len(chunks) == 1 or any(len(chunk) >= LARGE_VALUE for chunk in chunks):
                # Sent as they are: join would copy a large reply (or value) once more.
                for chunk in chunks:
                    await stream.send_all(chunk)
                    c.queued_bytes -= len(chunk)
            elif chunks:
                data = b"".join(chunks)
                await stream.send_all(data)
                c.queued_bytes -= len(data)
            if close:
                with contextlib.suppress(Exception):
                    await stream.send_eof()
                c.scope.cancel()
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        c.scope.cancel()
