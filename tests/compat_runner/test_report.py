"""The compat report: expected-failure list, per-file tables and the trizab/Apache differences."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import kazoo.tests
import pytest

from compat.__main__ import (
    EXPECTED_FAILURES,
    ColumnResult,
    differences,
    load_expected_failures,
    render_table,
)


def column(target: str, outcomes: list[tuple[str, str, str]]) -> ColumnResult:
    return ColumnResult(target, tuple({"file": f, "test": t, "outcome": o} for f, t, o in outcomes), 1.0, 0)


def test_expected_failures_file_is_well_formed() -> None:
    expected = load_expected_failures(EXPECTED_FAILURES)
    kazoo_tests = Path(kazoo.tests.__file__).parent
    for test, reason in expected.items():
        file, _, name = test.partition("::")
        assert (kazoo_tests / file).exists(), test
        # The class is defined in that file (its tests may be inherited from another file's class).
        assert f"class {name.split('::')[0]}(" in (kazoo_tests / file).read_text(), test
        assert len(reason) >= 10, f"{test}: give a real reason"


def test_expected_failures_parser(tmp_path: Path) -> None:
    path = tmp_path / "expected.txt"
    path.write_text("# comment\n\ntest_a.py::T::test_x | needs an ensemble\n")
    assert load_expected_failures(path) == {"test_a.py::T::test_x": "needs an ensemble"}
    path.write_text("test_a.py::T::test_x | needs a second server | sizes=1\ntest_b.py::t | needs TLS\n")
    assert load_expected_failures(path, size=1) == {
        "test_a.py::T::test_x": "needs a second server",
        "test_b.py::t": "needs TLS",
    }
    assert load_expected_failures(path, size=3) == {"test_b.py::t": "needs TLS"}
    path.write_text("test_a.py::T::test_x\n")
    with pytest.raises(ValueError, match="reason"):
        load_expected_failures(path)
    path.write_text("test_a.py::T::test_x | reason | bogus\n")
    with pytest.raises(ValueError, match="sizes"):
        load_expected_failures(path)


def test_expected_failures_mixed_scope(tmp_path: Path) -> None:
    path = tmp_path / "expected.txt"
    path.write_text(
        "test_a.py::T::zk_leads | leader is ZooKeeper | sizes=3 | mixed=3\n"
        "test_b.py::T::either | either mix | mixed=1,2/3\n"
        "test_c.py::T::any_mix | any mix | mixed=any\n"
        "test_d.py::T::always | everywhere\n"
    )
    assert set(load_expected_failures(path, size=3)) == {"test_d.py::T::always"}
    assert set(load_expected_failures(path, size=3, zookeeper_members=frozenset())) == {
        "test_d.py::T::always"
    }
    assert set(load_expected_failures(path, size=3, zookeeper_members=frozenset({3}))) == {
        "test_a.py::T::zk_leads",
        "test_b.py::T::either",
        "test_c.py::T::any_mix",
        "test_d.py::T::always",
    }
    assert set(load_expected_failures(path, size=3, zookeeper_members=frozenset({2, 1}))) == {
        "test_b.py::T::either",
        "test_c.py::T::any_mix",
        "test_d.py::T::always",
    }
    assert set(load_expected_failures(path, size=5, zookeeper_members=frozenset({3}))) == {
        "test_b.py::T::either",
        "test_c.py::T::any_mix",
        "test_d.py::T::always",
    }
    assert set(load_expected_failures(path, size=3, zookeeper_members=frozenset({1}))) == {
        "test_c.py::T::any_mix",
        "test_d.py::T::always",
    }
    for bad in ("mixed=", "mixed=one", "sizes=3 | sizes=3", "mixed=1 | mixed=2"):
        path.write_text(f"test_a.py::T::x | reason | {bad}\n")
        with pytest.raises(ValueError, match="mixed="):
            load_expected_failures(path)


def test_table_totals_and_differences() -> None:
    trizab = column(
        "trizab",
        [
            ("test_a.py", "A::test_1", "passed"),
            ("test_a.py", "A::test_2", "failed"),
            ("test_b.py", "B::test_1", "error"),
            ("test_b.py", "B::test_2", "skipped"),
        ],
    )
    apache = column(
        "apache",
        [
            ("test_a.py", "A::test_1", "passed"),
            ("test_a.py", "A::test_2", "passed"),
            ("test_b.py", "B::test_1", "failed"),
        ],
    )
    assert trizab.per_file()["test_b.py"] == Counter(error=1, skipped=1)
    table = render_table([trizab, apache], ["trizab", "apache"], markdown=True)
    lines = table.splitlines()
    assert lines[2] == "| test_a.py | 1 / 1 / 0 / 0 | 2 / 0 / 0 / 0 |"
    assert lines[3] == "| test_b.py | 0 / 0 / 1 / 1 | 0 / 1 / 0 / 0 |"
    assert lines[-1] == "| **total** | 1 / 1 / 1 / 1 | 2 / 1 / 0 / 0 |"
    diff = differences(trizab, apache, {"test_b.py::B::test_1": "needs TLS"})
    assert diff == [
        ["test_a.py::A::test_2", "failed", "passed", "UNEXPECTED"],
        ["test_b.py::B::test_1", "error", "failed", "needs TLS"],
    ]
    # Without an Apache column the reference says so.
    assert differences(trizab, None, {})[0][2] == "not run"


def test_issue6_suites_missing_crashing_and_passing(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from compat.__main__ import run_extra_suite

    missing = run_extra_suite("compat.no_such_suite", target_trizab=True, examples=None)
    assert (missing.summary, missing.ok) == ("not present", False)

    crashing = types.ModuleType("compat_fake_crash")
    crashing.run = lambda target_trizab: 1 / 0  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "compat_fake_crash", crashing)
    crashed = run_extra_suite("compat_fake_crash", target_trizab=True, examples=None)
    assert crashed.summary.startswith("crashed") and not crashed.ok

    calls: list[tuple[bool, int]] = []

    class Result:
        ok = True
        details = "3 sequences"

        def summary(self) -> str:
            return "3 passed, 0 failed"

    def run(target_trizab: bool, examples: int = 0) -> Result:
        calls.append((target_trizab, examples))
        return Result()

    passing = types.ModuleType("compat_fake_pass")
    passing.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "compat_fake_pass", passing)
    cell = run_extra_suite("compat_fake_pass", target_trizab=False, examples=7)
    assert (cell.summary, cell.ok, cell.details) == ("3 passed, 0 failed", True, "3 sequences")
    assert calls == [(False, 7)]


def test_main_renders_reused_results_and_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from compat import __main__ as runner

    monkeypatch.setattr(runner.apache_zk, "require_available", lambda: None)
    outcomes = [
        {"file": "test_a.py", "test": "A::test_1", "outcome": "passed"},
        {"file": "test_a.py", "test": "A::test_2", "outcome": "failed", "message": "boom"},
    ]
    (tmp_path / "kazoo-trizab.json").write_text(json.dumps(outcomes))
    (tmp_path / "kazoo-apache.json").write_text(json.dumps(outcomes[:1]))
    code = runner.main(["--apache", "--reuse", "--no-extra", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "test_a.py" in out and "1 / 1 / 0 / 0" in out
    assert "unexpected trizab failures: 1" in out
    assert code == 1  # A::test_2 is not in expected_failures.txt
    (tmp_path / "kazoo-trizab.json").write_text(json.dumps(outcomes[:1]))
    assert runner.main(["--apache", "--reuse", "--no-extra", "--workdir", str(tmp_path)]) == 0
