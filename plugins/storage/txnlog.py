"""``storage=txnlog`` (the default): ZooKeeper's transaction log and snapshots.

Theory of operation
-------------------
The on-disk layout is Apache ZooKeeper's (``FileTxnLog``, ``FileSnap``,
``QuorumPeer``'s epoch files), so directories can be inspected with ZooKeeper's
tools and a log written by one side can be read by the other::

    <dataLogDir>/version-2/log.<hex zxid of the first txn in it>
    <dataDir>/version-2/snapshot.<hex zxid>   acceptedEpoch   currentEpoch

Log segment
    ``FileHeader{int magic="ZKLG"; int version=2; long dbid=0}`` then records
    ``long adler32(txn) ; int len ; txn bytes (TxnHeader + body) ; byte 'B'``.
    The file is preallocated (extended sparsely in ``prealloc`` steps, 64 MiB by
    default), so the log ends at the first record whose length is 0.  A new
    segment starts after every snapshot, so purge can drop whole files.

Group commit
    ``append`` encodes into one ``bytearray`` and never touches the disk; ``sync`` swaps that buffer
    out, issues one ``write`` and one ``fdatasync`` for the whole batch (unless
    ``forceSync=no``, which is unsafe: a power failure can lose acknowledged
    writes).  Appends made while an fsync runs go into the next batch, so under
    load one fsync covers everything that arrived during the previous one.
    With ``syncer=helper`` (the default) the engine also offers
    :class:`~trizab.storage.BackgroundSync`: ``sync_start`` writes the batch
    and hands the fdatasync to a helper process (:mod:`.fsyncer`), and the
    server's event loop keeps serving until ``sync_finished``.  Two syncs may be
    in flight (two helpers): a write arriving while the disk works on an
    earlier batch gets its own fdatasync instead of waiting for that one to end
    (concurrent fdatasyncs measured here: 2.5 times the rate of one at the same
    latency).  They complete in the order they started, and the durable end of
    the segment (what ``read_from`` may read) only moves as they do; a new
    segment starts only once every sync on the old one finished.  If a helper
    dies, the engine fdatasyncs inline (covering everything in flight), logs it
    and syncs inline from then on; if a helper's fdatasync fails, the engine
    fails as for an inline one.

Snapshot
    ``FileHeader{"ZKSN", 2, 0}`` + data + ``long adler32(header+data)`` +
    ``ustring "/"``, as ``FileSnap`` writes it.  Written to a temporary name,
    fsynced, renamed, and the directory fsynced, so a snapshot either exists
    whole or not at all; a snapshot whose checksum fails is skipped on open.

Recovery (``open``)
    The newest snapshot that verifies, then every log record after its zxid.
    Reading stops at the first record that is torn (cut short), fails its
    checksum, lacks its end marker, does not decode, or does not increase the
    zxid.  The log is truncated there, with a warning giving the number of bytes
    dropped, and any later segment is renamed ``*.corrupt`` (never replayed:
    it would follow a gap).  A broken record is therefore never applied.

Epochs
    ``acceptedEpoch`` / ``currentEpoch`` hold the number as decimal text, written
    to a temporary file, fsynced and renamed (ZooKeeper's ``AtomicFileOutputStream``).

Compatibility notes: logs written by ZooKeeper 3.6+ carry a ``TxnDigest`` after
some bodies; reading tolerates it (and drops it).  Snapshot payloads are the
tree's own serialisation, not necessarily ZooKeeper's ``DataTree`` format.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from trizab.plugins.storage.dirs import durable_mkdir, fsync_dir
from trizab.plugins.storage.fsyncer import FsyncHelper, FsyncHelperGone

from trizab.plugin import Option, parse_choice, parse_size
from trizab.storage import Recovered, StorageError, StorageFull
from trizab.txn import Txn
from trizab.wire.jute import JuteError

log = logging.getLogger(__name__)

TXNLOG_MAGIC = int.from_bytes(b"ZKLG", "big")
SNAP_MAGIC = int.from_bytes(b"ZKSN", "big")
VERSION = 2
VERSION_DIR = "version-2"
EOR = 0x42  # 'B', ZooKeeper's end-of-record marker

_FILE_HEADER = struct.Struct(">iiq")
_REC_HEAD = struct.Struct(">qi")  # checksum, length
HEADER_SIZE = _FILE_HEADER.size
_LOG_NAME = re.compile(r"^log\.([0-9a-f]+)$")
_SNAP_NAME = re.compile(r"^snapshot\.([0-9a-f]+)$")
# ZooKeeper's TxnDigest{int version; long treeDigest}, appended by 3.6+ servers.
_DIGEST_SIZE = 12
_TXN_HEADER_SIZE = 8 + 4 + 8 + 8 + 4
_ZXID = struct.Struct(">q")
_MAX_RECORD = 0x7FFFFFFF


def _atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` by ``data``: temp file, fsync, rename, fsync the directory."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()  # a full disk gets its space back
        raise
    os.close(fd)
    os.replace(tmp, path)
    if durable:
        fsync_dir(path.parent)


def decode_txn(data: bytes | memoryview) -> Txn:
    """Decode one logged transaction, tolerating ZooKeeper 3.6+'s trailing TxnDigest."""
    try:
        return Txn.decode(data)
    except JuteError:
        if len(data) <= _DIGEST_SIZE:
            raise
        return Txn.decode(data[:-_DIGEST_SIZE])


