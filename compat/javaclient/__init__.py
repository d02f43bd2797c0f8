"""The stock Java client (ZooKeeperMain) against trizab and Apache ZooKeeper: equal transcripts."""

from __future__ import annotations

from compat.differential.result import SuiteResult
from compat.javaclient.transcript import SCRIPT, compare, normalize, run_script

__all__ = ["SCRIPT", "compare", "normalize", "run", "run_script"]


def run(target_trizab: bool = True) -> SuiteResult:
    """Run the script against Apache ZooKeeper and against trizab (or a second ZooKeeper).

    Passed/failed count one comparison; ``details`` holds the diff when they differ.
    """
    from compat.differential.servers import apache_server, trizab_server

    with apache_server() as expected_addr:
        expected = normalize(run_script(expected_addr))
    with trizab_server() if target_trizab else apache_server() as actual_addr:
        actual = normalize(run_script(actual_addr))
    diff = compare(expected, actual)
    if diff is None:
        return SuiteResult(passed=1, failed=0, details=f"{len(expected)} transcript lines equal")
    return SuiteResult(passed=0, failed=1, details=diff)
