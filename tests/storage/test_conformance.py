"""The storage conformance suite: the definition of a correct ``trizab.storage`` plugin.

It runs over every plugin installed in the entry-point group (so a third-party
engine is held to it by installing it), and the reopen tests over every plugin
that declares ``durable = True``.
"""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from storage_helpers import make_txns, new_storage, storage_plugin_names, zxid

from trizab.plugin import available
from trizab.storage import BackgroundSync, Storage

ALL = storage_plugin_names()
DURABLE = [i.name for i in available("trizab.storage") if i.cls is not None and i.cls.durable]


def test_the_builtin_engines_are_discovered() -> None:
    # The suite below is only meaningful if discovery finds the built-ins.
    assert {"memory", "txnlog", "sqlite"} <= set(ALL)
    assert {"txnlog", "sqlite"} <= set(DURABLE)
    assert "memory" not in DURABLE


@pytest.fixture(params=ALL)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    s = new_storage(request.param, tmp_path)
    yield s
    s.close()


@pytest.fixture(params=DURABLE)
def durable(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Reopener]:
    r = Reopener(request.param, tmp_path)
    yield r
    r.storage.close()


class Reopener:
    """Holds one durable engine and can close and reopen it on the same directories."""

    def __init__(self, name: str, base: Path) -> None:
        self.name, self.base = name, base
        self.storage = new_storage(name, base)
        self.recovered = self.storage.open()

    def reopen(self) -> Any:
        self.storage.close()
        self.storage = new_storage(self.name, self.base)
        self.recovered = self.storage.open()
        return self.recovered


def everything(s: Any) -> list[Any]:
    return list(s.read_from(-1))


# -- every engine -------------------------------------------------------------


def test_satisfies_the_protocol(engine: Any) -> None:
    assert isinstance(engine, Storage)


def test_empty_storage_opens_clean(engine: Any) -> None:
    rec = engine.open()
    assert rec.snapshot is None
    assert rec.txns == []
    assert rec.last_zxid == 0
    assert everything(engine) == []
    assert engine.snapshots() == []


def test_append_then_sync_is_readable(engine: Any) -> None:
    engine.open()
    txns = make_txns([zxid(1, i) for i in range(1, 40)])
    engine.append(txns[:10])
    engine.append(txns[10:])
    engine.sync()
    assert everything(engine) == txns


def test_read_from_returns_the_suffix(engine: Any) -> None:
    engine.open()
    txns = make_txns([zxid(1, i) for i in range(1, 21)] + [zxid(2, i) for i in range(1, 6)])
    engine.append(txns)
    engine.sync()
    for k, t in enumerate(txns):
        assert list(engine.read_from(t.zxid)) == txns[k + 1 :]
    # A zxid between two logged ones (an epoch boundary) starts after it.
    assert list(engine.read_from(zxid(1, 500))) == txns[20:]


def test_unsynced_appends_are_not_read(engine: Any) -> None:
    engine.open()
    txns = make_txns(range(1, 11))
    engine.append(txns[:5])
    engine.sync()
    engine.append(txns[5:])
    assert everything(engine) == txns[:5]
    engine.sync()
    assert everything(engine) == txns


def test_zxids_must_increase(engine: Any) -> None:
    engine.open()
    engine.append(make_txns([5, 6]))
    with pytest.raises(ValueError):
        engine.append(make_txns([6]))
    with pytest.raises(ValueError):
        engine.append(make_txns([8, 7]))
    engine.sync()
    assert [t.zxid for t in everything(engine)] == [5, 6]


def test_sync_with_nothing_appended(engine: Any) -> None:
    engine.open()
    engine.sync()
    engine.sync()
    assert everything(engine) == []


def test_truncate_after_then_append(engine: Any) -> None:
    engine.open()
    old = make_txns([zxid(1, i) for i in range(1, 30)])
    engine.append(old)
    engine.sync()
    engine.truncate_after(zxid(1, 12))
    assert everything(engine) == old[:12]
    # ZAB TRUNC is followed by the new leader's history, which reuses zxids above the cut.
    new = make_txns([zxid(1, 13), zxid(1, 14), zxid(2, 1)], size=3)
    engine.append(new)
    engine.sync()
    assert everything(engine) == old[:12] + new


def test_truncate_everything(engine: Any) -> None:
    engine.open()
    engine.append(make_txns(range(1, 6)))
    engine.sync()
    engine.truncate_after(0)
    assert everything(engine) == []
    engine.append(make_txns([1]))
    engine.sync()
    assert [t.zxid for t in everything(engine)] == [1]


def test_truncate_syncs_pending_appends_first(engine: Any) -> None:
    engine.open()
    txns = make_txns(range(1, 11))
    engine.append(txns)
    engine.truncate_after(7)
    assert everything(engine) == txns[:7]


