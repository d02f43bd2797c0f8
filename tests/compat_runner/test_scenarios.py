"""bench.scenarios at its small scale against trizab: every scenario prints its figures, and the
operations it measures really happened (no timing is asserted: the machine decides those)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.scenarios import SCENARIOS
from bench.scenarios import __main__ as cli
from bench.scenarios.common import SCALES, Outcome


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_scenario_small_scale_against_trizab(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Outcome] = {}
    real_run = cli.run_scenario

    def recording(scenario: Any, targets: Any, scale: Any, **kw: Any) -> dict[str, Outcome]:
        outcomes = real_run(scenario, targets, scale, **kw)
        [seen[scenario.name]] = outcomes.values()
        return outcomes

    monkeypatch.setattr(cli, "run_scenario", recording)
    code = cli.main(["all", "--servers", "trizab-txnlog", "--scale", "small"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert set(seen) == set(SCENARIOS)
    small = SCALES["small"]

    for name, outcome in seen.items():
        assert outcome.error is None, f"{name}: {outcome.error}"
        assert f"== {name} (small)" in out
        assert outcome.figures, name
        for figure in outcome.figures:
            assert math.isfinite(figure.value) and figure.value > 0, (name, figure)
            # The printed row carries the figure's value.
            assert any(line.startswith(figure.name) and figure.text() in line for line in out.splitlines())
        assert outcome.client_wall_s > 0, name
        assert f"{outcome.server}: client " in out

    c = seen["watch-fanout"].counts
    assert c["notifications"] == c["notifications expected"] == small.fanout_sessions
    c = seen["recursive-watch"].counts
    triggered = small.recursive_watchers * small.recursive_changes
    assert c["notifications"] == c["notifications expected"] == triggered
    c = seen["session-storm"].counts
    assert seen["session-storm"].server == "trizab-3-txnlog"
    assert c["sessions back"] == c["sessions"] == small.storm_sessions
    assert c["expired"] == 0 and c["never disconnected"] == 0
    assert c["connection attempts"] >= small.storm_sessions  # every session really reconnected
    c = seen["large-directory"].counts
    assert c["children created"] == c["children in every listing"] == small.bigdir_children
    assert c["listings"] == small.bigdir_listings
    c = seen["large-values"].counts
    for op in ("setData", "getData"):
        assert c[f"{op} x1 completed"] > 0 and c[f"{op} x1 errors"] == 0
    c = seen["mixed"].counts
    assert c["errors"] == 0
    assert c["getData"] > c["setData"] > 0 and c["create"] > 0 and c["delete"] > 0


def test_report_merges_runs_into_medians_and_ratio_ranges() -> None:
    from bench.report_merge import merge_loads, merge_scenario, ratio_text

    def outcome(server: str, rate: float, time_ms: float, error: str | None = None) -> dict[str, Any]:
        return {
            "server": server,
            "figures": [
                {"name": "ops/s", "value": rate, "unit": "/s", "lower_is_better": False},
                {"name": "p99", "value": time_ms, "unit": "ms", "lower_is_better": True},
            ],
            "counts": {"errors": 0},
            "client_cpu_s": 1.0,
            "client_wall_s": 2.0,
            "client_processes": 2,
            "samples": {},
            "error": error,
        }

    runs = [
        {"apache": outcome("apache", 100, 10), "trizab": outcome("trizab", 200, 5)},
        {"apache": outcome("apache", 100, 10), "trizab": outcome("trizab", 50, 20, "1 of 2 back")},
        {"apache": outcome("apache", 300, 30), "trizab": outcome("trizab", 300, 10)},
    ]
    merged = merge_scenario(runs)
    trizab = merged.outcomes["trizab"]
    assert trizab.figure("ops/s").value == 200 and trizab.figure("p99").value == 10  # type: ignore[union-attr]
    # Ratios are per run (x2, x0.5, x1 for throughput; x2, x0.5, x3 for p99), then their median.
    assert merged.ratios["ops/s"]["trizab"] == [2.0, 0.5, 1.0]
    assert ratio_text(merged.ratios["ops/s"]["trizab"]) == "x1.00 (x0.50-x2.00)"
    assert ratio_text(merged.ratios["p99"]["trizab"]) == "x2.00 (x0.50-x3.00)"
    assert trizab.error == "run 2: 1 of 2 back"

    point = {"op": "getData", "outstanding": 1, "p50_ms": 1.0, "p99_ms": 2.0, "cpu_us_per_op": None}
    loads = merge_loads(
        [
            {"a": [{**point, "ops_per_s": 100.0}], "b": [{**point, "ops_per_s": 150.0}]},
            {"a": [{**point, "ops_per_s": 200.0}], "b": "failed: boom"},
        ]
    )
    assert loads.ratios[("getData", 1)] == [1.5]  # the second run has no b to compare
    assert loads.columns["a"][0]["ops_per_s"] == 150.0  # type: ignore[index]
