"""The storage engine's owner: opening, the data directories' lock, and how to wait on the disk.

Theory of operation
-------------------
One :class:`Disk` per server holds the :class:`~trizab.storage.Storage` engine.
The commit path (local group commit, or a member's ZAB barrier) and the
snapshotter call the engine only through it, under the rules of
:mod:`trizab.storage`: ``append``/``sync`` from the commit path,
``save_snapshot``/``purge`` from the snapshotter (allowed beside them), and the
calls that must not overlap a snapshot or a purge (a member's snapshot install,
truncation, epoch files) under :attr:`Disk.exclusive`.

Where a blocking call runs is decided here, by one rule for both modes: a
barrier runs inline on the event loop while the disk is fast (one fdatasync,
about 0.1 ms, costs less than a hand-off to a thread and back), and after
``SLOW_SYNCS`` inline barriers in a row slower than ``SLOW_SYNC_S`` the next
``SLOW_SYNC_BACKOFF_S`` of them go to a thread, so that reads, pings and
elections do not wait on a slow disk.  In a row, because a busy machine sometimes
preempts us during a fast sync.  Only inline barriers are timed (a thread's
time includes waiting for the GIL), on the runtime's :class:`Clock`, so a
``MockClock`` drives the rule in tests.  An engine that is not ``durable``
(memory) never waits on a disk: every call runs inline.
"""

from __future__ import annotations

import contextlib
import errno
import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio

from trizab import config as cfg
from trizab.runtime.clock import Clock
from trizab.runtime.datadir import DataDirError, DirectoryLock, claim, config_directories
from trizab.server.distribution import Distribution
from trizab.storage import Recovered, Storage, StorageFull
from trizab.txn import Txn

__all__ = ["Disk", "DiskFailed", "StartupError", "is_full", "open_storage", "storage_name"]

log = logging.getLogger("trizab.disk")

SLOW_SYNC_S = 0.002
SLOW_SYNCS = 3
SLOW_SYNC_BACKOFF_S = 1.0


class StartupError(Exception):
    """The server cannot start (for example its port is taken); ``str()`` is one line."""


class DiskFailed(Exception):
    """The storage failed in a way that cannot be trusted (an fsync error): the server stops.

    After a failed fsync the state of the unsynced pages is unknown ("fsyncgate"):
    nothing they hold may be acknowledged, and retrying the fsync proves nothing.
    Restarting recovers from what the log holds durably.  ``str()`` is one line.
    """


