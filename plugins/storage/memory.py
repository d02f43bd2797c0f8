"""``storage=memory``: nothing on disk, for tests and throw-away servers.

Theory of operation
-------------------
The same contract as the durable engines, kept in lists: ``append`` buffers,
``sync`` moves the buffer into the "durable" list (so ``read_from`` sees exactly
what a durable engine would), and ``open`` on a fresh instance finds nothing.
Everything is lost on ``close`` or when the process dies: ``durable = False``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from trizab.plugin import Option
from trizab.storage import Recovered
from trizab.txn import Txn


class MemoryStoragePlugin:
    """In-memory storage engine (``storage=memory``)."""

    description: ClassVar[str] = "keeps everything in memory; nothing survives a restart (tests only)"
    options: ClassVar[tuple[Option, ...]] = ()
    durable: ClassVar[bool] = False

    def __init__(
        self, *, data_dir: Path | None = None, data_log_dir: Path | None = None, force_sync: bool = True
    ) -> None:
        self._lock = threading.Lock()
        self._pending: list[Txn] = []
        self._txns: list[Txn] = []
        self._last_zxid = -1
        self._snapshots: list[tuple[int, bytes]] = []
        self._accepted_epoch = 0
        self._current_epoch = 0
        self._stats = {"txns": 0, "syncs": 0, "max_batch": 0}

    def open(self) -> Recovered:
        return Recovered(None, 0, [], 0, 0)

    def append(self, txns: Sequence[Txn]) -> None:
        with self._lock:
            for txn in txns:
                if txn.zxid <= self._last_zxid:
                    raise ValueError(f"zxid {txn.zxid:#x} not above last appended {self._last_zxid:#x}")
                self._last_zxid = txn.zxid
            self._pending.extend(txns)

    def sync(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._txns.extend(batch)
            self._stats["syncs"] += 1
            self._stats["txns"] += len(batch)
            self._stats["max_batch"] = max(self._stats["max_batch"], len(batch))

    def read_from(self, zxid: int) -> Iterator[Txn]:
        with self._lock:
            found = [t for t in self._txns if t.zxid > zxid]
        return iter(found)

    def truncate_after(self, zxid: int) -> None:
        self.sync()
        with self._lock:
            self._txns = [t for t in self._txns if t.zxid <= zxid]
            self._snapshots = [s for s in self._snapshots if s[0] <= zxid]
            self._last_zxid = self._txns[-1].zxid if self._txns else zxid

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        with self._lock:
            self._snapshots.append((zxid, bytes(data)))
            self._snapshots.sort(key=lambda s: s[0])

    def set_accepted_epoch(self, epoch: int) -> None:
        self._accepted_epoch = epoch

    def set_current_epoch(self, epoch: int) -> None:
        self._current_epoch = epoch

    def purge(self, keep: int) -> None:
        with self._lock:
            if keep < 1:
                raise ValueError("purge must keep at least one snapshot")
            self._snapshots = self._snapshots[-keep:]
            if self._snapshots:
                oldest = self._snapshots[0][0]
                self._txns = [t for t in self._txns if t.zxid > oldest]

    def snapshots(self) -> list[int]:
        """Zxids of the snapshots held, oldest first (for tests and tooling)."""
        return [z for z, _ in self._snapshots]

    def statistics(self) -> dict[str, Any]:
        return dict(self._stats, fsyncs=0)

    def close(self) -> None:
        pass
