"""What an operator reads: the version flag, the start-up line, session opens and closes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kazoo.client import KazooClient

from testkit.process import TrizabProcess


def test_version_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "trizab", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("trizab ") and out.stdout.strip() != "trizab"


def test_start_up_line_and_session_log_lines(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path, tick_time=200) as server:
        client = KazooClient(hosts=server.address, timeout=2.0)
        client.start(timeout=10)
        sid = client.client_id[0]
        client.stop()
        client.close()
        deadline = time.monotonic() + 10
        log = ""
        while time.monotonic() < deadline:
            log = server.log_path.read_text()
            if f"session 0x{sid:x} closed by its client" in log:
                break
            time.sleep(0.05)
    start = next(line for line in log.splitlines() if "serving ZooKeeper clients" in line)
    # Version, engine name (not its class), both directories and the address.
    assert "trizab " in start and "storage txnlog" in start
    assert f"dataDir {server.data_dir}" in start and f"dataLogDir {server.data_dir}" in start
    assert server.address in start
    assert f"session 0x{sid:x} established for 127.0.0.1" in log
    assert f"session 0x{sid:x} closed by its client 127.0.0.1" in log
