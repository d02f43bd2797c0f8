"""A real flood: thousands of bad connections to a running member's quorum port, then count log lines."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from testkit.trizab_ensemble import TrizabEnsemble

FLOOD = 2000
SUMMARY = re.compile(r"\(([\d,]+) more in the last 10 s\)")


def wait_leader(ens: TrizabEnsemble, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leader = ens.leader()
        if leader is not None:
            return leader
        time.sleep(0.1)
    raise AssertionError("no leader")


@pytest.mark.slow
def test_a_flood_of_bad_quorum_connections_is_a_few_lines(tmp_path: Path) -> None:
    with TrizabEnsemble(3, tick_time=200, storage="memory", workdir=tmp_path / "ens") as ens:
        leader = wait_leader(ens)
        # The start-up line names every address the member listens on.
        start = next(ln for ln in leader.log_path.read_text().splitlines() if "serving clients" in ln)
        assert f"on {leader.address} " in start
        assert f"quorum 127.0.0.1:{leader.quorum_port}, election 127.0.0.1:{leader.election_port}" in start
        started = time.monotonic()
        for _ in range(FLOOD):
            # A length of 2 and two bytes: a QuorumPacket cut short, as a wrong peer sends.
            with socket.create_connection(("127.0.0.1", leader.quorum_port), timeout=5) as s:
                s.sendall(b"\x00\x00\x00\x02ab")
        flood_s = time.monotonic() - started
        # Every refusal is either a line of its own or counted by a summary (within 10-20 s).
        deadline = time.monotonic() + 40
        while True:
            lines = [
                ln for ln in leader.log_path.read_text().splitlines() if "rejecting quorum connection" in ln
            ]
            counted = sum(int(m.group(1).replace(",", "")) for ln in lines if (m := SUMMARY.search(ln)))
            plain = [ln for ln in lines if not SUMMARY.search(ln)]
            if len(plain) + counted >= FLOOD or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    assert len(plain) + counted == FLOOD, (len(plain), counted, leader.tail())
    assert len(plain) == 5, plain
    summaries = len(lines) - len(plain)
    # One summary per 10 s window the flood lasted (and the one it ended in).
    assert 1 <= summaries <= flood_s / 10 + 2, (summaries, flood_s)
    assert "from 127.0.0.1: " in plain[0] and "truncated" in plain[0]
