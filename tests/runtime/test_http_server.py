"""The small HTTP/1.1 server (trizab/runtime/http_server.py), in-process over loopback.

Well-formed requests go through an h11 client; garbage, slow and huge requests are raw
bytes.  Timeouts run on trio's MockClock (``autojump_clock``), so no test sleeps.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import h11
import pytest
import trio

from trizab.runtime.disk import StartupError
from trizab.runtime.http_server import HttpResponse, serve_http

pytestmark = pytest.mark.timeout(30)


async def _echo(path: str, query: str) -> HttpResponse:
    if path == "/boom":
        raise RuntimeError("handler bug")
    if path == "/missing":
        return HttpResponse(status=404, body=b'{"error": "no"}')
    body = f'{{"path": "{path}", "query": "{query}"}}'.encode()
    return HttpResponse(status=200, body=body, headers=(("X-Extra", "1"),))


@pytest.fixture
async def port(nursery: trio.Nursery) -> AsyncIterator[int]:
    bound = await nursery.start(_serve_small)
    yield bound


async def _serve_small(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    await serve_http(
        "127.0.0.1",
        0,
        _echo,
        name="test",
        idle_timeout=30.0,
        head_timeout=10.0,
        max_head_bytes=4096,
        max_connections=64,
        task_status=task_status,
    )


async def _raw(port: int, data: bytes) -> bytes:
    """Send ``data`` and read until the server closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(data)
        return await _read_to_eof(stream)


async def _read_to_eof(stream: trio.SocketStream) -> bytes:
    chunks = []
    while chunk := await stream.receive_some(65536):
        chunks.append(chunk)
    return b"".join(chunks)


