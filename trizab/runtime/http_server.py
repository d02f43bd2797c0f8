"""A small HTTP/1.1 server for read-only endpoints (the AdminServer, metrics), on h11 and Trio.

Theory of operation: one task per connection pumps bytes into an ``h11.Connection``
(sans-I/O, as the frontend is) and answers each complete request head with the
handler's :class:`HttpResponse`.  Only GET and HEAD are served; anything else gets
405 with ``Allow: GET, HEAD`` and the connection is closed (its body is never read).

Nothing a client does can hold a task for long or crash the listener:

* the request head is bounded in size (``max_head_bytes``: h11 refuses it beyond, 431)
  and in time (``head_timeout`` from its first byte, 408 then close);
* an idle keep-alive connection is closed after ``idle_timeout``;
* a response the client does not read is abandoned after ``head_timeout``;
* bytes that are not HTTP/1.x get 400 (505 for another version) and the connection is closed;
* more than ``max_connections`` at once get 503 and are closed;
* a handler that raises gets 500 (logged with its traceback), the server goes on.

All timeouts are trio's (so a ``MockClock`` drives them in tests).  The listener is
bound before ``task_status.started(port)`` reports the bound port (port 0 picks a
free one); a port that cannot be bound raises :class:`StartupError` with one line.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import attrs
import h11
import trio

from trizab.runtime.disk import StartupError

__all__ = ["HttpHandler", "HttpResponse", "serve_http"]

log = logging.getLogger("trizab.http")

Stream = trio.abc.Stream

MAX_HEAD_BYTES = 16 * 1024
HEAD_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0  # ZooKeeper's admin.idleTimeout default (30000 ms)
MAX_CONNECTIONS = 64
_RECEIVE_BYTES = 16 * 1024


@attrs.frozen
class HttpResponse:
    """What a handler answers: the status, the body and its type, and any extra headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


# (path, query string) -> response; called for GET and HEAD only (HEAD drops the body).
HttpHandler = Callable[[str, str], Awaitable[HttpResponse]]


@attrs.frozen
class _Limits:
    max_head_bytes: int
    head_timeout: float
    idle_timeout: float
    max_connections: int


