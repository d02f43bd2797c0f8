"""ProxyNet: forwards, cuts (closing what is open, holding what comes) and restores."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from trizab.testing.proxy import ProxyNet


@pytest.fixture
def echo_port() -> Iterator[int]:
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(data)

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield server.getsockname()[1]
    stop.set()
    server.close()


@pytest.fixture
def net() -> Iterator[ProxyNet]:
    proxies = ProxyNet()
    yield proxies
    proxies.close()


def _echo(port: int, payload: bytes = b"ping") -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(payload)
        return s.recv(4096)


def test_forwards_cuts_and_restores(echo_port: int, net: ProxyNet) -> None:
    link = net.add(echo_port)
    other = net.add(echo_port)
    assert _echo(link.port) == b"ping"

    open_conn = socket.create_connection(("127.0.0.1", link.port), timeout=2)
    open_conn.sendall(b"a")
    assert open_conn.recv(10) == b"a"
    net.cut([link])
    assert open_conn.recv(10) == b""  # closed by the cut: the member sees its link end
    open_conn.close()

    held = socket.create_connection(("127.0.0.1", link.port), timeout=0.3)
    held.sendall(b"into the void")
    with pytest.raises(TimeoutError):
        held.recv(10)  # accepted, never answered
    assert _echo(other.port) == b"ping"  # other links are untouched

    net.restore()
    held.settimeout(2)
    assert held.recv(10) == b""  # what was held is closed, so the member reconnects
    held.close()
    assert _echo(link.port) == b"ping"


def test_a_refused_target_closes_the_connection(net: ProxyNet) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # nothing listens here once closed
    link = net.add(dead)
    with socket.create_connection(("127.0.0.1", link.port), timeout=2) as conn:
        assert conn.recv(10) == b""
