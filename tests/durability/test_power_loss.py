"""Power loss under a real server: no acknowledged write is lost, and the server starts.

The short form of ``python -m testkit.powerloss`` (see that module for the method):
a ``trizab serve`` process with its dataDir on a filesystem that keeps only what was
fsynced (testkit.lossyfs), writes pipelined by one kazoo session, snapshots, log
rolls and purges happening all along, and at each crash point SIGKILL, the loss of
everything not durable, and a restart.  The controls show the check can fail: with
``forceSync=no`` it must report lost writes, and the same run on a filesystem that
loses nothing must not.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit.lossyfs import fuse_usable
from testkit.powerloss import MAIN_ENGINES, Figures, run_power_loss

pytestmark = pytest.mark.timeout(300)

POINTS = 8  # per engine; the long form runs hundreds


@pytest.fixture(autouse=True)
def _needs_fuse() -> None:
    reason = fuse_usable()
    if reason is not None:
        pytest.skip(reason)


def _explain(figures: Figures) -> str:
    return "\n".join([str(figures.summary()), *figures.anomalies[:10]])


@pytest.mark.parametrize("engine", MAIN_ENGINES)
def test_no_acknowledged_write_is_lost(engine: str, tmp_path: Path) -> None:
    # Half the power cuts let a random part of the unsynced pages through (torn writes).
    figures = run_power_loss(engine, POINTS, seed=20261206, workdir=tmp_path, torn=0.5)
    assert figures.ok, _explain(figures)
    assert figures.crash_points == POINTS
    assert figures.acked_writes > 100
    assert figures.snapshots > 0  # snapshots (and with them purges) ran during the writes
    if engine == "txnlog":
        assert figures.log_segments > 1


@pytest.mark.parametrize("engine", MAIN_ENGINES)
def test_the_check_catches_writes_lost_without_fsync(engine: str, tmp_path: Path) -> None:
    # forceSync=no acknowledges writes before they are durable: the power cut must show.
    figures = run_power_loss(
        engine, 3, seed=7, workdir=tmp_path, force_sync=False, startup_fraction=0.0, stop_on_failure=False
    )
    assert figures.lost > 0, _explain(figures)
    assert not figures.ok


def test_nothing_is_reported_lost_when_the_filesystem_keeps_everything(tmp_path: Path) -> None:
    # The same unsafe server on a disk that never loses data: any loss reported would be the
    # harness's own.
    figures = run_power_loss("txnlog", 3, seed=7, workdir=tmp_path, force_sync=False, lossy=False)
    assert figures.ok, _explain(figures)
    assert figures.acked_writes > 0