async def serve_http(
    host: str,
    port: int,
    handler: HttpHandler,
    *,
    name: str,
    idle_timeout: float = IDLE_TIMEOUT_S,
    head_timeout: float = HEAD_TIMEOUT_S,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_connections: int = MAX_CONNECTIONS,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` over HTTP/1.1 on ``host:port`` until cancelled.

    ``name`` says what is served (for the logs and the bind error, e.g. "AdminServer").
    Reports the bound port through ``task_status`` once listening.
    """
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        raise StartupError(f"{name}: cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_port = int(listeners[0].socket.getsockname()[1])
    limits = _Limits(max_head_bytes, head_timeout, idle_timeout, max_connections)
    open_connections = [0]  # only this task's children touch it

    async def serve_one(stream: Stream) -> None:
        open_connections[0] += 1
        try:
            await _serve_connection(stream, handler, limits, busy=open_connections[0] > max_connections)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away; nothing to answer
        except Exception:
            log.exception("%s: unexpected error on a connection", name)
        finally:
            open_connections[0] -= 1
            await trio.aclose_forcefully(stream)

    log.info("%s listening on %s:%d", name, host, bound_port)
    async with trio.open_nursery() as nursery:
        task_status.started(bound_port)
        await trio.serve_listeners(serve_one, listeners, handler_nursery=nursery)


async def _serve_connection(stream: Stream, handler: HttpHandler, limits: _Limits, *, busy: bool) -> None:
    if busy:
        # Answer at once, without reading: a client over the limit must not hold a task either.
        body = b"too many connections\n"
        with trio.move_on_after(limits.head_timeout):
            await stream.send_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
        return
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_head_bytes)
    while True:
        try:
            request = await _next_request(stream, conn, limits)
        except h11.RemoteProtocolError as exc:
            await _answer_error(stream, conn, exc.error_status_hint, limits)
            return
        if request is None:  # idle, closed, or timed out mid-head (answered already)
            return
        method = request.method  # case-sensitive (RFC 9110): "get" is not GET
        if method not in (b"GET", b"HEAD"):
            # The body is never read: answer and close rather than drain it.
            response = attrs.evolve(_plain(405, b"method not allowed\n"), headers=(("Allow", "GET, HEAD"),))
            await _send(stream, conn, request, response, limits, close=True)
            return
        path, _, query = request.target.decode("ascii", "replace").partition("?")
        try:
            response = await handler(path, query)
        except Exception:
            log.exception("handler failed for %s", path)
            response = _plain(500, b"internal error\n")
        close = await _send(stream, conn, request, response, limits, close=False)
        if close:
            return
        # The request's end (and a body already buffered) is consumed; a GET whose body is
        # still on the way (rare) closes the connection rather than waiting for it.
        while conn.their_state is h11.SEND_BODY:
            if not isinstance(conn.next_event(), h11.Data | h11.EndOfMessage):
                return
        if conn.their_state is not h11.DONE or conn.our_state is not h11.DONE:
            return
        conn.start_next_cycle()


async def _next_request(stream: Stream, conn: h11.Connection, limits: _Limits) -> h11.Request | None:
    """The next request head, or None when the client closed, idled or dawdled (then answered 408)."""
    # h11 bounds only a head that is still incomplete; one that arrives whole is measured here.
    received = len(conn.trailing_data[0])
    with trio.move_on_after(limits.idle_timeout) as scope:
        started = received > 0
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                if received - len(conn.trailing_data[0]) > limits.max_head_bytes:
                    raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
                if event.http_version not in (b"1.0", b"1.1"):
                    raise h11.RemoteProtocolError("HTTP version not supported", error_status_hint=505)
                return event
            if isinstance(event, h11.ConnectionClosed):
                return None
            if event is h11.NEED_DATA:
                data = await stream.receive_some(_RECEIVE_BYTES)
                received += len(data)
                if data and not started:
                    # The head has begun: it must be complete within head_timeout.
                    started = True
                    scope.deadline = min(scope.deadline, trio.current_time() + limits.head_timeout)
                conn.receive_data(data)
                continue
            # PAUSED cannot happen before a request; anything else is h11's to refuse.
            raise h11.RemoteProtocolError(f"unexpected {event!r}", error_status_hint=400)
    if scope.cancelled_caught and started:
        await _answer_error(stream, conn, 408, limits)
    return None


async def _answer_error(stream: Stream, conn: h11.Connection, status: int, limits: _Limits) -> None:
    """Answer a broken or timed-out request with ``status`` if h11 still lets us speak."""
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = f"{status} {_REASONS.get(status, 'error')}\n".encode()
    try:
        data = conn.send(_head(status, "text/plain; charset=utf-8", len(body), (), close=True))
        assert data is not None
        with trio.move_on_after(limits.head_timeout):
            await stream.send_all(data + body)
    except h11.LocalProtocolError:
        pass


async def _send(
    stream: Stream,
    conn: h11.Connection,
    request: h11.Request,
    response: HttpResponse,
    limits: _Limits,
    *,
    close: bool,
) -> bool:
    """Send ``response`` (no body for HEAD); whether the connection must close afterwards."""
    wants_close = close or not _keep_alive(request)
    length = len(response.body)
    head = _head(response.status, response.content_type, length, response.headers, close=wants_close)
    out = [conn.send(head)]
    if request.method != b"HEAD" and response.body:
        out.append(conn.send(h11.Data(data=response.body)))
    out.append(conn.send(h11.EndOfMessage()))
    with trio.move_on_after(limits.head_timeout) as scope:
        await stream.send_all(b"".join(chunk for chunk in out if chunk))
    return wants_close or scope.cancelled_caught or conn.our_state is h11.MUST_CLOSE


def _keep_alive(request: h11.Request) -> bool:
    connection = [value.lower() for key, value in request.headers if key.lower() == b"connection"]
    if request.http_version == b"1.0":
        return b"keep-alive" in connection
    return b"close" not in connection


def _head(
    status: int, content_type: str, length: int, extra: tuple[tuple[str, str], ...], *, close: bool
) -> h11.Response:
    headers: list[tuple[str, str]] = [
        ("Content-Type", content_type),
        ("Content-Length", str(length)),
        *extra,
    ]
    if close:
        headers.append(("Connection", "close"))
    return h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, "").encode())


def _plain(status: int, body: bytes) -> HttpResponse:
    return HttpResponse(status=status, body=body, content_type="text/plain; charset=utf-8")


_REASONS: dict[int, str] = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
