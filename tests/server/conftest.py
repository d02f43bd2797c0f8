"""Fixtures for the server-core tests (the harness lives in core_harness.py)."""

from __future__ import annotations

import pytest
from core_harness import Harness


@pytest.fixture
def h() -> Harness:
    return Harness()