class _Client:
    """An h11 client on one keep-alive connection."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(self, method: str, target: str) -> tuple[h11.Response, bytes]:
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        await self.stream.send_all(
            self.conn.send(h11.Request(method=method, target=target, headers=[("Host", "localhost")]))
            + self.conn.send(h11.EndOfMessage())
        )
        response: h11.Response | None = None
        body = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                response = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert response is not None
                return response, body
            else:
                raise AssertionError(f"unexpected {event!r}")


def _headers(response: h11.Response) -> dict[bytes, bytes]:
    return {key.lower(): value for key, value in response.headers}


async def test_get_answers_the_handler_and_keeps_the_connection(port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        client = _Client(stream)
        response, body = await client.request("GET", "/commands/ruok?x=1")
        assert response.status_code == 200
        assert body == b'{"path": "/commands/ruok", "query": "x=1"}'
        headers = _headers(response)
        assert headers[b"content-type"] == b"application/json"
        assert headers[b"content-length"] == str(len(body)).encode()
        assert headers[b"x-extra"] == b"1"
        # Same connection, second request: keep-alive works.
        response, body = await client.request("GET", "/missing")
        assert response.status_code == 404
        assert body == b'{"error": "no"}'


async def test_head_sends_the_length_but_no_body(port: int) -> None:
    reply = await _raw(port, b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    head, _, rest = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    get_body = b'{"path": "/x", "query": ""}'
    assert b"content-length: %d" % len(get_body) in head.lower()  # the length GET would send
    assert rest == b""


@pytest.mark.parametrize("method", [b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"BREW"])
async def test_anything_but_get_and_head_is_405_and_closed(port: int, method: bytes) -> None:
    reply = await _raw(
        port, method + b" /commands/ruok HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    )
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 405 ")
    assert b"allow: get, head" in head
    assert b"connection: close" in head  # and _raw returned: the server closed


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x00\x01\x02\xff\xfe\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # HTTP/1.1 without Host
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
        b"ruok",  # a four-letter word on the wrong port: then the client closes its side
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
    ],
)
async def test_garbage_gets_400_and_the_server_goes_on(port: int, garbage: bytes) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(garbage)
        if garbage == b"ruok":
            await stream.send_eof()
        reply = await _read_to_eof(stream)
    assert reply.startswith(b"HTTP/1.1 400 "), reply
    # The listener survived.
    reply = await _raw(port, b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")


async def test_another_http_version_gets_505(port: int) -> None:
    reply = await _raw(port, b"GET / HTTP/9.9\r\nHost: a\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 505 ")


async def test_a_huge_head_is_refused_without_reading_it_all(port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        big = b"X-Pad: " + b"a" * 1000 + b"\r\n"
        with pytest.raises((trio.BrokenResourceError, trio.ClosedResourceError)):
            for _ in range(10_000):  # 10 MB offered, refused after 4 KiB
                await stream.send_all(big)
        reply = await _read_to_eof_tolerant(stream)
    assert reply == b"" or reply.startswith(b"HTTP/1.1 431 ")


async def _read_to_eof_tolerant(stream: trio.SocketStream) -> bytes:
    try:
        return await _read_to_eof(stream)
    except trio.BrokenResourceError:  # reset: the server closed with our bytes unread
        return b""


async def test_a_huge_head_sent_at_once_gets_431(port: int) -> None:
    reply = await _raw(port, b"GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"a" * 5000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431 ")


async def test_a_slow_head_is_cut_off_at_the_head_timeout(port: int, autojump_clock: trio.abc.Clock) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)

    async def dribble() -> None:
        # A header every 3 s: each arrives, the head never completes.
        try:
            for _ in range(20):
                await stream.send_all(b"X-Slow: 1\r\n")
                await trio.sleep(3)
        except trio.BrokenResourceError:
            pass

    async with stream:
        start = trio.current_time()
        await stream.send_all(b"GET / HTTP/1.1\r\n")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(dribble)
            reply = await _read_to_eof_tolerant(stream)
            elapsed = trio.current_time() - start
            nursery.cancel_scope.cancel()
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert 10.0 <= elapsed <= 10.5


async def test_an_idle_keep_alive_connection_is_closed(port: int, autojump_clock: trio.abc.Clock) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        client = _Client(stream)
        response, _ = await client.request("GET", "/a")
        assert response.status_code == 200
        start = trio.current_time()
        assert await stream.receive_some(100) == b""  # closed by the server, without an answer
        assert 30.0 <= trio.current_time() - start <= 31.0


async def test_a_connection_that_never_speaks_is_closed_at_the_idle_timeout(
    port: int, autojump_clock: trio.abc.Clock
) -> None:
    start = trio.current_time()
    assert await _raw(port, b"") == b""
    assert 30.0 <= trio.current_time() - start <= 31.0


async def test_a_failing_handler_answers_500_and_the_server_goes_on(port: int) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        client = _Client(stream)
        response, _ = await client.request("GET", "/boom")
        assert response.status_code == 500
        response, _ = await client.request("GET", "/fine")
        assert response.status_code == 200


async def test_many_connections_at_once(port: int) -> None:
    results: list[bytes] = []

    async def one(i: int) -> None:
        reply = await _raw(port, f"GET /c{i} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".encode())
        results.append(reply)

    for _ in range(5):  # 5 waves of 50 concurrent connections, under the limit of 64
        async with trio.open_nursery() as nursery:
            for i in range(50):
                nursery.start_soon(one, i)
    assert len(results) == 250
    assert all(reply.startswith(b"HTTP/1.1 200 ") for reply in results)


async def test_connections_over_the_limit_get_503_at_once(nursery: trio.Nursery) -> None:
    async def serve(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        await serve_http("127.0.0.1", 0, _echo, name="test", max_connections=3, task_status=task_status)

    port = await nursery.start(serve)
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(3)]
    await trio.testing.wait_all_tasks_blocked()
    try:
        with trio.fail_after(5):  # answered without waiting for a request or a timeout
            reply = await _raw(port, b"")
        assert reply.startswith(b"HTTP/1.1 503 ")
    finally:
        for stream in held:
            await stream.aclose()
    await trio.testing.wait_all_tasks_blocked()
    reply = await _raw(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")


async def test_http_1_0_closes_after_the_answer(port: int) -> None:
    reply = await _raw(port, b"GET /old HTTP/1.0\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert reply.endswith(b'{"path": "/old", "query": ""}')


async def test_a_port_in_use_is_one_startup_error_line() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(StartupError) as info:
            await serve_http("127.0.0.1", taken.getsockname()[1], _echo, name="AdminServer")
    finally:
        taken.close()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("AdminServer: cannot listen on 127.0.0.1:")


async def test_port_zero_reports_the_bound_port(port: int) -> None:
    assert port > 0
    reply = await _raw(port, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 ")
