"""Every durable engine on a filesystem that loses what was not fsynced (testkit.lossyfs).

A child process opens the engine on directories it has just created (as the server
does at first start), appends, syncs, takes a snapshot, and dies without closing
anything; the filesystem then drops everything not durable, and reopening must
give back every synced transaction.  (The end-to-end version with a real server,
many crash points and purges is tests/durability/test_power_loss.py.)
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from storage_helpers import new_storage

from testkit.lossyfs import LossyMount, fuse_usable
from trizab.plugin import available

DURABLE = sorted(i.name for i in available("trizab.storage") if i.cls is not None and i.cls.durable)

pytestmark = pytest.mark.timeout(120)

CHILD = """
import os, sys
sys.path.insert(0, sys.argv[3])
from storage_helpers import make_txns, new_storage
from pathlib import Path
base = Path(sys.argv[2])
(base / "data").mkdir(parents=True)  # as the server does: no fsync of the parent
(base / "log").mkdir(parents=True)
s = new_storage(sys.argv[1], base)
s.open()
s.append(make_txns(range(1, 41)))
s.sync()
s.save_snapshot(30, b"tree at 30")
s.append(make_txns(range(41, 61)))
s.sync()
s.append(make_txns(range(61, 71)))  # never synced: may be lost
os._exit(0)  # a crash: nothing is closed or flushed
"""


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[LossyMount]:
    reason = fuse_usable()
    if reason is not None:
        pytest.skip(reason)
    with LossyMount(tmp_path / "fs") as mount:
        yield mount


@pytest.mark.parametrize("name", DURABLE)
def test_synced_transactions_survive_a_power_cut_at_first_start(name: str, fs: LossyMount) -> None:
    helpers = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", CHILD, name, str(fs.mountpoint), helpers], check=True, timeout=60)
    fs.crash()
    s = new_storage(name, fs.mountpoint)
    try:
        recovered = s.open()
        zxids = [t.zxid for t in recovered.txns]
        if recovered.snapshot is not None:
            assert (recovered.snapshot_zxid, recovered.snapshot) == (30, b"tree at 30")
        assert recovered.snapshot_zxid in (0, 30)
        start = recovered.snapshot_zxid + 1
        assert zxids[: 60 - start + 1] == list(range(start, 61)), "a synced transaction was lost"
        assert zxids == list(range(start, zxids[-1] + 1))
    finally:
        s.close()
