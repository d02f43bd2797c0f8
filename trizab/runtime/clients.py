"""The client port: listeners, one reader for every socket, a writer per connection.

Theory of operation
-------------------
* **The listener** (:func:`~trizab.runtime.accept.serve_listener`: every pending
  connection per wake-up) runs one handler task per connection.  The handler
  registers a :class:`~trizab.runtime.connections.Connection` (refused past
  ``maxClientCnxns`` per address), starts the connection's writer, and waits
  for the reader to report how its input ended.
* **The socket reader** is one task for every client socket: they sit in a
  level-triggered epoll set of our own (:mod:`trizab.runtime.ready_sockets`),
  and one wake-up reads every connection that has input, turns the bytes into
  events with the sans-I/O :class:`~trizab.frontend.connection.ClientConnection`
  (one parser per connection) and hands them to the core task's
  :meth:`~trizab.runtime.core_task.CoreTask.feed` for all of them before one
  :meth:`~trizab.runtime.core_task.CoreTask.handed_on`, so their writes share one
  group commit and their replies one flush.  Where there is no epoll, and for
  streams that are not sockets, each connection has a reader task of its own
  doing the same.  A protocol error logs one line and closes that connection only.
* **Writer tasks** drain their connection's queue (see :mod:`trizab.runtime.connections`).
* **Back-pressure**: while the commit path's :class:`Gate` is shut (the disk is
  far behind), readers stop feeding the core, so the clients' TCP windows fill
  up instead of our memory.
* **Limits** (each a zoo.cfg key): ``maxClientCnxns`` per address and ``maxCnxns``
  in all refuse a connection at accept; ``connectionMaxTokens`` (a
  :class:`~trizab.runtime.limits.ConnectionThrottle`) closes a session request
  that finds no token.  Requests in flight are capped per connection
  (``connectionOutstandingLimit``) and in all (``globalOutstandingLimit``, as
  ZooKeeper's ``shouldThrottle``: past it, a connection with a request in flight
  takes no more, one with none may send one).  A connection out of room is not
  read (its descriptor is watched for a hang-up only, ``interest_ops`` 0 in
  ``cons``): what it already sent stays in its parser, at most one receive plus
  one frame, and its TCP window fills.  When an answer goes to it (``Connections.on_answer``)
  the resumer task hands on what its parser holds and, if there is room left,
  reads it again.  A parser never yields more requests than the room
  (:func:`_take_events`), so the caps hold exactly.
* **TLS** (:mod:`trizab.runtime.tls`): a connection to the secure port, or to a
  plain port with ``client.portUnification`` whose first byte opens a TLS record
  (peeked, not read), is handshaken (bounded by ``HANDSHAKE_TIMEOUT_S``) before it
  is registered; the x509 ids of the client certificate go on the
  :class:`Connection` for the core's connect.  A TLS connection has a reader task
  of its own, which decrypts what it receives (:class:`~trizab.runtime.tls.TlsSession`);
  its replies are encrypted where they are flushed and written like a plain
  connection's.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import math
import os
import socket
from collections.abc import Callable
from typing import Any, Protocol

import attrs
import trio

from trizab import config as cfg
from trizab.frontend.connection import (
    NEED_DATA,
    ClientConnection,
    ConnectReceived,
    FourLetterWord,
    ProtocolError,
)
from trizab.logflood import limit_floods
from trizab.runtime.accept import serve_listener
from trizab.runtime.connections import Connection, Connections, write_out
from trizab.runtime.disk import StartupError
from trizab.runtime.limits import ConnectionThrottle
from trizab.runtime.ready_sockets import ReadySockets, open_ready_sockets
from trizab.runtime.replicas import open_shared_listeners
from trizab.runtime.tls import ServerTls, TlsSession
from trizab.runtime.tls_accept import accept_tls, client_ids

__all__ = ["ClientPort", "Gate", "RequestSink"]

log = logging.getLogger("trizab.server")
# Connection refusals and protocol errors repeat for every connection a client opens.
limit_floods(log)

RECEIVE_SIZE = 256 * 1024
FOUR_LETTER_WORD_TIMEOUT_S = 30.0
# Connections the socket reader reads before it lets other tasks run.  With many clients
# (1,000 sessions, one request each) one wake-up finds hundreds of sockets ready, and
# reading them all took 70-130 ms on a loaded machine: meanwhile the commit path could
# neither start the sync of the writes just logged nor apply and answer those already
# durable, so a write waited for two such steps where a read waited for one (write p99
# 1.5-1.7 x the read p99 under bench/scenarios mixed; ZooKeeper's CommitProcessor
# interleaves commits with reads).  Requests read in one slice still share a group commit.
READ_SLICE = 64

# What a listener serves: plain text, TLS, or either (client.portUnification).
PLAIN, TLS, UNIFIED = "plain", "tls", "unified"


class RequestSink(Protocol):
    """What the client port hands its input to (the core task)."""

    def feed(self, c: Connection, events: list[Any]) -> bool: ...

    def handed_on(self) -> None: ...

    def four_letter_word(self, c: Connection, word: str, argument: int | None) -> None: ...


class Gate:
    """Open unless the commit path is too far behind; readers wait while it is shut."""

    def __init__(self) -> None:
        self._open = trio.Event()
        self._open.set()

    @property
    def is_open(self) -> bool:
        return self._open.is_set()

    def shut(self) -> None:
        if self._open.is_set():
            self._open = trio.Event()

    def open(self) -> None:
        self._open.set()

    async def wait(self) -> None:
        await self._open.wait()


@attrs.define(eq=False)
class _Watched:
    """A connection read by the socket reader task: its parser, and how its reading ended."""

    conn: Connection
    parser: ClientConnection
    ended: trio.Event = attrs.Factory(trio.Event)
    reason: str = "closed"


def _take_events(
    parser: ClientConnection, data: bytes | memoryview | None, room: int
) -> tuple[list[Any], Any]:
    """Feed ``data`` (None: nothing new): up to ``room`` complete requests, and the
    ProtocolError or FourLetterWord that ends the connection (None if nothing does).
    With ``room`` events taken, more may stay buffered in the parser."""
    if data is not None:
        parser.receive_data(data)
    events: list[Any] = []
    parser.next_requests(events, room)
    while len(events) < room:
        ev = parser.next_event()
        if ev is NEED_DATA:
            return events, None
        if isinstance(ev, (ProtocolError, FourLetterWord)):
            return events, ev
        events.append(ev)
    return events, None


async def _between_slices(sink: RequestSink, gate: Gate, fed: bool) -> bool:
    """The socket reader read READ_SLICE connections: hand on what they sent and let the
    commit path run (see READ_SLICE); False: nothing fed since."""
    if fed:
        sink.handed_on()
    await trio.lowlevel.checkpoint()
    if not gate.is_open:
        await gate.wait()
    return False


async def _open_client_listeners(port: int, host: str, *, shared: bool) -> list[trio.SocketListener]:
    """The TCP listeners of one client port; ``shared``: every process of the server listens on it."""
    if shared:
        return await open_shared_listeners(port, host)
    return await trio.open_tcp_listeners(port, host=host)


class ClientPort:
    """The client listeners and every client connection's I/O (see the module docstring)."""

    def __init__(
        self, config: cfg.ServerConfig, connections: Connections, gate: Gate, tls: ServerTls | None = None
    ) -> None:
        self.config = config
        self.connections = connections
        self.gate = gate
        self.tls = tls  # the client TLS context, when a listener speaks TLS
        self.sink: RequestSink | None = None  # the core task, once recovery built it
        self.addresses: list[tuple[str, int]] = []  # the plain (or unified) client port
        self.secure_addresses: list[tuple[str, int]] = []  # the TLS port (secureClientPort)
        self._ids = itertools.count(1)
        self._ready_sockets: ReadySockets[_Watched] | None = None
        self.throttle = ConnectionThrottle(config)
        self._throttle_logged = -math.inf
        self._per_connection = config.connection_outstanding_limit or RECEIVE_SIZE
        self._global = config.global_outstanding_limit
        # Connections not read for want of room: a socket's _Watched, or the Event its own
        # reader task waits on.  The resumer looks at those that got an answer.
        self._paused: dict[Connection, _Watched | trio.Event] = {}
        self._answered: list[Connection] = []
        self._resume = trio.Event()
        connections.on_answer = self._on_answer
        self._kinds: dict[int, str] = {}  # id(listener) -> PLAIN, TLS or UNIFIED
        self.serving: Callable[[], bool] = lambda: True  # False: the core turns every client away

    async def bind(self) -> list[trio.abc.Listener[Any]]:
        """Open the TCP listeners the configuration asks for, and no others (StartupError if taken)."""
        config = self.config
        listeners: list[trio.abc.Listener[Any]] = []
        ports: list[tuple[int, str, str]] = []
        if config.client_port is not None:
            kind = UNIFIED if config.client_port_unification else PLAIN
            ports.append((config.client_port, config.client_port_address, kind))
        if config.secure_client_port is not None:
            ports.append((config.secure_client_port, config.secure_client_port_address, TLS))
        for port, host, kind in ports:
            try:
                tcp = await _open_client_listeners(port, host, shared=bool(config.read_replicas))
            except OSError as exc:
                for ln in listeners:
                    await trio.aclose_forcefully(ln)
                raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
            bound = [tuple(ln.socket.getsockname()[:2]) for ln in tcp]
            (self.secure_addresses if kind == TLS else self.addresses).extend(bound)  # type: ignore[arg-type]
            for ln in tcp:
                self._kinds[id(ln)] = kind
            listeners.extend(tcp)
        return listeners

    async def serve(
        self,
        listeners: list[trio.abc.Listener[Any]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept and serve clients until cancelled (``serve_listener`` closes the listeners)."""
        async with trio.open_nursery() as nursery:
            ready = open_ready_sockets()
            if ready is not None:
                self._ready_sockets = ready
                nursery.start_soon(self._socket_reader, ready)
            nursery.start_soon(self._resumer)
            for ln in listeners:
                handler = functools.partial(self._handle_connection, kind=self._kinds.get(id(ln), PLAIN))
                if isinstance(ln, trio.SocketListener):
                    await nursery.start(functools.partial(serve_listener, ln, handler, serving=self.serving))
                else:  # not a socket (tests serve in-memory streams)
                    await nursery.start(trio.serve_listeners, handler, [ln])
            if self.tls is not None and self.config.client_cert_reload:
                nursery.start_soon(self.tls.watch)
            task_status.started()

    # -- one connection -------------------------------------------------------------

    async def _handle_connection(self, stream: trio.abc.Stream, kind: str = PLAIN) -> None:
        sock = getattr(stream, "socket", None)
        try:
            peer = sock.getpeername() if sock is not None else getattr(stream, "peer_name", ("unknown", 0))
            host, port = str(peer[0]), int(peer[1])
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        limit = self.config.max_client_cnxns
        if limit and self.connections.per_host[host] >= limit:
            log.warning("too many connections from %s (max %d); closing", host, limit, extra={"peer": host})
            await trio.aclose_forcefully(stream)
            return
        total = self.config.max_cnxns
        if total and len(self.connections.by_id) >= total:
            log.warning(
                "too many connections (maxCnxns %d); closing the one from %s",
                total,
                host,
                extra={"peer": host},
            )
            await trio.aclose_forcefully(stream)
            return
        fd = -1
        if isinstance(stream, trio.SocketStream):
            with contextlib.suppress(OSError):
                stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            fd = stream.socket.fileno()
        auth_ids: tuple[Any, ...] = ()
        session: TlsSession | None = None
        if kind != PLAIN:
            keep, session = await accept_tls(
                self.tls, stream, unified=kind == UNIFIED, remote=f"{host}:{port}"
            )
            if not keep:
                await trio.aclose_forcefully(stream)
                return
            if session is not None:
                auth_ids = tuple(client_ids(self.tls, session, f"{host}:{port}"))
        send, recv = trio.open_memory_channel[Any](math.inf)
        c = Connection(
            conn_id=next(self._ids),
            remote=f"{host}:{port}",
            host=host,
            send=send,
            fd=fd,
            auth_ids=auth_ids,
            encrypt=session.encrypt if session is not None else None,
        )
        self.connections.add(c)
        reason = "closed"
        try:
            with c.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(write_out, stream, recv, c)
                    ready = self._ready_sockets
                    if fd >= 0 and ready is not None and session is None:
                        reason = await self._read_via_socket_reader(ready, c)
                    else:
                        reason = await self._reader(stream, c, session)
                    if reason == "4lw":
                        # Let the writer deliver the answer; it ends the scope itself.
                        await trio.sleep(FOUR_LETTER_WORD_TIMEOUT_S)
                    nursery.cancel_scope.cancel()
        finally:
            self._paused.pop(c, None)
            c.fd = -1  # no direct writes once the descriptor may be closed (and reused)
            self.connections.ended(c)
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(stream)
            log.debug("connection %s ended: %s", c.remote, reason)

    async def _reader(self, stream: trio.abc.Stream, c: Connection, tls: TlsSession | None = None) -> str:
        """Read one connection (one not in the socket reader's set) until it ends; why it did."""
        parser = ClientConnection(max_buffer=self.config.jute_max_buffer)
        held = False  # the parser may hold requests there was no room for
        handshake_leftover = tls is not None  # records that came in with the handshake's last read
        while True:
            room = self._room(c)
            if room <= 0:
                await self._wait_for_room(c)
                continue
            received: bytes | memoryview | None = None
            ended: str | None = None
            if handshake_leftover:
                handshake_leftover = False
            elif not held:
                try:
                    received = await stream.receive_some(RECEIVE_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return "connection reset"
            data: bytes | memoryview | None = received
            if tls is not None:
                data, ended = tls.decrypt(received)
            events, end = _take_events(parser, data, room)
            held = len(events) >= room
            # eof: the socket's end, not a TLS record still incomplete.
            reason = await self._received(c, events, end, eof=received is not None and not received)
            if reason is not None:
                return reason
            if ended is not None:
                if ended != "eof":
                    log.warning("closing connection %s: %s", c.remote, ended, extra={"peer": c.host})
                return ended

    async def _received(self, c: Connection, events: list[Any], end: Any, *, eof: bool) -> str | None:
        """Deliver what one receive brought; why reading must stop (None: go on)."""
        sink = self.sink
        assert sink is not None
        if events:
            if events[0].__class__ is ConnectReceived and not self._admit(c):
                return "connection throttled"
            if not self.gate.is_open:
                await self.gate.wait()
            if not c.closing:
                before = len(c.pending)
                sink.feed(c, events)
                self.connections.fed(c, before)
            sink.handed_on()
        if isinstance(end, ProtocolError):
            if end.tls_handshake:
                secure = self.secure_addresses
                log.warning(
                    "TLS handshake on a plain-text port from %s: is the client configured for TLS? %s",
                    c.remote,
                    f"TLS is served on port {secure[0][1]}"
                    if secure
                    else "this server has no TLS port (secureClientPort, client.portUnification)",
                    extra={"peer": c.host},
                )
            else:
                log.warning("closing connection %s: %s", c.remote, end.message, extra={"peer": c.host})
            return "protocol error"
        if isinstance(end, FourLetterWord):
            if not c.closing:
                sink.four_letter_word(c, end.word, end.argument)
            return "4lw"
        return "eof" if eof else None

    def _admit(self, c: Connection) -> bool:
        """A session request: whether the connection throttle has a token for it."""
        if self.throttle.admit():
            return True
        now = trio.current_time()
        if now - self._throttle_logged >= 1.0:
            self._throttle_logged = now
            log.warning(
                "connection throttled (connectionMaxTokens %d): closing %s; %d refused so far",
                self.throttle.max_tokens,
                c.remote,
                self.throttle.refused,
            )
        return False

    # -- requests in flight ---------------------------------------------------------

    def _room(self, c: Connection) -> int:
        """How many more requests ``c`` may send now (ZooKeeper's shouldThrottle, and per connection)."""
        room = self._per_connection - c.in_flight
        limit = self._global
        if limit:
            total = self.connections.outstanding
            if total >= limit:
                return 0 if c.in_flight else min(room, 1)
            room = min(room, limit - total)
        return room

    def _pause(self, c: Connection, item: _Watched | trio.Event) -> None:
        """Stop reading ``c`` until an answer to it leaves room (see the module docstring)."""
        self._paused[c] = item
        c.interest_ops = 0
        if isinstance(item, _Watched) and self._ready_sockets is not None:
            self._ready_sockets.pause(c.fd, item)
        if self._room(c) > 0:  # answered meanwhile (reads are answered in the same batch)
            self._on_answer(c)

    def _on_answer(self, c: Connection) -> None:
        """An answer went to a connection we stopped reading (called by Connections)."""
        if c in self._paused:
            self._answered.append(c)
            self._resume.set()

    async def _wait_for_room(self, c: Connection) -> None:
        """A connection with its own reader task: wait until the resumer lets it read."""
        event = trio.Event()
        self._pause(c, event)
        try:
            await event.wait()
        finally:
            if self._paused.get(c) is event:
                del self._paused[c]
            c.interest_ops = 1

    async def _resumer(self) -> None:
        """Read again the paused connections that answers gave room to."""
        while True:
            await self._resume.wait()
            self._resume = trio.Event()
            answered, self._answered = self._answered, []
            for c in answered:
                item = self._paused.get(c)
                if item is None or self._room(c) <= 0:
                    continue
                if isinstance(item, trio.Event):
                    del self._paused[c]
                    item.set()
                else:
                    await self._resume_socket(c, item)

    async def _resume_socket(self, c: Connection, w: _Watched) -> None:
        """Hand on what the parser of a paused socket holds; watch it again if room is left."""
        ready = self._ready_sockets
        fd = c.fd
        if ready is None or not ready.holds(fd, w):
            self._paused.pop(c, None)
            return
        room = self._room(c)
        events, end = _take_events(w.parser, None, room)
        reason = await self._received(c, events, end, eof=False)
        if reason is not None:
            self._paused.pop(c, None)
            self._stop_reading(fd, w, reason)
        elif len(events) < room and self._paused.get(c) is w and ready.holds(fd, w):
            del self._paused[c]
            c.interest_ops = 1
            ready.resume(fd, w)

    async def _read_via_socket_reader(self, ready: ReadySockets[_Watched], c: Connection) -> str:
        """Have the socket reader read ``c`` until it ends; why it did."""
        w = _Watched(conn=c, parser=ClientConnection(max_buffer=self.config.jute_max_buffer))
        fd = c.fd
        ready.watch(fd, w)
        try:
            await w.ended.wait()
            return w.reason
        finally:
            ready.unwatch(fd, w)  # before the socket is closed and its number reused

    async def _socket_reader(self, ready: ReadySockets[_Watched]) -> None:
        """The one task that reads every socket connection (see trizab.runtime.ready_sockets).

        The common case (complete requests) feeds the core for every ready connection
        first and then hands on once: the requests of all of them go to the disk as one
        batch.  Anything else takes the per-connection path of :meth:`_received`, after
        what was fed so far has been handed on.
        """
        sink = self.sink
        assert sink is not None
        # One receive buffer for every socket: os.read(fd, RECEIVE_SIZE) would allocate its
        # result with mmap (it is above malloc's threshold) and shrink and unmap it again, three
        # system calls and a page fault per receive.  The parser copies what it is given.
        readv = os.readv
        buffer = bytearray(RECEIVE_SIZE)
        received = memoryview(buffer)
        iov = [buffer]
        gate = self.gate
        connections = self.connections
        room_for = self._room
        throttling = self.throttle.enabled
        try:
            while True:
                batch = await ready.wait()
                if not gate.is_open:
                    await gate.wait()
                fed = False
                for index, (fd, w) in enumerate(batch):
                    if index and index % READ_SLICE == 0:
                        fed = await _between_slices(sink, gate, fed)
                    c = w.conn
                    if not ready.holds(fd, w):
                        # Unwatched since wait() returned (the slow path below awaits, and a
                        # handler may end meanwhile): its number may belong to a new socket now.
                        continue
                    if not c.interest_ops:
                        # Paused, so reported only for a hang-up: what it sent is not answerable.
                        self._paused.pop(c, None)
                        self._stop_reading(fd, w, "closed by the client while not read")
                        continue
                    room = room_for(c)
                    if room <= 0:
                        self._pause(c, w)
                        continue
                    try:
                        data = received[: readv(fd, iov)]
                    except BlockingIOError:
                        continue
                    except OSError:
                        self._stop_reading(fd, w, "connection reset")
                        continue
                    events, end = _take_events(w.parser, data, room)
                    if (
                        end is None
                        and data
                        and not (throttling and events and events[0].__class__ is ConnectReceived)
                    ):
                        if events and not c.closing:
                            before = len(c.pending)
                            sink.feed(c, events)
                            connections.fed(c, before)
                            fed = True
                            if len(events) >= room:
                                self._pause(c, w)
                        continue
                    if fed:
                        fed = False
                        sink.handed_on()
                    reason = await self._received(c, events, end, eof=not data)
                    if reason is not None:
                        self._stop_reading(fd, w, reason)
                    elif len(events) >= room and ready.holds(fd, w):
                        self._pause(c, w)
                if fed:
                    sink.handed_on()
        finally:
            self._ready_sockets = None
            ready.close()

    def _stop_reading(self, fd: int, w: _Watched, reason: str) -> None:
        """The socket reader is done with this connection; its handler ends it."""
        if self._ready_sockets is not None:
            self._ready_sockets.unwatch(fd, w)
        w.reason = reason
        w.ended.set()
