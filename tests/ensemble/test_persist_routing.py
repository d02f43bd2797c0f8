"""Where a member carries out a Ready's storage steps: inline in the core task, or the worker."""

from __future__ import annotations

from typing import Any

from trizab import config as cfg
from trizab.runtime import disk as disk_module
from trizab.runtime.disk import Disk
from trizab.runtime.zab_storage import INLINE_PERSIST_MAX, ZabStorage
from trizab.zab.messages import Entry
from trizab.zab.ready import HardState, Ready, SnapshotInstall


class _Storage:
    """Records storage calls; nothing else is needed by ZabStorage.persist_steps."""

    durable = True

    def __init__(self) -> None:
        self.calls: list[str] = []

    def append(self, txns: Any) -> None:
        self.calls.append(f"append {len(txns)}")

    def sync(self) -> None:
        self.calls.append("sync")


class _BackgroundStorage(_Storage):
    def sync_start(self) -> bool:
        return True

    def sync_fileno(self) -> int:
        return -1

    def sync_finished(self) -> bool:
        return True


class _Clock:
    """A monotonic clock the test moves by hand (the barrier's duration)."""

    def __init__(self) -> None:
        self.now = 0.0

    def now_ms(self) -> int:
        return int(self.now * 1000)

    def monotonic(self) -> float:
        return self.now


def _storage(engine: _Storage, clock: _Clock | None = None, *, background_sync: bool = False) -> ZabStorage:
    async def post(_: Any) -> None:
        raise AssertionError("nothing is handed to the worker here")

    disk = Disk(engine, cfg.ServerConfig(), clock or _Clock())  # type: ignore[arg-type]
    return ZabStorage(disk, post, background_sync=background_sync)


def _entries(n: int) -> tuple[Entry, ...]:
    from trizab.txn import Txn
    from trizab.wire import records as r
    from trizab.wire.codes import OpCode

    txn = Txn(r.TxnHeader(1, 1, 1, 0, int(OpCode.SET_DATA)), r.SetDataTxn("/a", b"x", 1))
    return tuple(Entry(i + 1, txn.encode(), txn) for i in range(n))


def test_appends_are_persisted_inline_and_the_rest_by_the_worker() -> None:
    zs = _storage(_Storage())
    assert zs.persist_inline(Ready(to_persist=_entries(3)))
    assert zs.persist_inline(Ready(to_persist=_entries(INLINE_PERSIST_MAX)))
    assert not zs.persist_inline(Ready(to_persist=_entries(INLINE_PERSIST_MAX + 1)))
    assert not zs.persist_inline(Ready(hard_state=HardState(1, 1)))
    assert not zs.persist_inline(Ready(truncate_after=5))
    assert not zs.persist_inline(Ready(snapshot=SnapshotInstall(5, b"")))
    # Behind a job the worker is running: storage calls keep their order.
    zs.jobs = 1
    assert not zs.persist_inline(Ready(to_persist=_entries(1)))


def test_an_engine_with_background_sync_gets_batches_in_the_background_when_asked() -> None:
    zs = _storage(_BackgroundStorage(), background_sync=True)
    assert zs.persist_inline(Ready(to_persist=_entries(1)))  # a lone txn: the shortest path
    assert not zs.persist_inline(Ready(to_persist=_entries(2)))
    # A member's default: inline while the disk is fast (see ZabStorage.__init__).
    assert _storage(_BackgroundStorage()).persist_inline(Ready(to_persist=_entries(2)))


def test_slow_barriers_in_a_row_send_the_next_ones_to_the_thread_for_a_while() -> None:
    clock = _Clock()
    engine = _Storage()
    zs = _storage(engine, clock)
    rd = Ready(to_persist=_entries(2))
    slow = disk_module.SLOW_SYNC_S * 2

    def slow_sync() -> None:
        clock.now += slow

    engine.sync = slow_sync  # type: ignore[method-assign]
    for _ in range(disk_module.SLOW_SYNCS):
        assert zs.persist_inline(Ready(to_persist=_entries(2)))
    assert engine.calls == ["append 2"] * disk_module.SLOW_SYNCS
    # The disk turned slow: the next barriers go to the worker's thread ...
    assert not zs.persist_inline(rd)
    # ... until the back-off is over.
    clock.now += disk_module.SLOW_SYNC_BACKOFF_S
    assert zs.persist_inline(rd)


def test_slow_barriers_that_are_not_in_a_row_do_not_count() -> None:
    clock = _Clock()
    engine = _Storage()
    zs = _storage(engine, clock)
    count = 0

    def sometimes_slow() -> None:
        nonlocal count
        count += 1
        if count % 2 == 0:  # a busy machine preempted every other one
            clock.now += disk_module.SLOW_SYNC_S * 2

    engine.sync = sometimes_slow  # type: ignore[method-assign]
    for _ in range(10):
        assert zs.persist_inline(Ready(to_persist=_entries(2)))
