"""The storage plugin interface (entry-point group ``trizab.storage``).

Theory of operation
-------------------
A storage engine keeps three things for one server, like Apache ZooKeeper's
``FileTxnSnapLog`` does, but behind a small typed contract:

* the transaction log: ``append`` buffers transactions in zxid order; ``sync`` is
  the durability barrier (when it returns, everything appended before it is
  durable); ``read_from`` and ``truncate_after`` serve ZAB recovery;
* snapshots of the data tree and sessions (opaque bytes produced by the tree);
* the persistent ZAB epochs (``acceptedEpoch``, ``currentEpoch``).

Engines are blocking, synchronous objects called by the runtime, never by the
sans-I/O core.  ``append`` only encodes into memory and is cheap enough to call
from the event loop.  ``sync`` blocks for a disk barrier: the runtime calls it on
the event loop itself as long as the disk is fast (one fdatasync costs less than
a hand-off to a thread and back) and in a worker thread once syncs turn slow, or
when a long job comes with it (a member's snapshot install, truncation, epoch
change, very large batch); ``save_snapshot`` and ``purge`` run in a worker thread.  (Every
call of an engine that is not ``durable`` runs inline: it never waits on a
disk.)  ``append`` may run while a ``sync`` is in progress in another thread
(that is how group commit overlaps the next batch with the running fsync);
``sync`` covers exactly what was appended before it was called.
``save_snapshot`` and ``purge`` may also run in a background thread while
``append``/``sync`` go on (a snapshot of a large tree must not stall the log).
Other calls must not overlap each other.  A write is acknowledged to a client
only after the ``sync`` covering it has returned.

An engine may also offer :class:`BackgroundSync` (``txnlog`` does): the server
then starts each batch's barrier and keeps serving while the disk works, instead
of blocking its event loop or paying for a thread hand-off.

Plugins
-------
An engine is a plugin of the entry-point group ``trizab.storage`` (see
:mod:`trizab.plugin`).  The registered class is constructed as::

    cls(data_dir=Path | None, data_log_dir=Path | None, force_sync=bool, **options)

where ``options`` are the engine's own declared ``storage.<name>=`` options, and
declares ``durable: ClassVar[bool]`` (False for engines that forget everything
when closed; the conformance suite skips reopen tests for them).  ``open()`` must
be called once before anything else.

Progress: an engine whose ``open`` can take long may have a ``progress`` attribute
(None by default); the runtime sets it before ``open`` to a callable
``progress(what, done, total, unit)`` (``("reading log", 3, 10, "segments")``), which the
engine calls now and then, from the thread ``open`` runs in.  It never prints itself.

Snapshots: ``save_snapshot`` ends the current log segment (the next append goes
to a new one, as ZooKeeper's ``rollLog``) and may be a *fuzzy* snapshot: its data
may already contain some transactions after ``zxid``; recovery replays every
logged transaction after ``zxid`` and applying them again must be idempotent.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import attrs

from trizab.txn import Txn


class StorageError(Exception):
    """The stored state cannot be used as it is (for example a gap inside the log)."""


class StorageFull(StorageError):
    """The disk (or a quota) is full: a barrier could not write what was appended.

    Raised by ``sync`` or ``sync_start`` instead of the ``OSError`` (ENOSPC, EDQUOT)
    when the engine could undo the failed write: nothing appended since the last
    barrier that returned (or the last ``sync_start`` that did not raise) is durable
    or will become so after a crash, every such transaction is forgotten, and the
    engine stays usable.  The runtime answers those transactions' requests with an
    error and may append them, or others with the same zxids, again later.  Syncs
    already in flight are not affected.
    """


@attrs.frozen
class Recovered:
    """What an engine found when it opened: the newest valid snapshot and the log after it."""

    snapshot: bytes | None
    snapshot_zxid: int
    # Every durable transaction with zxid > snapshot_zxid, in zxid order.  A fuzzy
    # snapshot may already contain some of them; applying them again is idempotent.
    txns: list[Txn]
    accepted_epoch: int
    current_epoch: int

    @property
    def last_zxid(self) -> int:
        return self.txns[-1].zxid if self.txns else self.snapshot_zxid


@runtime_checkable
class Storage(Protocol):
    """One server's durable state.  See the module docstring for the rules."""

    # True if what was synced survives close() and a crash (memory: False).
    durable: ClassVar[bool]

    def open(self) -> Recovered:
        """Recover (truncating any torn tail of the log) and return what is durable."""
        ...

    def append(self, txns: Sequence[Txn]) -> None:
        """Buffer ``txns`` (strictly increasing zxids, above every zxid already appended)."""
        ...

    def sync(self) -> None:
        """Durability barrier: return once every appended transaction is durable.

        :class:`StorageFull` when the disk is full (see there: the engine stays usable).
        Any other ``OSError`` here is final: the engine refuses further syncs (the state
        of unsynced pages is unknown after a failed fsync), and the server must stop.
        """
        ...

    def read_from(self, zxid: int) -> Iterator[Txn]:
        """Durable transactions with zxid > ``zxid``, in order."""
        ...

    def truncate_after(self, zxid: int) -> None:
        """Drop every transaction (and snapshot) with zxid > ``zxid`` (ZAB's TRUNC); durable on return."""
        ...

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        """Persist a snapshot whose state includes every txn up to ``zxid``."""
        ...

    def snapshots(self) -> list[int]:
        """Zxids of the snapshots held, oldest first."""
        ...

    def set_accepted_epoch(self, epoch: int) -> None:
        """Persist ``acceptedEpoch`` (durable on return, replaced atomically)."""
        ...

    def set_current_epoch(self, epoch: int) -> None:
        """Persist ``currentEpoch`` (durable on return, replaced atomically)."""
        ...

    def purge(self, keep: int) -> None:
        """Delete snapshots and logs no longer needed, keeping the newest ``keep`` snapshots."""
        ...

    def statistics(self) -> dict[str, Any]:
        """Counters for monitoring and benchmarks (txns, syncs, fsyncs, bytes, batch sizes)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class BackgroundSync(Protocol):
    """Optional: an engine that can make appended transactions durable without blocking.

    The server calls ``sync_start()`` after ``append``; when it returns True it keeps
    serving and waits for ``sync_fileno()`` to turn readable, then calls
    ``sync_finished()`` until it returns True.  Only then are the transactions of that
    batch durable (and acknowledged).  An engine may declare ``sync_slots`` (an int
    class attribute, default 1): that many syncs may be in flight at once, each
    started on what was appended since the previous start.  ``sync_finished`` reports
    the starts in the order they were made, one per True, including those the engine
    completed itself (txnlog does, before it starts a new log segment): the descriptor
    to wait on can change at every ``sync_start``, and the server asks again after each.
    ``sync()`` waits for all of them first.  Errors are those of ``sync()``.
    """

    def sync_start(self) -> bool:
        """Start making every appended transaction durable; False if nothing is left to wait for."""
        ...

    def sync_fileno(self) -> int:
        """A descriptor that turns readable when the oldest unreported start may have
        finished; -1 when it already has (call ``sync_finished`` now)."""
        ...

    def sync_finished(self) -> bool:
        """Non-blocking: True once the oldest unreported start is durable (it is then
        reported, and the next call is about the next start)."""
        ...
