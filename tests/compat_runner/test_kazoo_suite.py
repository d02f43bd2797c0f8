"""kazoo's own test suite against trizab, as `python -m compat` runs it.

The runner exits non-zero when a kazoo test fails against trizab that
``compat/expected_failures.txt`` does not list (each entry there has its reason),
so this is the regression gate for client compatibility: a single server, a
3-member ensemble, and two mixed 3-member ensembles (``--zookeeper-members``: those
server ids run Apache ZooKeeper 3.8 in the same ensemble as the trizab members), one
with ZooKeeper followers under a trizab leader (1,2) and one with a ZooKeeper leader
(3, the highest id, which the members started first elect).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant",
    [
        pytest.param([], id="size1"),
        pytest.param(["--size", "3"], id="size3"),
        pytest.param(
            ["--size", "3", "--zookeeper-members", "1,2"], id="mixed-zk12", marks=pytest.mark.apache
        ),
        pytest.param(["--size", "3", "--zookeeper-members", "3"], id="mixed-zk3", marks=pytest.mark.apache),
    ],
)
def test_kazoo_suite_has_no_unexpected_failure(variant: list[str], tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "compat", "--no-extra", *variant, "--workdir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    report = result.stdout + result.stderr
    assert "unexpected trizab failures: 0" in report, report[-6000:]
    assert result.returncode == 0, report[-6000:]
