"""kazoo's own test suite against trizab, as `python -m compat` runs it.

The runner exits non-zero when a kazoo test fails against trizab that
``compat/expected_failures.txt`` does not list (each entry there has its reason),
so this is the regression gate for client compatibility: a single server, and a
3-member ensemble.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("size", [1, 3])
def test_kazoo_suite_has_no_unexpected_failure(size: int, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "compat", "--no-extra", "--size", str(size), "--workdir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    report = result.stdout + result.stderr
    assert "unexpected trizab failures: 0" in report, report[-6000:]
    assert result.returncode == 0, report[-6000:]
