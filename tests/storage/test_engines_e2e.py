"""End to end: ``storage=NAME`` in zoo.cfg switches the engine, and durable engines keep data.

A real ``trizab serve`` process per engine: write a tree (creates, setData,
deletes, enough to cross snapCount so a snapshot plus a log tail must be
combined), restart it (gracefully, then with kill -9) and read everything back.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from storage_helpers import storage_plugin_names

from trizab.plugin import available

kazoo_client = pytest.importorskip("kazoo.client")
from testkit.process import TrizabProcess  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DURABLE = [i.name for i in available("trizab.storage") if i.cls is not None and i.cls.durable]


def write_tree(address: str) -> dict[str, tuple[bytes, int, int]]:
    c = kazoo_client.KazooClient(address, timeout=10)
    c.start(timeout=10)
    try:
        c.ensure_path("/app")
        for i in range(120):
            c.create(f"/app/n{i:03d}", b"v0-%d" % i)
        for i in range(0, 120, 3):
            c.set(f"/app/n{i:03d}", b"v1-%d" % i)
        for i in range(0, 120, 10):
            c.delete(f"/app/n{i:03d}")
        return read_tree(c)
    finally:
        c.stop()
        c.close()


def read_tree(c: object) -> dict[str, tuple[bytes, int, int]]:
    out = {}
    for name in c.get_children("/app"):  # type: ignore[attr-defined]
        data, stat = c.get(f"/app/{name}")  # type: ignore[attr-defined]
        out[name] = (data, stat.mzxid, stat.version)
    return out


def read(address: str) -> dict[str, tuple[bytes, int, int]] | None:
    c = kazoo_client.KazooClient(address, timeout=10)
    c.start(timeout=10)
    try:
        return read_tree(c) if c.exists("/app") else None
    finally:
        c.stop()
        c.close()


@pytest.mark.parametrize("engine", DURABLE)
def test_durable_engine_keeps_data_across_restarts(tmp_path: Path, engine: str) -> None:
    server = TrizabProcess(tmp_path, storage=engine, extra_config=["snapCount=100"])
    server.start()
    try:
        written = write_tree(server.address)
        assert len(written) == 108
        server.restart()
        assert read(server.address) == written
        server.restart(kill=True)
        assert read(server.address) == written
    finally:
        server.stop()


def test_memory_engine_forgets_on_restart(tmp_path: Path) -> None:
    # The contrast that shows the storage= key really switches the engine.
    assert "memory" in storage_plugin_names()
    server = TrizabProcess(tmp_path, storage="memory")
    server.start()
    try:
        assert len(write_tree(server.address)) == 108
        server.restart()
        assert read(server.address) is None
    finally:
        server.stop()


def test_engine_files_match_the_configured_engine(tmp_path: Path) -> None:
    for engine in DURABLE:
        server = TrizabProcess(tmp_path / engine, storage=engine)
        server.start()
        try:
            write_tree(server.address)
        finally:
            server.stop()
        files = {p.name for p in (tmp_path / engine / "data").rglob("*")}
        if engine == "txnlog":
            assert any(n.startswith("log.") for n in files)
            assert "trizab.sqlite3" not in files
        if engine == "sqlite":
            assert "trizab.sqlite3" in files
            assert not any(n.startswith("log.") for n in files)


def test_bad_storage_option_stops_startup_with_one_line(tmp_path: Path) -> None:
    server = TrizabProcess(tmp_path, storage="txnlog", extra_config=["storage.prealloc=huge"])
    with pytest.raises(Exception) as e:
        server.start(timeout=20)
    server.stop()
    assert "bad value storage.prealloc=huge for storage=txnlog: expected a size" in str(e.value)
