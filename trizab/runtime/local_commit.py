"""The standalone commit path: group commit, with the engine's background sync when it has one.

Theory of operation
-------------------
A standalone server commits a transaction once it is durable on its own disk.
:class:`LocalCommit` is ZooKeeper's ``SyncRequestProcessor`` as a storage
worker task: it takes every transaction the core logged since its last round,
appends them, and runs one barrier; whatever arrives meanwhile waits for the next
round and shares its sync.  The barrier runs where :class:`~trizab.runtime.disk.Disk`
says (inline while the disk is fast, else in a thread).

An engine offering :class:`~trizab.storage.BackgroundSync` (``txnlog``'s fsync
helper processes) syncs every batch of more than one txn without blocking the
loop, with up to ``sync_slots`` syncs in flight: txns arriving while the disk is
busy get a free slot at once, and once a batch is durable, the txns that arrived
meanwhile are handed over *before* that batch is applied and answered, so the
disk never waits for the apply.

Once durable, a batch goes to the core task's :meth:`~trizab.runtime.core_task.CoreTask.committed`
(applied, answered) from this task, which then ends the core task's batch (one
flush of replies), as the socket reader does with requests.

Back-pressure: past ``MAX_LOG_BACKLOG`` transactions not yet durable, the client
port's :class:`~trizab.runtime.clients.Gate` shuts (readers stop feeding the
core) until the backlog halves.
"""

from __future__ import annotations

import collections
from typing import TYPE_CHECKING

import trio

from trizab.runtime.clients import Gate
from trizab.runtime.clock import Clock
from trizab.runtime.disk import Disk, is_full
from trizab.server.api import Ready
from trizab.storage import BackgroundSync
from trizab.txn import Txn

if TYPE_CHECKING:
    from trizab.runtime.core_task import CoreTask

__all__ = ["MAX_LOG_BACKLOG", "LocalCommit"]

MAX_LOG_BACKLOG = 50_000
# For this long after a background sync finished, a lone txn syncs in the background too.
CONCURRENT_WRITERS_S = 0.002


