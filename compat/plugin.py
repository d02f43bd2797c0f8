"""pytest plugin for the compat runner: point kazoo's harness at trizab and count results per file.

Theory of operation: `python -m compat` runs `pytest -p compat.plugin --pyargs kazoo.tests` in a
subprocess. This plugin

- when `TRIZAB_COMPAT_TARGET=trizab`, switches kazoo's harness to trizab with the adapter that
  ships in the package (`trizab.testing.kazoo_harness.install()`, which users turn on with one
  setting) before any test runs, so kazoo's tests get trizab servers without being modified. For
  the Apache ZooKeeper column the target is `apache` and the harness is left untouched.
- when `TRIZAB_COMPAT_ZOOKEEPER_MEMBERS` names server ids as well (`1,2`; `python -m compat
  --zookeeper-members`), those members of every cluster run Apache ZooKeeper 3.8 in the same
  ensemble as the trizab ones (`testkit.kazoo_zookeeper`): a mixed ensemble.
- records one outcome per test (passed, failed, skipped or error; an error is a failure outside
  the test body, in setUp/tearDown or collection) and writes them as JSON to
  `TRIZAB_COMPAT_RESULTS`, which the runner turns into the per-file table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

TARGET_ENV = "TRIZAB_COMPAT_TARGET"
RESULTS_ENV = "TRIZAB_COMPAT_RESULTS"
ZOOKEEPER_MEMBERS_ENV = "TRIZAB_COMPAT_ZOOKEEPER_MEMBERS"

# Later phases never downgrade an earlier verdict: a failed call stays "failed" even if teardown
# also fails; a passed call followed by a failing teardown becomes "error".
_RANK = {"passed": 0, "skipped": 1, "error": 2, "failed": 3}


def outcome_of(report: pytest.TestReport, previous: str | None) -> str:
    """Fold one phase report into the test's verdict so far."""
    if report.skipped:
        verdict = "skipped"
    elif report.failed:
        verdict = "failed" if report.when == "call" else "error"
    else:
        verdict = "passed"
    if report.when != "call" and verdict == "passed":
        return previous or "passed"
    if previous is None:
        return verdict
    return verdict if _RANK[verdict] > _RANK[previous] else previous


class ResultCollector:
    def __init__(self) -> None:
        self.outcomes: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        entry = self.outcomes.setdefault(
            report.nodeid,
            {
                "file": Path(str(report.fspath)).name,
                "test": report.nodeid.split("::", 1)[-1],
                "outcome": None,
            },
        )
        entry["outcome"] = outcome_of(report, entry["outcome"])
        if report.failed and "message" not in entry:
            crash = getattr(report.longrepr, "reprcrash", None)
            entry["message"] = crash.message.splitlines()[0][:300] if crash and crash.message else ""
        elif report.skipped and "message" not in entry and isinstance(report.longrepr, tuple):
            entry["message"] = str(report.longrepr[2])[:300]  # (file, line, "Skipped: reason")
        entry["duration"] = entry.get("duration", 0.0) + report.duration

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.outcomes[report.nodeid] = {
                "file": Path(str(report.fspath)).name,
                "test": "<collection>",
                "outcome": "error",
                "message": str(report.longrepr).splitlines()[-1][:300] if report.longrepr else "",
            }

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        path = os.environ.get(RESULTS_ENV)
        if path:
            Path(path).write_text(json.dumps(list(self.outcomes.values()), indent=1))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(TARGET_ENV, "trizab") == "trizab":
        from trizab.testing import kazoo_harness

        kazoo_harness.install()
        zookeeper_members = os.environ.get(ZOOKEEPER_MEMBERS_ENV, "")
        if zookeeper_members:
            from testkit import kazoo_zookeeper

            size = int(os.environ.get("ZOOKEEPER_CLUSTER_SIZE", "3"))
            kazoo_zookeeper.install(kazoo_zookeeper.parse_server_ids(zookeeper_members, size))
            config.add_cleanup(kazoo_zookeeper.uninstall)
    config.pluginmanager.register(ResultCollector(), "trizab-compat-results")
