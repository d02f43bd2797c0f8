"""The import rules that keep the core deterministic and the layers one-way.

Every module of the installed package belongs to one layer of :data:`LAYERS` and
imports only itself, the standard library, third-party packages and the layers
listed beside its own.  In short (README, "How it is built"):

* The sans-I/O core: ``trizab/wire`` <- ``trizab/txn.py`` <- ``trizab/tree`` and
  ``trizab/zab`` <- ``trizab/server`` (which also reads ``trizab/config``'s
  records).  It imports no runtime, frontend, plugin, testing or CLI code, and no
  sockets, clocks, threads, randomness or the OS (nor does the frontend or an
  election plugin).
* The election plugin interface is part of the ZAB core (``trizab/zab/election.py``):
  the peer drives the elector, so the core never imports upwards for it.
* ``frontend -> trizab <- plugins``: the client protocol (installed as
  ``trizab.frontend``) uses the core; storage engines and election policies
  (``trizab.plugins``) use the core and the interfaces (``storage.py``,
  ``zab/election.py``, ``plugin.py``); neither imports the other, the runtime or
  the CLI.
* ``trizab/runtime`` is the composition root: it wires the frontend's connection
  state machine, the ZAB peer and a storage engine to the core, so it may import
  the frontend (``runtime -> frontend``) and every core layer, but no plugin by name
  (engines and policies are found through entry points by ``trizab/plugin.py``).
* ``trizab/testing`` (the simulation) drives the ZAB core with the built-in
  election plugins; nothing installed imports it.  Its server launcher
  (``trizab/testing/process.py``, behind the pytest fixtures) may use the runtime's
  process helpers (``trizab/runtime/launcher.py``).
* ``trizab/cli.py`` and its operator commands (``trizab/ops``) alone import the runtime;
  only the runtime, testing and the CLI import trio.
* Nothing installed imports ``testkit`` (the process launchers), ``compat``,
  ``bench`` or ``tests``: they exist only in a checkout of the repository.
* Interpreter-wide settings (the collector's thresholds, ``gc.freeze``, the GIL
  switch interval) are changed only in ``trizab/runtime/tuning.py``, which the CLI
  calls: a program that embeds a server keeps its own.
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
INSTALLED = ["trizab", "frontend", "plugins"]  # frontend/ and plugins/ install inside trizab

_CORE = ("trizab/wire", "trizab/txn.py", "trizab/tree", "trizab/zab", "trizab/server")
_INTERFACES = ("trizab/config", "trizab/storage.py", "trizab/plugin.py")

# layer (a file or directory of the repository) -> the other layers it may import.
LAYERS: dict[str, tuple[str, ...]] = {
    "trizab/__init__.py": (),
    "trizab/wire": (),
    "trizab/txn.py": ("trizab/wire",),
    "trizab/tree": ("trizab/wire", "trizab/txn.py"),
    "trizab/zab": ("trizab/wire", "trizab/txn.py"),
    "trizab/config": (),
    "trizab/server": ("trizab/wire", "trizab/txn.py", "trizab/tree", "trizab/zab", "trizab/config"),
    "trizab/storage.py": ("trizab/txn.py",),
    "trizab/plugin.py": ("trizab/storage.py",),
    "frontend": ("trizab/wire", "trizab/txn.py", "trizab/server"),
    "plugins/__init__.py": (),
    "plugins/storage": ("trizab/wire", "trizab/txn.py", "trizab/storage.py", "trizab/plugin.py"),
    "plugins/election": ("trizab/wire", "trizab/zab", "trizab/plugin.py"),
    "trizab/logflood.py": (),
    "trizab/logsetup.py": (),
    "trizab/progress.py": (),
    "trizab/runtime": (*_CORE, *_INTERFACES, "frontend", "trizab/logflood.py"),
    "trizab/testing": (*_CORE, *_INTERFACES, "plugins/election", "trizab/testing/process.py"),
    # The server launcher behind the pytest fixtures shares the ensemble launcher's helpers
    # (four-letter words, free ports); it starts servers as processes, never in-process.
    "trizab/testing/process.py": (*_INTERFACES, "trizab/runtime"),
    # The operator commands (status, purge, snapshot): the purge takes the runtime's directory lock.
    "trizab/ops": (*_INTERFACES, "trizab/runtime"),
    "trizab/cli.py": (
        *_INTERFACES,
        "trizab/runtime",
        "trizab/ops",
        "trizab/logsetup.py",
        "trizab/progress.py",
    ),
    "trizab/__main__.py": ("trizab/cli.py",),
}

IO_MODULES = {"trio", "socket", "time", "threading", "os", "random", "asyncio", "selectors", "subprocess"}
SANS_IO = [*_CORE, "frontend", "plugins/election"]
TRIO_ALLOWED = ["trizab/runtime", "trizab/testing", "trizab/cli.py"]
REPOSITORY_ONLY = {"testkit", "compat", "bench", "tests"}
# gc.disable() around a bulk load (trizab/tree/snapshot.py) restores the collector at once.
PROCESS_WIDE = {("gc", "set_threshold"), ("gc", "freeze"), ("sys", "setswitchinterval")}
TUNING = "trizab/runtime/tuning.py"


def _python_files(rel: str) -> list[Path]:
    base = ROOT / rel
    if base.is_file():
        return [base]
    return sorted(base.rglob("*.py")) if base.exists() else []


def _installed_files() -> list[Path]:
    return [path for rel in INSTALLED for path in _python_files(rel)]


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports; ``from a import b`` counts as ``a.b`` when that is a module."""
    found: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if _source(sub) is not None else node.module)
    return found


