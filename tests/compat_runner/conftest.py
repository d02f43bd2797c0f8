"""Fixtures for the compat-runner and benchmark tests."""

from __future__ import annotations

import sys
from pathlib import Path

# compat/ and bench/ are top-level directories of the repository, not installed packages (a bare
# `compat` or `bench` in site-packages would collide with other distributions); make them
# importable when pytest is started as `pytest` rather than `python -m pytest`.
REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
