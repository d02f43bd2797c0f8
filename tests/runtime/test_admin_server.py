"""The AdminServer of an in-process standalone server, over loopback HTTP.

A kazoo client (in a thread) makes an ephemeral node and watches; the commands must show
them with ZooKeeper 3.8's keys.  Member-only commands and the comparison with a real
ZooKeeper are in tests/differential/test_diff_adminserver.py.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio
from kazoo.client import KazooClient
from trizab.frontend import admin_commands

from trizab import config as cfg
from trizab.runtime.server import Server

pytestmark = pytest.mark.timeout(60)


async def _get(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(f"{method} {target} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := await stream.receive_some(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


async def _command(port: int, name: str) -> dict[str, Any]:
    status, headers, body = await _get(port, f"/commands/{name}")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    return json.loads(body)


def _config(tmp_path: Path, *extra: str) -> cfg.ServerConfig:
    text = "\n".join(
        [
            "tickTime=2000",
            f"dataDir={tmp_path / 'data'}",
            "clientPort=0",
            "storage=memory",
            "admin.serverPort=0",
            *extra,
        ]
    )
    path = tmp_path / "zoo.cfg"
    path.write_text(text + "\n")
    return cfg.load(path)


@pytest.fixture
async def server(tmp_path: Path, nursery: trio.Nursery) -> AsyncIterator[Server]:
    srv = Server(_config(tmp_path, "admin.snapshot.intervalInMS=60000", "ssl.keyStore.password=secret"))
    await nursery.start(srv.run)
    assert srv.admin_server.port
    yield srv


def _with_client(address: tuple[str, int]) -> KazooClient:
    zk = KazooClient(f"{address[0]}:{address[1]}", timeout=10)
    zk.start(timeout=10)
    zk.create("/eph", b"x", ephemeral=True)
    zk.get("/eph", watch=lambda event: None)
    zk.exists("/missing", watch=lambda event: None)
    return zk


async def test_commands_answer_with_zookeepers_keys(server: Server) -> None:
    port = server.admin_server.port
    assert port is not None
    zk = await trio.to_thread.run_sync(_with_client, server.addresses[0])
    try:
        session = zk.client_id[0]
        ruok = await _command(port, "ruok")
        assert ruok == {"command": "ruok", "error": None}

        srvr = await _command(port, "srvr")
        assert srvr["command"] == "server_stats"
        assert srvr["version"].startswith("3.8.")
        assert srvr["server_stats"]["server_state"] == "standalone"
        assert srvr["server_stats"]["num_alive_client_connections"] == 1
        assert isinstance(srvr["server_stats"]["avg_latency"], float)
        assert "proposal_stats" not in srvr

        stat = await _command(port, "stat")
        assert stat["command"] == "stats"
        assert set(stat["connections"][0]) == {
            "remote_socket_address",
            "interest_ops",
            "outstanding_requests",
            "packets_received",
            "packets_sent",
        }
        cons = await _command(port, "cons")
        assert cons["connections"][0]["session_id"] == session
        assert cons["secure_connections"] == []

        dump = await _command(port, "dump")
        assert dump["session_id_to_ephemeral_paths"] == {str(session): ["/eph"]}
        assert [session] in dump["expiry_time_to_session_ids"].values()

        watches = await _command(port, "wchc")
        assert sorted(watches["session_id_to_watched_paths"][str(session)]) == ["/eph", "/missing"]
        by_path = await _command(port, "watches_by_path")
        assert by_path["path_to_session_ids"]["/eph"] == [session]
        summary = await _command(port, "wchs")
        assert summary == {
            "num_connections": 1,
            "num_paths": 2,
            "num_total_watches": 2,
            "command": "watch_summary",
            "error": None,
        }

        monitor = await _command(port, "mntr")
        assert monitor["command"] == "monitor"
        assert monitor["ephemerals_count"] == 1
        assert monitor["watch_count"] == 2
        assert monitor["server_state"] == "standalone"

        conf = await _command(port, "configuration")
        assert conf["client_port"] == server.config.client_port  # as configured (0 here)
        assert conf["tick_time"] == 2000 and conf["server_id"] == 0

        assert (await _command(port, "isro"))["read_only"] is False
        assert (await _command(port, "leader"))["error"] == "server is not initialized"
        assert (await _command(port, "voting_view"))["current_config"] == {}
        assert (await _command(port, "zabstate")) == {
            "voting": False,
            "zabstate": "",
            "command": "zabstate",
            "error": None,
        }
        env = await _command(port, "envi")
        assert env["command"] == "environment" and env["zookeeper.version"] == srvr["version"]

        icfg = (await _command(port, "icfg"))["initial_configuration"]
        assert "admin.serverPort=0\n" in icfg
        assert "ssl.keyStore.password=****\n" in icfg and "secret" not in icfg
    finally:
        await trio.to_thread.run_sync(zk.stop)


async def test_unknown_command_is_zookeepers_json_error(server: Server) -> None:
    assert server.admin_server.port is not None
    answer = await _command(server.admin_server.port, "nosuch")
    assert answer == {"command": "nosuch", "error": "Unknown command: nosuch"}


async def test_the_command_url_lists_every_command(server: Server) -> None:
    assert server.admin_server.port is not None
    for target in ("/commands", "/commands/"):
        status, _headers, body = await _get(server.admin_server.port, target)
        assert status == 200
        text = body.decode()
        for command in admin_commands.COMMANDS:
            assert f'<a href="/commands/{command.primary}">{command.primary}</a>' in text
        assert '<a href="/commands/snapshot">snapshot</a>' in text
    status, _, _ = await _get(server.admin_server.port, "/elsewhere")
    assert status == 404


async def test_only_get_and_head(server: Server) -> None:
    assert server.admin_server.port is not None
    status, headers, _ = await _get(server.admin_server.port, "/commands/ruok", method="POST")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    status, headers, body = await _get(server.admin_server.port, "/commands/ruok", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 0


async def test_snapshot_command(server: Server) -> None:
    port = server.admin_server.port
    assert port is not None
    before = await _command(port, "last_snapshot")
    # Streaming the data is refused (no authentication), and takes no snapshot.
    status, _, body = await _get(port, "/commands/snapshot")
    assert status == 400 and "streaming=false" in json.loads(body)["error"]
    assert await _command(port, "last_snapshot") == before

    zk = await trio.to_thread.run_sync(_with_client, server.addresses[0])
    await trio.to_thread.run_sync(zk.stop)
    status, headers, body = await _get(port, "/commands/snapshot?streaming=false")
    answer = json.loads(body)
    assert status == 200, answer
    assert answer["command"] == "snapshot" and answer["error"] is None
    zxid = int(answer["last_zxid"], 16)
    assert zxid == server.core.last_zxid > 0  # everything applied before the request
    assert headers["last_zxid"] == answer["last_zxid"]
    assert int(headers["snapshot_size"]) == answer["snapshot_size"] > 0
    last = await _command(port, "lsnp")
    assert last["zxid"] == f"{zxid:x}" and last["timestamp"] > 1_600_000_000

    # At most one per admin.snapshot.intervalInMS.
    status, _, body = await _get(port, "/commands/snap?streaming=false")
    assert status == 429, body


async def test_snapshot_disabled_is_503(tmp_path: Path, nursery: trio.Nursery) -> None:
    srv = Server(_config(tmp_path, "admin.snapshot.enabled=false"))
    await nursery.start(srv.run)
    assert srv.admin_server.port is not None
    status, _, body = await _get(srv.admin_server.port, "/commands/snapshot?streaming=false")
    assert status == 503
    assert json.loads(body) == {"command": "snapshot", "error": None}


async def test_a_taken_port_is_logged_and_the_server_starts(
    tmp_path: Path, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        srv = Server(_config(tmp_path, f"admin.serverPort={port}").evolve(admin_server_port=port))
        with caplog.at_level(logging.WARNING, logger="trizab.admin"):
            await nursery.start(srv.run)
        assert srv.admin_server.port is None
        assert srv.addresses  # clients are served
        lines = [r.getMessage() for r in caplog.records if r.name == "trizab.admin"]
        assert len(lines) == 1 and f"AdminServer: cannot listen on 127.0.0.1:{port}" in lines[0]
    finally:
        taken.close()


async def test_disabled(tmp_path: Path, nursery: trio.Nursery) -> None:
    srv = Server(_config(tmp_path, "admin.enableServer=false"))
    await nursery.start(srv.run)
    assert srv.admin_server.port is None


def test_admin_keys_are_parsed() -> None:
    config = cfg.parse(
        "zookeeper.admin.serverAddress=0.0.0.0\nadmin.serverPort=9090\nadmin.commandURL=/cmds/\n"
        "admin.idleTimeout=5000\nadmin.snapshot.intervalInMS=0\n",
        read_myid=False,
    )
    assert (config.admin_server_address, config.admin_server_port) == ("0.0.0.0", 9090)
    assert config.admin_command_url == "/cmds"
    assert config.admin_idle_timeout_ms == 5000 and config.admin_snapshot_interval_ms == 0
    defaults = cfg.parse("", read_myid=False)
    assert defaults.admin_enable_server is True
    assert (defaults.admin_server_address, defaults.admin_server_port) == ("127.0.0.1", 8080)
    for bad in ("admin.serverPort=70000", "admin.commandURL=commands", "admin.enableServer=maybe"):
        with pytest.raises(cfg.ConfigError, match=re.escape(bad.split("=")[0])):
            cfg.parse(bad + "\n", read_myid=False)
    with pytest.raises(cfg.ConfigError, match=r"admin\.forceHttps"):
        cfg.parse("admin.forceHttps=true\n", read_myid=False)
