"""compat.plugin counts each test once, per file, in the four columns the report prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compat.__main__ import REPO_ROOT

INNER_TESTS = """
import pytest

@pytest.fixture
def broken_setup():
    raise RuntimeError("setup broke")

@pytest.fixture
def broken_teardown():
    yield
    raise RuntimeError("teardown broke")

def test_pass():
    pass

def test_fail():
    assert 1 == 2

def test_skip():
    pytest.skip("not here")

def test_setup_error(broken_setup):
    pass

def test_pass_then_teardown_error(broken_teardown):
    pass

def test_fail_then_teardown_error(broken_teardown):
    assert False
"""


def test_outcomes_per_test(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS, test_other="def test_ok():\n    pass\n")
    results = pytester.path / "results.json"
    monkeypatch.setenv("TRIZAB_COMPAT_TARGET", "none")  # count only, do not touch kazoo's harness
    monkeypatch.setenv("TRIZAB_COMPAT_RESULTS", str(results))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.runpytest_subprocess("-p", "compat.plugin", "-p", "no:cacheprovider")
    entries = json.loads(results.read_text())
    by_test = {(e["file"], e["test"]): e["outcome"] for e in entries}
    assert by_test == {
        ("test_inner.py", "test_pass"): "passed",
        ("test_inner.py", "test_fail"): "failed",
        ("test_inner.py", "test_skip"): "skipped",
        ("test_inner.py", "test_setup_error"): "error",
        ("test_inner.py", "test_pass_then_teardown_error"): "error",
        ("test_inner.py", "test_fail_then_teardown_error"): "failed",
        ("test_other.py", "test_ok"): "passed",
    }
    failed = next(e for e in entries if e["test"] == "test_fail")
    assert "assert 1 == 2" in failed["message"]


def test_trizab_target_patches_kazoo_harness(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_patch="""
import kazoo.testing.harness as harness
from trizab.testing import kazoo_harness

def test_patched():
    assert harness.get_global_cluster is kazoo_harness.get_global_cluster
"""
    )
    results = pytester.path / "results.json"
    monkeypatch.setenv("TRIZAB_COMPAT_TARGET", "trizab")
    monkeypatch.setenv("TRIZAB_COMPAT_RESULTS", str(results))
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    pytester.runpytest_subprocess("-p", "compat.plugin", "-p", "no:cacheprovider")
    assert [e["outcome"] for e in json.loads(results.read_text())] == ["passed"]

    # For the Apache ZooKeeper column the harness stays kazoo's own.
    monkeypatch.setenv("TRIZAB_COMPAT_TARGET", "apache")
    pytester.runpytest_subprocess("-p", "compat.plugin", "-p", "no:cacheprovider")
    assert [e["outcome"] for e in json.loads(Path(results).read_text())] == ["failed"]
