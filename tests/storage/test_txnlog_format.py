"""``storage=txnlog`` on-disk format and I/O discipline (checked against the layout, by hand)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import pytest
from storage_helpers import make_txns, new_storage
from trizab.plugins.storage import txnlog


def parse_by_hand(data: bytes) -> list[bytes]:
    """ZooKeeper's FileTxnLog layout, decoded without the engine's reader."""
    magic, version, dbid = struct.unpack_from(">iiq", data, 0)
    assert (magic.to_bytes(4, "big"), version, dbid) == (b"ZKLG", 2, 0)
    pos, out = 16, []
    while pos + 12 <= len(data):
        crc, length = struct.unpack_from(">qi", data, pos)
        if length == 0:
            break
        body = data[pos + 12 : pos + 12 + length]
        assert crc == zlib.adler32(body)
        assert data[pos + 12 + length] == ord("B")
        out.append(body)
        pos += 12 + length + 1
    return out


@pytest.fixture
def count_fdatasync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        calls.append(fd)
        real(fd)

    monkeypatch.setattr(txnlog.os, "fdatasync", counting)
    return calls


def test_log_file_is_zookeeper_format(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path, prealloc="64K")
    s.open()
    txns = make_txns(range(0x500000001, 0x500000011))
    s.append(txns)
    s.sync()
    s.close()
    (segment,) = (tmp_path / "log" / "version-2").iterdir()
    assert segment.name == "log.500000001"  # named by its first zxid, in hex, like ZooKeeper
    data = segment.read_bytes()
    assert len(data) == 64 << 10  # preallocated
    assert parse_by_hand(data) == [t.encode() for t in txns]
    assert not list((tmp_path / "data" / "version-2").glob("log.*"))  # dataLogDir is honoured


def test_preallocation_grows_in_steps(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path, prealloc="4K")
    s.open()
    s.append(make_txns(range(1, 301), size=40))
    s.sync()
    s.close()
    (segment,) = (tmp_path / "log" / "version-2").iterdir()
    size = segment.stat().st_size
    assert size % 4096 == 0 and size > 4096
    assert len(parse_by_hand(segment.read_bytes())) == 300


def test_one_fdatasync_per_sync_however_many_appends(tmp_path: Path, count_fdatasync: list[int]) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    z = 1
    for _ in range(5):
        for _ in range(40):
            s.append(make_txns([z]))
            z += 1
        s.sync()
    s.sync()  # nothing pending: no I/O at all
    s.close()
    assert len(count_fdatasync) == 5
    stats = s.statistics()
    assert (stats["syncs"], stats["txns"], stats["max_batch"]) == (5, 200, 40)


def test_force_sync_no_never_syncs(tmp_path: Path, count_fdatasync: list[int]) -> None:
    s = txnlog.TxnLogStoragePlugin(data_dir=tmp_path, force_sync=False)
    s.open()
    s.append(make_txns(range(1, 50)))
    s.sync()
    s.close()
    assert count_fdatasync == []
    again = txnlog.TxnLogStoragePlugin(data_dir=tmp_path, force_sync=False)
    assert len(again.open().txns) == 49  # still readable after a clean close
    again.close()


def test_snapshot_starts_a_new_segment_and_file_format(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    s.append(make_txns(range(1, 11)))
    s.sync()
    s.save_snapshot(10, b"tree-bytes")
    s.append(make_txns(range(11, 21)))
    s.sync()
    s.close()
    assert sorted(p.name for p in (tmp_path / "log" / "version-2").iterdir()) == ["log.1", "log.b"]
    snap = (tmp_path / "data" / "version-2" / "snapshot.a").read_bytes()
    # FileHeader{"ZKSN", 2, 0} + data + long adler32(header+data) + ustring "/"
    assert snap[:16] == b"ZKSN" + struct.pack(">iq", 2, 0)
    assert snap[16:-13] == b"tree-bytes"
    assert struct.unpack(">q", snap[-13:-5])[0] == zlib.adler32(snap[:-13])
    assert snap[-5:] == b"\0\0\0\x01/"


def test_epoch_files_are_zookeepers_text_files(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    s.set_accepted_epoch(12)
    s.set_current_epoch(11)
    s.close()
    d = tmp_path / "data" / "version-2"
    assert (d / "acceptedEpoch").read_text() == "12"
    assert (d / "currentEpoch").read_text() == "11"
    assert not list(d.glob("*.tmp"))


def test_garbage_epoch_file_is_an_error_not_a_guess(tmp_path: Path) -> None:
    s = new_storage("txnlog", tmp_path)
    s.open()
    s.close()
    (tmp_path / "data" / "version-2" / "currentEpoch").write_text("twelve")
    from trizab.storage import StorageError

    with pytest.raises(StorageError, match="currentEpoch"):
        new_storage("txnlog", tmp_path).open()


def test_failed_fsync_is_final(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from trizab.storage import StorageError

    s = new_storage("txnlog", tmp_path)
    s.open()
    s.append(make_txns([1]))
    s.sync()

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(txnlog.os, "fdatasync", broken)
    s.append(make_txns([2]))
    with pytest.raises(OSError):
        s.sync()
    monkeypatch.undo()
    s.append(make_txns([3]))
    with pytest.raises(StorageError, match="earlier I/O error"):
        s.sync()  # never a silent retry of a failed fsync
    s.close()
    # Txn 2 was written but its fsync failed: it may or may not be there; 3 never is.
    assert [t.zxid for t in new_storage("txnlog", tmp_path).open().txns] in ([1], [1, 2])