def test_snapshots_and_purge(engine: Any) -> None:
    engine.open()
    snaps = []
    for round_ in range(5):
        txns = make_txns(range(round_ * 10 + 1, round_ * 10 + 11))
        engine.append(txns)
        engine.sync()
        snap_at = txns[4].zxid  # a fuzzy snapshot taken mid-batch
        engine.save_snapshot(snap_at, f"tree@{snap_at}".encode())
        snaps.append(snap_at)
    assert engine.snapshots() == snaps
    engine.purge(2)
    assert engine.snapshots() == snaps[-2:]
    # The log needed to roll the oldest kept snapshot forward is still there.
    assert [t.zxid for t in engine.read_from(snaps[-2])] == list(range(snaps[-2] + 1, 51))
    engine.purge(5)
    assert engine.snapshots() == snaps[-2:]
    with pytest.raises(ValueError):
        engine.purge(0)


def test_truncate_below_a_snapshot_drops_it(engine: Any) -> None:
    engine.open()
    engine.append(make_txns(range(1, 21)))
    engine.sync()
    engine.save_snapshot(5, b"five")
    engine.save_snapshot(15, b"fifteen")
    engine.truncate_after(10)
    assert engine.snapshots() == [5]
    assert [t.zxid for t in everything(engine)] == list(range(1, 11))


def test_append_while_sync_runs(engine: Any) -> None:
    # Group commit: one thread appends (the event loop), another syncs (the worker).
    engine.open()
    txns = make_txns(range(1, 2001))
    done = threading.Event()

    def syncer() -> None:
        while not done.is_set():
            engine.sync()

    t = threading.Thread(target=syncer)
    t.start()
    try:
        for k in range(0, len(txns), 7):
            engine.append(txns[k : k + 7])
    finally:
        done.set()
        t.join(timeout=30)
    engine.sync()
    assert everything(engine) == txns
    assert engine.statistics()["txns"] == len(txns)


# -- durable engines: what survives close() and reopen ------------------------


def test_reopen_sees_synced_txns(durable: Reopener) -> None:
    txns = make_txns([zxid(3, i) for i in range(1, 101)])
    durable.storage.append(txns)
    durable.storage.sync()
    rec = durable.reopen()
    assert rec.txns == txns
    assert rec.snapshot is None
    assert rec.last_zxid == txns[-1].zxid
    assert everything(durable.storage) == txns


def test_reopen_after_truncate(durable: Reopener) -> None:
    txns = make_txns(range(1, 51))
    durable.storage.append(txns)
    durable.storage.sync()
    durable.storage.truncate_after(20)
    assert durable.reopen().txns == txns[:20]
    more = make_txns(range(21, 31), size=30)
    durable.storage.append(more)
    durable.storage.sync()
    assert durable.reopen().txns == txns[:20] + more


def test_reopen_with_snapshot_replays_only_later_txns(durable: Reopener) -> None:
    s = durable.storage
    txns = make_txns(range(1, 61))
    s.append(txns[:30])
    s.sync()
    s.save_snapshot(25, b"state at 25")
    s.append(txns[30:])
    s.sync()
    rec = durable.reopen()
    assert rec.snapshot == b"state at 25"
    assert rec.snapshot_zxid == 25
    assert rec.txns == txns[25:]
    assert rec.last_zxid == 60


def test_newest_snapshot_wins_and_survives_purge(durable: Reopener) -> None:
    s = durable.storage
    for k in range(1, 5):
        s.append(make_txns(range(k * 10, k * 10 + 10)))
        s.sync()
        s.save_snapshot(k * 10 + 9, b"%d" % k * 1000)
    s.append(make_txns(range(50, 55)))
    s.sync()
    s.purge(2)
    rec = durable.reopen()
    assert durable.storage.snapshots() == [29, 39, 49][-2:]
    assert rec.snapshot == b"4" * 1000
    assert [t.zxid for t in rec.txns] == list(range(50, 55))


def test_epochs_persist(durable: Reopener) -> None:
    assert (durable.recovered.accepted_epoch, durable.recovered.current_epoch) == (0, 0)
    durable.storage.set_accepted_epoch(7)
    rec = durable.reopen()
    assert (rec.accepted_epoch, rec.current_epoch) == (7, 0)
    durable.storage.set_current_epoch(7)
    durable.storage.set_accepted_epoch(8)
    rec = durable.reopen()
    assert (rec.accepted_epoch, rec.current_epoch) == (8, 7)


def test_missing_epochs_default_to_the_last_zxids_epoch(durable: Reopener) -> None:
    durable.storage.append(make_txns([zxid(4, 1), zxid(5, 2)]))
    durable.storage.sync()
    rec = durable.reopen()
    assert (rec.accepted_epoch, rec.current_epoch) == (5, 5)


def test_reopen_then_append_continues(durable: Reopener) -> None:
    durable.storage.append(make_txns(range(1, 11)))
    durable.storage.sync()
    durable.reopen()
    with pytest.raises(ValueError):
        durable.storage.append(make_txns([10]))
    durable.storage.append(make_txns(range(11, 21)))
    durable.storage.sync()
    assert [t.zxid for t in durable.reopen().txns] == list(range(1, 21))