def encode_txns_into(out: bytearray, txns: Sequence[Txn]) -> None:
    """Append the log records for ``txns`` to ``out`` (measured faster than patching in place)."""
    pack = _REC_HEAD.pack
    adler32 = zlib.adler32
    for txn in txns:
        # Txn.encode() spelled out, minus its final copy to bytes: this runs per write.
        body = bytearray()
        txn.header.jute_encode(body)
        if txn.body is not None:
            txn.body.jute_encode(body)
        out += pack(adler32(body), len(body))
        out += body
        out.append(EOR)


class LogScan:
    """Result of reading one segment: the records and where (and why) reading stopped."""

    __slots__ = ("end", "problem", "txns")

    def __init__(self, txns: list[Txn], end: int, problem: str | None) -> None:
        self.txns = txns
        self.end = end  # offset just after the last good record
        self.problem = problem  # None: clean end (EOF or zero padding)


def scan_log(data: bytes | memoryview, after_zxid: int = -1, limit: int | None = None) -> LogScan:
    """Parse a segment's bytes; keep txns with zxid > ``after_zxid``; stop at the first bad record."""
    size = len(data) if limit is None else min(limit, len(data))
    if size < HEADER_SIZE:
        return LogScan([], 0, "torn file header" if size else None)
    magic, version, _dbid = _FILE_HEADER.unpack_from(data, 0)
    if magic != TXNLOG_MAGIC or version != VERSION:
        if magic == 0 and version == 0:
            return LogScan([], 0, None)  # created, header never written
        return LogScan([], 0, f"bad file header (magic {magic:#x}, version {version})")
    txns: list[Txn] = []
    pos = HEADER_SIZE
    last = -1
    unpack_from = _REC_HEAD.unpack_from
    adler32 = zlib.adler32
    view = memoryview(data)
    try:
        while True:
            if pos + _REC_HEAD.size > size:
                tail = bytes(view[pos:size])
                return LogScan(txns, pos, "torn record header" if tail.strip(b"\0") else None)
            crc, length = unpack_from(data, pos)
            if length == 0 and crc == 0:
                return LogScan(txns, pos, None)  # preallocated zeros: the clean end
            if length <= 0 or length > _MAX_RECORD:
                return LogScan(txns, pos, f"bad record length {length}")
            end = pos + _REC_HEAD.size + length
            if end + 1 > size:
                return LogScan(txns, pos, "torn record")
            body = view[pos + _REC_HEAD.size : end]
            if adler32(body) != (crc & 0xFFFFFFFF) or crc >> 32:
                return LogScan(txns, pos, "checksum mismatch")
            if data[end] != EOR:
                return LogScan(txns, pos, "missing end-of-record marker")
            if length < _TXN_HEADER_SIZE:
                return LogScan(txns, pos, f"record of {length} bytes is shorter than a TxnHeader")
            # TxnHeader{long clientId; int cxid; long zxid; ...}: peek the zxid so that
            # records already covered by a snapshot are checked but not decoded.
            (zxid,) = _ZXID.unpack_from(data, pos + _REC_HEAD.size + 12)
            if zxid <= last:
                return LogScan(txns, pos, f"zxid {zxid:#x} does not increase")
            if zxid > after_zxid:
                try:
                    txns.append(decode_txn(body))
                except JuteError as exc:
                    return LogScan(txns, pos, f"undecodable record ({exc})")
            last = zxid
            pos = end + 1
    finally:
        view.release()


