"""The power-loss filesystem itself (testkit.lossyfs): it keeps exactly what was made durable.

These pin down the model the power-loss tests rely on; if LossyFS kept too much, those
tests could not fail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.lossyfs import LossyMount, fuse_usable

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[LossyMount]:
    reason = fuse_usable()
    if reason is not None:
        pytest.skip(reason)
    with LossyMount(tmp_path / "fs") as mount:
        yield mount
    assert not os.path.ismount(mount.mountpoint)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write(path: Path, data: bytes, *, sync: bool, mode: str = "wb") -> None:
    with open(path, mode) as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())


def test_fsynced_data_survives_and_unsynced_data_is_dropped(fs: LossyMount) -> None:
    m = fs.mountpoint
    write(m / "a", b"durable", sync=True)
    fsync_dir(m)
    write(m / "a", b"+unsynced", sync=False, mode="ab")
    assert (m / "a").read_bytes() == b"durable+unsynced"  # visible before the crash
    fs.crash()
    assert (m / "a").read_bytes() == b"durable"


def test_fdatasync_of_an_overwrite_and_of_a_shrink(fs: LossyMount) -> None:
    m = fs.mountpoint
    write(m / "f", b"0123456789", sync=True)
    fsync_dir(m)
    fd = os.open(m / "f", os.O_RDWR)
    try:
        os.pwrite(fd, b"AB", 2)
        os.ftruncate(fd, 6)
        os.fdatasync(fd)
        os.pwrite(fd, b"ZZ", 0)  # never synced
    finally:
        os.close(fd)
    fs.crash()
    assert (m / "f").read_bytes() == b"01AB45"


def test_a_new_name_needs_an_fsync_of_its_directory(fs: LossyMount) -> None:
    m = fs.mountpoint
    write(m / "synced-file-unsynced-name", b"x", sync=True)
    os.mkdir(m / "sub")
    write(m / "sub" / "inner", b"y", sync=True)
    fsync_dir(m / "sub")  # sub's own entry in the root is still not durable
    fs.crash()
    assert os.listdir(m) == []


def test_a_file_never_fsynced_comes_back_empty(fs: LossyMount) -> None:
    m = fs.mountpoint
    write(m / "c.tmp", b"data", sync=False)
    os.rename(m / "c.tmp", m / "c")
    fsync_dir(m)
    fs.crash()
    assert os.listdir(m) == ["c"]
    assert (m / "c").read_bytes() == b""


def test_an_unsynced_rename_and_unlink_are_undone(fs: LossyMount) -> None:
    m = fs.mountpoint
    write(m / "old", b"old content", sync=True)
    write(m / "gone", b"still here", sync=True)
    fsync_dir(m)
    write(m / "new.tmp", b"new content", sync=True)
    os.replace(m / "new.tmp", m / "old")
    os.unlink(m / "gone")
    assert sorted(os.listdir(m)) == ["old"]
    fs.crash()
    assert sorted(os.listdir(m)) == ["gone", "old"]
    assert (m / "old").read_bytes() == b"old content"
    assert (m / "gone").read_bytes() == b"still here"


def test_atomic_replace_done_right_survives(fs: LossyMount) -> None:
    m = fs.mountpoint
    write(m / "x", b"v1", sync=True)
    fsync_dir(m)
    write(m / "x.tmp", b"v2", sync=True)
    os.replace(m / "x.tmp", m / "x")
    fsync_dir(m)
    fs.crash()
    assert os.listdir(m) == ["x"]
    assert (m / "x").read_bytes() == b"v2"


def test_sparse_files_stay_sparse_and_hold_their_data(fs: LossyMount) -> None:
    m = fs.mountpoint
    fd = os.open(m / "log", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, 64 << 20)
        os.pwrite(fd, b"header", 0)
        os.pwrite(fd, b"record", 1 << 20)
        os.fdatasync(fd)
        os.pwrite(fd, b"lost", 2 << 20)
    finally:
        os.close(fd)
    fsync_dir(m)
    fs.crash()
    data = (m / "log").read_bytes()
    assert len(data) == 64 << 20
    assert data[:6] == b"header" and data[1 << 20 : (1 << 20) + 6] == b"record"
    assert data[2 << 20 : (2 << 20) + 4] == b"\0\0\0\0"
    assert os.stat(fs.backing / "log").st_blocks * 512 < 8 << 20


def test_a_torn_crash_keeps_any_mix_of_unsynced_pages(fs: LossyMount) -> None:
    m = fs.mountpoint
    pages = 32
    write(m / "t", b"o" * 4096 * pages, sync=True)
    fsync_dir(m)
    kinds: set[bytes] = set()
    for seed in range(4):
        write(m / "t", b"n" * 4096 * pages, sync=False, mode="r+b")
        fs.crash(torn_seed=seed)
        data = (m / "t").read_bytes()
        assert len(data) == 4096 * pages
        chunks = {data[i : i + 4096] for i in range(0, len(data), 4096)}
        assert chunks <= {b"o" * 4096, b"n" * 4096}  # whole pages, old or new
        kinds |= chunks
        write(m / "t", data, sync=True, mode="r+b")  # the next round starts from here
    assert kinds == {b"o" * 4096, b"n" * 4096}


def test_crash_waits_until_no_file_is_open(fs: LossyMount) -> None:
    # A killed process's descriptors are released a moment after it dies; reverting under an
    # open descriptor would let late writes through.
    f = open(fs.mountpoint / "open", "wb")
    done = threading.Event()
    thread = threading.Thread(target=lambda: (fs.crash(), done.set()), daemon=True)
    thread.start()
    assert not done.wait(0.5)
    f.close()
    assert done.wait(10)


def test_no_loss_mode_keeps_everything(tmp_path: Path) -> None:
    reason = fuse_usable()
    if reason is not None:
        pytest.skip(reason)
    with LossyMount(tmp_path / "fs", lossy=False) as fs:
        write(fs.mountpoint / "kept", b"never synced", sync=False)
        fs.crash()
        assert (fs.mountpoint / "kept").read_bytes() == b"never synced"
        assert fs.stats()["crashes"] == 1
    assert not os.path.ismount(fs.mountpoint)
