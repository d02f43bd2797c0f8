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
from trizab.zab.election import Candidate, ElectionTiming

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


@pytest.mark.usefixtures("lowest_installed")
def test_the_example_is_listed_and_elects_the_lowest_voter() -> None:
    assert "  lowest: the lowest-numbered voter leads; the others wait for it" in describe_plugins()
    plugin = load_plugin("trizab.election", "lowest", {})
    electors = [plugin.elector(sid, frozenset({2, 3, 4}), frozenset(), ElectionTiming()) for sid in (2, 3, 4)]
    assert {e.decision for e in electors} == {None}
    for e in electors:
        e.start(Candidate(current_epoch=0, last_zxid=0))
    assert {e.decision for e in electors} == {2}
    for e in electors:
        e.reconfigure(frozenset({3, 4, 5}), frozenset())
        e.start(Candidate(current_epoch=1, last_zxid=0))
    assert {e.decision for e in electors} == {3}


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
