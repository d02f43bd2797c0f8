"""docs/plugins.md's example election policy works as the page says.

The example's code block (``<!-- docs-test: election-plugin -->``) becomes a module, registered
under ``trizab.election`` as ``lowest`` the way an installed distribution's entry point would be
(importlib.metadata.entry_points is substituted, as in tests/plugins/test_plugin_loader.py). Then
``trizab plugins`` lists it, and the page's simulator commands run with it, in-process.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from typing import Any

import pytest

from tests.docs.doc_blocks import tagged_blocks
from trizab.plugin import describe_plugins, load_plugin
from trizab.testing import sim
from trizab.zab.election import Candidate, ElectionTiming, Notification, PeerState

MODULE = "docs_example_lowest_election"


@pytest.fixture
def lowest_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    block = tagged_blocks("plugins.md")["election-plugin"]
    module = types.ModuleType(MODULE)
    exec(compile(block.text, f"docs/plugins.md:{block.line}", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, MODULE, module)
    real = importlib.metadata.entry_points

    def entry_points(**selection: Any) -> Any:
        found = list(real(**selection))
        if selection.get("group") == "trizab.election":
            found.append(
                importlib.metadata.EntryPoint("lowest", f"{MODULE}:LowestElectionPlugin", "trizab.election")
            )
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def _finish_round(electors: list[Any], timing: ElectionTiming) -> None:
    for _ in range(timing.finalize_ticks):
        for e in electors:
            e.tick()


@pytest.mark.usefixtures("lowest_installed")
def test_the_example_is_listed_and_elects_the_lowest_voter() -> None:
    assert "  lowest: the lowest-numbered voter leads; the others wait for it" in describe_plugins()
    plugin = load_plugin("trizab.election", "lowest", {})
    timing = ElectionTiming()
    electors = [plugin.elector(sid, frozenset({2, 3, 4}), frozenset(), timing) for sid in (2, 3, 4)]
    assert {e.decision for e in electors} == {None}
    for e in electors:
        e.start(Candidate(current_epoch=0, last_zxid=0))
    # Each asks the other voters before it decides (a missed reconfig is learned from the answers).
    assert sorted(to for to, _ in electors[0].take_notifications()) == [3, 4]
    assert {e.decision for e in electors} == {None}
    _finish_round(electors, timing)
    assert {e.decision for e in electors} == {2}
    for e in electors:
        e.reconfigure(frozenset({3, 4, 5}), frozenset())
        e.start(Candidate(current_epoch=1, last_zxid=0))
    _finish_round(electors, timing)
    assert {e.decision for e in electors} == {3}


@pytest.mark.usefixtures("lowest_installed")
def test_the_example_answers_a_looking_member_once_and_joins_the_majoritys_leader() -> None:
    plugin = load_plugin("trizab.election", "lowest", {})
    e = plugin.elector(1, frozenset({1, 2, 3}), frozenset(), ElectionTiming())
    e.start(Candidate(current_epoch=1, last_zxid=0))
    e.take_notifications()
    looking = Notification(2, 2, 0, 1, 0, PeerState.LOOKING)
    e.step(looking)
    e.step(looking)
    assert [(to, n.state) for to, n in e.take_notifications()] == [(2, PeerState.LOOKING)]
    # 3 follows 2, which says it leads: a majority of {1, 2, 3} reports 2, not the lowest.
    e.step(Notification(3, 2, 0, 1, 4, PeerState.FOLLOWING))
    assert e.decision is None
    e.step(Notification(2, 2, 0, 1, 4, PeerState.LEADING))
    assert e.decision == 2


@pytest.mark.usefixtures("lowest_installed")
@pytest.mark.parametrize("seed", [18, 174, 997, 999])
def test_the_schedules_that_stalled_earlier_versions_of_the_example_settle(seed: int) -> None:
    # 18: a member down while the reconfig removing the lowest voter committed followed it for
    # ever (the example decided at once, sending nothing).  174: members followed a stale
    # leader while a majority followed another.  997, 999: members holding different
    # configurations each waited for a different "lowest" (nobody answered a looking member).
    stats = sim.run_schedule(seed, 3, "lowest", reconfig=True)
    assert stats["committed"] > 0


@pytest.mark.usefixtures("lowest_installed")
@pytest.mark.parametrize("extra", [[], ["--reconfig"]], ids=["plain", "reconfig"])
def test_the_pages_simulator_commands_pass_with_the_example(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The page runs 1,000 schedules; 40 keep this test short and still crash, restart and
    # partition members (and reconfigure, with --reconfig).
    status = sim.main(["--schedules", "40", "--peers", "3", "--election", "lowest", *extra])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "40 schedules, 0 failed" in out
