"""The client port's accept loop (trizab.runtime.accept): bounded per wake-up, refusals while electing."""

from __future__ import annotations

import socket

import pytest
import trio

from trizab.runtime.accept import HANDLED_PER_WAKEUP, serve_listener

PENDING = 3 * HANDLED_PER_WAKEUP + 2  # connections waiting in the accept queue before the loop starts


async def _listener() -> tuple[trio.SocketListener, tuple[str, int]]:
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    assert isinstance(listener, trio.SocketListener)
    return listener, listener.socket.getsockname()[:2]


def _connect_all(address: tuple[str, int], count: int) -> list[socket.socket]:
    # The kernel completes each handshake into the accept queue: nobody has accepted yet.
    clients = [socket.create_connection(address, timeout=5) for _ in range(count)]
    for c in clients:
        c.sendall(b"hello")
    return clients


def _closed_by_server(client: socket.socket) -> bool:
    client.settimeout(5)
    try:
        return client.recv(16) == b""
    except ConnectionResetError:  # closed with our hello unread: a reset
        return True


@pytest.mark.trio
async def test_a_serving_member_handles_every_connection_a_few_per_wakeup() -> None:
    listener, address = await _listener()
    clients = _connect_all(address, PENDING)
    handled: list[bytes] = []

    async def handler(stream: trio.SocketStream) -> None:
        handled.append(await stream.receive_some(16))
        await stream.send_all(b"ok")

    async with trio.open_nursery() as nursery:
        await nursery.start(serve_listener, listener, handler)
        with trio.fail_after(10):
            while len(handled) < PENDING:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert handled == [b"hello"] * PENDING
    for c in clients:
        c.settimeout(5)
        assert c.recv(16) == b"ok"
        c.close()


@pytest.mark.trio
async def test_a_member_serving_no_clients_closes_a_burst_past_the_handled_few() -> None:
    listener, address = await _listener()
    clients = _connect_all(address, PENDING)
    handled: list[trio.SocketStream] = []
    release = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        handled.append(stream)
        await release.wait()  # a four-letter word or a refused ConnectRequest would be answered here

    async with trio.open_nursery() as nursery:
        await nursery.start(
            lambda task_status: serve_listener(
                listener, handler, serving=lambda: False, task_status=task_status
            )
        )
        with trio.fail_after(10):
            while len(handled) < HANDLED_PER_WAKEUP:
                await trio.sleep(0.01)
        refused = await trio.to_thread.run_sync(
            lambda: [_closed_by_server(c) for c in clients[HANDLED_PER_WAKEUP:]]
        )
        assert refused == [True] * (PENDING - HANDLED_PER_WAKEUP)
        assert len(handled) == HANDLED_PER_WAKEUP  # the first of the burst, in the order they came
        release.set()
        nursery.cancel_scope.cancel()
    for c in clients:
        c.close()
