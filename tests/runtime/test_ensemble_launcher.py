"""`trizab ensemble`'s configurations: ports from --base-port, and kept across runs on one directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from trizab import config as cfg
from trizab.runtime.launcher import ensemble_configs


def test_base_port_gives_each_member_three_consecutive_ports(tmp_path: Path) -> None:
    members = ensemble_configs(tmp_path, 3, 1, 2000, base_port=30000)
    assert [port for _, _, port in members] == [30000, 30003, 30006, 30009]
    conf = cfg.load(members[1][1])
    assert (conf.servers[2].quorum_port, conf.servers[2].election_port) == (30004, 30005)
    assert conf.servers[4].role == "observer"


def test_a_rerun_on_the_same_directory_keeps_its_ports(tmp_path: Path) -> None:
    first = ensemble_configs(tmp_path, 3, 0, 2000)
    again = ensemble_configs(tmp_path, 3, 0, 2000)
    assert again == first
    # Another size is another ensemble: new configurations.
    bigger = ensemble_configs(tmp_path, 5, 0, 2000)
    assert len(bigger) == 5 and cfg.load(bigger[0][1]).servers.keys() == {1, 2, 3, 4, 5}


def test_a_base_port_without_room_is_one_line() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trizab", "ensemble", "--base-port", "65530"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.strip() == "trizab: --base-port 65530 leaves no room for 9 ports"
