"""Snapshots and purges, for the standalone server and the ensemble member alike.

Theory of operation
-------------------
The core task counts applied transactions (:meth:`Snapshotter.applied`); every
~``snapCount`` of them (randomised between half and all of it, as ZooKeeper does
so that the members of an ensemble do not snapshot together) a snapshot is due,
and a member asks for one at once after a reconfig (:meth:`Snapshotter.request`),
so that a restart starts from the new membership.

The snapshotter task takes it as a *fuzzy* snapshot, as ZooKeeper's: it walks the
tree a few thousand nodes at a time with a checkpoint between steps, so a big tree
never stalls the clients (see :mod:`trizab.tree.snapshot`).  The walk's zxid is the
last applied one when it starts; transactions applied during the walk may or may
not show in it, and recovery replays the log after that zxid over it (the tree
tolerates the overlap).  It then joins and saves the snapshot in a thread while
the commit path goes on logging, and runs the purge (``autopurge.snapRetainCount``)
after it, never beside it; an idle server also purges every
``autopurge.purgeInterval`` hours (ZooKeeper's ``DatadirCleanupManager``).

A member that installs a snapshot from its leader calls :meth:`Snapshotter.abandon`:
a walk in progress over the tree being replaced is dropped, not saved.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import trio

from trizab import config as cfg
from trizab.runtime.disk import Disk

__all__ = ["SNAPSHOT_STEP_NODES", "SnapshotAbandoned", "Snapshotter"]

log = logging.getLogger("trizab.snapshots")

SNAPSHOT_STEP_NODES = 2000  # nodes copied per step of a snapshot walk (a few ms of work)


class SnapshotAbandoned(Exception):
    """A snapshot asked for could not be written (the tree was replaced during its walk)."""


class Snapshotter:
    """Fuzzy snapshots and purges (see the module docstring)."""

    def __init__(
        self,
        config: cfg.ServerConfig,
        disk: Disk,
        rng: random.Random,
        *,
        on_saved: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.disk = disk
        self._rng = rng
        self._on_saved = on_saved
        # () -> a SnapshotWriter over the core's tree; set once the core exists.
        self.start_walk: Callable[[], Any] | None = None
        self._since = 0
        self._threshold = self._next_threshold()
        self._wanted = trio.Event()  # a wake-up for the task: a snapshot or a purge is wanted
        self._snapshot_wanted = False
        self._purge_wanted = False
        self._generation = 0  # bumped by abandon()
        self.busy = False
        # The last snapshot written (or recovered at start-up): (zxid, size in bytes, trio time).
        self.last_saved: tuple[int, int, float] | None = None
        # For snapshot_now(): requests so far, and the last finished walk's (requests when it
        # started, whether it was saved), announced by _attempt_done.
        self._requests = 0
        self._last_attempt: tuple[int, bool] = (0, False)
        self._attempt_done = trio.Event()

    def applied(self, count: int) -> None:
        """``count`` more transactions are applied; a snapshot is due every ~snapCount."""
        self._since += count
        if self._since >= self._threshold:
            self.request()

    def request(self) -> None:
        """Take a snapshot as soon as the one in progress (if any) is done."""
        self._requests += 1
        self._since = 0
        self._threshold = self._next_threshold()
        self._snapshot_wanted = True
        self._wanted.set()

    async def snapshot_now(self) -> tuple[int, int]:
        """Take a snapshot that starts after this call, and wait for it: its (zxid, size).

        A walk already in progress started too early; the requested one follows it.
        Raises :class:`SnapshotAbandoned` if the tree was replaced during the walk.
        """
        self.request()
        mine = self._requests
        while True:
            await self._attempt_done.wait()
            started_at, saved = self._last_attempt
            if started_at >= mine:
                if not saved or self.last_saved is None:
                    raise SnapshotAbandoned("the snapshot was abandoned: the tree was replaced meanwhile")
                zxid, size, _when = self.last_saved
                return zxid, size

    def abandon(self) -> None:
        """The tree is being replaced: a walk in progress must not be saved."""
        self._generation += 1

    def _next_threshold(self) -> int:
        half = max(1, self.config.snap_count // 2)
        return half + self._rng.randrange(half + 1)

    async def run(self) -> None:
        """The snapshotter task."""
        async with trio.open_nursery() as nursery:
            if self.config.autopurge_purge_interval > 0:
                nursery.start_soon(self._purge_timer)
            while True:
                await self._wanted.wait()
                self._wanted = trio.Event()
                if self._snapshot_wanted and self.start_walk is not None:
                    self._snapshot_wanted = False
                    await self._snapshot()
                if self._purge_wanted:
                    self._purge_wanted = False
                    async with self.disk.exclusive:
                        await self.disk.blocking(
                            self.disk.storage.purge, self.config.autopurge_snap_retain_count
                        )

    async def _snapshot(self) -> None:
        assert self.start_walk is not None
        generation = self._generation
        self.busy = True
        requests_at_start = self._requests
        saved = False
        try:
            writer = self.start_walk()
            while not writer.step(SNAPSHOT_STEP_NODES):
                await trio.lowlevel.checkpoint()
            zxid, parts = writer.zxid, writer.parts()
            if generation != self._generation:
                return
            # Joining copies the whole snapshot: off the event loop for a big one.
            data = await self.disk.blocking(b"".join, parts)
            async with self.disk.exclusive:
                if generation != self._generation:
                    return
                started = trio.current_time()
                await self.disk.blocking(self.disk.storage.save_snapshot, zxid, data)
                log.info(
                    "snapshot at 0x%x: %d bytes in %.1f ms",
                    zxid,
                    len(data),
                    (trio.current_time() - started) * 1e3,
                )
                self.last_saved = (zxid, len(data), trio.current_time())
                saved = True
            self._purge_wanted = self.config.autopurge_purge_interval > 0
            if self._on_saved is not None:
                self._on_saved()
        finally:
            self.busy = False
            self._last_attempt = (requests_at_start, saved)
            self._attempt_done.set()
            self._attempt_done = trio.Event()

    async def _purge_timer(self) -> None:
        interval = self.config.autopurge_purge_interval * 3600.0
        while True:
            self._purge_wanted = True
            self._wanted.set()
            await trio.sleep(interval)
