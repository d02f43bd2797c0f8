"""docs/testing.md's examples, run as a user's test project would run them.

Each marked module of the page (``<!-- docs-test: NAME -->``, see :mod:`tests.docs.doc_blocks`)
is written into a fresh pytester directory, alone or with the page's ``pytest.ini``, and pytest
runs it in a subprocess with the installed plugin (its ``pytest11`` entry point, nothing loaded
by hand), as in a project that installed ``trizab[pytest]``. Every test function the module
defines must pass: an example edited into something that fails, or that no longer collects,
fails here.
"""

from __future__ import annotations

import re

import pytest

from tests.docs.doc_blocks import tagged_blocks

pytestmark = pytest.mark.slow

# kazoo's harness reads these; none may leak in from the environment running this test.
_HARNESS_ENV = (
    "TRIZAB_KAZOO_HARNESS",
    "ZOOKEEPER_PATH",
    "ZOOKEEPER_CLASSPATH",
    "ZOOKEEPER_VERSION",
    "ZOOKEEPER_CLUSTER_SIZE",
    "ZOOKEEPER_JAAS_AUTH",
)


def _test_functions(source: str) -> int:
    """How many tests a module defines (module-level functions and methods named test_*)."""
    return len(re.findall(r"^\s*def test_\w+\(", source, re.M))


def test_the_fixture_examples_pass(pytester: pytest.Pytester) -> None:
    block = tagged_blocks("testing.md")["fixtures"]
    assert block.lang == "python"
    tests = _test_functions(block.text)
    assert tests >= 3
    pytester.makepyfile(test_example=block.text)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)


def test_a_kazoo_testcase_module_runs_on_trizab_with_the_pages_ini_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = tagged_blocks("testing.md")
    ini, module = blocks["kazoo-harness-ini"], blocks["kazoo-testcase"]
    assert ini.lang == "ini" and module.lang == "python"
    assert "KazooTestCase" in module.text
    tests = _test_functions(module.text)
    assert tests >= 2
    for name in _HARNESS_ENV:
        monkeypatch.delenv(name, raising=False)  # no Java, kazoo's defaults: only the ini line switches
    pytester.makepyfile(test_with_kazoo_harness=module.text)

    # Without the page's setting kazoo's harness wants a Java ZooKeeper, and finds none.
    without = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert without.ret != 0
    assert without.parseoutcomes().get("passed", 0) == 0
    without.stdout.fnmatch_lines(["*ZOOKEEPER_PATH*"])

    pytester.makefile(".ini", pytest=ini.text)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=tests)
