"""A full disk under the storage engines: StorageFull, nothing half-written, and the engine goes on.

A real tmpfs of a few MiB is filled up (root only, as the chaos tests; CI runs as root).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from storage_helpers import make_txns, new_storage

from testkit.tmpfs import SmallDisk
from trizab.storage import StorageFull

BIG = 64 * 1024  # larger than any slack left in pages the engine already has


@pytest.fixture
def small_disk(tmp_path: Path) -> SmallDisk:
    assert os.geteuid() == 0, "mounting a small tmpfs needs root"
    with SmallDisk(tmp_path / "disk", 8 << 20) as disk:
        yield disk  # type: ignore[misc]


@pytest.mark.parametrize("engine", ["txnlog", "sqlite"])
def test_a_full_disk_raises_storage_full_and_keeps_only_what_was_synced(
    engine: str, small_disk: SmallDisk
) -> None:
    storage = new_storage(engine, small_disk.path)
    storage.open()
    storage.append(make_txns(range(1, 11)))
    storage.sync()
    assert small_disk.fill() > 0
    storage.append(make_txns(range(11, 41), size=BIG))
    with pytest.raises(StorageFull):
        storage.sync()
    # Nothing of the failed batch is kept, and the engine takes the same zxids again.
    small_disk.free()
    storage.append(make_txns(range(11, 21), size=BIG))
    storage.sync()
    storage.close()
    reopened = new_storage(engine, small_disk.path)
    assert [t.zxid for t in reopened.open().txns] == list(range(1, 21))
    reopened.close()


def test_txnlog_background_sync_on_a_full_disk(small_disk: SmallDisk) -> None:
    storage = new_storage("txnlog", small_disk.path)
    storage.open()
    storage.append(make_txns(range(1, 6)))
    storage.sync()
    small_disk.fill()
    storage.append(make_txns(range(6, 30), size=BIG))
    with pytest.raises(StorageFull):
        storage.sync_start()
    small_disk.free()
    storage.append(make_txns(range(6, 9), size=BIG))
    if storage.sync_start():
        deadline = time.monotonic() + 10
        while not storage.sync_finished():
            assert time.monotonic() < deadline
            time.sleep(0.001)
    storage.close()
    reopened = new_storage("txnlog", small_disk.path)
    assert [t.zxid for t in reopened.open().txns] == list(range(1, 9))
    reopened.close()


def test_txnlog_new_segment_on_a_full_disk(small_disk: SmallDisk) -> None:
    """A snapshot rolls the log: the next write starts a segment, and the disk is full."""
    storage = new_storage("txnlog", small_disk.path)
    storage.open()
    storage.append(make_txns(range(1, 6)))
    storage.sync()
    storage.save_snapshot(5, b"")
    small_disk.fill()
    storage.append(make_txns(range(6, 30), size=BIG))
    with pytest.raises(StorageFull):
        storage.sync()
    small_disk.free()
    storage.append(make_txns(range(6, 8), size=BIG))
    storage.sync()
    storage.close()
    recovered = new_storage("txnlog", small_disk.path).open()
    assert recovered.snapshot_zxid == 5
    assert [t.zxid for t in recovered.txns] == [6, 7]
