"""Shared fixtures: a real ``trizab serve`` process on a free 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.process import TrizabProcess
from trizab.logflood import FLOODS


@pytest.fixture(autouse=True)
def no_log_flood_history() -> Iterator[None]:
    """Each test starts without the refusals earlier tests logged from 127.0.0.1 (trizab.logflood)."""
    FLOODS.reset()
    yield


@pytest.fixture
def trizab_server(tmp_path: Path) -> Iterator[TrizabProcess]:
    """A fresh server (memory storage, tickTime 200 ms so sessions expire quickly) per test."""
    with TrizabProcess(tmp_path / "trizab", tick_time=200, storage="memory") as server:
        yield server


@pytest.fixture(scope="module")
def shared_trizab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrizabProcess]:
    """One server for a whole test module (tests must use distinct paths)."""
    with TrizabProcess(tmp_path_factory.mktemp("trizab"), tick_time=200, storage="memory") as server:
        yield server
