"""Fixtures for the differential suite: one Apache ZooKeeper 3.8 and one trizab, shared by the session.

Both servers are started once and reused by every example (the runner wipes the tree between
examples); starting a JVM per example would cost seconds each.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# compat/ is a top-level directory of the repository, not an installed package.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from compat.differential import servers  # noqa: E402
from testkit import apache_zk  # noqa: E402


@pytest.fixture(scope="session")
def apache_address() -> Iterator[tuple[str, int]]:
    # Fail, never skip, when ZooKeeper is missing: a skipped comparison proves nothing.
    apache_zk.require_available()
    with servers.apache_server() as address:
        yield address


@pytest.fixture(scope="session")
def trizab_address() -> Iterator[tuple[str, int]]:
    with servers.trizab_server() as address:
        yield address
