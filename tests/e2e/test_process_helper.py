"""testkit.process: the subprocess helper every other suite relies on."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit.process import ServerStartError, TrizabProcess

pytestmark = pytest.mark.slow


def test_fixture_server_answers(trizab_server: TrizabProcess) -> None:
    assert trizab_server.running
    assert trizab_server.command("ruok") == "imok"
    assert trizab_server.config_path.read_text().count("storage=memory") == 1


def test_restart_keeps_port_and_kill_is_a_crash(tmp_path: Path) -> None:
    server = TrizabProcess(tmp_path, storage="txnlog")
    server.start()
    try:
        port, pid = server.port, server.pid
        zk = KazooClient(hosts=server.address)
        zk.start(timeout=10)
        zk.create("/x", b"1")
        zk.stop()
        zk.close()
        assert server.kill() == -9
        assert not server.running
        server.start()
        assert server.port == port and server.pid != pid
        assert server.stop() == 0  # SIGTERM: a clean, flushed shutdown
    finally:
        server.kill()


def test_start_failure_reports_the_log(tmp_path: Path) -> None:
    server = TrizabProcess(tmp_path, extra_config=["storage=doesnotexist"])
    with pytest.raises(ServerStartError, match="storage=doesnotexist"):
        server.start(timeout=30)
    assert not server.running
