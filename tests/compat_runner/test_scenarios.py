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
