"""``storage=sqlite``: the storage interface on the standard library's sqlite3 (WAL mode).

Theory of operation
-------------------
One database file, ``<dataDir>/trizab.sqlite3`` (``dataLogDir`` is not used:
SQLite keeps its WAL next to the database), with three tables::

    txns(zxid INTEGER PRIMARY KEY, data BLOB)       -- encoded TxnHeader + body
    snapshots(zxid INTEGER PRIMARY KEY, data BLOB)
    meta(key TEXT PRIMARY KEY, value INTEGER)        -- acceptedEpoch, currentEpoch

``append`` encodes the transactions and keeps them in a Python list (cheap and
safe to call while a ``sync`` runs in another thread); ``sync`` inserts the
batch and commits in one SQLite transaction, which is the durability barrier:
``PRAGMA synchronous=FULL`` makes the commit fsync the WAL, so one commit covers
the whole batch (group commit).  ``forceSync=no`` sets ``synchronous=OFF``
(unsafe, as for ``txnlog``).  SQLite's own journal gives atomic commits, so
recovery is just reading the tables back; there is no torn tail to repair.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from trizab.plugins.storage.dirs import durable_mkdir

from trizab.plugin import Option, parse_int
from trizab.storage import Recovered, StorageFull
from trizab.txn import Txn

PROGRESS_TXNS = 20_000  # transactions read between two progress reports

_SCHEMA = """
CREATE TABLE IF NOT EXISTS txns(zxid INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots(zxid INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SqliteStoragePlugin:
    """SQLite (WAL) storage engine (``storage=sqlite``)."""

    description: ClassVar[str] = "stdlib sqlite3 in WAL mode; one commit per group of txns"
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "cache_kib",
            parse_int(64, 1 << 24),
            8192,
            "SQLite page cache size in KiB (PRAGMA cache_size)",
            "int",
        ),
    )
    durable: ClassVar[bool] = True

    def __init__(
        self,
        *,
        data_dir: Path | None,
        data_log_dir: Path | None = None,
        force_sync: bool = True,
        cache_kib: int = 8192,
    ) -> None:
        if data_dir is None:
            raise ValueError("needs dataDir")
        self.path = Path(data_dir) / "trizab.sqlite3"
        self.force_sync = force_sync
        self.cache_kib = cache_kib
        # Set by the runtime before open(): (what, done, total, unit), while the log is read.
        self.progress: Callable[[str, int, int, str], None] | None = None
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # guards _pending and _last_appended
        self._db_lock = threading.Lock()  # one statement stream on the connection
        self._pending: list[tuple[int, bytes]] = []
        self._last_appended = -1
        self._last_synced = -1  # the last zxid committed to the database
        self._stats: dict[str, Any] = {
            "txns": 0,
            "syncs": 0,
            "fsyncs": 0,
            "max_batch": 0,
            "commit_seconds": 0.0,
        }

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("storage not opened")
        return self._db

    def open(self) -> Recovered:
        # The database's own file and its WAL SQLite makes durable (it fsyncs the directory
        # when it creates a journal); the directory's entry in its parent is ours to sync.
        durable_mkdir(self.path.parent, levels=1)
        # Autocommit mode; transactions are opened explicitly with BEGIN.
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if self.force_sync else 'OFF'}")
        db.execute(f"PRAGMA cache_size=-{self.cache_kib}")
        db.executescript(_SCHEMA)
        self._db = db
        row = db.execute("SELECT zxid, data FROM snapshots ORDER BY zxid DESC LIMIT 1").fetchone()
        snapshot, snap_zxid = (bytes(row[1]), row[0]) if row else (None, 0)
        txns = self._read_txns(db, snap_zxid)
        (max_zxid,) = db.execute("SELECT max(zxid) FROM txns").fetchone()
        last = max(max_zxid if max_zxid is not None else 0, snap_zxid)
        self._last_appended = self._last_synced = last
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        default = last >> 32
        return Recovered(
            snapshot,
            snap_zxid,
            txns,
            meta.get("acceptedEpoch", default),
            meta.get("currentEpoch", default),
        )

    def _read_txns(self, db: sqlite3.Connection, after: int) -> list[Txn]:
        rows = db.execute("SELECT data FROM txns WHERE zxid > ? ORDER BY zxid", (after,))
        progress = self.progress
        if progress is None:
            return [Txn.decode(data) for (data,) in rows]
        (total,) = db.execute("SELECT count(*) FROM txns WHERE zxid > ?", (after,)).fetchone()
        txns = []
        for (data,) in rows:
            txns.append(Txn.decode(data))
            if len(txns) % PROGRESS_TXNS == 0:
                progress("reading log", len(txns), total, "txns")
        progress("reading log", len(txns), total, "txns")
        return txns

    def append(self, txns: Sequence[Txn]) -> None:
        rows = [(t.zxid, t.encode()) for t in txns]
        with self._lock:
            last = self._last_appended
            for zxid, _ in rows:
                if zxid <= last:
                    raise ValueError(f"zxid {zxid:#x} not above last appended {last:#x}")
                last = zxid
            self._pending.extend(rows)
            self._last_appended = last

    def sync(self) -> None:
        with self._db_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            t0 = time.perf_counter()
            db = self.db
            db.execute("BEGIN")
            try:
                db.executemany("INSERT INTO txns(zxid, data) VALUES (?, ?)", batch)
                db.execute("COMMIT")
            except BaseException as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                if (
                    isinstance(exc, sqlite3.Error)
                    and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                ):
                    # Rolled back: none of the batch is in the database.  Forget what was
                    # appended since the last commit (trizab.storage.StorageFull).
                    with self._lock:
                        self._pending = []
                        self._last_appended = self._last_synced
                    raise StorageFull(f"{self.path}: {exc}") from exc
                raise
            self._last_synced = batch[-1][0]
            self._stats["commit_seconds"] += time.perf_counter() - t0
            self._stats["syncs"] += 1
            self._stats["fsyncs"] += 1 if self.force_sync else 0
            self._stats["txns"] += len(batch)
            self._stats["max_batch"] = max(self._stats["max_batch"], len(batch))

    def read_from(self, zxid: int) -> Iterator[Txn]:
        with self._db_lock:
            rows = self.db.execute("SELECT data FROM txns WHERE zxid > ? ORDER BY zxid", (zxid,)).fetchall()
        return (Txn.decode(data) for (data,) in rows)

    def truncate_after(self, zxid: int) -> None:
        self.sync()
        with self._db_lock:
            db = self.db
            db.execute("BEGIN")
            db.execute("DELETE FROM txns WHERE zxid > ?", (zxid,))
            db.execute("DELETE FROM snapshots WHERE zxid > ?", (zxid,))
            db.execute("COMMIT")
            with self._lock:
                self._last_appended = self._last_synced = zxid

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        with self._db_lock:
            self.db.execute("INSERT OR REPLACE INTO snapshots(zxid, data) VALUES (?, ?)", (zxid, data))

    def _set_meta(self, key: str, value: int) -> None:
        with self._db_lock:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    def set_accepted_epoch(self, epoch: int) -> None:
        self._set_meta("acceptedEpoch", epoch)

    def set_current_epoch(self, epoch: int) -> None:
        self._set_meta("currentEpoch", epoch)

    def purge(self, keep: int) -> None:
        if keep < 1:
            raise ValueError("purge must keep at least one snapshot")
        with self._db_lock:
            db = self.db
            zxids = [z for (z,) in db.execute("SELECT zxid FROM snapshots ORDER BY zxid DESC")]
            if len(zxids) <= keep:
                return
            oldest = zxids[keep - 1]
            db.execute("BEGIN")
            db.execute("DELETE FROM snapshots WHERE zxid < ?", (oldest,))
            db.execute("DELETE FROM txns WHERE zxid <= ?", (oldest,))
            db.execute("COMMIT")

    def snapshots(self) -> list[int]:
        """Zxids of the snapshots held, oldest first (for tests and tooling)."""
        with self._db_lock:
            return [z for (z,) in self.db.execute("SELECT zxid FROM snapshots ORDER BY zxid")]

    def statistics(self) -> dict[str, Any]:
        stats = dict(self._stats)
        stats["mean_batch"] = stats["txns"] / stats["syncs"] if stats["syncs"] else 0.0
        return stats

    def close(self) -> None:
        with self._db_lock:
            if self._db is not None:
                self._db.close()
                self._db = None
