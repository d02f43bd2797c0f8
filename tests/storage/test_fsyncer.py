"""The txnlog engine's fsync helper process: failures fall back safely, and it never outlives its owner."""

from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from storage_helpers import make_txns
from trizab.plugins.storage.fsyncer import FsyncHelper
from trizab.plugins.storage.txnlog import TxnLogStoragePlugin

from testkit.process import TrizabProcess


def open_engine(base: Path, **options: object) -> TxnLogStoragePlugin:
    engine = TxnLogStoragePlugin(data_dir=base, **options)  # type: ignore[arg-type]
    engine.open()
    return engine


def finish(engine: TxnLogStoragePlugin) -> None:
    deadline = time.monotonic() + 30
    while not engine.sync_finished():
        assert time.monotonic() < deadline
        time.sleep(0.001)


def gone(pid: int, timeout: float = 10.0) -> bool:
    """True once ``pid`` has exited (a zombie counts: it runs no more code)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_a_failed_fdatasync_is_reported_with_its_reason(tmp_path: Path) -> None:
    helper = FsyncHelper()
    try:
        helper.request(tmp_path / "no-such-segment")
        with pytest.raises(OSError, match="no-such-segment"):
            helper.wait()
    finally:
        helper.close()
    assert gone(helper.pid)


def test_the_helper_ends_with_the_engine(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)
    engine.append(make_txns(range(1, 11)))
    assert engine.sync_start() is True
    finish(engine)
    assert len(engine._helpers) == 1
    pid = engine._helpers[0].pid
    engine.close()
    assert gone(pid)


def test_inline_syncer_starts_no_helper(tmp_path: Path) -> None:
    engine = open_engine(tmp_path, syncer="inline")
    txns = make_txns(range(1, 11))
    engine.append(txns)
    assert engine.sync_start() is False  # done inline: nothing to wait for
    assert engine._helpers == []
    engine.close()
    reopened = open_engine(tmp_path)
    assert list(reopened.read_from(-1)) == txns
    reopened.close()


@pytest.mark.parametrize("when", ["idle", "in flight"])
def test_a_killed_helper_falls_back_to_inline_sync(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, when: str
) -> None:
    engine = open_engine(tmp_path)
    txns = make_txns(range(1, 31))
    engine.append(txns[:10])
    assert engine.sync_start() is True
    finish(engine)
    assert len(engine._helpers) == 1
    pid = engine._helpers[0].pid
    with caplog.at_level(logging.WARNING):
        if when == "idle":
            os.kill(pid, signal.SIGKILL)
            assert gone(pid)
            engine.append(txns[10:20])
            engine.sync_start()  # finds the helper gone and syncs inline
        else:
            engine.append(txns[10:20])
            assert engine.sync_start() is True
            os.kill(pid, signal.SIGKILL)
            assert gone(pid)
            finish(engine)  # whether or not the helper answered, the batch is durable now
        assert engine.sync_finished() is True
        engine.append(txns[20:])
        assert engine.sync_start() is False  # inline from now on
    assert list(engine.read_from(-1)) == txns
    if when == "idle":
        assert "syncing inline from now on" in caplog.text
    engine.close()
    reopened = open_engine(tmp_path)
    assert list(reopened.read_from(-1)) == txns
    reopened.close()


def test_the_helper_exits_when_the_server_is_killed(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path) as server:
        client = KazooClient(server.address)
        client.start()
        try:
            # Two writes in one batch start the helper (a lone txn syncs inline).
            for _ in range(20):
                client.create_async("/n", b"x", sequence=True)
            client.create("/last", b"x")
        finally:
            client.stop()
            client.close()
        assert server.pid is not None
        children = [
            int(c)
            for task in Path(f"/proc/{server.pid}/task").glob("*/children")
            for c in task.read_text().split()
        ]
        assert children, "no helper process was started"
        server.kill()
        for pid in children:
            assert gone(pid), f"helper {pid} outlived its server"


def test_a_helper_killed_with_two_syncs_in_flight_loses_neither(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)
    txns = make_txns(range(1, 41))
    engine.append(txns[:20])
    assert engine.sync_start() is True
    engine.append(txns[20:])
    assert engine.sync_start() is True
    assert len(engine._helpers) == 2
    victim = engine._helpers[0].pid
    os.kill(victim, signal.SIGKILL)
    assert gone(victim)
    finish(engine)  # the oldest: its helper may have answered before dying, or not
    finish(engine)  # the second
    assert list(engine.read_from(-1)) == txns
    engine.close()
    reopened = open_engine(tmp_path)
    assert list(reopened.read_from(-1)) == txns
    reopened.close()


def test_a_segment_roll_with_syncs_in_flight_reports_every_start_once_in_order(tmp_path: Path) -> None:
    # Before a new segment the engine completes the syncs in flight itself.  Each start must
    # still be reported finished exactly once, in order, and the descriptor to wait on must
    # say "ask now" (-1) while a completed one is unreported: the server waits on it otherwise,
    # and the drained helper never answers again.
    engine = open_engine(tmp_path)
    txns = make_txns(range(1, 31))
    engine.append(txns[:10])
    assert engine.sync_start() is True
    engine.save_snapshot(10, b"")  # the next batch starts a new segment
    engine.append(txns[10:20])
    assert engine.sync_start() is True  # drained the first sync before writing the new segment
    assert engine.sync_fileno() == -1
    assert engine.sync_finished() is True  # the first start: done by the drain
    fd = engine.sync_fileno()
    assert fd >= 0
    deadline = time.monotonic() + 30
    while not engine.sync_finished():  # the second start: only once its helper answered
        assert time.monotonic() < deadline
        time.sleep(0.001)
    assert engine.sync_finished() is True  # nothing unreported: vacuously finished
    engine.append(txns[20:])
    assert engine.sync_start() is True
    assert engine.sync_fileno() >= 0
    finish(engine)
    assert list(engine.read_from(-1)) == txns
    assert len(engine._logs()) == 2
    engine.close()