def _read_segment(path: Path, limit: int | None = None) -> bytes:
    """The bytes of a segment up to its first hole (preallocation is sparse) or ``limit``."""
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        try:
            # Records are written contiguously from the start; the preallocated rest is a hole.
            end = os.lseek(fd, 0, os.SEEK_HOLE)
        except OSError:
            end = size
        if limit is not None:
            end = min(end, limit)
        f.seek(0)
        return f.read(end)


def _dirty_end(path: Path, data: bytes, end: int) -> int:
    """Offset just past the last non-zero byte at or after ``end`` (``end`` if there is none)."""
    last = _nonzero_end(data, end)
    with open(path, "rb") as f:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        pos = max(len(data), end)
        while pos < size:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError:
                break  # ENXIO: only holes (zeros) remain
            f.seek(pos)
            chunk = f.read(_ZERO_CHUNK)
            if not chunk:
                break
            chunk_end = _nonzero_end(chunk, 0)
            if chunk_end:
                last = pos + chunk_end
            pos += len(chunk)
    return last


# A segment copied without its holes (cp, a backup) holds its preallocated zeros as data: 53 MB
# after a 100,000-record log, which rstrip(b"\0") scanned at 0.5 GB/s (0.11 s of a restart).
# startswith() against a block of zeros compares with memcmp and copies nothing.
_ZERO_CHUNK = 1 << 20
_ZEROS = bytes(_ZERO_CHUNK)


def _nonzero_end(data: bytes, start: int) -> int:
    """Offset just past the last non-zero byte of ``data[start:]`` (``start`` if all are zeros)."""
    pos = len(data)
    while pos > start:
        lo = max(start, pos - _ZERO_CHUNK)
        zeros = _ZEROS if pos - lo == _ZERO_CHUNK else _ZEROS[: pos - lo]
        if not data.startswith(zeros, lo):
            return lo + len(data[lo:pos].rstrip(b"\0"))
        pos = lo
    return start


