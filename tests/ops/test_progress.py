"""Progress: the load path reports through a callback; the CLI shows a bar or periodic log lines."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest
from trizab.plugins.storage.txnlog import TxnLogStoragePlugin

import trizab.server.core as core_module
import trizab.tree.snapshot as snapshot_module
from trizab.progress import ProgressReporter
from trizab.server.core import CoreConfig, ServerCore
from trizab.storage import Recovered
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.tree.datatree import DataTree
from trizab.tree.snapshot import serialize_snapshot
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode


def create_txns(count: int, first_zxid: int = 1) -> list[Txn]:
    return [
        Txn(
            r.TxnHeader(0, 1, zxid, 1_000_000 + zxid, int(OpCode.CREATE)),
            r.CreateTxn(f"/n{zxid}", b"x", list(OPEN_ACL_UNSAFE), False, zxid),
        )
        for zxid in range(first_zxid, first_zxid + count)
    ]


def tree_with(count: int) -> DataTree:
    tree = DataTree()
    for txn in create_txns(count):
        tree.process_txn(txn.header, txn.body)
        tree.events.clear()
    return tree


class Calls(list[tuple[str, int, int, str]]):
    def __call__(self, what: str, done: int, total: int, unit: str) -> None:
        self.append((what, done, total, unit))


def test_loading_reports_snapshot_bytes_and_replayed_txns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(snapshot_module, "PROGRESS_NODES", 100)
    monkeypatch.setattr(core_module, "PROGRESS_TXNS", 40)
    snapshot = serialize_snapshot(tree_with(1000))
    calls = Calls()
    core = ServerCore(CoreConfig(), now_ms=0)
    core.load(Recovered(snapshot, 1000, create_txns(100, first_zxid=1001), 0, 0), calls)
    assert core.node_count >= 1100
    loading = [c for c in calls if c[0] == "loading snapshot"]
    # 1000 nodes plus the built-in ones: a report every 100 nodes, then the end.
    assert len(loading) == 11 and loading[-1] == ("loading snapshot", len(snapshot), len(snapshot), "bytes")
    done = [c[1] for c in loading]
    assert done == sorted(done) and all(c[2] == len(snapshot) for c in loading)
    assert [c for c in calls if c[0] == "replaying log"] == [
        ("replaying log", 40, 100, "txns"),
        ("replaying log", 80, 100, "txns"),
        ("replaying log", 100, 100, "txns"),
    ]


def test_the_txnlog_engine_reports_each_segment(tmp_path: Path) -> None:
    engine = TxnLogStoragePlugin(data_dir=tmp_path, syncer="inline", prealloc=4096)
    engine.open()
    for start in (1, 11, 21):  # a snapshot ends a segment: three segments
        engine.append(create_txns(10, first_zxid=start))
        engine.sync()
        engine.save_snapshot(start + 9, b"")
    engine.close()
    reopened = TxnLogStoragePlugin(data_dir=tmp_path, syncer="inline")
    calls = Calls()
    reopened.progress = calls
    reopened.open()
    reopened.close()
    # Recovery starts at the segment that holds the newest snapshot's zxid.
    assert calls == [("reading log", 0, 1, "segments"), ("reading log", 1, 1, "segments")]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_log_line_every_five_seconds(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    report = ProgressReporter(io.StringIO(), clock=clock, terminal=False)
    with caplog.at_level(logging.INFO, logger="trizab.progress"):
        for i in range(0, 1_000_001, 10_000):  # 1,000,000 nodes in 20 s
            clock.now = i / 50_000
            report("loading snapshot", i, 1_000_000, "nodes")
        report("replaying log", 10, 10, "txns")  # quick work: nothing
    lines = [rec.getMessage() for rec in caplog.records]
    assert lines == [
        "loading snapshot: 250,000 of 1,000,000 nodes (25%)",
        "loading snapshot: 500,000 of 1,000,000 nodes (50%)",
        "loading snapshot: 750,000 of 1,000,000 nodes (75%)",
        "loading snapshot: 1,000,000 of 1,000,000 nodes (100%)",
    ]


def test_on_a_terminal_a_bar_that_ends_its_line() -> None:
    clock = FakeClock()
    out = io.StringIO()
    report = ProgressReporter(out, clock=clock, terminal=True)
    report("loading snapshot", 0, 100, "bytes")
    clock.now = 0.2
    report("loading snapshot", 10, 100, "bytes")
    assert out.getvalue() == ""  # not yet half a second: short work draws nothing
    clock.now = 1.0
    report("loading snapshot", 50, 100, "bytes")
    clock.now = 1.05
    report("loading snapshot", 55, 100, "bytes")  # redrawn at most ten times a second
    clock.now = 2.0
    report("loading snapshot", 100, 100, "bytes")
    text = out.getvalue()
    assert text.count("\r") == 2 and text.endswith("\n")
    assert "[###############               ]  50%  50/100 bytes" in text
    assert "[##############################] 100%  100/100 bytes" in text