class LocalCommit:
    """Group commit on the local disk (see the module docstring)."""

    def __init__(self, disk: Disk, clock: Clock, gate: Gate) -> None:
        self.disk = disk
        self._clock = clock
        self._gate = gate
        self.core_task: CoreTask | None = None  # wired by the server
        self._to_log: list[Txn] = []
        self._wakeup = trio.Event()
        self._in_flight = 0  # txns handed over but not yet committed
        # Monotonic time until which a lone txn also syncs in the background: shortly after
        # a background sync finished, more clients are likely writing (see _use_background).
        self._concurrent_until = 0.0
        storage = disk.storage
        self._background = storage if isinstance(storage, BackgroundSync) else None
        # Batches whose background sync is in flight, oldest first (at most sync_slots).
        self._syncing: collections.deque[list[Txn]] = collections.deque()
        self._sync_started: collections.deque[float] = collections.deque()  # each one's start
        # The worker's wait for the oldest of them: its cancel scope and descriptor.
        self._sync_wait: tuple[trio.CancelScope, int] | None = None
        # A batch the disk had no room for: abandoned once the batches before it commit.
        self._unlogged: list[Txn] | None = None

    # -- the core task's side -----------------------------------------------------------

    def log(self, txns: list[Txn]) -> None:
        self._to_log.extend(txns)
        self._in_flight += len(txns)
        self._wakeup.set()
        if self._in_flight > MAX_LOG_BACKLOG:
            self._gate.shut()
        if self._syncing:
            self._start_background_syncs()

    def on_ready(self, rd: Ready) -> bool:
        return False

    def end_batch(self) -> None:
        pass

    def after_input(self) -> None:
        pass  # the storage worker takes what was logged on its own

    # -- the storage worker -----------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        storage = self.disk.storage
        syncing = self._syncing
        task_status.started()
        while True:
            if syncing:
                # Batches whose background syncs are in flight complete in order; more
                # start from _start_background_syncs as txns arrive (log()).
                try:
                    await self._wait_for_oldest_sync()
                except Exception as exc:  # the fsync itself failed: nothing more is trusted
                    raise self.disk.fail("syncing the transaction log", exc) from exc
                batch = syncing.popleft()
                self.disk.note_synced(len(batch), self._sync_started.popleft())
                self._concurrent_until = self._clock.monotonic() + CONCURRENT_WRITERS_S
                # What arrived meanwhile goes to the disk before this batch is applied and
                # answered, so the apply overlaps the sync.
                self._start_background_syncs(after_commit=True)
            elif self._unlogged is not None:
                self._abandon()
                continue
            else:
                await self._wakeup.wait()
                self._wakeup = trio.Event()
                batch, self._to_log = self._to_log, []
                if not batch:
                    continue
                if self._use_background(batch):
                    self._sync_in_background(batch)
                    continue
                started = self._clock.monotonic()
                storage.append(batch)
                try:
                    await self.disk.sync()
                except Exception as exc:
                    self._barrier_failed(exc, batch)
                    continue
                self.disk.note_synced(len(batch), started)
            self.disk.note_written()
            self._committed(batch)

    async def _wait_for_oldest_sync(self) -> None:
        background = self._background
        assert background is not None
        while not background.sync_finished():
            # sync_start may complete syncs itself (txnlog does before a new segment) and
            # run the next one elsewhere: it then cancels this wait (see
            # _sync_in_background), and the loop asks again which descriptor to watch.
            fd = background.sync_fileno()
            if fd < 0:  # nothing to wait on, yet not finished: make everything durable
                await self.disk.blocking(self.disk.storage.sync)
                continue
            with trio.CancelScope() as scope:
                self._sync_wait = (scope, fd)
                await trio.lowlevel.wait_readable(fd)
            self._sync_wait = None

    def _committed(self, batch: list[Txn]) -> None:
        self._in_flight -= len(batch)
        if not self._gate.is_open and self._in_flight < MAX_LOG_BACKLOG // 2:
            self._gate.open()
        core_task = self.core_task
        assert core_task is not None
        core_task.committed(batch)
        core_task.end_batch()

    def _use_background(self, batch: list[Txn]) -> bool:
        """Whether ``batch`` is synced by the engine in the background.

        A lone txn syncs inline when the server is otherwise idle (one client writing: the
        helper's round trip would only add latency), but not while other clients write too:
        blocking the event loop for an fdatasync then holds up everybody else's requests
        (setData at 16 outstanding: about 21,000/s with lone txns inline, 22,700/s without).
        """
        if self._background is None:
            return False
        if len(batch) > 1:
            return True
        return self._clock.monotonic() < self._concurrent_until or not self.disk.barrier_inline()

    def _start_background_syncs(self, *, after_commit: bool = False) -> None:
        """While background syncs are in flight, hand waiting txns to a free sync slot now.

        A txn that arrives while the disk is busy with an earlier batch need not wait for
        that batch: the engine runs up to ``sync_slots`` syncs at once, so it gets its own.
        When nothing is in flight the worker starts the next sync itself (a lone txn then
        syncs inline, the shortest path at low load), except ``after_commit``: then a
        batch that qualifies goes to the disk before the one that just became durable is
        applied.
        """
        background = self._background
        syncing = self._syncing
        if background is None or not self._to_log or self._unlogged is not None:
            return
        if not syncing and not (after_commit and self._use_background(self._to_log)):
            return
        if len(syncing) >= getattr(background, "sync_slots", 1):
            return
        batch, self._to_log = self._to_log, []
        self._sync_in_background(batch)

    def _sync_in_background(self, batch: list[Txn]) -> None:
        """Append ``batch`` and start its sync; the worker commits it once durable."""
        background = self._background
        assert background is not None
        started = self._clock.monotonic()
        self.disk.storage.append(batch)
        try:
            background.sync_start()
        except Exception as exc:
            self._barrier_failed(exc, batch)
            return
        self._syncing.append(batch)
        self._sync_started.append(started)
        waiting = self._sync_wait
        if waiting is not None and waiting[1] != background.sync_fileno():
            waiting[0].cancel()

    # -- a full disk -------------------------------------------------------------------

    def _barrier_failed(self, exc: Exception, batch: list[Txn]) -> None:
        """A barrier raised: a full disk abandons ``batch`` and what follows; else we stop."""
        if not is_full(exc):
            raise self.disk.fail("syncing the transaction log", exc) from exc
        self.disk.note_full("the transaction log", exc)
        # The engine forgot everything appended since its last barrier: this batch, and
        # (in the background) nothing later, as none is started while this is pending.
        self._unlogged = batch
        self._wakeup.set()

    def _abandon(self) -> None:
        """Once every earlier batch is committed: the failed one and everything logged
        after it never happened (the core answers ThrottledOp and forgets their changes)."""
        assert self._unlogged is not None and not self._syncing
        batch = self._unlogged + self._to_log
        self._unlogged, self._to_log = None, []
        self._in_flight -= len(batch)
        if not self._gate.is_open and self._in_flight < MAX_LOG_BACKLOG // 2:
            self._gate.open()
        core_task = self.core_task
        assert core_task is not None
        core_task.abandon(batch)
        core_task.end_batch()

    async def close(self) -> None:
        """Shutdown: log what never reached the disk, sync, close."""
        unlogged, self._to_log = self._to_log, []
        await self.disk.close(unlogged)
