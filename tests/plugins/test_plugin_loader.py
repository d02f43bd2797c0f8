"""The plugin loader: discovery through entry points, option validation, error lines."""

from __future__ import annotations

import importlib.metadata
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from trizab import plugin
from trizab.plugin import (
    Option,
    PluginError,
    available,
    describe_plugins,
    load_plugin,
    load_storage,
    parse_bool,
    parse_choice,
    parse_int,
    parse_size,
)

# -- a third-party plugin, registered only through a (fake) entry point --------


class EchoStorage:
    """Stands in for a storage engine shipped by another distribution."""

    description: ClassVar[str] = "test-only engine that records how it was built"
    options: ClassVar[tuple[Option, ...]] = (
        Option("depth", parse_int(1, 9), 3, "how deep", "int"),
        Option("mode", parse_choice("fast", "safe"), "safe", "which mode", "one of fast|safe"),
        Option("verbose", parse_bool, False, "chatty", "bool"),
    )
    durable: ClassVar[bool] = False

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs


class Broken:
    description = 42  # not a string: declared wrongly
    options = ()


@pytest.fixture
def third_party(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("fake_thirdparty_trizab_plugin")
    module.EchoStorage = EchoStorage  # type: ignore[attr-defined]
    module.Broken = Broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    real = importlib.metadata.entry_points

    def entry_points(**selection: Any) -> Any:
        found = list(real(**selection))
        if selection.get("group") == "trizab.storage":
            found += [
                importlib.metadata.EntryPoint("echo", f"{module.__name__}:EchoStorage", "trizab.storage"),
                importlib.metadata.EntryPoint("broken", f"{module.__name__}:Broken", "trizab.storage"),
                importlib.metadata.EntryPoint("ghost", "no_such_module_xyz:Thing", "trizab.storage"),
            ]
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


def test_builtins_are_found_through_entry_points() -> None:
    names = {i.name for i in available("trizab.storage")}
    assert {"memory", "txnlog", "sqlite"} <= names
    for info in available("trizab.storage"):
        if info.name in {"memory", "txnlog", "sqlite"}:
            assert info.error is None, info.error
            assert info.distribution == "trizab"
            assert info.description


def test_third_party_plugin_loads_with_options(third_party: None) -> None:
    obj = load_plugin("trizab.storage", "echo", {"depth": "7", "verbose": "yes"}, data_dir=Path("/x"))
    assert isinstance(obj, EchoStorage)
    assert obj.kwargs == {"data_dir": Path("/x"), "depth": 7, "mode": "safe", "verbose": True}


def test_third_party_plugin_defaults(third_party: None) -> None:
    obj = load_plugin("trizab.storage", "echo")
    assert obj.kwargs == {"depth": 3, "mode": "safe", "verbose": False}


def test_unknown_name_lists_choices(third_party: None) -> None:
    with pytest.raises(PluginError) as e:
        load_plugin("trizab.storage", "postgres", {})
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("unknown storage=postgres; choices: ")
    for name in ("echo", "memory", "sqlite", "txnlog"):
        assert name in msg


def test_unknown_option_names_key_value_and_choices(third_party: None) -> None:
    with pytest.raises(
        PluginError,
        match=r"^unknown option storage\.dpeth=4 for storage=echo; choices: depth, mode, verbose$",
    ):
        load_plugin("trizab.storage", "echo", {"dpeth": "4"})


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("depth", "deep", "expected an integer"),
        ("depth", "0", "expected an integer >= 1"),
        ("depth", "10", "expected an integer <= 9"),
        ("mode", "fastest", "expected one of fast|safe"),
        ("verbose", "maybe", "expected yes/no"),
    ],
)
def test_bad_option_value(third_party: None, key: str, value: str, reason: str) -> None:
    with pytest.raises(PluginError) as e:
        load_plugin("trizab.storage", "echo", {key: value})
    msg = str(e.value)
    assert msg.startswith(f"bad value storage.{key}={value} for storage=echo: {reason}")
    assert "\n" not in msg


