"""One owner per data directory (:mod:`trizab.runtime.datadir`), and the runtime taking it.

The lock module alone first (in this process and against a child process, which
is how two servers meet), then an embedded standalone and member :class:`Server`:
they must be protected without the CLI.  ``tests/e2e/test_cli.py`` has the same
with real ``trizab serve`` processes, and real read-only mounts.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import trio

from trizab import config as cfg
from trizab.runtime import datadir
from trizab.runtime.datadir import LOCK_NAME, DataDirError, claim, config_directories, holder_pid
from trizab.runtime.launcher import write_configs
from trizab.runtime.server import Server, StartupError

# A child that takes the lock, says so, and sleeps until it is killed.
_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from trizab.runtime.datadir import claim
    claim([("dataDir", Path(sys.argv[1]))])
    print("locked", flush=True)
    time.sleep(120)
    """
)


def test_claim_creates_the_directory_locks_it_and_records_the_pid(tmp_path: Path) -> None:
    data = tmp_path / "new" / "data"
    with claim([("dataDir", data)]) as lock:
        assert data.is_dir()
        assert holder_pid(data) == os.getpid()
        assert [p for p, _ in lock.held] == [data]
        # The write check leaves nothing behind.
        assert sorted(p.name for p in data.iterdir()) == [LOCK_NAME]


def test_a_second_claim_fails_naming_the_holder_until_released(tmp_path: Path) -> None:
    lock = claim([("dataDir", tmp_path)])
    # flock belongs to the open file, so two owners in one process exclude each other too.
    with pytest.raises(DataDirError) as info:
        claim([("dataDir", tmp_path)])
    message = str(info.value)
    assert "\n" not in message
    assert f"dataDir {tmp_path} is in use" in message
    assert f"pid {os.getpid()}, this process" in message
    lock.release()
    lock.release()  # idempotent
    with claim([("dataDir", tmp_path)]):
        pass


def test_a_lock_held_by_another_process_names_it_and_dies_with_it(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirError, match=rf"in use by another trizab server \(pid {child.pid}\)$"):
            claim([("dataDir", tmp_path)])
        # The lock file is left as it was: the loser writes nothing.
        assert holder_pid(tmp_path) == child.pid
    finally:
        child.kill()  # SIGKILL: no clean-up of any kind, the kernel drops the lock
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    with claim([("dataDir", tmp_path)]):
        assert holder_pid(tmp_path) == os.getpid()


def test_claim_is_all_or_nothing(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "log"
    with claim([("dataLogDir", log)]):
        with pytest.raises(DataDirError, match="dataLogDir"):
            claim([("dataDir", data), ("dataLogDir", log)])
        with claim([("dataDir", data)]):  # the failed claim let go of the dataDir it had taken
            pass


def test_a_directory_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(DataDirError) as info:
        claim([("dataDir", tmp_path / "file" / "data")])
    assert str(info.value) == f"cannot write to dataDir {tmp_path / 'file' / 'data'}: Not a directory"


def test_a_directory_that_refuses_new_files_is_reported_and_released(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Root ignores permission bits; the real read-only mount is in tests/e2e/test_cli.py.
    def refuse(**_: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(datadir.tempfile, "mkstemp", refuse)
    with pytest.raises(DataDirError) as info:
        claim([("dataDir", tmp_path)])
    assert str(info.value) == f"cannot write to dataDir {tmp_path}: Read-only file system"
    monkeypatch.undo()
    with claim([("dataDir", tmp_path)]):
        pass


def test_config_directories_locks_a_shared_or_linked_directory_once(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "log"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    conf = cfg.ServerConfig(data_dir=data)
    assert config_directories(conf) == [("dataDir", data)]
    assert config_directories(conf.evolve(data_log_dir=data)) == [("dataDir", data)]
    assert config_directories(conf.evolve(data_log_dir=tmp_path / "link")) == [("dataDir", data)]
    assert config_directories(conf.evolve(data_log_dir=log)) == [("dataDir", data), ("dataLogDir", log)]
    assert config_directories(cfg.ServerConfig()) == []
    # Relative paths are reported absolute: the message must say which directory it means.
    rel = config_directories(cfg.ServerConfig(data_dir=Path("rel")))
    assert rel == [("dataDir", Path.cwd() / "rel")]


# -- the runtime -------------------------------------------------------------------------------


async def _four_letter(port: int, word: bytes) -> str:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(word)
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


async def test_an_embedded_server_owns_its_data_directory(tmp_path: Path) -> None:
    conf = cfg.ServerConfig(client_port=0, data_dir=tmp_path / "data", data_log_dir=tmp_path / "log")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            first = Server(conf)
            await nursery.start(first.run)
            assert holder_pid(tmp_path / "data") == holder_pid(tmp_path / "log") == os.getpid()
            second = Server(conf)
            with pytest.raises(StartupError, match=r"dataDir .* is in use .*this process"):
                await second.run()
            assert "Mode: standalone" in await _four_letter(first.addresses[0][1], b"srvr")  # unharmed
            nursery.cancel_scope.cancel()
        # Stopped (storage closed): the directory is free again.
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(conf).run)
            nursery.cancel_scope.cancel()


async def test_the_memory_engine_takes_no_lock(tmp_path: Path) -> None:
    conf = cfg.ServerConfig(client_port=0, data_dir=tmp_path, storage_name="memory")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(Server(conf).run)
            await nursery.start(Server(conf).run)  # it writes nothing there: no owner to exclude
            assert not (tmp_path / LOCK_NAME).exists()
            nursery.cancel_scope.cancel()


async def test_an_embedded_member_owns_its_data_directory(tmp_path: Path) -> None:
    (_, path, _), *_ = write_configs(tmp_path, 3, tick_time=200)
    conf = cfg.load(path)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            first = Server(conf)
            await nursery.start(first.run)
            # Another client port, so that the lock, not the port, is what stops the second.
            second = Server(conf.evolve(client_port=0))
            with pytest.raises(StartupError, match=rf"dataDir {conf.data_dir} is in use"):
                await second.run()
            nursery.cancel_scope.cancel()
