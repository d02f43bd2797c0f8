"""The ZAB core and the election plugins are sans-I/O: no clock, socket, thread, OS or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {"trio", "socket", "time", "threading", "os", "random", "asyncio", "selectors", "subprocess"}
MODULES = sorted(
    [
        *(ROOT / "trizab" / "zab").rglob("*.py"),
        *(ROOT / "plugins" / "election").rglob("*.py"),
    ]
)


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_modules_found() -> None:
    names = {p.name for p in MODULES}
    assert {"peer.py", "messages.py", "fast.py", "static.py", "priority.py", "election.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_io_imports(path: Path) -> None:
    assert not imported(path) & FORBIDDEN


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os.path\nfrom time import monotonic\n")
    assert imported(bad) & FORBIDDEN == {"os", "time"}
