"""A short live fuzz: mutated frames on a real ensemble's three ports while kazoo works.

The CI-sized run of ``python -m fuzz.live`` (100,000 frames and more, run by hand).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.live import PORTS, run_live

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def test_hostile_frames_on_every_port_do_not_crash_stall_flood_or_grow_the_members(tmp_path: Path) -> None:
    report = run_live(20_000, workers=16, seed=7, workdir=tmp_path / "ensemble")
    summary = report.summary()
    for port in PORTS:
        assert report.frames[port] >= 5_000, summary
    assert not report.crashed, summary
    assert not report.errors_in_logs, summary
    # The watching client kept working, without a stall.
    assert report.kazoo_errors == 0, summary
    assert report.kazoo_ops >= 100, summary
    assert report.kazoo_max_latency_s < 3.0, summary
    # Memory: a few MB of growth at most, not the frames' worth.
    for sid, before in report.rss_kb_before.items():
        assert report.rss_kb_after[sid] - before < 50_000, summary
    # One log line (two at most: the refusal, and what the core said about the session) per
    # rejected client connection; the quorum and election ports no more than that per
    # connection either.
    assert report.max_lines_per_client_connection <= 2, summary
    for port in ("client", "quorum", "election"):
        lines = sum(n for name, n in report.log_lines.items() if name.startswith(port))
        assert lines <= 2 * report.connections[port], summary
