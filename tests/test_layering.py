"""The import rules that keep the core deterministic and the layers one-way.

* Only ``trizab/runtime``, ``trizab/testing`` and the CLI may import trio.
* Nothing in the replicated core (``trizab/tree``, ``trizab/server``, ``trizab/zab``,
  ``trizab/wire``) touches sockets, clocks, threads, randomness or the OS.
* Dependencies point one way: ``frontend -> trizab <- plugins``; the core never
  imports the frontend or a plugin.
* Nothing installed imports ``testkit`` (the process launchers), ``compat``,
  ``bench`` or ``tests``: they exist only in a checkout of the repository.
* The whole tree is ruff-clean.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

IO_MODULES = {"trio", "socket", "time", "threading", "os", "random", "asyncio", "selectors", "subprocess"}
SANS_IO_DIRS = ["trizab/tree", "trizab/server", "trizab/zab", "trizab/wire", "plugins/election"]
TRIO_ALLOWED = ["trizab/runtime", "trizab/testing", "trizab/cli.py", "trizab/__main__.py"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def _python_files(rel: str) -> list[Path]:
    base = ROOT / rel
    if base.is_file():
        return [base]
    return sorted(base.rglob("*.py")) if base.exists() else []


def _top(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("rel", SANS_IO_DIRS)
def test_sans_io_core_imports_no_io(rel: str) -> None:
    files = _python_files(rel)
    assert files, f"{rel} has no Python files"
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if _top(m) in IO_MODULES)
        for path in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"sans-I/O modules import I/O: {offenders}"


def test_only_runtime_imports_trio() -> None:
    allowed = {p for rel in TRIO_ALLOWED for p in _python_files(rel)}
    offenders = []
    for rel in ["trizab", "frontend", "plugins"]:
        for path in _python_files(rel):
            if path not in allowed and any(_top(m) == "trio" for m in _imports(path)):
                offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"trio imported outside the runtime: {offenders}"


def test_core_does_not_import_frontend_or_plugins() -> None:
    offenders = []
    for rel in ["trizab/tree", "trizab/server", "trizab/zab", "trizab/wire", "trizab/txn.py"]:
        for path in _python_files(rel):
            bad = [m for m in _imports(path) if m.startswith(("trizab.frontend", "trizab.plugins"))]
            if bad:
                offenders.append(f"{path.relative_to(ROOT)}: {bad}")
    assert not offenders, offenders


def test_installed_packages_do_not_import_testkit() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for rel in ["trizab", "frontend", "plugins"]
        for path in _python_files(rel)
        if any(_top(m) in ("testkit", "compat", "bench", "tests") for m in _imports(path))
    ]
    assert not offenders, f"the installed package imports repository-only code: {offenders}"


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed (it is part of the [test] extra)")
    result = subprocess.run(
        [ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
