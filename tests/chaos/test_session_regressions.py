"""Regression tests, with real processes, for the two session bugs found under real faults.

Each runs a scenario of :mod:`compat.chaos.scenarios` (3 members, a kazoo client with a 6 s
session pinned to a follower, iptables faults in a private network namespace) and asserts on
what the scenario observed.  Both failed before the fix (the half-open connection kept the
session alive for the whole cut; the expired session was resumed on the follower and, once it
led, took 20 of 20 writes) and pass after it.  The same scenarios against Apache ZooKeeper 3.8
show the behaviour they ask for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def scenario(name: str, system: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "compat.chaos.scenarios", name, "--system", system],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_half_open(result: dict[str, Any]) -> None:
    # Expired within timeout + two ticks of expiry bucket + a ping interval (ZooKeeper: 7.7-8.7 s).
    assert result["expired_after_s"] is not None, result
    assert result["expired_after_s"] <= result["session_timeout_s"] + 5.0, result
    assert result["client_told_expired"], result


def check_expired_snap(result: dict[str, Any]) -> None:
    assert result["expired_on_majority"] and result["follower_rejoined"], result
    assert result["writes_during_cut"] > 500, result  # more than a DIFF carries: a SNAP
    assert not result["resumed_expired_session"], result
    assert result["client_told_expired"], result
    assert result["follower_leads_after_kill"], result
    assert result["writes_ok_on_expired_session"] == 0, result


def test_a_half_open_connection_keeps_no_session_alive() -> None:
    check_half_open(scenario("half_open", "trizab"))


def test_an_expired_session_stays_dead_after_a_snap_and_a_new_leader() -> None:
    check_expired_snap(scenario("expired_snap", "trizab"))


@pytest.mark.apache
@pytest.mark.parametrize("name", ["half_open", "expired_snap"])
def test_apache_zookeeper_behaves_as_the_scenarios_ask(name: str) -> None:
    result = scenario(name, "zookeeper")
    (check_half_open if name == "half_open" else check_expired_snap)(result)