class TxnLogStoragePlugin:
    """ZooKeeper-format transaction log + snapshots (``storage=txnlog``)."""

    description: ClassVar[str] = (
        "ZooKeeper-format txn log (checksummed, preallocated, group commit) + snapshots (default)"
    )
    options: ClassVar[tuple[Option, ...]] = (
        Option(
            "prealloc",
            parse_size,
            64 << 20,
            "log segments grow in steps of this size (zookeeper.preAllocSize)",
            "size",
        ),
        Option(
            "syncer",
            parse_choice("helper", "inline"),
            "helper",
            "where fdatasync runs: helper (a helper process, so the server keeps serving "
            "during it) or inline (in the caller)",
            "one of helper|inline",
        ),
    )
    durable: ClassVar[bool] = True
    # BackgroundSync: syncs that may be in flight at once (one helper process each).
    sync_slots: ClassVar[int] = 2

    def __init__(
        self,
        *,
        data_dir: Path | None,
        data_log_dir: Path | None = None,
        force_sync: bool = True,
        prealloc: int = 64 << 20,
        syncer: str = "helper",
    ) -> None:
        if data_dir is None:
            raise ValueError("needs dataDir")
        if prealloc < 4096:
            raise ValueError(f"prealloc={prealloc} is below 4096 bytes")
        self.snap_dir = Path(data_dir) / VERSION_DIR
        self.log_dir = Path(data_log_dir or data_dir) / VERSION_DIR
        self.force_sync = force_sync
        self.prealloc = prealloc
        # Set by the runtime before open(): (what, done, total, unit), per log segment read.
        self.progress: Callable[[str, int, int, str], None] | None = None
        # _lock guards the append buffer and the bookkeeping shared with sync();
        # _io_lock serialises everything that touches log files.
        self._lock = threading.Lock()
        self._io_lock = threading.Lock()
        self._buf = bytearray()
        self._buf_first_zxid = -1
        self._buf_count = 0
        self._last_appended = -1
        self._last_written = -1  # the last zxid written to the log (durable or syncing)
        self._fd = -1
        self._file: Path | None = None
        self._pos = 0  # end of durable records in the current segment
        self._write_end = 0  # end of written records (beyond _pos while syncs are in flight)
        self._size = 0  # allocated size of the current segment
        self._roll = True  # next write starts a new segment
        self._opened = False
        # After a failed write or fsync the page cache state is unknown (fsyncgate):
        # never retry, refuse further writes; the server must stop and recover.
        self._failed: BaseException | None = None
        # Background sync (syncer=helper): helper processes, started on first use.
        self._use_helper = syncer == "helper"
        self._helpers: list[FsyncHelper] = []
        # Oldest first: (durable end once done, txns, bytes, start time, its helper or None,
        # start number).
        self._in_flight: deque[tuple[int, int, int, float, FsyncHelper | None, int]] = deque()
        # sync_start calls are numbered from 1; sync_finished reports them in that order.  The
        # engine may complete syncs itself (the drain before a new segment, the inline fallback,
        # sync()), so "durable up to start N" is kept apart from "reported up to start N".
        self._starts = 0
        self._durable_start = 0
        self._reported_start = 0
        self._stats: dict[str, Any] = {
            "txns": 0,
            "syncs": 0,
            "fsyncs": 0,
            "bytes": 0,
            "max_batch": 0,
            "fsync_seconds": 0.0,
            "segments": 0,
        }

    # -- files ---------------------------------------------------------------

    def _logs(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.log_dir.iterdir():
            m = _LOG_NAME.match(p.name)
            if m:
                found.append((int(m.group(1), 16), p))
        return sorted(found)

    def _snapshots(self) -> list[tuple[int, Path]]:
        found = []
        for p in self.snap_dir.iterdir():
            m = _SNAP_NAME.match(p.name)
            if m:
                found.append((int(m.group(1), 16), p))
        return sorted(found)

    def snapshots(self) -> list[int]:
        """Zxids of the snapshot files present, oldest first (for tests and tooling)."""
        return [z for z, _ in self._snapshots()]

    def _read_epoch(self, name: str) -> int | None:
        try:
            text = (self.snap_dir / name).read_text().strip()
        except FileNotFoundError:
            return None
        try:
            return int(text)
        except ValueError:
            raise StorageError(f"{self.snap_dir / name}: not an epoch number: {text[:40]!r}") from None

    def _load_snapshot(self, path: Path) -> bytes | None:
        # header + data + long checksum + ustring "/" (int 1, b"/")
        tail_size = 8 + 4 + 1
        try:
            with open(path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < HEADER_SIZE + tail_size:
                    log.warning("snapshot %s is too short (%d bytes); skipping it", path, size)
                    return None
                # Three reads, so that the data is read straight into the bytes returned: slicing
                # it out of the whole file copied 128 MB (0.06 s of a 1,000,000-znode restart).
                header = f.read(HEADER_SIZE)
                body = f.read(size - HEADER_SIZE - tail_size)
                tail = f.read()
        except OSError as exc:
            log.warning("cannot read snapshot %s: %s", path, exc)
            return None
        magic, version, _ = _FILE_HEADER.unpack_from(header, 0)
        (crc,) = struct.unpack_from(">q", tail, 0) if len(tail) == tail_size else (None,)
        if (
            magic != SNAP_MAGIC
            or version != VERSION
            or len(body) != size - HEADER_SIZE - tail_size
            or crc is None
            or tail[8:] != b"\0\0\0\x01/"
            or zlib.adler32(body, zlib.adler32(header)) != crc
        ):
            log.warning("snapshot %s fails its checksum or header; skipping it", path)
            return None
        return body

    # -- open / recovery -----------------------------------------------------

    def open(self) -> Recovered:
        started = time.perf_counter()
        durable_mkdir(self.snap_dir)
        durable_mkdir(self.log_dir)
        snapshot: bytes | None = None
        snap_zxid = 0
        for zxid, path in reversed(self._snapshots()):
            snapshot = self._load_snapshot(path)
            if snapshot is not None:
                snap_zxid = zxid
                break
        txns = self._recover_logs(snap_zxid)
        last = txns[-1].zxid if txns else snap_zxid
        self._last_appended = self._last_written = last
        accepted = self._read_epoch("acceptedEpoch")
        current = self._read_epoch("currentEpoch")
        # As QuorumPeer does when the files are missing: the epoch of the last zxid.
        default = last >> 32
        self._opened = True
        log.info(
            "txnlog recovered snapshot %#x + %d txns up to %#x in %.3f s",
            snap_zxid,
            len(txns),
            last,
            time.perf_counter() - started,
        )
        return Recovered(
            snapshot,
            snap_zxid,
            txns,
            accepted if accepted is not None else default,
            current if current is not None else default,
        )

    def _recover_logs(self, snap_zxid: int) -> list[Txn]:
        logs = self._logs()
        # The segment holding snap_zxid starts at or before it: keep it and all later ones.
        first = 0
        for i, (start, _) in enumerate(logs):
            if start <= snap_zxid:
                first = i
        txns: list[Txn] = []
        last = snap_zxid
        for i in range(first, len(logs)):
            start, path = logs[i]
            if self.progress is not None:
                self.progress("reading log", i - first, len(logs) - first, "segments")
            data = _read_segment(path)
            scan = scan_log(data, after_zxid=last)
            txns.extend(scan.txns)
            if scan.txns:
                last = scan.txns[-1].zxid
            # Past a clean end there must be nothing but preallocated zeros: any other
            # bytes are a partly persisted, never acknowledged batch (pages can reach
            # the disk out of order), which a later append must not be able to revive.
            dirty_end = _dirty_end(path, data, scan.end)
            if scan.problem is None and dirty_end == scan.end:
                continue
            log.warning(
                "txn log %s: %s at offset %d; truncating there, dropping %d bytes",
                path,
                scan.problem or "non-zero bytes after the last record",
                scan.end,
                dirty_end - scan.end,
            )
            self._truncate_file(path, scan.end)
            for _, later in logs[i + 1 :]:
                log.warning("txn log %s follows a damaged segment; renaming it to *.corrupt", later)
                later.rename(later.with_name(later.name + ".corrupt"))
            fsync_dir(self.log_dir)
            break
        if self.progress is not None and len(logs) > first:
            self.progress("reading log", len(logs) - first, len(logs) - first, "segments")
        return txns

    def _truncate_file(self, path: Path, end: int) -> None:
        if end < HEADER_SIZE:
            path.unlink()
            return
        with open(path, "r+b") as f:
            f.truncate(end)
            os.fsync(f.fileno())

    # -- append / sync -------------------------------------------------------

    def append(self, txns: Sequence[Txn]) -> None:
        if not txns:
            return
        with self._lock:
            last = self._last_appended
            for txn in txns:
                if txn.zxid <= last:
                    raise ValueError(f"zxid {txn.zxid:#x} not above last appended {last:#x}")
                last = txn.zxid
            if not self._buf:
                self._buf_first_zxid = txns[0].zxid
            encode_txns_into(self._buf, txns)
            self._buf_count += len(txns)
            self._last_appended = last

    def sync(self) -> None:
        with self._io_lock:
            self._check_usable()
            self._drain_background()
            self._sync_buffer_locked()
            self._durable_start = self._starts

    def _take_buffer(self) -> tuple[bytearray, int, int, int] | None:
        """The appended records not yet written, their first and last zxids and count
        (None if empty)."""
        with self._lock:
            buf, first, count = self._buf, self._buf_first_zxid, self._buf_count
            if not buf:
                return None
            self._buf, self._buf_count = bytearray(), 0
            return buf, first, self._last_appended, count

    def _sync_buffer_locked(self) -> None:
        """Write and fdatasync the buffered records here (caller holds ``_io_lock``)."""
        taken = self._take_buffer()
        if taken is None:
            return
        buf, first, last, count = taken
        started = time.perf_counter()
        end = self._write_or_undo(buf, first, last)
        try:
            if self.force_sync:
                os.fdatasync(self._fd)
        except OSError as exc:
            self._failed = exc  # fsyncgate: the written pages' state is unknown now
            raise
        self._pos = end
        self._count_sync(count, len(buf), time.perf_counter() - started)

    def _write_or_undo(self, buf: bytearray, first: int, last: int) -> int:
        """:meth:`_write_records`; on a full disk, undo the write and raise StorageFull.

        Nothing was fsynced yet, so the log can be cut back to where it was: the part of
        ``buf`` that did reach the file is truncated away (it must not come back after a
        crash: those requests are answered with an error), and everything appended since
        is forgotten (a later append starts after the last record written).  Any other
        error is final.
        """
        segment, write_end = self._file, self._write_end
        try:
            end = self._write_records(buf, first)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                self._failed = exc
                raise
            try:
                self._undo_write(segment, write_end)
            except OSError as undo:
                self._failed = undo
                raise exc from undo
            raise StorageFull(f"{self.log_dir}: {exc.strerror or exc}") from exc
        self._last_written = last
        return end

    def _undo_write(self, segment: Path | None, write_end: int) -> None:
        if self._fd >= 0 and not self._roll:
            if self._file == segment:
                os.ftruncate(self._fd, write_end)  # shrinking needs no space
                self._size = self._write_end = write_end
            else:
                # A segment started for this write: it holds no durable record; the next
                # write starts one named after its own first zxid.
                os.close(self._fd)
                assert self._file is not None
                self._file.unlink()
                self._fd, self._roll = -1, True
        with self._lock:
            self._buf, self._buf_count = bytearray(), 0
            self._last_appended = self._last_written

    def _check_usable(self) -> None:
        if self._failed is not None:
            raise StorageError(f"txn log unusable after an earlier I/O error: {self._failed}")

    # -- background sync (trizab.storage.BackgroundSync) --------------------------------

    def sync_start(self) -> bool:
        """Write the buffered records and hand their fdatasync to an idle helper.

        Up to :attr:`sync_slots` syncs may be in flight (each helper runs one; the disk
        takes concurrent fdatasyncs about as fast as one, measured here: 2 at once gave
        2.5 times the syncs per second at the same latency).  False when there is
        nothing left to wait for: nothing buffered, ``syncer=inline``, ``forceSync=no``,
        or no helper could take it and the sync was done inline.
        """
        with self._io_lock:
            self._check_usable()
            if len(self._in_flight) >= self.sync_slots:
                raise RuntimeError("sync_start with every sync slot in flight")
            self._starts += 1
            start = self._starts
            if not (self._use_helper and self.force_sync):
                self._drain_background()
                self._sync_buffer_locked()
                self._durable_start = start
                return False
            taken = self._take_buffer()
            if taken is None:
                # Nothing new: durable once every earlier start is.
                if not self._in_flight:
                    self._durable_start = start
                else:
                    self._in_flight[-1] = (*self._in_flight[-1][:5], start)
                return False
            buf, first, last, count = taken
            if self._roll and self._in_flight:
                # A new segment only once the current one is durable: the durable end is
                # kept per segment.  Happens once per snapshot.
                self._drain_background()
            started = time.perf_counter()
            try:
                end = self._write_or_undo(buf, first, last)
            except StorageFull:
                self._starts -= 1  # this start never happened
                raise
            self._in_flight.append((end, count, len(buf), started, None, start))
            helper = self._idle_helper()
            if helper is not None and self._file is not None:
                try:
                    helper.request(self._file)
                    self._in_flight[-1] = (end, count, len(buf), started, helper, start)
                    return True
                except FsyncHelperGone as exc:
                    self._sync_all_inline(str(exc))
                    return False
            self._sync_all_inline("no fsync helper")
            return False

    def sync_fileno(self) -> int:
        """Readable when the oldest unreported sync may have finished; -1 if it already has
        (or nothing is in flight): call :meth:`sync_finished` now."""
        if self._reported_start < self._durable_start or not self._in_flight:
            return -1
        helper = self._in_flight[0][4]
        return helper.fileno if helper is not None else -1

    def sync_finished(self) -> bool:
        """Non-blocking: True once the oldest unreported ``sync_start`` is durable; it is then
        reported (the next call is about the next one).  True when nothing is unreported."""
        with self._io_lock:
            if self._reported_start >= self._starts:
                return True
            if self._reported_start >= self._durable_start and self._in_flight:
                self._finish_oldest(block=False)
            if self._reported_start < self._durable_start:
                self._reported_start += 1
                return True
            return False

    def _idle_helper(self) -> FsyncHelper | None:
        busy = {id(entry[4]) for entry in self._in_flight}
        for helper in self._helpers:
            if id(helper) not in busy:
                return helper
        if self._use_helper and len(self._helpers) < self.sync_slots:
            try:
                helper = FsyncHelper()
            except OSError as exc:
                log.warning("cannot start an fsync helper (%s); syncing inline", exc)
                self._use_helper = False
                return None
            self._helpers.append(helper)
            return helper
        return None

    def _sync_all_inline(self, why: str) -> None:
        """Give up on the helpers: one fdatasync here covers every sync in flight."""
        log.warning("%s; syncing inline from now on", why)
        self._use_helper = False
        try:
            os.fdatasync(self._fd)  # every sync in flight is on this segment (see sync_start)
        except OSError as exc:
            self._in_flight.clear()
            self._failed = exc
            raise
        while self._in_flight:
            self._completed(self._in_flight.popleft())
        for helper in self._helpers:
            helper.close()
        self._helpers.clear()

    def _drain_background(self) -> None:
        """Complete every sync in flight, blocking (caller holds ``_io_lock``)."""
        while self._in_flight:
            self._finish_oldest(block=True)

    def _finish_oldest(self, *, block: bool) -> None:
        """Complete the oldest sync in flight if its helper answered (caller holds ``_io_lock``)."""
        helper = self._in_flight[0][4]
        try:
            if helper is None or not helper.in_flight:
                raise FsyncHelperGone("no fsync helper")
            if block:
                helper.wait()
            elif not helper.poll():
                return
        except FsyncHelperGone as exc:
            self._sync_all_inline(str(exc))
            return
        except OSError as exc:
            self._in_flight.clear()
            self._failed = exc
            raise
        self._completed(self._in_flight.popleft())

    def _completed(self, entry: tuple[int, int, int, float, FsyncHelper | None, int]) -> None:
        """Bookkeeping for a sync taken off ``_in_flight`` once durable."""
        end, count, nbytes, started, _, start = entry
        self._pos = end
        self._durable_start = max(self._durable_start, start)
        self._count_sync(count, nbytes, time.perf_counter() - started)

    def _count_sync(self, count: int, nbytes: int, fsync_seconds: float) -> None:
        stats = self._stats
        stats["syncs"] += 1
        stats["txns"] += count
        stats["bytes"] += nbytes
        stats["max_batch"] = max(stats["max_batch"], count)
        if self.force_sync:
            stats["fsyncs"] += 1
            stats["fsync_seconds"] += fsync_seconds

    def _write_records(self, buf: bytearray, first_zxid: int) -> int:
        """Write ``buf`` after the durable end (page cache only); return the new end."""
        if self._roll or self._fd < 0:
            self._start_segment(first_zxid)
        need = self._write_end + len(buf) + 1  # +1: keep a zero after the last record
        if need > self._size:
            # Extend sparsely, like FilePadding; the size change is covered by fdatasync.
            self._size = need + self.prealloc - need % self.prealloc
            os.ftruncate(self._fd, self._size)
        view = memoryview(buf)
        offset = self._write_end
        while view:
            n = os.pwrite(self._fd, view, offset)
            offset += n
            view = view[n:]
        self._write_end = offset
        return offset

    def _start_segment(self, first_zxid: int) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # everything in it was fdatasync'ed by the sync that wrote it
        self._fd = -1
        self._roll = True  # until the new segment exists
        path = self.log_dir / f"log.{first_zxid:x}"
        # A file of that name can only be a segment that never got a durable record
        # (every durable zxid is below first_zxid), so replacing it loses nothing.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.pwrite(fd, _FILE_HEADER.pack(TXNLOG_MAGIC, VERSION, 0), 0)
            os.ftruncate(fd, self.prealloc)
            if self.force_sync:
                os.fsync(fd)
                fsync_dir(self.log_dir)  # the new name must survive a crash too
                self._stats["fsyncs"] += 2
        except OSError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd, self._file = fd, path
        self._pos = self._write_end = HEADER_SIZE
        self._size = self.prealloc
        self._roll = False
        self._stats["segments"] += 1

    # -- reading / truncation -----------------------------------------------

    def read_from(self, zxid: int) -> Iterator[Txn]:
        with self._io_lock:
            logs = self._logs()
            current, limit = self._file, self._pos
        first = 0
        for i, (start, _) in enumerate(logs):
            if start <= zxid:
                first = i
        found: list[Txn] = []
        for _, path in logs[first:]:
            data = _read_segment(path, limit if path == current else None)
            scan = scan_log(data, after_zxid=zxid)
            found.extend(scan.txns)
            if scan.problem is not None:
                break
        return iter(found)

    def truncate_after(self, zxid: int) -> None:
        self.sync()
        with self._io_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd, self._file = -1, None
            self._roll = True
            for start, path in reversed(self._logs()):
                if start > zxid:
                    path.unlink()
                    continue
                data = _read_segment(path)
                scan = scan_log(data)
                keep = HEADER_SIZE
                for txn_end, txn in _record_ends(data, scan):
                    if txn.zxid > zxid:
                        break
                    keep = txn_end
                self._truncate_file(path, keep)
                break
            for start, path in self._snapshots():
                if start > zxid:
                    path.unlink()
            fsync_dir(self.log_dir)
            fsync_dir(self.snap_dir)
            with self._lock:
                self._last_appended = self._last_written = zxid

    # -- snapshots, epochs, purge -------------------------------------------

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        out = bytearray(_FILE_HEADER.pack(SNAP_MAGIC, VERSION, 0))
        out += data
        out += struct.pack(">q", zlib.adler32(out))
        out += b"\0\0\0\x01/"
        _atomic_write(self.snap_dir / f"snapshot.{zxid:x}", bytes(out), durable=True)
        with self._lock:
            # As rollLog: the next batch starts a new segment, so old ones can be purged.
            self._roll = True

    def set_accepted_epoch(self, epoch: int) -> None:
        _atomic_write(self.snap_dir / "acceptedEpoch", str(epoch).encode())

    def set_current_epoch(self, epoch: int) -> None:
        _atomic_write(self.snap_dir / "currentEpoch", str(epoch).encode())

    def purge(self, keep: int) -> None:
        if keep < 1:
            raise ValueError("purge must keep at least one snapshot")
        snaps = self._snapshots()
        if len(snaps) <= keep:
            return
        kept = snaps[-keep:]
        oldest = kept[0][0]
        for _, path in snaps[:-keep]:
            path.unlink()
        with self._io_lock:
            logs = self._logs()
            # Keep the segment that holds `oldest` (highest start <= oldest) and later ones.
            needed = 0
            for i, (start, _) in enumerate(logs):
                if start <= oldest:
                    needed = i
            for _, path in logs[:needed]:
                if path != self._file:
                    path.unlink()
        fsync_dir(self.snap_dir)

    def statistics(self) -> dict[str, Any]:
        stats = dict(self._stats)
        stats["mean_batch"] = stats["txns"] / stats["syncs"] if stats["syncs"] else 0.0
        # The fsync helpers' state: whether syncs go to them (off after one died), how many
        # run, and how many syncs they have in flight.
        stats["background_sync"] = 1 if self._use_helper and self.force_sync else 0
        stats["fsync_helpers"] = len(self._helpers)
        stats["syncs_in_flight"] = len(self._in_flight)
        return stats

    def close(self) -> None:
        with self._io_lock:
            try:
                self._drain_background()
            except OSError:
                log.exception("the last sync failed at close")
            for helper in self._helpers:
                helper.close()
            self._helpers.clear()
            if self._fd >= 0:
                os.close(self._fd)
                self._fd, self._file = -1, None


def _record_ends(data: bytes, scan: LogScan) -> Iterator[tuple[int, Txn]]:
    """(offset just after each record, txn) for the good records of a scanned segment."""
    pos = HEADER_SIZE
    for txn in scan.txns:
        _, length = _REC_HEAD.unpack_from(data, pos)
        pos += _REC_HEAD.size + length + 1
        yield pos, txn