def is_full(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk (or a quota) is full: retry later, nothing is lost."""
    if isinstance(exc, StorageFull):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def storage_name(config: cfg.ServerConfig) -> str:
    """The storage engine ``config`` names; default txnlog (with a dataDir) or memory."""
    from trizab import plugin

    if config.storage_name is not None:
        return config.storage_name
    installed = {p.name for p in plugin.available("trizab.storage") if p.error is None}
    return "txnlog" if config.data_dir is not None and "txnlog" in installed else "memory"


def open_storage(config: cfg.ServerConfig) -> Storage:
    """The storage engine ``config`` names (see :func:`storage_name`), loaded."""
    from trizab import plugin

    return plugin.load_storage(config.evolve(storage_name=storage_name(config)))


class Disk:
    """The server's storage engine and the rules for calling it (see the module docstring)."""

    def __init__(self, storage: Storage, config: cfg.ServerConfig, clock: Clock) -> None:
        self.storage = storage
        self.config = config
        self.durable: bool = getattr(storage, "durable", True)
        self._clock = clock
        self._lock: DirectoryLock | None = None
        self._thread_until = 0.0  # monotonic time before which barriers run in a thread
        self._slow_in_a_row = 0
        # Held by the snapshotter while it saves or purges, and by a member while it installs
        # a snapshot, truncates or writes epochs: those must not overlap (trizab.storage).
        self.exclusive = trio.Lock()
        # The last barrier found the disk full (cleared by the next one that succeeds).
        self.full = False
        self.failed: str | None = None  # why the storage can no longer be trusted
        # ZooKeeper's fsynctime summary (ms from a batch's hand-over to the engine until it is
        # durable: its write and fdatasync), and trizab's group-commit batch sizes (txns per sync).
        self.fsync_time = Distribution("fsynctime")
        self.batch_size = Distribution("trizab_group_commit_batch_size")

    def now(self) -> float:
        """Monotonic seconds on the runtime's clock (when a sync starts, for :meth:`note_synced`)."""
        return self._clock.monotonic()

    def note_synced(self, txns: int, started: float) -> None:
        """A commit path made ``txns`` durable in one sync begun at :meth:`now` ``started``."""
        self.fsync_time.record(round((self._clock.monotonic() - started) * 1000))
        self.batch_size.record(txns)

    # -- health -----------------------------------------------------------------------

    def note_full(self, what: str, exc: BaseException) -> None:
        """A write found the disk full: one log line when that starts."""
        if not self.full:
            self.full = True
            log.error(
                "disk full writing %s (%s): writes are refused with ThrottledOp and retried, "
                "reads, watches and sessions go on; free space to resume",
                what,
                exc,
            )

    def note_written(self) -> None:
        """A barrier succeeded: if the disk was full, say that writes resume."""
        if self.full:
            self.full = False
            log.warning("disk space is back: writes resume")

    def fail(self, what: str, exc: BaseException) -> DiskFailed:
        """The storage cannot be trusted any more: the error that stops the server."""
        self.failed = f"{what} failed ({exc}); nothing after the last durable write is acknowledged"
        log.critical("%s; stopping (a restart recovers from the log)", self.failed)
        return DiskFailed(f"storage failed: {self.failed}; a restart recovers from the log")

    # -- lifetime -------------------------------------------------------------------

    async def open(self, progress: Callable[[str, int, int, str], None] | None = None) -> Recovered:
        """Lock the data directories (a durable engine's), then recover; unlock if that fails.

        ``progress`` goes to an engine that reports how far recovery got (trizab.storage).
        """
        if progress is not None and hasattr(self.storage, "progress"):
            self.storage.progress = progress
        if self.durable:
            try:
                self._lock = claim(config_directories(self.config))
            except DataDirError as exc:
                raise StartupError(str(exc)) from None
        try:
            recovered: Recovered = await self.blocking(self.storage.open)
        except BaseException:
            self.release()
            raise
        return recovered

    async def close(self, unlogged: Sequence[Txn] = ()) -> None:
        """Log what is left, sync, close the engine and release the directories (shutdown)."""
        storage = self.storage
        if self.failed is not None:
            # Nothing more may be written (or synced and trusted): just let go of it.
            with contextlib.suppress(Exception):
                await self.blocking(storage.close)
            self.release()
            return

        def flush() -> None:
            if unlogged:
                storage.append(unlogged)
            storage.sync()
            storage.close()

        try:
            await self.blocking(flush)
            log.info("storage flushed and closed; %s", describe_statistics(storage))
        except Exception as exc:
            if is_full(exc):  # nothing unlogged was acknowledged: nothing is lost
                log.error("final storage flush: disk full (%s)", exc)
                with contextlib.suppress(Exception):
                    await self.blocking(storage.close)
            else:
                log.exception("final storage flush failed")
        finally:
            self.release()

    def release(self) -> None:
        """Release the directory lock (after the engine is closed; idempotent)."""
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.release()

    # -- where calls run ------------------------------------------------------------

    async def blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking engine call in a thread; inline for an engine that never blocks.

        Running a ``durable = False`` engine inline also keeps ``MockClock`` tests free of
        threads (an autojumping clock jumps while a thread runs).
        """
        if self.durable:
            return await trio.to_thread.run_sync(fn, *args)
        await trio.lowlevel.checkpoint()
        return fn(*args)

    def barrier_inline(self) -> bool:
        """Whether the next barrier may block the event loop (the disk has been fast)."""
        return not self.durable or self._clock.monotonic() >= self._thread_until

    def timed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a barrier inline and feed its duration to the slow-disk rule."""
        started = self._clock.monotonic()
        result = fn(*args)
        done = self._clock.monotonic()
        self._slow_in_a_row = self._slow_in_a_row + 1 if done - started > SLOW_SYNC_S else 0
        if self._slow_in_a_row >= SLOW_SYNCS:
            self._slow_in_a_row = 0
            self._thread_until = done + SLOW_SYNC_BACKOFF_S
        return result

    async def barrier(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a barrier where the rule says: inline and timed, or in a thread."""
        if self.durable and self.barrier_inline():
            return self.timed(fn, *args)
        return await self.blocking(fn, *args)

    async def sync(self) -> None:
        await self.barrier(self.storage.sync)


def describe_statistics(storage: Storage) -> str:
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
