"""Rolling restarts and migrations between Apache ZooKeeper 3.8 and trizab, under kazoo load.

Every test runs :func:`testkit.rolling_migration.run`: an ensemble on loopback with writes,
sequential creates, pinging ephemeral owners and a watch going on, members switched one at a
time (the leader last) or all at once, one ensemble required after every step, and a strict
verdict at the end (see :mod:`testkit.migration_load`).  The pure-ZooKeeper rolling restart
proves the harness; the others use it.  Each report is printed, so ``-s`` shows the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import apache_zk
from testkit.rolling_migration import Phase, Report, run

pytestmark = [pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(240)]

if not apache_zk.available():
    pytest.skip("Apache ZooKeeper (Debian package zookeeper) is not installed", allow_module_level=True)

ZK, TZ = "zookeeper", "trizab"


def _check(report: Report) -> None:
    print(report.summary())
    assert not report.problems, report.summary()


def test_zookeeper_rolling_restart_passes_the_harness(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 3, [Phase(ZK)]))


def test_trizab_rolling_restart(tmp_path: Path) -> None:
    _check(run(tmp_path, [TZ] * 3, [Phase(TZ)]))


def test_data_directories_carry_over_in_an_ensemble_both_ways(tmp_path: Path) -> None:
    """Every member stopped, then started with the other program on its own files: ZooKeeper
    member directories (currentEpoch/acceptedEpoch, version-2 logs and snapshots) serve as
    trizab members, and back, with every acknowledged write, sequence and session intact."""
    _check(run(tmp_path, [ZK] * 3, [Phase(TZ, "all"), Phase(ZK, "all")]))


def test_zookeeper_to_trizab_and_back_one_member_at_a_time(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 3, [Phase(TZ), Phase(ZK)]))


def test_zookeeper_rolling_restart_of_five_members(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 5, [Phase(ZK)]))


def test_five_members_zookeeper_to_trizab_and_back(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 5, [Phase(TZ), Phase(ZK)]))


def test_zookeeper_rolling_restart_with_an_observer(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 4, [Phase(ZK)], observers=1))


def test_zookeeper_to_trizab_and_back_with_an_observer(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 4, [Phase(TZ), Phase(ZK)], observers=1))


def test_zookeeper_rolling_restart_with_a_reconfig_in_the_middle(tmp_path: Path) -> None:
    _check(run(tmp_path, [ZK] * 3, [Phase(ZK, "reconfig"), Phase(ZK)]))


def test_full_stop_switches_around_a_reconfig_on_trizab(tmp_path: Path) -> None:
    """With reconfigEnabled=true ZooKeeper rewrites every zoo.cfg on its first start (the server
    lines move to a dynamicConfigFile); trizab members start on those files, reconfig a member
    out and back in, and ZooKeeper takes the directories back."""
    _check(run(tmp_path, [ZK] * 3, [Phase(TZ, "all"), Phase(TZ, "reconfig"), Phase(ZK, "all")]))


def test_zookeeper_to_trizab_and_back_with_a_reconfig_in_the_middle(tmp_path: Path) -> None:
    """One member switched, a follower reconfigured out and back in while the ensemble is
    mixed, then the rest switched, then everything back."""
    phases = [Phase(TZ, count=1), Phase(TZ, "reconfig"), Phase(TZ), Phase(ZK)]
    _check(run(tmp_path, [ZK] * 3, phases))


def test_a_trizab_ensemble_to_zookeeper_and_back_one_member_at_a_time(tmp_path: Path) -> None:
    """The other way round: data directories only trizab ever wrote, taken over by ZooKeeper."""
    _check(run(tmp_path, [TZ] * 3, [Phase(ZK), Phase(TZ)]))
