"""trizab snapshot: GET /commands/snapshot on the AdminServer, answered as ZooKeeper 3.9 answers it.

The server here is a stand-in that answers like ZooKeeper 3.9's SnapshotCommand (headers
``last_zxid`` and ``snapshot_size``, a JSON body with ``command`` and ``error``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from testkit.process import TrizabProcess, free_port


class ZooKeeperLikeAdmin(BaseHTTPRequestHandler):
    requests: list[tuple[str, str | None]] = []

    def do_GET(self) -> None:
        self.requests.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != "digest root:secret":
            self._answer(403, {"command": "snapshot", "error": "Forbidden"})
            return
        self._answer(
            200, {"command": "snapshot", "error": None}, last_zxid="0x100000007", snapshot_size="2048"
        )

    def _answer(self, status: int, body: dict[str, object], **headers: str) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def admin() -> Iterator[str]:
    ZooKeeperLikeAdmin.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ZooKeeperLikeAdmin)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def snapshot(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "trizab", "snapshot", *args], capture_output=True, text=True, timeout=60
    )


def test_the_snapshot_taken_is_printed(admin: str) -> None:
    run = snapshot("--server", admin, "--auth", "digest:root:secret")
    assert run.returncode == 0, run.stderr
    assert run.stdout == "snapshot taken at zxid 0x100000007, 2,048 bytes\n"
    # Only the metadata: the snapshot's bytes are not streamed back.
    assert ZooKeeperLikeAdmin.requests == [("/commands/snapshot?streaming=false", "digest root:secret")]


def test_a_refusal_is_one_line(admin: str) -> None:
    run = snapshot("--server", admin)
    assert run.returncode == 1 and run.stderr == (
        f"trizab: http://{admin}/commands/snapshot?streaming=false: HTTP 403 Forbidden\n"
    )


def test_no_admin_server_is_one_line() -> None:
    run = snapshot("--server", f"127.0.0.1:{free_port()}")
    assert run.returncode == 1 and len(run.stderr.splitlines()) == 1
    assert "cannot reach an AdminServer" in run.stderr and "admin.enableServer" in run.stderr


def test_a_running_trizab_takes_the_snapshot(tmp_path: Path) -> None:
    admin_port = free_port()
    extra = ["admin.enableServer=true", "admin.serverAddress=127.0.0.1", f"admin.serverPort={admin_port}"]
    with TrizabProcess(tmp_path, storage="txnlog", extra_config=extra) as server:
        client = KazooClient(hosts=server.address, timeout=5.0)
        client.start(timeout=30)
        try:
            for i in range(5):
                client.create(f"/snap-{i}", b"x")
            last_zxid = client.exists("/snap-4").mzxid
        finally:
            client.stop()
            client.close()
        run = snapshot("--server", f"127.0.0.1:{admin_port}")
        assert run.returncode == 0, run.stderr
        match = re.fullmatch(r"snapshot taken at zxid 0x([0-9a-f]+), ([\d,]+) bytes\n", run.stdout)
        assert match is not None, run.stdout
        zxid = int(match.group(1), 16)
        assert zxid >= last_zxid
        written = server.data_dir / "version-2" / f"snapshot.{zxid:x}"
        assert written.exists()
        # The size is the snapshot's (the file adds ZooKeeper's header and trailer around it).
        assert 0 < int(match.group(2).replace(",", "")) <= written.stat().st_size
        # A second one at once is refused by the server's rate limit: one line, status 1.
        again = snapshot("--server", f"127.0.0.1:{admin_port}")
        assert again.returncode == 1 and "HTTP 429" in again.stderr and len(again.stderr.splitlines()) == 1
