"""Hostile input never hurts other clients; sessions expire, resume and refuse like ZooKeeper."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_raw import RawSession
from kazoo.client import KazooClient
from kazoo.protocol.states import EventType

from testkit.process import TrizabProcess
from trizab.wire import records as r
from trizab.wire.codes import Err
from trizab.wire.jute import decode, encode

pytestmark = pytest.mark.slow

WAIT = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrizabProcess]:
    workdir = tmp_path_factory.mktemp("hostile")
    with TrizabProcess(workdir, tick_time=200, storage="memory", extra_config=["jute.maxbuffer=4096"]) as s:
        yield s


@pytest.fixture
def zk(server: TrizabProcess) -> Iterator[KazooClient]:
    client = KazooClient(hosts=server.address)
    client.start(timeout=WAIT)
    yield client
    client.stop()
    client.close()


def raw_socket(server: TrizabProcess) -> socket.socket:
    return socket.create_connection((server.host, server.port), timeout=WAIT)


def closed_by_server(sock: socket.socket) -> bool:
    """Read until EOF; True if the server closed (reset counts as closed)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    return True


def still_serving(server: TrizabProcess, zk: KazooClient, tag: str) -> None:
    assert server.running
    path = f"/alive-{tag}"
    zk.create(path, b"x", ephemeral=True)
    assert zk.get(path)[0] == b"x"
    zk.delete(path)
    assert server.command("ruok") == "imok"


def connect_frame(version: int = 0, timeout_ms: int = 4000) -> bytes:
    payload = encode(r.ConnectRequest(version, 0, timeout_ms, 0, b"\0" * 16, False))
    return struct.pack(">i", len(payload)) + payload


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("garbage", b"\x13\x37 this is not zookeeper \xff\xfe" * 10),
        ("http", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        ("negative-length", b"\xff\xff\xff\x00" + b"\0" * 20),
        ("over-limit-first-frame", struct.pack(">i", 4097) + b"\0" * 4097),
        ("short-connect", struct.pack(">i", 10) + b"\0" * 10),
    ],
)
def test_bad_first_frame_closes_only_that_connection(
    server: TrizabProcess, zk: KazooClient, name: str, data: bytes
) -> None:
    with raw_socket(server) as sock:
        sock.sendall(data)
        assert closed_by_server(sock)
    still_serving(server, zk, name)


def test_truncated_frame_then_close(server: TrizabProcess, zk: KazooClient) -> None:
    with raw_socket(server) as sock:
        sock.sendall(connect_frame())
        sock.recv(1024)
        sock.sendall(struct.pack(">i", 100) + b"\0" * 30)  # 30 of 100 promised bytes
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_server(sock)
    still_serving(server, zk, "truncated")


def test_frame_over_the_limit_after_handshake(server: TrizabProcess, zk: KazooClient) -> None:
    s = RawSession(server.address)
    assert s.connect_response.time_out > 0
    s.sock.sendall(struct.pack(">i", 4097) + b"\0" * 64)
    assert closed_by_server(s.sock)
    s.close()
    still_serving(server, zk, "overlimit")


def test_frame_at_the_limit_is_served(server: TrizabProcess, zk: KazooClient) -> None:
    s = RawSession(server.address)
    path = "/at-limit"
    # RequestHeader (8) + CreateRequest: the whole frame stays within jute.maxbuffer.
    header = s.create(path, b"d" * 3900)
    assert header.err == 0
    assert zk.get(path)[0] == b"d" * 3900
    zk.delete(path)
    s.close()


def test_wrong_protocol_version_is_accepted_like_zookeeper(server: TrizabProcess, zk: KazooClient) -> None:
    # ZooKeeperServer.processConnectRequest never looks at protocolVersion.
    with raw_socket(server) as sock:
        sock.sendall(connect_frame(version=99))
        data = b""
        while len(data) < 4 + 37:
            chunk = sock.recv(1024)
            assert chunk, "server closed instead of answering"
            data += chunk
        resp = decode(r.ConnectResponse, data[4 : 4 + 37])
        assert resp.time_out > 0 and resp.session_id != 0
    still_serving(server, zk, "version")


