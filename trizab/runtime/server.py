"""The standalone server: sockets, storage and time around the sans-I/O :class:`ServerCore`.

Theory of operation
-------------------
One nursery, tasks that each own one thing (trio's serve_listeners skeleton)::

    listener ──> socket reader (every socket) ──┐            ┌──> writer task ──> socket
                 (ClientConnection events)      ├─> inbox ──>│ core task (owns ServerCore)
    ticker  (Tick every tickTime/2) ────────────┤            └──> storage worker (append, sync,
    storage worker (Committed after sync) ──────┘                 snapshots, purge)

* **The core task** owns the :class:`ServerCore` (readers call it too, but only
  in synchronous code, so no two callers ever interleave); no locks.  It drains
  the bounded ``inbox`` in batches, calls the core, and after every call carries
  out ``ready()`` in the contract's order: hand ``to_log`` to
  the storage worker, encode ``outputs`` into per-connection buffers, close
  ``close`` connections.  At the end of a batch each connection's buffer goes to
  the socket as one chunk, so a burst of pipelined requests costs one ``send``:
  written directly when the connection's writer is idle, else queued to it.
  The core task never waits on anything but the inbox.
* **The socket reader** is one task for every client socket: they sit in a
  level-triggered epoll set of our own (:mod:`trizab.runtime.ready_sockets`),
  and one wake-up reads every connection that has input, turns the bytes into
  events with the sans-I/O :class:`~trizab.frontend.connection.ClientConnection`
  (one parser per connection) and hands them to the core itself (``_feed`` is
  synchronous, so the core is still touched by one task at a time; skipping the
  inbox saves a task switch), then asks the core for one ``ready()`` for all of
  them, so their writes share one group commit, and flushes the replies.  Each
  connection's handler task only waits for the reader to report how its input
  ended.  Where there is no epoll, and for streams that are not sockets, each
  connection has a reader task of its own doing the same.  A protocol error
  logs one line and closes that connection only.
* **Writer tasks** drain their connection's queue.  The queue is bounded in
  bytes, not messages: a client that stops reading is disconnected once its
  backlog passes ``MAX_OUTBOUND_BYTES``, and never slows anybody else down.
* **The storage worker** is group commit as in ZooKeeper's
  ``SyncRequestProcessor``: it takes every transaction handed over since the
  last round, appends them, and runs one ``sync()``; whatever arrives meanwhile
  waits for the next round and shares its sync.  The sync runs inline (blocking
  the event loop for one fdatasync, ~0.1 ms here, is cheaper than the thread
  hand-off there and back); after ``SLOW_SYNCS`` inline syncs in a row slower
  than ``SLOW_SYNC_S``, the syncs of the next ``SLOW_SYNC_BACKOFF_S`` go to a
  thread so that reads and pings do not wait on the disk.  An engine
  offering :class:`~trizab.storage.BackgroundSync` (``txnlog``'s fsync helper
  processes) syncs every batch of more than one txn without blocking the loop,
  with up to ``sync_slots`` syncs in flight: txns arriving while the disk is busy
  get a free slot at once, and once a batch is durable, the txns that arrived
  meanwhile are handed over *before* that batch is applied and answered, so the
  disk never waits for the apply.  Once the sync returns, the batch is
  committed, which is when the core may reply: the storage worker hands it to
  the core and flushes the replies itself, as the socket reader does with
  requests (a subclass with a core task of its own gets it through the inbox
  instead).  Snapshots are due every ~``snapCount`` transactions (randomised
  between half and all of it as ZooKeeper does so that servers of an ensemble
  do not snapshot together); purges run in this worker, never while a snapshot
  is being written.  If the storage falls behind by more than
  ``MAX_LOG_BACKLOG`` transactions, readers stop feeding the core until it
  catches up: back-pressure reaches the clients' TCP windows instead of memory.
* **The snapshotter** walks the tree for a snapshot a few thousand nodes at a
  time, with a checkpoint between steps, so a big tree never stalls the clients
  (a *fuzzy* snapshot, as ZooKeeper's; see :mod:`trizab.tree.snapshot`), then
  saves it in a thread while the storage worker goes on logging and committing.
* **The ticker** calls ``core.tick`` every ``tickTime/2``.

Time: the core gets ``now_ms`` from a :class:`Clock`, which is wall-clock
milliseconds anchored once and then advanced by trio's clock, so session ids and
txn times look like ZooKeeper's while a ``MockClock`` still drives expiry in
tests.

Shutdown: cancelling :func:`serve` stops listening and drops every connection;
the final storage flush and close run shielded, under a deadline.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import math
import os
import platform
import random
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import trio

from trizab import config as cfg
from trizab.frontend import fourletter
from trizab.frontend.connection import (
    NEED_DATA,
    ClientConnection,
    ConnectReceived,
    FourLetterWord,
    ProtocolError,
    RequestReceived,
    encode_output,
)
from trizab.runtime.datadir import DataDirError, DirectoryLock, claim, config_directories
from trizab.runtime.ready_sockets import ReadySockets, open_ready_sockets
from trizab.server.api import Connected, Notification, Ready, Reply
from trizab.storage import BackgroundSync, Recovered, Storage
from trizab.txn import Txn

__all__ = ["Clock", "Server", "StartupError", "open_storage", "serve", "trizab_version"]

log = logging.getLogger("trizab.server")

RECEIVE_SIZE = 256 * 1024
INBOX_SIZE = 1024
MAX_OUTBOUND_BYTES = 32 * 1024 * 1024
MAX_LOG_BACKLOG = 50_000
SNAPSHOT_STEP_NODES = 2000  # nodes copied per step of a snapshot walk (a few ms of work)
SHUTDOWN_GRACE_S = 10.0
FOUR_LETTER_WORD_TIMEOUT_S = 30.0
# SLOW_SYNCS inline syncs in a row slower than SLOW_SYNC_S send the syncs of the next
# SLOW_SYNC_BACKOFF_S to a thread: past that the thread hand-off is noise, and blocking the event
# loop would hold up reads and pings.  In a row, because a busy machine sometimes preempts us
# during a fast sync.  Only inline syncs are timed (a thread's includes waiting for the GIL).
SLOW_SYNC_S = 0.002
SLOW_SYNCS = 3
SLOW_SYNC_BACKOFF_S = 1.0
# For this long after a background sync finished, a lone txn syncs in the background too.
CONCURRENT_WRITERS_S = 0.002


class StartupError(Exception):
    """The server cannot start (for example its port is taken); ``str()`` is one line."""


def trizab_version() -> str:
    try:
        from importlib.metadata import version

        return version("trizab")
    except Exception:  # running from a checkout that is not installed
        return "0.0.0"


class Clock:
    """Wall-clock milliseconds that advance with trio's clock (so MockClock drives them)."""

    def __init__(self, epoch_ms: int | None = None) -> None:
        self._epoch_ms = epoch_ms
        self._offset_ms: float | None = None

    def now_ms(self) -> int:
        now = trio.current_time() * 1000.0
        if self._offset_ms is None:
            epoch = self._epoch_ms if self._epoch_ms is not None else time.time_ns() // 1_000_000
            self._offset_ms = epoch - now
        return int(now + self._offset_ms)


