"""Fail-over with real ``trizab serve`` processes: kill -9 the leader, lose no acknowledged write.

A small loop of what ``python -m bench.failover`` measures (which runs ten kills
per ensemble and compares with Apache ZooKeeper): kazoo writers on every
member, two leader kills (the second while the first victim is restarting), then
every acknowledged create is read back from every member.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from bench.failover import Writer, first_write_after, member_mode, verify, wait_all_serving
from testkit.trizab_ensemble import TrizabEnsemble

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [3, 5])
def test_leader_kills_lose_no_acknowledged_write(tmp_path: Path, size: int) -> None:
    from kazoo.client import KazooClient

    ensemble = TrizabEnsemble(size, workdir=tmp_path, storage="txnlog")
    writers: list[Writer] = []
    try:
        ensemble.start()
        wait_all_serving(ensemble, timeout=60)
        c = KazooClient(hosts=ensemble.address)
        c.start(timeout=30)
        c.ensure_path("/failover")
        c.stop()
        c.close()
        members = list(ensemble)
        writers = [Writer(k, ",".join(m.address for m in members[k:] + members[:k])) for k in range(size)]
        for w in writers:
            w.start()
        for i in range(2):
            if i == 0:
                wait_all_serving(ensemble, timeout=60)
                time.sleep(0.5)
            leader = next(m for m in ensemble if member_mode(m) == "leader") if i == 0 else None
            while leader is None:
                leader = next((m for m in ensemble if member_mode(m) == "leader"), None)
                time.sleep(0.02)
            t_kill = time.monotonic()
            leader.kill()
            dt = first_write_after(writers, t_kill, timeout=60)
            assert dt is not None and dt < 30
            leader.start()
        wait_all_serving(ensemble, timeout=60)
        time.sleep(0.5)
        for w in writers:
            w.close()
        acked, lost = verify(ensemble, writers)
        assert acked > 0
        assert lost == 0
    finally:
        for w in writers:
            w.running = False
        ensemble.close()


def test_trizab_ensemble_command_starts_reports_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "trizab", "ensemble", "--size", "3", "--base-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        modes = [ln.split()[-1] for ln in lines if ln.startswith("member") and "127.0.0.1:" in ln]
        assert sorted(modes) == ["follower", "follower", "leader"], text
        assert "connect string: 127.0.0.1:" in text
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert "ensemble stopped" in out
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