def test_many_small_syncs_and_snapshots_across_reopens(durable: Reopener) -> None:
    expected = []
    z = 0
    for round_ in range(6):
        for _ in range(5):
            batch = make_txns(range(z + 1, z + 4), size=round_ * 40)
            z += 3
            durable.storage.append(batch)
            durable.storage.sync()
            expected += batch
        if round_ % 2:
            durable.storage.save_snapshot(z - 2, b"snap %d" % z)
        rec = durable.reopen()
        assert rec.snapshot_zxid + len(rec.txns) == z
        assert rec.txns == expected[rec.snapshot_zxid :]
    assert everything(durable.storage)[-1].zxid == z


def test_snapshot_and_purge_in_background_while_logging(engine: Any) -> None:
    engine.open()
    txns = make_txns(range(1, 3001))
    appended = 0
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Event()
    taken = threading.Semaphore(0)

    def snapshotter() -> None:
        try:
            while not done.is_set():
                with lock:
                    at = appended
                if at:
                    engine.save_snapshot(at, b"tree %d" % at)
                    engine.purge(2)
                    taken.release()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=snapshotter)
    t.start()
    try:
        for k in range(0, len(txns), 30):
            engine.append(txns[k : k + 30])
            engine.sync()
            with lock:
                appended = txns[min(k + 30, len(txns)) - 1].zxid
            if k % 300 == 0:
                assert taken.acquire(timeout=10)  # make sure the two threads interleave
    finally:
        done.set()
        t.join(timeout=30)
    assert not errors, errors
    snaps = engine.snapshots()
    assert 1 <= len(snaps) <= 2
    assert [t.zxid for t in engine.read_from(snaps[0])] == list(range(snaps[0] + 1, 3001))


def test_background_snapshot_survives_reopen(durable: Reopener) -> None:
    s = durable.storage
    txns = make_txns(range(1, 501))
    t = threading.Thread(target=s.save_snapshot, args=(100, b"x" * 2_000_000))
    s.append(txns[:100])
    s.sync()
    t.start()
    for k in range(100, 500, 50):
        s.append(txns[k : k + 50])
        s.sync()
    t.join(timeout=30)
    rec = durable.reopen()
    assert (rec.snapshot_zxid, rec.snapshot) == (100, b"x" * 2_000_000)
    assert rec.txns == txns[100:]


# -- engines that offer BackgroundSync ------------------------------------------------------

BACKGROUND = [
    i.name for i in available("trizab.storage") if i.cls is not None and issubclass(i.cls, BackgroundSync)
]


def test_txnlog_offers_background_sync() -> None:
    # The suite below is only meaningful if it runs over at least the default engine.
    assert "txnlog" in BACKGROUND


def wait_background(engine: Any) -> None:
    deadline = time.monotonic() + 30
    while not engine.sync_finished():
        assert time.monotonic() < deadline, "background sync never finished"
        select.select([engine.sync_fileno()], [], [], 1.0)


@pytest.mark.parametrize("name", BACKGROUND)
def test_background_sync_is_a_barrier(name: str, tmp_path: Path) -> None:
    r = Reopener(name, tmp_path)
    try:
        txns = make_txns([zxid(1, i) for i in range(1, 301)])
        for k in range(0, len(txns), 50):
            r.storage.append(txns[k : k + 50])
            if r.storage.sync_start():
                # Not durable before it finished: read_from only sees what was synced.
                assert everything(r.storage) == txns[:k]
                # Appends while the sync runs join the next batch.
                wait_background(r.storage)
            assert everything(r.storage) == txns[: k + 50]
        assert r.storage.sync_start() is False  # nothing left to sync
        rec = r.reopen()
        assert rec.txns == txns
    finally:
        r.storage.close()


@pytest.mark.parametrize("name", BACKGROUND)
def test_sync_waits_for_a_background_sync_in_flight(name: str, tmp_path: Path) -> None:
    r = Reopener(name, tmp_path)
    try:
        txns = make_txns(range(1, 21))
        r.storage.append(txns[:10])
        started = r.storage.sync_start()
        r.storage.append(txns[10:])
        r.storage.sync()  # covers both batches, whatever the first one's state
        assert everything(r.storage) == txns
        if started:
            assert r.storage.sync_finished() is True
        assert r.reopen().txns == txns
    finally:
        r.storage.close()


@pytest.mark.parametrize("name", BACKGROUND)
def test_background_syncs_in_flight_complete_in_order(name: str, tmp_path: Path) -> None:
    r = Reopener(name, tmp_path)
    try:
        slots = getattr(r.storage, "sync_slots", 1)
        size = 25
        txns = make_txns(range(1, 1 + size * slots))
        for k in range(slots):  # every slot busy at once
            r.storage.append(txns[k * size : (k + 1) * size])
            assert r.storage.sync_start() is True
        with pytest.raises(RuntimeError):
            r.storage.sync_start()  # no free slot
        for k in range(slots):
            wait_background(r.storage)  # the oldest first, whatever order the disk finished in
            assert everything(r.storage) == txns[: (k + 1) * size]
        assert r.reopen().txns == txns
    finally:
        r.storage.close()
