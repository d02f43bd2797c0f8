"""The Apache ZooKeeper launcher: starts a real 3.8 server, answers, and stops by pid."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from bench import loadgen
from testkit import apache_zk
from trizab.wire import records as r
from trizab.wire.codes import OpCode

pytestmark = pytest.mark.apache


@pytest.fixture(scope="module", autouse=True)
def _require_apache() -> None:
    # Fail, never skip, when the package is missing: CI installs it.
    apache_zk.require_available()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_standalone_serves_kazoo_and_stops(tmp_path: Path) -> None:
    from kazoo.client import KazooClient

    zk = apache_zk.ApacheZooKeeper(workdir=tmp_path / "zk", extra_config=["extendedTypesEnabled=true"])
    with zk:
        assert zk.address == f"127.0.0.1:{zk.client_port}"
        assert "zookeeper.version=3.8" in zk.four_letter_word("envi")
        assert "Mode: standalone" in zk.four_letter_word("srvr")
        client = KazooClient(zk.address, timeout=10)
        client.start(timeout=15)
        try:
            client.create("/launcher", b"v")
            assert client.get("/launcher")[0] == b"v"
            # extendedTypesEnabled reached the server: a TTL create succeeds (else Unimplemented).
            sock = loadgen.connect("127.0.0.1", zk.client_port)
            try:
                ttl = r.CreateTTLRequest(path="/ttl", data=b"", acl=loadgen.OPEN_ACL, flags=5, ttl=60_000)
                assert loadgen.call(sock, 1, OpCode.CREATE_TTL, ttl) == 0
            finally:
                sock.close()
        finally:
            client.stop()
            client.close()
        pid = zk.pid
        assert pid is not None
    assert not zk.running
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()
    assert not _port_open(zk.client_port)
    # The caller's workdir is kept (with the log); a temporary one would be removed.
    assert (tmp_path / "zk" / "zookeeper.log").exists()


def test_default_whitelist_can_be_overridden() -> None:
    with apache_zk.ApacheZooKeeper(extra_config=["4lw.commands.whitelist=srvr"]) as zk:
        assert "not in the whitelist" in zk.four_letter_word("envi")
        workdir = zk.workdir
    assert not workdir.exists()


def test_start_failure_is_reported_with_log(tmp_path: Path) -> None:
    zk = apache_zk.ApacheZooKeeper(workdir=tmp_path, extra_config=["tickTime=notanumber"], start_timeout=20)
    with pytest.raises(apache_zk.ApacheZooKeeperError):
        zk.start()
    assert not zk.running


@pytest.mark.slow
def test_ensemble_elects_a_leader_and_survives_one_kill() -> None:
    from kazoo.client import KazooClient

    with apache_zk.ApacheEnsemble(3) as ensemble:
        leader = ensemble.leader()
        assert leader is not None
        leader.kill()
        survivors = [m for m in ensemble if m is not leader]
        client = KazooClient(",".join(m.address for m in survivors), timeout=10)
        client.start(timeout=30)
        try:
            client.retry(client.create, "/after-kill", b"x")
            assert client.exists("/after-kill") is not None
        finally:
            client.stop()
            client.close()


def test_classpath_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZOOKEEPER_CLASSPATH", str(tmp_path / "missing.jar"))
    assert apache_zk.classpath() == str(tmp_path / "missing.jar")
    assert not apache_zk.available()
    with pytest.raises(apache_zk.ApacheZooKeeperError, match="not available"):
        apache_zk.require_available()
    monkeypatch.delenv("ZOOKEEPER_CLASSPATH")
    assert os.pathsep in apache_zk.classpath()