def open_storage(config: cfg.ServerConfig) -> Storage:
    """The storage engine ``config`` names; default txnlog (with a dataDir) or memory."""
    from trizab import plugin

    name = config.storage_name
    if name is None:
        installed = {p.name for p in plugin.available("trizab.storage") if p.error is None}
        name = "txnlog" if config.data_dir is not None and "txnlog" in installed else "memory"
    return plugin.load_storage(config.evolve(storage_name=name))


def _core_config(config: cfg.ServerConfig) -> Any:
    """Build the core's CoreConfig from whichever of its fields we know how to fill."""
    from trizab.server.core import CoreConfig

    known = {
        "server_id": config.server_id,
        "tick_time_ms": config.tick_time,
        "min_session_timeout_ms": config.min_session_timeout,
        "max_session_timeout_ms": config.max_session_timeout,
        "super_digest": config.super_digest,
        "extended_types_enabled": config.extended_types_enabled,
        "jute_max_buffer": config.jute_max_buffer,
        "read_only": False,
        "reconfig_enabled": config.reconfig_enabled,
        "container_check_interval_ms": config.container_check_interval_ms,
        "reap_containers_immediately": config.reap_containers_immediately,
    }
    names = {f.name for f in attrs.fields(CoreConfig)}
    return CoreConfig(**{k: v for k, v in known.items() if k in names})


def _default_core(config: cfg.ServerConfig, now_ms: int) -> Any:
    from trizab.server.core import ServerCore

    return ServerCore(_core_config(config), now_ms=now_ms)


_CLOSE = object()  # sentinel in a writer's queue: flush, then close the connection


@attrs.define(eq=False)
class _Conn:
    """Runtime-side state of one connection (owned by the core task once registered)."""

    conn_id: int
    remote: str
    host: str
    send: trio.MemorySendChannel[Any]
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    outbuf: bytearray = attrs.Factory(bytearray)
    queued_bytes: int = 0
    closing: bool = False  # the core (or overload) asked for the close; no connection_lost
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
    # The socket's descriptor for direct writes by the core task (-1: not a socket, or closed).
    fd: int = -1


@attrs.define(eq=False)
class _Watched:
    """A connection read by the socket reader task: its parser, and how its reading ended."""

    conn: _Conn
    parser: ClientConnection
    ended: trio.Event = attrs.Factory(trio.Event)
    reason: str = "closed"


def _take_events(parser: ClientConnection, data: bytes | memoryview) -> tuple[list[Any], Any]:
    """Feed ``data``: the complete requests, and the ProtocolError or FourLetterWord that
    ends the connection (None if nothing does)."""
    parser.receive_data(data)
    events: list[Any] = []
    parser.next_requests(events)
    while True:
        ev = parser.next_event()
        if ev is NEED_DATA:
            return events, None
        if isinstance(ev, (ProtocolError, FourLetterWord)):
            return events, ev
        events.append(ev)