def _top(name: str) -> str:
    return name.split(".")[0]


def _source(module: str) -> Path | None:
    """The repository file of an installed trizab module (None for anything else)."""
    parts = module.split(".")
    if parts[0] != "trizab":
        return None
    if parts[1:2] in (["frontend"], ["plugins"]):
        parts = parts[1:]
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_name(base.name + ".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _layer(path: Path) -> str | None:
    """The layer ``path`` belongs to: the longest key of LAYERS that is it or contains it."""
    rel = path.relative_to(ROOT)
    matches = [key for key in LAYERS if rel == Path(key) or Path(key) in rel.parents]
    return max(matches, key=len) if matches else None


def test_every_installed_module_has_a_layer() -> None:
    orphans = [str(p.relative_to(ROOT)) for p in _installed_files() if _layer(p) is None]
    assert not orphans, f"add these to LAYERS with the layers they may import: {orphans}"
    assert all((ROOT / key).exists() for key in LAYERS), "LAYERS names a path that is gone"


def test_no_relative_imports() -> None:
    # The layer check resolves absolute module names only.
    offenders = [
        str(path.relative_to(ROOT))
        for path in _installed_files()
        if any(isinstance(n, ast.ImportFrom) and n.level > 0 for n in ast.walk(_tree(path)))
    ]
    assert not offenders, offenders


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    allowed = {layer, *LAYERS[layer]}
    offenders = []
    for path in _python_files(layer):
        if _layer(path) != layer:
            continue  # a nested layer of its own
        for module in sorted(_imports(path)):
            source = _source(module)
            if source is not None and _layer(source) not in allowed:
                offenders.append(f"{path.relative_to(ROOT)} imports {module} ({_layer(source)})")
    assert not offenders, f"{layer} may import only {sorted(LAYERS[layer])}: {offenders}"


@pytest.mark.parametrize("rel", SANS_IO)
def test_sans_io_layers_import_no_io(rel: str) -> None:
    files = _python_files(rel)
    assert files, f"{rel} has no Python files"
    offenders = {
        str(path.relative_to(ROOT)): sorted(m for m in _imports(path) if _top(m) in IO_MODULES)
        for path in files
    }
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"sans-I/O modules import I/O: {offenders}"


def test_checker_sees_every_kind_of_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import os.path\nfrom time import monotonic\nfrom trizab import config as cfg\n")
    assert _imports(bad) == {"os.path", "time", "trizab.config"}
    for module, layer in [
        ("trizab.frontend.connection", "frontend"),
        ("trizab.plugins.election.fast", "plugins/election"),
        ("trizab.zab.election", "trizab/zab"),
        ("trizab.txn", "trizab/txn.py"),
        ("trizab.config.keys", "trizab/config"),
    ]:
        source = _source(module)
        assert source is not None and _layer(source) == layer, module
    assert _source("trio") is None


def test_only_runtime_testing_and_cli_import_trio() -> None:
    allowed = {p for rel in TRIO_ALLOWED for p in _python_files(rel)}
    offenders = [
        str(path.relative_to(ROOT))
        for path in _installed_files()
        if path not in allowed and any(_top(m) == "trio" for m in _imports(path))
    ]
    assert not offenders, f"trio imported outside the runtime: {offenders}"


def test_installed_packages_do_not_import_repository_only_code() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _installed_files()
        if any(_top(m) in REPOSITORY_ONLY for m in _imports(path))
    ]
    assert not offenders, f"the installed package imports repository-only code: {offenders}"


def test_process_wide_settings_only_in_tuning() -> None:
    offenders = []
    for path in _installed_files():
        if path == ROOT / TUNING:
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                used = {(node.value.id, node.attr)}
            elif isinstance(node, ast.ImportFrom) and node.module in ("gc", "sys"):
                used = {(node.module, alias.name) for alias in node.names}
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}: {m}.{a}" for m, a in used & PROCESS_WIDE]
    assert not offenders, f"interpreter-wide settings belong in {TUNING}: {offenders}"


def test_ruff_clean() -> None:
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.fail("ruff is not installed (it is part of the [test] extra)")
    result = subprocess.run(
        [ruff, "check", "--no-cache", str(ROOT)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


RUNTIME_FILE_LINES = 600
RUNTIME_CLASS_LINES = 400


def test_the_runtime_is_made_of_small_parts() -> None:
    """No runtime module over 600 lines and no class over 400: one owner per part."""
    too_big = []
    for path in sorted((ROOT / "trizab" / "runtime").glob("*.py")):
        text = path.read_text()
        if text.count("\n") > RUNTIME_FILE_LINES:
            too_big.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.parse(text).body:
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > RUNTIME_CLASS_LINES:
                    too_big.append(f"{path.name}: class {node.name} has {lines} lines")
    assert not too_big, too_big


def test_the_runtime_reads_time_only_through_trio_or_its_clock() -> None:
    """Decisions on time must be drivable by a MockClock: no time.perf_counter/monotonic/time."""
    offenders = []
    for path in sorted((ROOT / "trizab" / "runtime").glob("*.py")):
        if path.name in ("clock.py", "launcher.py"):  # the wall-clock anchor; process management
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "time"
                and node.attr in ("perf_counter", "monotonic", "time", "time_ns", "sleep")
            ):
                offenders.append(f"{path.name}:{node.lineno} time.{node.attr}")
    assert not offenders, offenders
