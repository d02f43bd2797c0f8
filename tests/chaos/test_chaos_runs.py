"""Short fault-injection runs of the harness against trizab, as CI runs them.

Two 60-second runs with different fault mixes (``python -m compat.chaos``, real processes,
iptables faults in a private network namespace); every checker must hold.  Longer soaks, and the
same seeds against Apache ZooKeeper, are run by hand (see compat/README.md, "Fault injection").
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

MIXES = {
    # processes: crashes, a lost disk, long pauses, half-open clients
    "processes": (11, "kill,kill_leader,wipe,pause,client_cut"),
    # network: partitions of every shape and pauses of the leader, short and long
    "network": (12, "isolate_leader,partition_majority,cut_link,one_way,pause_leader,pause_leader_brief"),
}


def chaos_run(seed: int, faults: str, out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "compat.chaos",
            "--system",
            "trizab",
            "--seed",
            str(seed),
            "--duration",
            "60",
            "--faults",
            faults,
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no summary; exit {proc.returncode}\n{proc.stderr[-4000:]}"
    return json.loads(lines[0])


@pytest.mark.parametrize("mix", sorted(MIXES))
def test_a_minute_of_faults_breaks_no_promise(mix: str, tmp_path: Path) -> None:
    seed, faults = MIXES[mix]
    summary = chaos_run(seed, faults, tmp_path)
    assert "error" not in summary, summary
    assert sum(summary["faults"].values()) >= 2, summary  # faults really were injected
    assert summary["ops"]["ok"] > 1000, summary
    for name, verdict in summary["checkers"].items():
        assert verdict["ok"] is True, (name, verdict, summary["folder"])
    assert summary["lost_writes"] == 0 and summary["session_violations"] == 0, summary
    assert summary["valid"], summary