class Server:
    """One standalone trizab server; :meth:`run` is the whole lifetime (see module docstring)."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        *,
        storage: Storage | None = None,
        clock: Clock | None = None,
        # (config, now_ms) -> core; default: trizab.server.core.ServerCore.
        core_factory: Callable[[cfg.ServerConfig, int], Any] | None = None,
        rng: random.Random | None = None,
        # Called with the tree's node count once recovery has loaded it and after each
        # snapshot; the CLI passes trizab.runtime.tuning.freeze_big_tree.
        on_tree_settled: Callable[[int], None] | None = None,
    ) -> None:
        self.config = config
        self._on_tree_settled = on_tree_settled
        self.storage = storage if storage is not None else open_storage(config)
        # The lock on the data directories, held from before storage.open to after close.
        self._directory_lock: DirectoryLock | None = None
        self.clock = clock or Clock()
        self._core_factory = core_factory
        self._rng = rng or random.Random()
        self.core: Any = None
        self._inbox_send, self._inbox_recv = trio.open_memory_channel[tuple[Any, ...]](INBOX_SIZE)
        self._conns: dict[int, _Conn] = {}
        self._per_host: collections.Counter[str] = collections.Counter()
        self._ids = itertools.count(1)
        self._dirty: set[int] = set()
        # Readers feed the core directly only when the core task is ours: a subclass with
        # its own core task may do more after each batch than _process_lost and _flush.
        self._direct_dispatch = type(self)._core_task is Server._core_task
        self._lost: list[int] = []  # connections whose handler ended, for the core task
        # Socket connections are read by one task through this set (None: a task each).
        self._ready_sockets: ReadySockets[_Watched] | None = None
        # storage worker state (owned by the core task; the worker takes batches)
        self._to_log: list[Txn] = []
        self._log_wakeup = trio.Event()
        self._in_flight = 0  # txns handed over but not yet committed
        self._thread_sync_until = 0.0  # perf_counter before which syncs run in a thread
        # perf_counter until which a lone txn also syncs in the background: shortly after a
        # background sync finished, more clients are likely writing (see _use_background).
        self._concurrent_until = 0.0
        self._slow_syncs = 0  # inline syncs in a row slower than SLOW_SYNC_S
        # Engines that can sync without blocking us get batches of more than one txn that way
        # (a lone txn syncs inline: the helper's round trip would only add latency).
        self._background_sync = self.storage if isinstance(self.storage, BackgroundSync) else None
        # Batches whose background sync is in flight, oldest first (at most sync_slots).
        self._syncing: collections.deque[list[Txn]] = collections.deque()
        # The storage worker's wait for the oldest of them: its cancel scope and descriptor.
        self._sync_wait: tuple[trio.CancelScope, int] | None = None
        self._backlog_ok = trio.Event()
        self._backlog_ok.set()
        self._snapshot_job: tuple[int, bytes] | None = None
        # A fuzzy snapshot walk is wanted / in progress (the _snapshotter task runs it).
        self._snapshot_wanted = trio.Event()
        self._snapshotting = False
        self._snapshotter_running = False
        self._purge_requested = False
        self._since_snapshot = 0
        self._next_snapshot = self._snapshot_threshold()
        self._last_committed_zxid = 0
        self.stats = fourletter.ServerStats()
        self._started_ms = 0
        self.addresses: list[tuple[str, int]] = []

    # -- lifetime --------------------------------------------------------

    async def run(
        self,
        *,
        task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
        listeners: list[trio.abc.Listener[Any]] | None = None,
    ) -> None:
        """Serve until cancelled; ``listeners`` replaces the TCP client port (tests)."""
        config = self.config
        listeners, recovered = await self._bind_and_recover(listeners)
        try:
            now = self.clock.now_ms()
            self._started_ms = now
            factory = self._core_factory or _default_core
            self.core = factory(config, now)
            self.core.load(recovered)
            self._tree_settled()
            self._last_committed_zxid = recovered.last_zxid
            # The replayed log counts towards the next snapshot, so a long tail is not replayed
            # again at every restart (ZooKeeper snapshots at start-up; we do it in the background).
            self._since_snapshot = len(recovered.txns)
            self._handle_ready()
            log.info(
                "recovered %d txns after snapshot 0x%x; last zxid 0x%x",
                len(recovered.txns),
                recovered.snapshot_zxid,
                recovered.last_zxid,
            )
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._core_task)
                nursery.start_soon(self._storage_worker)
                nursery.start_soon(self._snapshotter)
                nursery.start_soon(self._ticker)
                if config.autopurge_purge_interval > 0:
                    nursery.start_soon(self._purger)
                self._start_socket_reader(nursery)
                # serve_listeners owns (and closes) the listeners from here on.
                await nursery.start(trio.serve_listeners, self._handle_connection, listeners)
                log.info(
                    "serving ZooKeeper clients on %s (storage %s, dataDir %s)",
                    ", ".join(f"{h}:{p}" for h, p in self.addresses),
                    type(self.storage).__name__,
                    config.data_dir,
                )
                task_status.started(self.addresses)
        finally:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + SHUTDOWN_GRACE_S
                for ln in listeners:
                    with contextlib.suppress(Exception):
                        await trio.aclose_forcefully(ln)
                try:
                    await self._final_flush()
                finally:
                    self._release_directories()

    async def _bind_and_recover(
        self, listeners: list[trio.abc.Listener[Any]] | None
    ) -> tuple[list[trio.abc.Listener[Any]], Recovered]:
        """Open the client listeners (unless given), then the storage; close them if that fails."""
        config = self.config
        if listeners is None:
            # Bind first: a taken port is the commonest start-up failure, and should
            # stop us before the storage is even opened.
            try:
                tcp = await trio.open_tcp_listeners(config.client_port, host=config.client_port_address)
            except OSError as exc:
                where = f"{config.client_port_address}:{config.client_port}"
                raise StartupError(f"cannot listen on {where}: {exc.strerror or exc}") from None
            self.addresses = [tuple(ln.socket.getsockname()[:2]) for ln in tcp]  # type: ignore[misc]
            listeners = list(tcp)
        try:
            self._claim_directories()
            recovered: Recovered = await self._blocking(self.storage.open)
        except BaseException:
            self._release_directories()
            for ln in listeners:
                await trio.aclose_forcefully(ln)
            raise
        return listeners, recovered

    def _claim_directories(self) -> None:
        """Lock the dataDir (and dataLogDir) and check they are writable, before the storage opens.

        Only for an engine that keeps its data there: ``memory`` writes nothing to them
        (see :mod:`trizab.runtime.datadir`).
        """
        if not getattr(self.storage, "durable", True):
            return
        try:
            self._directory_lock = claim(config_directories(self.config))
        except DataDirError as exc:
            raise StartupError(str(exc)) from None

    def _release_directories(self) -> None:
        """Release the directory lock (after the storage is closed; idempotent)."""
        lock, self._directory_lock = self._directory_lock, None
        if lock is not None:
            lock.release()

    async def _final_flush(self) -> None:
        batch, self._to_log = self._to_log, []

        def flush() -> None:
            if batch:
                self.storage.append(batch)
            self.storage.sync()
            self.storage.close()

        try:
            await self._blocking(flush)
            log.info("storage flushed and closed; %s", _describe_storage_stats(self.storage))
        except Exception:
            log.exception("final storage flush failed")

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking storage call in a thread; inline for an engine that never blocks.

        ``durable = False`` engines (memory) only move lists around: a thread hop would
        cost more than the call, and running inline keeps MockClock tests free of
        threads (an autojumping clock jumps while a thread runs).
        """
        if getattr(self.storage, "durable", True):
            return await trio.to_thread.run_sync(fn, *args)
        await trio.lowlevel.checkpoint()
        return fn(*args)

    # -- the core task ---------------------------------------------------

    async def _core_task(self) -> None:
        recv = self._inbox_recv
        while True:
            msg = await recv.receive()
            self._dispatch(msg)
            # Take everything already queued before flushing: one chunk per connection.
            for _ in range(INBOX_SIZE):
                try:
                    msg = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                self._dispatch(msg)
            self._process_lost()
            self._flush()

    def _connection_ended(self, conn_id: int) -> None:
        """A handler is gone (sync, so it works while cancelled); the core task reports it."""
        self._lost.append(conn_id)
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            # Only a wake-up: if the inbox is full the core task is busy and will see _lost anyway.
            self._inbox_send.send_nowait(("lost",))

    def _process_lost(self) -> None:
        lost, self._lost = self._lost, []
        for conn_id in lost:
            self._forget(conn_id)
            self.core.connection_lost(conn_id, self.clock.now_ms())
            self._handle_ready()

    def _dispatch(self, msg: tuple[Any, ...]) -> None:
        kind = msg[0]
        core = self.core
        if kind == "events":
            c = self._conns.get(msg[1])
            if c is not None and not c.closing and self._feed(c, msg[2]):
                # One ready() per batch, not per request: the core keeps its outputs in order,
                # and it ignores requests for a connection it dropped part-way through.
                self._handle_ready()
        elif kind == "lost":
            self._process_lost()
        elif kind == "4lw":
            _, conn_id, word, argument = msg
            self._four_letter_word(conn_id, word, argument)
        elif kind == "tick":
            core.tick(self.clock.now_ms())
            self._handle_ready()
        elif kind == "committed":
            batch: list[Txn] = msg[1]
            self._in_flight -= len(batch)
            if not self._backlog_ok.is_set() and self._in_flight < MAX_LOG_BACKLOG // 2:
                self._backlog_ok.set()
            self._last_committed_zxid = batch[-1].zxid
            core.committed(batch, self.clock.now_ms())
            self._handle_ready()
            self._since_snapshot += len(batch)
            if (
                self._since_snapshot >= self._next_snapshot
                and self._snapshot_job is None
                and not self._snapshotting
            ):
                self._take_snapshot()
        else:  # pragma: no cover
            raise AssertionError(f"unknown inbox message {kind!r}")

    def _feed(self, c: _Conn, events: list[Any]) -> bool:
        """Hand ``events`` (received together) to the core; False if that dropped ``c``."""
        core = self.core
        conn_id = c.conn_id
        # One clock read per receive: these events arrived together.
        now = self.clock.now_ms()
        c.received += len(events)
        self.stats.packets_received += len(events)
        receive = core.receive
        sent_at = c.pending.append
        for ev in events:
            try:
                if ev.__class__ is RequestReceived:
                    xid, opcode, payload = ev
                    sent_at((xid, opcode, now))
                    receive(conn_id, xid, opcode, payload, now)
                elif isinstance(ev, ConnectReceived):
                    c.established_ms = now
                    core.connect(
                        conn_id,
                        ev.request,
                        has_read_only_flag=ev.has_read_only_flag,
                        client_addr=c.host,
                        now_ms=now,
                    )
            except Exception:
                # A core bug triggered by one client's request must not take the
                # server down for everybody: drop that connection and go on.
                log.exception("internal error on a request from %s; closing its connection", c.remote)
                self._abort(c)
                return False
        return True

    def _handle_ready(self) -> None:
        rd: Ready = self.core.ready()
        if rd.to_log:
            self._to_log.extend(rd.to_log)
            self._in_flight += len(rd.to_log)
            self._log_wakeup.set()
            if self._in_flight > MAX_LOG_BACKLOG and self._backlog_ok.is_set():
                self._backlog_ok = trio.Event()
            if self._syncing:
                self._start_background_syncs()
        if rd.outputs:
            conns = self._conns
            dirty = self._dirty
            now = -1
            sent = 0
            for conn_id, output in rd.outputs:
                c = conns.get(conn_id)
                if c is None or c.closing:
                    continue
                encode_output(c.outbuf, output)
                c.sent += 1
                sent += 1
                dirty.add(conn_id)
                if output.__class__ is Reply:
                    if now < 0:
                        now = self.clock.now_ms()
                    self._account_reply(c, output, now)
                elif isinstance(output, Connected):
                    resp = output.response
                    if resp.time_out > 0:
                        c.session_id = resp.session_id
                        c.timeout_ms = resp.time_out
                elif isinstance(output, Notification):
                    pass
            self.stats.packets_sent += sent
        for conn_id in rd.close:
            self._close(conn_id)

    def _account_reply(self, c: _Conn, reply: Reply, now: int) -> None:
        header = reply.header
        pending = c.pending
        rxid = header.xid
        while pending:
            xid, opcode, started = pending.popleft()
            if xid == rxid:
                # Runs for every reply: plain comparisons rather than max()/min() calls.
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
                # ServerStats.record_latency, inlined: this runs for every reply.
                stats = self.stats
                stats.count += 1
                stats.total_latency += latency
                if latency > stats.max_latency:
                    stats.max_latency = latency
                if stats.min_latency is None or latency < stats.min_latency:
                    stats.min_latency = latency
                break
        c.last_zxid = header.zxid
        c.last_response_ms = now

    def _flush(self) -> None:
        dirty, self._dirty = self._dirty, set()
        for conn_id in dirty:
            c = self._conns.get(conn_id)
            if c is None or not c.outbuf or c.closing:
                continue
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
                del c.outbuf[:sent]
            chunk = bytes(c.outbuf)
            c.outbuf.clear()
            self._enqueue(c, chunk)

    def _enqueue(self, c: _Conn, chunk: bytes) -> None:
        c.queued_bytes += len(chunk)
        if c.queued_bytes > MAX_OUTBOUND_BYTES:
            log.warning(
                "closing connection %s: client is not reading (%d bytes queued)", c.remote, c.queued_bytes
            )
            self._abort(c)
            return
        c.send.send_nowait(chunk)  # the queue is unbounded in count; bytes are bounded above

    def _close(self, conn_id: int) -> None:
        """The core asked to close: flush what it sent before, then close."""
        c = self._conns.get(conn_id)
        if c is None or c.closing:
            return
        if c.outbuf:
            chunk = bytes(c.outbuf)
            c.outbuf.clear()
            self._enqueue(c, chunk)
            if c.closing:
                return
        c.closing = True
        c.send.send_nowait(_CLOSE)
        self._forget(conn_id)

    def _abort(self, c: _Conn) -> None:
        """Drop a connection now (slow reader); the core hears connection_lost."""
        if c.closing:
            return
        c.closing = True
        c.outbuf.clear()
        c.scope.cancel()
        self._forget(c.conn_id)
        self.core.connection_lost(c.conn_id, self.clock.now_ms())
        self._handle_ready()

    def _forget(self, conn_id: int) -> None:
        c = self._conns.pop(conn_id, None)
        if c is not None:
            self._per_host[c.host] -= 1
            if self._per_host[c.host] <= 0:
                del self._per_host[c.host]

    def _take_snapshot(self) -> None:
        self._since_snapshot = 0
        self._next_snapshot = self._snapshot_threshold()
        if self._snapshotter_running:
            # Walk the tree in steps between requests (see _snapshotter).
            self._snapshotting = True
            self._snapshot_wanted.set()
            return
        data = self.core.snapshot()
        # The newest zxid handed to committed(): everything up to it is applied and
        # durable; anything later in the snapshot makes it fuzzy, which is allowed.
        self._snapshot_job = (self._last_committed_zxid, data)
        self._log_wakeup.set()

    async def _snapshotter(self) -> None:
        """Fuzzy snapshots (ZooKeeper's): a few thousand nodes per step, clients served between.

        The walk's zxid is the last applied one when it starts; transactions applied
        during the walk may or may not show in it, and recovery replays the log after
        that zxid over it (the tree tolerates the overlap).
        """
        self._snapshotter_running = True
        try:
            while True:
                await self._snapshot_wanted.wait()
                self._snapshot_wanted = trio.Event()
                start = getattr(self.core, "start_snapshot", None)
                if start is None:  # a core without incremental snapshots
                    zxid, data = self._last_committed_zxid, self.core.snapshot()
                else:
                    writer = start()
                    while not writer.step(SNAPSHOT_STEP_NODES):
                        await trio.lowlevel.checkpoint()
                    # Joining copies the whole snapshot: off the event loop for a big one.
                    zxid, parts = writer.zxid, writer.parts()
                    data = await self._blocking(b"".join, parts)
                # Written from here, in a thread, while the storage worker goes on logging (the
                # Storage contract allows save_snapshot beside append/sync): a big snapshot's
                # write must not hold up commits.  Purges wait until it is done.
                await self._save_snapshot(zxid, data)
                self._snapshotting = False
                self._log_wakeup.set()
                self._tree_settled()  # nodes created since start-up
        finally:
            self._snapshotter_running = False

    def _tree_settled(self) -> None:
        if self._on_tree_settled is not None:
            self._on_tree_settled(_get(self.core, "node_count", 0))

    def _snapshot_threshold(self) -> int:
        half = max(1, self.config.snap_count // 2)
        return half + self._rng.randrange(half + 1)

    # -- four-letter words -----------------------------------------------

    def _four_letter_word(self, conn_id: int, word: str, argument: int | None) -> None:
        c = self._conns.get(conn_id)
        if c is None:
            return
        c.received, c.interest_ops = 1, 0
        text = fourletter.run(word, self.config.effective_4lw_whitelist, self._snapshot_for_4lw, argument)
        self._forget(conn_id)  # not a client: not listed by cons, never connection_lost
        c.closing = True
        c.send.send_nowait(text.encode("utf-8", "replace"))
        c.send.send_nowait(_CLOSE)

    def _snapshot_for_4lw(self) -> fourletter.Snapshot:
        core = self.core
        config = self.config
        now = self.clock.now_ms()
        connections = [
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
            for c in self._conns.values()
        ]
        data_size = _dir_size(config.data_dir)
        log_size = _dir_size(config.data_log_dir) if config.data_log_dir else data_size
        return fourletter.Snapshot(
            version=fourletter.version_string(trizab_version()),
            mode="standalone",
            read_only=False,
            zxid=_get(core, "last_zxid", 0),
            node_count=_get(core, "node_count", 0),
            approximate_data_size=_get(core, "approximate_data_size", 0),
            outstanding_requests=_get(core, "outstanding_requests", 0),
            stats=self.stats,
            connections=connections,
            sessions=_sessions(core),
            ephemerals_by_session=_get(core, "ephemerals_by_session", {}),
            watches_by_session=_get(core, "watches_by_session", {}),
            watches_by_path=_get(core, "watches_by_path", {}),
            conf=_conf_lines(config, data_size, log_size),
            environment=_environment(),
            data_dir_size=data_size,
            log_dir_size=log_size,
            uptime_ms=now - self._started_ms,
            open_file_descriptors=_open_fds(),
            max_file_descriptors=_max_fds(),
            reset_connection_stats=self._reset_connection_stats,
        )

    def _reset_connection_stats(self) -> None:
        for c in self._conns.values():
            c.received = c.sent = c.replies = c.total_latency = c.max_latency = 0
            c.min_latency = None
            c.last_latency = 0

    # -- other tasks -----------------------------------------------------

    async def _storage_worker(self) -> None:
        storage = self.storage
        syncing = self._syncing
        while True:
            if syncing:
                # Batches whose background syncs are in flight complete in order; more
                # start from _start_background_syncs as txns arrive (_handle_ready).
                background = self._background_sync
                assert background is not None
                while not background.sync_finished():
                    # sync_start may complete syncs itself (txnlog does before a new segment)
                    # and run the next one elsewhere: it then cancels this wait (see
                    # _sync_in_background), and the loop asks again which descriptor to watch.
                    fd = background.sync_fileno()
                    if fd < 0:  # nothing to wait on, yet not finished: make everything durable
                        await self._blocking(storage.sync)
                        continue
                    with trio.CancelScope() as scope:
                        self._sync_wait = (scope, fd)
                        await trio.lowlevel.wait_readable(fd)
                    self._sync_wait = None
                batch = syncing.popleft()
                self._concurrent_until = time.perf_counter() + CONCURRENT_WRITERS_S
                # What arrived meanwhile goes to the disk before this batch is applied and
                # answered, so the apply overlaps the sync.
                self._start_background_syncs(after_commit=True)
            else:
                await self._log_wakeup.wait()
                self._log_wakeup = trio.Event()
                batch, self._to_log = self._to_log, []
                if batch:
                    if self._use_background(batch):
                        self._sync_in_background(batch)
                        continue
                    storage.append(batch)
                    await self._sync_here(storage)
            if batch:
                if self._direct_dispatch:
                    # As the readers do: apply and reply from here, one task switch fewer per batch.
                    self._dispatch(("committed", batch))
                    self._process_lost()
                    self._flush()
                else:
                    await self._inbox_send.send(("committed", batch))
            job, self._snapshot_job = self._snapshot_job, None
            if job is not None:
                await self._save_snapshot(*job)
            if self._purge_requested and not self._snapshotting:
                self._purge_requested = False
                await self._blocking(storage.purge, self.config.autopurge_snap_retain_count)

    def _use_background(self, batch: list[Txn]) -> bool:
        """Whether ``batch`` is synced by the engine in the background (see __init__).

        A lone txn syncs inline when the server is otherwise idle (one client writing: the
        helper's round trip would only add latency), but not while other clients write too:
        blocking the event loop for an fdatasync then holds up everybody else's requests
        (setData at 16 outstanding: about 21,000/s with lone txns inline, 22,700/s without).
        """
        if self._background_sync is None:
            return False
        if len(batch) > 1:
            return True
        now = time.perf_counter()
        return now < self._concurrent_until or now < self._thread_sync_until

    def _start_background_syncs(self, *, after_commit: bool = False) -> None:
        """While background syncs are in flight, hand waiting txns to a free sync slot now.

        A txn that arrives while the disk is busy with an earlier batch need not wait for
        that batch: the engine runs up to ``sync_slots`` syncs at once, so it gets its own.
        When nothing is in flight the storage worker starts the next sync itself (a lone
        txn then syncs inline, the shortest path at low load), except ``after_commit``:
        then a batch that qualifies goes to the disk before the one that just became
        durable is applied.
        """
        background = self._background_sync
        syncing = self._syncing
        if background is None or not self._to_log:
            return
        if not syncing and not (after_commit and self._use_background(self._to_log)):
            return
        if len(syncing) >= getattr(background, "sync_slots", 1):
            return
        batch, self._to_log = self._to_log, []
        self._sync_in_background(batch)

    def _sync_in_background(self, batch: list[Txn]) -> None:
        """Append ``batch`` and start its sync; the storage worker commits it once durable."""
        assert self._background_sync is not None
        self.storage.append(batch)
        self._background_sync.sync_start()
        self._syncing.append(batch)
        waiting = self._sync_wait
        if waiting is not None and waiting[1] != self._background_sync.sync_fileno():
            waiting[0].cancel()

    async def _sync_here(self, storage: Storage) -> None:
        started = time.perf_counter()
        if started < self._thread_sync_until or not getattr(storage, "durable", True):
            await self._blocking(storage.sync)
            return
        # Inline: the thread round trip cost more than the fdatasync itself.
        storage.sync()
        done = time.perf_counter()
        self._slow_syncs = self._slow_syncs + 1 if done - started > SLOW_SYNC_S else 0
        if self._slow_syncs >= SLOW_SYNCS:
            self._slow_syncs = 0
            self._thread_sync_until = done + SLOW_SYNC_BACKOFF_S

    async def _save_snapshot(self, zxid: int, data: bytes) -> None:
        started = time.perf_counter()
        await self._blocking(self.storage.save_snapshot, zxid, data)
        log.info(
            "snapshot at 0x%x: %d bytes in %.1f ms", zxid, len(data), (time.perf_counter() - started) * 1e3
        )
        self._purge_requested = self.config.autopurge_purge_interval > 0

    async def _ticker(self) -> None:
        interval = max(self.config.tick_time / 2, 1) / 1000.0
        while True:
            await trio.sleep(interval)
            await self._inbox_send.send(("tick",))

    async def _purger(self) -> None:
        # ZooKeeper's DatadirCleanupManager: purge at start-up and every purgeInterval hours.
        # Purges between snapshots happen in the storage worker; this only covers idle servers,
        # by asking the worker (the sole caller of the engine) to run one.
        interval = self.config.autopurge_purge_interval * 3600.0
        while True:
            self._purge_requested = True
            self._log_wakeup.set()
            await trio.sleep(interval)

    # -- connections -----------------------------------------------------

    async def _handle_connection(self, stream: trio.abc.Stream) -> None:
        sock = getattr(stream, "socket", None)
        try:
            peer = sock.getpeername() if sock is not None else getattr(stream, "peer_name", ("unknown", 0))
            host, port = str(peer[0]), int(peer[1])
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        limit = self.config.max_client_cnxns
        if limit and self._per_host[host] >= limit:
            log.warning("too many connections from %s (max %d); closing", host, limit)
            await trio.aclose_forcefully(stream)
            return
        fd = -1
        if isinstance(stream, trio.SocketStream):
            with contextlib.suppress(OSError):
                stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            fd = stream.socket.fileno()
        conn_id = next(self._ids)
        send, recv = trio.open_memory_channel[Any](math.inf)
        c = _Conn(conn_id=conn_id, remote=f"{host}:{port}", host=host, send=send, fd=fd)
        self._conns[conn_id] = c
        self._per_host[host] += 1
        reason = "closed"
        try:
            with c.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, stream, recv, c)
                    ready = self._ready_sockets
                    if fd >= 0 and ready is not None:
                        reason = await self._read_via_socket_reader(ready, c)
                    else:
                        reason = await self._reader(stream, c)
                    if reason == "4lw":
                        # Let the writer deliver the answer; it ends the scope itself.
                        await trio.sleep(FOUR_LETTER_WORD_TIMEOUT_S)
                    nursery.cancel_scope.cancel()
        finally:
            c.fd = -1  # no direct writes once the descriptor may be closed (and reused)
            if not c.closing and conn_id in self._conns:
                self._connection_ended(conn_id)
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(stream)
            log.debug("connection %s ended: %s", c.remote, reason)

    async def _reader(self, stream: trio.abc.Stream, c: _Conn) -> str:
        """Read one connection (one not in the socket reader's set) until it ends; why it did."""
        parser = ClientConnection(max_buffer=self.config.jute_max_buffer)
        while True:
            try:
                data = await stream.receive_some(RECEIVE_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return "connection reset"
            events, end = _take_events(parser, data)
            reason = await self._received(c, events, end, data)
            if reason is not None:
                return reason

    async def _received(self, c: _Conn, events: list[Any], end: Any, data: bytes | memoryview) -> str | None:
        """Deliver what one receive brought; why reading must stop (None: go on)."""
        inbox = self._inbox_send
        if isinstance(end, ProtocolError):
            if end.tls_handshake:
                log.warning(
                    "TLS handshake on a plain-text port from %s: is the client configured for TLS? "
                    "trizab has no TLS yet",
                    c.remote,
                )
            else:
                log.warning("closing connection %s: %s", c.remote, end.message)
            if events:
                await inbox.send(("events", c.conn_id, events))
            return "protocol error"
        if isinstance(end, FourLetterWord):
            await inbox.send(("4lw", c.conn_id, end.word, end.argument))
            return "4lw"
        if events:
            if not self._backlog_ok.is_set():
                await self._backlog_ok.wait()
            if self._direct_dispatch:
                # Feed the core right here instead of through the inbox: it is all one thread
                # and _feed never awaits, so the core still has one owner at a time, and a
                # request costs one task wake-up (this one) instead of two.
                if not c.closing:
                    self._feed(c, events)
                self._handed_on()
            else:
                await inbox.send(("events", c.conn_id, events))
        return None if data else "eof"

    def _start_socket_reader(self, nursery: trio.Nursery) -> None:
        """Read socket connections from one task from now on (where the platform allows)."""
        ready = open_ready_sockets()
        if ready is not None:
            self._ready_sockets = ready
            nursery.start_soon(self._socket_reader, ready)

    async def _read_via_socket_reader(self, ready: ReadySockets[_Watched], c: _Conn) -> str:
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

        The common case (complete requests, direct dispatch) feeds the core for every
        ready connection first and then asks it for one ready(): the requests of all
        of them go to the disk as one batch.  Anything else takes the per-connection
        path of :meth:`_received`, after what was fed so far has been handed on.
        """
        # One receive buffer for every socket: os.read(fd, RECEIVE_SIZE) would allocate its
        # result with mmap (it is above malloc's threshold) and shrink and unmap it again, three
        # system calls and a page fault per receive.  The parser copies what it is given.
        readv = os.readv
        buffer = bytearray(RECEIVE_SIZE)
        received = memoryview(buffer)
        iov = [buffer]
        direct = self._direct_dispatch
        try:
            while True:
                batch = await ready.wait()
                if not self._backlog_ok.is_set():
                    await self._backlog_ok.wait()
                fed = False
                for fd, w in batch:
                    c = w.conn
                    if not ready.holds(fd, w):
                        # Unwatched since wait() returned (the slow path below awaits, and a
                        # handler may end meanwhile): its number may belong to a new socket now.
                        continue
                    try:
                        data = received[: readv(fd, iov)]
                    except BlockingIOError:
                        continue
                    except OSError:
                        self._stop_reading(fd, w, "connection reset")
                        continue
                    events, end = _take_events(w.parser, data)
                    if direct and end is None and data:
                        if events and not c.closing:
                            self._feed(c, events)
                            fed = True
                        continue
                    if fed:
                        fed = False
                        self._handed_on()
                    reason = await self._received(c, events, end, data)
                    if reason is not None:
                        self._stop_reading(fd, w, reason)
                if fed:
                    self._handed_on()
        finally:
            self._ready_sockets = None
            ready.close()

    def _handed_on(self) -> None:
        """After feeding the core directly: its outputs, lost connections, replies."""
        self._handle_ready()
        self._process_lost()
        self._flush()

    def _stop_reading(self, fd: int, w: _Watched, reason: str) -> None:
        """The socket reader is done with this connection; its handler ends it."""
        if self._ready_sockets is not None:
            self._ready_sockets.unwatch(fd, w)
        w.reason = reason
        w.ended.set()

    async def _writer(self, stream: trio.abc.Stream, recv: trio.MemoryReceiveChannel[Any], c: _Conn) -> None:
        try:
            while True:
                item = await recv.receive()
                chunks = []
                close = False
                while True:
                    if item is _CLOSE:
                        close = True
                        break
                    chunks.append(item)
                    try:
                        item = recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                if chunks:
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


def _get(obj: Any, name: str, default: Any) -> Any:
    value = getattr(obj, name, default)
    return value() if callable(value) else value


def _sessions(core: Any) -> dict[int, tuple[int, int | None]]:
    """session id -> (timeout ms, expiry ms or None) from the core's ``sessions()``."""
    out: dict[int, tuple[int, int | None]] = {}
    tracker = getattr(core, "tracker", None)
    live = getattr(tracker, "sessions", {})
    for entry in _get(core, "sessions", []):
        sid, timeout = int(entry[0]), int(entry[1])
        session = live.get(sid)
        out[sid] = (timeout, getattr(session, "expire_at", None) or None)
    return out


def _dir_size(path: Path | None) -> int:
    if path is None:
        return 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.path.getsize(os.path.join(root, name))
    return total


def _conf_lines(config: cfg.ServerConfig, data_size: int, log_size: int) -> list[tuple[str, str]]:
    data_dir = str(config.data_dir) if config.data_dir else ""
    lines = [
        ("clientPort", str(config.client_port)),
        ("secureClientPort", "-1"),
        ("dataDir", data_dir),
        ("dataDirSize", str(data_size)),
        ("dataLogDir", str(config.data_log_dir) if config.data_log_dir else data_dir),
        ("dataLogSize", str(log_size)),
        ("tickTime", str(config.tick_time)),
        ("maxClientCnxns", str(config.max_client_cnxns)),
        ("minSessionTimeout", str(config.min_session_timeout)),
        ("maxSessionTimeout", str(config.max_session_timeout)),
        ("clientPortListenBacklog", "-1"),
        ("serverId", str(config.server_id)),
    ]
    if config.servers:
        lines += [("initLimit", str(config.init_limit)), ("syncLimit", str(config.sync_limit))]
    return lines


def _environment() -> list[tuple[str, str]]:
    return [
        ("host.name", socket.gethostname()),
        ("trizab.version", trizab_version()),
        ("python.version", platform.python_version()),
        ("python.implementation", platform.python_implementation()),
        ("python.executable", sys.executable),
        ("trio.version", trio.__version__),
        ("os.name", platform.system()),
        ("os.arch", platform.machine()),
        ("os.version", platform.release()),
        ("user.name", _user()),
        ("user.home", os.path.expanduser("~")),
        ("user.dir", os.getcwd()),
        ("process.id", str(os.getpid())),
    ]


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "?"


def _open_fds() -> int | None:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def _max_fds() -> int | None:
    try:
        import resource

        return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return None


async def serve(
    config: cfg.ServerConfig,
    *,
    task_status: trio.TaskStatus[list[tuple[str, int]]] = trio.TASK_STATUS_IGNORED,
    storage: Storage | None = None,
    clock: Clock | None = None,
) -> None:
    """Run a standalone server until cancelled; ``task_status.started`` gets the bound addresses."""
    server = Server(config, storage=storage, clock=clock)
    await server.run(task_status=task_status)


def _describe_storage_stats(storage: Storage) -> str:
    """One log line's worth of the engine's counters (group commit at a glance)."""
    try:
        stats = storage.statistics()
    except Exception:  # an engine's statistics must never break a shutdown
        return "no statistics"
    syncs = stats.get("syncs", 0)
    text = f"{stats.get('txns', 0)} txns in {syncs} syncs (largest batch {stats.get('max_batch', 0)})"
    # fsync_seconds times each sync from its start until durable; segment and directory
    # fsyncs are counted in "fsyncs" but not timed, so the mean is per sync.
    if syncs and stats.get("fsync_seconds"):
        text += f", {stats['fsync_seconds'] / syncs * 1e3:.3f} ms each until durable"
    return text