def test_builtin_bad_option_value(tmp_path: Path) -> None:
    with pytest.raises(
        PluginError, match=r"^bad value storage\.prealloc=lots for storage=txnlog: expected a size"
    ):
        load_plugin("trizab.storage", "txnlog", {"prealloc": "lots"}, data_dir=tmp_path)


def test_broken_plugins_are_reported_not_fatal(third_party: None) -> None:
    infos = {i.name: i for i in available("trizab.storage")}
    assert infos["echo"].error is None
    assert "description" in (infos["broken"].error or "")
    assert "cannot import no_such_module_xyz:Thing" in (infos["ghost"].error or "")
    with pytest.raises(PluginError, match=r"^storage=ghost: cannot import"):
        load_plugin("trizab.storage", "ghost")
    text = describe_plugins()
    assert "ghost" in text and "BROKEN" in text


def test_describe_lists_every_plugin_and_option(third_party: None) -> None:
    text = describe_plugins(["trizab.storage"])
    for info in available("trizab.storage"):
        assert f"  {info.name}" in text
        for o in info.options:
            assert f"storage.{o.name}=<{o.kind}>" in text
    assert "storage.mode=<one of fast|safe>  (default safe)  which mode" in text
    assert "storage.verbose=<bool>  (default no)" in text


def test_duplicate_registration_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def entry_points(**selection: Any) -> Any:
        return [
            importlib.metadata.EntryPoint("dup", "a_mod:A", "trizab.storage"),
            importlib.metadata.EntryPoint("dup", "b_mod:B", "trizab.storage"),
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    with pytest.raises(PluginError, match="registered by more than one distribution"):
        load_plugin("trizab.storage", "dup")


def test_unknown_group() -> None:
    with pytest.raises(PluginError, match="unknown plugin group"):
        available("trizab.nothing")


@pytest.mark.parametrize(
    ("raw", "value"),
    [("65536", 65536), ("64K", 64 << 10), ("64m", 64 << 20), ("1G", 1 << 30), ("2kb", 2048)],
)
def test_parse_size(raw: str, value: int) -> None:
    assert parse_size(raw) == value


@pytest.mark.parametrize("raw", ["", "M", "-1", "1.5M", "12T", "1 0"])
def test_parse_size_rejects(raw: str) -> None:
    with pytest.raises(ValueError):
        parse_size(raw)


@pytest.mark.parametrize(("raw", "value"), [("yes", True), ("No", False), ("true", True), ("0", False)])
def test_parse_bool(raw: str, value: bool) -> None:
    assert parse_bool(raw) is value


@attrs.define
class _Config:
    storage_name: str | None
    data_dir: Path | None
    data_log_dir: Path | None = None
    storage_options: dict[str, str] = attrs.Factory(dict)
    force_sync: bool = True


def test_load_storage_from_config(tmp_path: Path) -> None:
    s = load_storage(_Config("txnlog", tmp_path / "d", tmp_path / "l", {"prealloc": "1M"}, False))
    assert type(s).__name__ == "TxnLogStoragePlugin"
    assert s.prealloc == 1 << 20
    assert s.force_sync is False
    assert s.log_dir == tmp_path / "l" / "version-2"
    # No name: txnlog with a dataDir, memory without one.
    assert type(load_storage(_Config(None, tmp_path))).__name__ == "TxnLogStoragePlugin"
    assert type(load_storage(_Config(None, None))).__name__ == "MemoryStoragePlugin"
    with pytest.raises(PluginError, match=r"^storage=txnlog: needs dataDir$"):
        load_storage(_Config("txnlog", None))


def test_load_storage_with_real_server_config(tmp_path: Path) -> None:
    config = pytest.importorskip("trizab.config")
    text = f"dataDir={tmp_path}\nclientPort=2181\nstorage=sqlite\nstorage.cache_kib=1024\nforceSync=no\n"
    cfg = config.parse(text, read_myid=False)
    s = load_storage(cfg)
    assert type(s).__name__ == "SqliteStoragePlugin"
    assert (s.cache_kib, s.force_sync) == (1024, False)


def test_groups_cover_election() -> None:
    assert plugin.GROUPS["trizab.election"] == "election"
    with pytest.raises(PluginError, match=r"^unknown election=nope; choices: "):
        load_plugin("trizab.election", "nope")
