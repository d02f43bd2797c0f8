"""Where a member carries out a Ready's storage steps: in the peer task, or the worker thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trizab import config as cfg
from trizab.runtime import ensemble
from trizab.runtime.ensemble import INLINE_PERSIST_MAX, Member
from trizab.runtime.launcher import write_configs
from trizab.zab.messages import Entry
from trizab.zab.ready import HardState, Ready, SnapshotInstall


class _Storage:
    """Records storage calls; nothing else is needed by Member._persist."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def append(self, txns: Any) -> None:
        self.calls.append(f"append {len(txns)}")

    def sync(self) -> None:
        self.calls.append("sync")


@pytest.fixture
def member(tmp_path: Path) -> Member:
    (_, path, _), *_ = write_configs(tmp_path, 3, observers=0, tick_time=2000, init_limit=5, sync_limit=2)
    m = Member(cfg.load(path))
    m.storage = _Storage()  # type: ignore[assignment]
    return m


def _entries(n: int) -> tuple[Entry, ...]:
    from trizab.txn import Txn
    from trizab.wire import records as r
    from trizab.wire.codes import OpCode

    txn = Txn(r.TxnHeader(1, 1, 1, 0, int(OpCode.SET_DATA)), r.SetDataTxn("/a", b"x", 1))
    return tuple(Entry(i + 1, txn.encode(), txn) for i in range(n))


def test_appends_are_persisted_inline_and_the_rest_in_the_thread(member: Member) -> None:
    assert member._persist_inline(Ready(to_persist=_entries(3)))
    assert member._persist_inline(Ready(to_persist=_entries(INLINE_PERSIST_MAX)))
    assert not member._persist_inline(Ready(to_persist=_entries(INLINE_PERSIST_MAX + 1)))
    assert not member._persist_inline(Ready(hard_state=HardState(1, 1)))
    assert not member._persist_inline(Ready(truncate_after=5))
    assert not member._persist_inline(Ready(snapshot=SnapshotInstall(5, b"")))
    # Behind a job the worker is running: storage calls keep their order.
    member._zab_jobs = 1
    assert not member._persist_inline(Ready(to_persist=_entries(1)))


def test_a_slow_barrier_sends_the_next_ones_to_the_thread_until_one_is_fast(
    member: Member, monkeypatch: pytest.MonkeyPatch
) -> None:
    elapsed = iter([0.0, ensemble.SLOW_BARRIER_S * 2, 10.0, 10.0 + ensemble.SLOW_BARRIER_S / 4])
    monkeypatch.setattr(ensemble, "_perf_counter", lambda: next(elapsed))
    rd = Ready(to_persist=_entries(2))
    member._persist(rd)  # slow
    assert member.storage.calls == ["append 2", "sync"]  # type: ignore[attr-defined]
    assert not member._persist_inline(rd)
    member._persist(rd)  # fast again (as the worker would run it)
    assert member._persist_inline(rd)
