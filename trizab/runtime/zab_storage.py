"""A member's storage barrier: steps 1-5 of each ZAB Ready (:mod:`trizab.zab.ready`).

Theory of operation
-------------------
Each Ready that must touch the disk (install a snapshot, truncate, append
``to_persist``, write the epochs, then a barrier) is persisted in one of three ways:

* **inline**, in the core task, for a Ready of appends only while the disk is
  fast (:class:`~trizab.runtime.disk.Disk`'s rule, the same as standalone's): one
  write and an fdatasync cost less than two task switches;
* **in the background** (``background_sync=True``; off for members, see
  ``ZabStorage.__init__``), by the storage worker task, for a larger Ready of appends
  only on an engine with :class:`~trizab.storage.BackgroundSync`: it appends and
  starts the engine's sync, and the event loop keeps reading requests and
  acknowledgements while the disk works (they share the next barrier: group commit);
* **in a thread**, by the storage worker, for the rest (snapshots, truncations,
  epoch changes, very large batches, a slow disk) and anything queued behind a
  job the worker is running (storage calls stay in order).  Those that are more
  than appends take :attr:`Disk.exclusive`, so they never overlap the snapshotter's
  save or purge.

The worker reports each finished Ready to the core task as a
:class:`~trizab.runtime.events.Persisted` event.  Transactions are decoded once
here, for the log, and kept by zxid until the core applies them.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable

import trio

from trizab.runtime.disk import Disk, is_full
from trizab.runtime.events import Persisted
from trizab.storage import BackgroundSync
from trizab.txn import Txn
from trizab.zab.messages import Entry
from trizab.zab.ready import Ready

__all__ = ["INLINE_PERSIST_MAX", "ZabStorage"]

# The largest batch of appends persisted inline or in the background.
INLINE_PERSIST_MAX = 4096
# While the disk is full, a Ready is tried again this often.
FULL_RETRY_S = 0.5


class ZabStorage:
    """Where and how a ZAB Ready is persisted (see the module docstring)."""

    def __init__(
        self, disk: Disk, post: Callable[[Persisted], Awaitable[None]], *, background_sync: bool = False
    ) -> None:
        self.disk = disk
        self._post = post
        storage = disk.storage
        # Off by default for members: with one Ready in flight, a background sync delays the
        # apply of everything behind it (the follower's COMMITs) by the helper's round trip,
        # and under load that made a cut-off member serve a state older than a write it had
        # long acknowledged (kazoo's TestReadOnlyMode failed in one CI run out of three).
        use = background_sync and isinstance(storage, BackgroundSync)
        self._background = storage if use else None
        self._send, self._recv = trio.open_memory_channel[Ready](math.inf)
        self.jobs = 0  # Readies handed to the worker and not finished
        self._durable_epochs = (-1, -1)
        # Txns decoded for the log, by zxid, until they are applied (a zxid names one
        # transaction in ZAB, so a stale entry left by a truncation is still the right one
        # if that zxid comes back).
        self.decoded: dict[int, Txn] = {}
        # The steps of the Ready in progress that are done (only one is at a time).
        self._progress_of: Ready | None = None
        self._progress: set[str] = set()

    @staticmethod
    def appends_only(rd: Ready) -> bool:
        return (
            rd.snapshot is None
            and rd.hard_state is None
            and rd.truncate_after is None
            and len(rd.to_persist) <= INLINE_PERSIST_MAX
        )

    def persist_inline(self, rd: Ready) -> bool:
        """Persist ``rd`` here and now if it should be (see the module docstring); else False."""
        if self.jobs or self.disk.full or not self.appends_only(rd) or not self.disk.barrier_inline():
            return False
        if self._background is not None and len(rd.to_persist) > 1:
            return False  # the worker syncs it in the background
        started = self.disk.now()
        try:
            self.disk.timed(self.persist_steps, rd)
        except Exception as exc:
            self._failed(exc)
            return False  # the disk is full: the worker retries it
        self.disk.note_written()
        if rd.to_persist:
            self.disk.note_synced(len(rd.to_persist), started)
        return True

    def _failed(self, exc: Exception) -> None:
        """A step raised: a full disk is retried (nothing is acknowledged meanwhile), any
        other error stops the member."""
        if not is_full(exc):
            raise self.disk.fail("persisting a ZAB proposal", exc) from exc
        self.disk.note_full("the transaction log", exc)

    def hand_over(self, rd: Ready) -> None:
        """Give ``rd`` to the storage worker; :class:`Persisted` comes back."""
        self.jobs += 1
        self._send.send_nowait(rd)

    def take_decoded(self, zxid: int) -> Txn | None:
        return self.decoded.pop(zxid, None)

    def forget_decoded(self) -> None:
        self.decoded.clear()

    def forget_applied(self, entries: tuple[Entry, ...], applied: int) -> None:
        """Drop what the worker decoded for ``entries`` that a learner applied before they were
        durable (decoding them itself meanwhile): nobody takes those any more."""
        for e in entries:
            if e.zxid <= applied:
                self.decoded.pop(e.zxid, None)

    async def run(self) -> None:
        """The storage worker: persists each Ready, retrying while the disk is full."""
        while True:
            rd = await self._recv.receive()
            while True:
                started = self.disk.now()
                try:
                    await self._persist(rd)
                except Exception as exc:
                    self._failed(exc)
                    # The member acknowledges nothing meanwhile; the others go on if they
                    # are a quorum, and this one catches up once there is space again.
                    await trio.sleep(FULL_RETRY_S)
                    continue
                break
            self.disk.note_written()
            if rd.to_persist:
                self.disk.note_synced(len(rd.to_persist), started)
            self.jobs -= 1
            await self._post(Persisted(rd))

    async def _persist(self, rd: Ready) -> None:
        disk = self.disk
        if not self.appends_only(rd):
            async with disk.exclusive:  # never beside a snapshot's save or a purge
                await disk.blocking(self.persist_steps, rd)
        elif self._background is not None and disk.barrier_inline():
            await self._persist_in_background(rd)
        else:
            await disk.blocking(self.persist_steps, rd)

    async def _persist_in_background(self, rd: Ready) -> None:
        background = self._background
        assert background is not None
        if self._progress_of is rd and "append" in self._progress:
            return
        self.disk.storage.append(self._decode(rd))
        if not background.sync_start():
            self._mark(rd, "append")
            return
        while not background.sync_finished():
            fd = background.sync_fileno()
            if fd < 0:
                await self.disk.blocking(self.disk.storage.sync)
                return
            await trio.lowlevel.wait_readable(fd)
        self._mark(rd, "append")

    def _decode(self, rd: Ready) -> list[Txn]:
        decoded = self.decoded
        txns = []
        for e in rd.to_persist:
            t = e.txn
            if t is None:
                t = decoded[e.zxid] = Txn.decode(e.data)
            txns.append(t)
        return txns

    def _mark(self, rd: Ready, step: str) -> None:
        if self._progress_of is not rd:
            self._progress_of, self._progress = rd, set()
        self._progress.add(step)

    def persist_steps(self, rd: Ready) -> None:
        """Steps 1-5 of the Ready contract (inline or in the worker's thread).

        Resumable: a step that raised (a full disk) is tried again by the next call for
        the same Ready, after the steps that completed.  The appends count as done only
        once their barrier returned: on a full disk the engine forgets what was appended
        (:class:`~trizab.storage.StorageFull`), and they are appended again.
        """
        storage = self.disk.storage
        if self._progress_of is not rd:
            self._progress_of, self._progress = rd, set()
        done = self._progress
        if rd.snapshot is not None and "snapshot" not in done:
            storage.truncate_after(rd.snapshot.zxid)
            storage.save_snapshot(rd.snapshot.zxid, rd.snapshot.data)
            done.add("snapshot")
        if rd.truncate_after is not None and "truncate" not in done:
            storage.truncate_after(rd.truncate_after)
            done.add("truncate")
        if rd.to_persist and "append" not in done:
            storage.append(self._decode(rd))
            storage.sync()  # done only once durable: a full disk forgets the append
            done.add("append")
        hs = rd.hard_state
        if hs is not None:
            # Each epoch file costs an fsync; write only the one that changed.
            if hs.accepted_epoch != self._durable_epochs[0]:
                storage.set_accepted_epoch(hs.accepted_epoch)
            if hs.current_epoch != self._durable_epochs[1]:
                storage.set_current_epoch(hs.current_epoch)
            self._durable_epochs = (hs.accepted_epoch, hs.current_epoch)
        # Step 5, the barrier, is the appends' sync above: every other step is durable on
        # return (trizab.storage).