def test_unknown_opcode_gets_unimplemented_and_connection_stays(
    server: TrizabProcess, zk: KazooClient
) -> None:
    s = RawSession(server.address)
    header, _ = s.call(4242)
    assert header.err == Err.UNIMPLEMENTED
    header, _ = s.call(3, r.ExistsRequest("/", False))
    assert header.err == 0
    s.close()
    still_serving(server, zk, "opcode")


def test_ephemeral_of_silent_session_expires(server: TrizabProcess, zk: KazooClient) -> None:
    # tickTime=200: minSessionTimeout is 400 ms.  The raw session never pings but
    # keeps its socket open, so only the server's own expiry can remove the node.
    s = RawSession(server.address, timeout_ms=400)
    assert s.connect_response.time_out == 400
    path = "/silent-ephemeral"
    assert s.create(path, b"", flags=1).err == 0
    gone = threading.Event()

    def watch(event: object) -> None:
        if getattr(event, "type", None) == EventType.DELETED:
            gone.set()

    assert zk.exists(path, watch=watch) is not None
    assert gone.wait(WAIT)
    # The expired session cannot be resumed: timeout 0 in the answer.
    again = RawSession(server.address, session_id=s.session_id, passwd=s.connect_response.passwd)
    assert again.connect_response.time_out == 0
    again.close()
    s.close()


def test_session_survives_a_dropped_connection(server: TrizabProcess, zk: KazooClient) -> None:
    s = RawSession(server.address, timeout_ms=4000)
    path = "/resumed-ephemeral"
    assert s.create(path, b"", flags=1).err == 0
    sid, passwd = s.session_id, s.connect_response.passwd
    s.close()
    resumed = RawSession(server.address, session_id=sid, passwd=passwd, timeout_ms=4000)
    assert resumed.connect_response.time_out > 0 and resumed.session_id == sid
    assert zk.exists(path).ephemeralOwner == sid
    bad = RawSession(server.address, session_id=sid, passwd=b"\1" * 16)
    assert bad.connect_response.time_out == 0
    bad.close()
    header, _ = resumed.call(-11)  # closeSession
    assert header.err == 0
    resumed.close()
    assert zk.exists(path) is None


def test_kazoo_ephemeral_expires_when_client_goes_silent(server: TrizabProcess, zk: KazooClient) -> None:
    victim = KazooClient(hosts=server.address, timeout=0.4)
    victim.start(timeout=WAIT)
    path = "/kazoo-silent"
    victim.create(path, ephemeral=True)
    gone = threading.Event()
    zk.exists(path, watch=lambda e: gone.set() if e.type == EventType.DELETED else None)
    # The client keeps its socket open but stops pinging (kazoo's expire_session()
    # acts on the client only; the server must expire the abandoned session itself).
    with _paused(victim):
        assert gone.wait(WAIT)
    victim.stop()
    victim.close()


class _paused:
    """Stop a kazoo client's I/O thread from running (it keeps its socket open)."""

    def __init__(self, client: KazooClient) -> None:
        self.client = client

    def __enter__(self) -> None:
        conn = self.client._connection
        self.original = conn._send_ping
        conn._send_ping = lambda *args, **kwargs: None  # type: ignore[method-assign]

    def __exit__(self, *exc: object) -> None:
        self.client._connection._send_ping = self.original  # type: ignore[method-assign]


def test_max_client_connections(tmp_path: Path) -> None:
    with TrizabProcess(tmp_path, storage="memory", extra_config=["maxClientCnxns=2"]) as server:
        a, b = RawSession(server.address), RawSession(server.address)
        with raw_socket(server) as third:
            third.sendall(connect_frame())
            assert closed_by_server(third)
        a.close()
        b.close()
