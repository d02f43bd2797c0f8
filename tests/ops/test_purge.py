"""trizab purge --count N: ZooKeeper's PurgeTxnLog, with the engine's own purge, on a stopped server."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit.apache_zk import classpath, java_executable, require_available
from testkit.process import TrizabProcess

WRITES = 300


def run_purge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trizab", "purge", *args], capture_output=True, text=True, timeout=120
    )


def zxid_of(name: str) -> int:
    return int(name.split(".")[1], 16)


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in (directory / "version-2").iterdir())


def snapshots(directory: Path) -> list[str]:
    return [n for n in files(directory) if n.startswith("snapshot.")]


def write(server: TrizabProcess, count: int) -> None:
    client = KazooClient(hosts=server.address, timeout=5.0)
    client.start(timeout=30)
    try:
        for i in range(count):
            client.create(f"/purge-{i}", b"x" * 100)
    finally:
        client.stop()
        client.close()


@pytest.fixture
def many_snapshots(tmp_path: Path) -> TrizabProcess:
    """A stopped server whose data directory holds many snapshots and log segments."""
    server = TrizabProcess(tmp_path / "srv", storage="txnlog", extra_config=["snapCount=20"])
    with server:
        write(server, WRITES)
    assert len(snapshots(server.data_dir)) >= 6, files(server.data_dir)
    return server


def test_purge_keeps_the_newest_snapshots_and_their_logs(many_snapshots: TrizabProcess) -> None:
    server = many_snapshots
    data = server.data_dir
    before = snapshots(data)
    run = run_purge("--count", "3", "--data-dir", str(data))
    assert run.returncode == 0, run.stderr
    after = files(data)
    kept = sorted((n for n in after if n.startswith("snapshot.")), key=zxid_of)
    assert kept == sorted(before, key=zxid_of)[-3:]
    oldest_kept = zxid_of(kept[0])
    logs = sorted(zxid_of(n) for n in after if n.startswith("log."))
    # The segment that holds the oldest kept snapshot's zxid (started at or before it), and later ones.
    assert logs and logs[0] <= oldest_kept and all(z > oldest_kept for z in logs[1:])
    removed = [line.removeprefix("Removing file: ") for line in run.stdout.splitlines() if "Removing" in line]
    assert removed and all(not Path(p).exists() for p in removed)
    assert "kept 3 snapshots" in run.stdout
    # Nothing a restart needs is gone: every write is still there.
    with server:
        client = KazooClient(hosts=server.address, timeout=5.0)
        client.start(timeout=30)
        try:
            assert sum(c.startswith("purge-") for c in client.get_children("/")) == WRITES
        finally:
            client.stop()
            client.close()


def test_purge_refuses_a_directory_a_running_server_holds(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path / "srv", storage="txnlog") as server:
        run = run_purge("--count", "3", "--data-dir", str(server.data_dir))
        assert run.returncode == 2
        assert len(run.stderr.splitlines()) == 1 and "in use by another trizab server" in run.stderr
        assert "autopurge" in run.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--count", "2", "--data-dir", "."], "greater than or equal to 3"),
        (["--count", "3", "--data-dir", "no-such-dir"], "does not exist"),
        (["--count", "3"], "no dataDir"),
        (["--count", "x", "--data-dir", "."], "invalid int value"),
        (["--count", "3", "--data-dir", "empty"], "holds no trizab or ZooKeeper data"),
    ],
)
def test_bad_purges_are_one_line_and_status_2(tmp_path: Path, args: list[str], expected: str) -> None:
    (tmp_path / "empty").mkdir()
    run = subprocess.run(
        [sys.executable, "-m", "trizab", "purge", *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1 and expected in run.stderr, run.stderr


@pytest.mark.apache
def test_purge_leaves_what_zookeepers_purge_tool_leaves(
    many_snapshots: TrizabProcess, tmp_path: Path
) -> None:
    require_available()
    ours = many_snapshots.data_dir
    theirs = tmp_path / "copy"
    shutil.copytree(ours, theirs)
    java = java_executable()
    assert java is not None
    zk = subprocess.run(
        [java, "-cp", classpath(), "org.apache.zookeeper.server.PurgeTxnLog", str(theirs), "-n", "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert zk.returncode == 0, zk.stderr
    run = run_purge("--count", "3", "--data-dir", str(ours))
    assert run.returncode == 0, run.stderr
    assert files(ours) == files(theirs)
