"""The core task: the one owner of the sans-I/O server core.

Theory of operation
-------------------
:class:`CoreTask` holds the :class:`~trizab.server.core.ServerCore` (or a
member's :class:`~trizab.server.replica.ReplicaCore`); no other part keeps a
reference to it, except the member's ZAB commit path, whose handlers run inside
this task's dispatch.  Input reaches the core two ways:

* **calls** that need no task switch: the client port's :meth:`CoreTask.feed`
  (a batch of requests) and :meth:`CoreTask.handed_on` (after it), the local
  commit path's :meth:`CoreTask.committed`.  They never await, and trio runs one
  task at a time, so the core still has one user at a time; a request costs one
  task wake-up (the socket reader's) instead of two;
* **events** on the inbox (:mod:`trizab.runtime.events`): ticks, lost
  connections, and everything of a member's ZAB layer.  The task drains the
  inbox in batches and dispatches each event by type to the handler its owner
  registered with :meth:`CoreTask.on`.

After each input the core's :meth:`ready` is carried out in the contract's
order (:mod:`trizab.server.api`): ``to_log`` to the commit path, ``outputs``
encoded into their connections' buffers, ``close``.  A batch ends with
:meth:`CoreTask.end_batch`: lost connections reported to the core, the commit
path's own end of batch (a member pumps its ZAB peer there), and one flush of
every connection's replies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import trio

from trizab.frontend.connection import ConnectReceived, RequestReceived
from trizab.runtime.admin import Admin
from trizab.runtime.clock import Clock
from trizab.runtime.connections import Connection, Connections
from trizab.runtime.events import ConnectionsLost, Tick
from trizab.runtime.snapshots import Snapshotter
from trizab.server.api import Ready
from trizab.txn import Txn

__all__ = ["INBOX_SIZE", "CommitPath", "CoreTask"]

log = logging.getLogger("trizab.server")

INBOX_SIZE = 1024


class CommitPath(Protocol):
    """How transactions become durable and committed: local group commit, or ZAB."""

    def log(self, txns: list[Txn]) -> None:
        """The core's ``Ready.to_log``: make these durable (and, in ZAB, agreed on)."""

    def on_ready(self, rd: Ready) -> bool:
        """The rest of a member core's Ready; True if that fed the core again."""

    def end_batch(self) -> None:
        """After a batch of inputs (a member pumps its ZAB peer here)."""

    def after_input(self) -> None:
        """The client port fed the core outside a batch (a member asks for one)."""


class CoreTask:
    """The owner of the server core (see the module docstring)."""

    def __init__(
        self,
        core: Any,
        clock: Clock,
        connections: Connections,
        admin: Admin,
        snapshots: Snapshotter,
    ) -> None:
        self.core = core
        self.clock = clock
        self.connections = connections
        self.admin = admin
        self.snapshots = snapshots
        self.commit: CommitPath | None = None  # wired right after construction
        self._send, self._recv = trio.open_memory_channel[Any](INBOX_SIZE)
        self._handlers: dict[type, Callable[[Any], None]] = {
            Tick: self._tick,
            ConnectionsLost: lambda _: None,  # a wake-up: end_batch reports them
        }

    # -- the inbox ------------------------------------------------------------------

    def on(self, event_type: type, handler: Callable[[Any], None]) -> None:
        """Route inbox events of ``event_type`` to ``handler`` (called in this task)."""
        self._handlers[event_type] = handler

    async def post(self, event: Any) -> None:
        """Put an event on the inbox, waiting while it is full (back-pressure)."""
        await self._send.send(event)

    def wake(self, event: Any) -> None:
        """Post a wake-up without waiting; if the inbox is full the task is busy anyway."""
        try:
            self._send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def post_nowait(self, event: Any) -> None:
        """Post an event that must not be lost (the inbox is bounded: the caller knows it fits)."""
        self._send.send_nowait(event)

    async def run(self) -> None:
        recv = self._recv
        handlers = self._handlers
        while True:
            event = await recv.receive()
            handlers[type(event)](event)
            # Take everything already queued before flushing: one chunk per connection.
            for _ in range(INBOX_SIZE):
                try:
                    event = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                handlers[type(event)](event)
            self.end_batch()

    def end_batch(self) -> None:
        self._report_lost()
        assert self.commit is not None
        self.commit.end_batch()
        self.connections.flush()

    # -- input ----------------------------------------------------------------------

    def feed(self, c: Connection, events: list[Any]) -> bool:
        """Hand ``events`` (received together) to the core; False if that dropped ``c``."""
        core = self.core
        conn_id = c.conn_id
        # One clock read per receive: these events arrived together.
        now = self.clock.now_ms()
        c.received += len(events)
        self.admin.stats.packets_received += len(events)
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
                    c.new_session = not ev.request.session_id
                    core.connect(
                        conn_id,
                        ev.request,
                        has_read_only_flag=ev.has_read_only_flag,
                        client_addr=c.host,
                        now_ms=now,
                        auth_ids=c.auth_ids,
                    )
            except Exception:
                # A core bug triggered by one client's request must not take the
                # server down for everybody: drop that connection and go on.
                log.exception("internal error on a request from %s; closing its connection", c.remote)
                self.connections.abort(c)
                return False
        return True

    def handed_on(self) -> None:
        """After feeding the core directly: its outputs, lost connections, the replies.

        The commit path only hears that input arrived (``after_input``): a member pumps its
        ZAB peer from this task's next batch, so that the proposals of every connection read
        meanwhile and the acknowledgements that arrived with them share one Ready (one
        barrier, one send per peer) instead of one Ready per socket read.
        """
        self.handle_ready()
        self._report_lost()
        assert self.commit is not None
        self.commit.after_input()
        self.connections.flush()

    def committed(self, txns: list[Txn]) -> None:
        """These transactions are durable and agreed on: apply them, reply, count them."""
        self.core.committed(txns, self.clock.now_ms())
        self.handle_ready()
        self.snapshots.applied(len(txns))

    def abandon(self, txns: list[Txn]) -> None:
        """These transactions could not be logged (disk full): they never happened."""
        self.core.abandon(txns, self.clock.now_ms())
        self.handle_ready()

    def four_letter_word(self, c: Connection, word: str, argument: int | None) -> None:
        self.admin.answer(c, word, argument)

    def tick(self) -> None:
        """Session expiry and container reaping (every tickTime/2)."""
        self.core.tick(self.clock.now_ms())
        self.handle_ready()

    def _tick(self, _: Tick) -> None:
        self.tick()

    # -- output ---------------------------------------------------------------------

    def handle_ready(self) -> None:
        """Carry out the core's Ready, in the contract's order."""
        commit = self.commit
        assert commit is not None
        connections = self.connections
        while True:
            rd = self.core.ready()
            if rd.to_log:
                commit.log(rd.to_log)
            if rd.outputs:
                connections.deliver(rd.outputs)
            if rd.close:
                connections.close(rd.close)
            if not commit.on_ready(rd):
                return

    def _report_lost(self) -> None:
        lost = self.connections.lost
        if not lost:
            return
        self.connections.lost = []
        now = self.clock.now_ms()
        for conn_id in lost:
            self.core.connection_lost(conn_id, now)
        self.handle_ready()
