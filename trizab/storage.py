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

Engines are blocking, synchronous objects: the runtime calls them from one worker
task (through ``trio.to_thread``), never from the sans-I/O core, and never from
two threads at once.  A write is acknowledged to a client only after the
``sync`` covering it has returned.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

import attrs

from trizab.txn import Txn


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

    def open(self) -> Recovered:
        """Recover (truncating any torn tail of the log) and return what is durable."""
        ...

    def append(self, txns: Sequence[Txn]) -> None:
        """Buffer ``txns`` (strictly increasing zxids, above every zxid already appended)."""
        ...

    def sync(self) -> None:
        """Durability barrier: return once every appended transaction is durable."""
        ...

    def read_from(self, zxid: int) -> Iterator[Txn]:
        """Durable transactions with zxid > ``zxid``, in order."""
        ...

    def truncate_after(self, zxid: int) -> None:
        """Drop every transaction with zxid > ``zxid`` (ZAB's TRUNC)."""
        ...

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        """Persist a snapshot whose state includes every txn up to ``zxid``."""
        ...

    def set_accepted_epoch(self, epoch: int) -> None: ...

    def set_current_epoch(self, epoch: int) -> None: ...

    def purge(self, keep: int) -> None:
        """Delete snapshots and logs no longer needed, keeping the newest ``keep`` snapshots."""
        ...

    def close(self) -> None: ...
