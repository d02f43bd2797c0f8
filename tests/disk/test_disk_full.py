"""A full disk on real server processes (the regression tests of compat/disk/full.py).

Root only (it mounts a small tmpfs), as the chaos tests; CI runs as root.  Apache ZooKeeper 3.8
in the same scenario (``python -m compat.disk.full --system zookeeper``) exits at the first write
it cannot log: its clients see ConnectionLoss and nothing is served until it is restarted.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compat.disk.full import run_trizab, run_trizab_ensemble


@pytest.fixture(autouse=True)
def _root() -> None:
    assert os.geteuid() == 0, "mounting a small tmpfs needs root"


def test_a_full_disk_refuses_writes_keeps_serving_and_resumes_without_a_restart(tmp_path: Path) -> None:
    out = run_trizab(tmp_path)
    # Writes that cannot be logged are refused with an error kazoo knows, the server lives on.
    assert out["first_failure"] == "ThrottledOpError", out
    assert set(out["writes"]) == {"ok", "ThrottledOpError"}, out
    assert out["server_alive_after_writes"] is True
    # Reads, sessions (longer than their timeout) and watches are served meanwhile.
    assert out["read_while_full"] == "last acknowledged"
    assert out["session_kept"] is True
    assert out["watch_fired"] is True
    # The operator is told once, and mntr says so.
    assert out["mntr_disk_full"] == "1"
    assert out["disk_full_log_lines"] == 1
    # Space back: writes resume at once, and a restart finds exactly what was acknowledged.
    assert out["resumed_after_s"] is not None and out["resumed_after_s"] < 5
    assert out["after_restart"] == "last acknowledged"


def test_a_member_with_a_full_disk_stops_acknowledging_and_the_others_go_on(tmp_path: Path) -> None:
    out = run_trizab_ensemble(tmp_path)
    assert out["writes_on_the_others"] == 200, out
    assert out["full_member_alive"] is True
    assert out["full_member_disk_full"] == "1"
    assert out["full_member_caught_up"] is True
    assert out["disk_full_log_lines"] == 1
