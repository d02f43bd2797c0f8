"""The client port's accept loop: bounded work per wake-up, and cheap refusals while electing.

Theory of operation
-------------------
trio's ``serve_listeners`` accepts one connection per pass of the scheduler
(``SocketListener.accept`` is a checkpoint).  :func:`serve_listener` does what it
does (a handler task per connection, the stream closed once the handler returns;
``EMFILE``, ``ENFILE``, ``ENOBUFS``, ``ENOMEM`` logged and retried after
``CAPACITY_PAUSE_S``; connections the client aborted first skipped) with two
differences, both for a reconnect storm (10,000 clients of a failed leader and of
its followers reconnecting at once, bench/scenarios session-storm):

* **Up to** ``HANDLED_PER_WAKEUP`` **connections per wake-up** get a handler; the
  rest wait in the kernel's accept queue for the next pass.  Accepting every
  pending connection at once admits more handshakes than the loop can carry and
  everybody's first request waits behind them (first-request p50 went from 2 ms
  to 1.7 s when we tried).
* **A member that serves no clients** (electing, or syncing with a new leader)
  closes every client connection after reading its ConnectRequest, as ZooKeeper
  does.  In a storm that cost (a handler and a writer task, a read, a close: about
  a millisecond of the event loop each on a loaded machine) was paid for thousands
  of connections a second, and the election's own messages and ticks waited
  behind them: notifications took 1-5 s between the two remaining members and the
  election 5-20 s.  While ``serving()`` is false, the connections of a wake-up past
  ``HANDLED_PER_WAKEUP`` (up to ``ACCEPT_BURST``) are closed at once: the client
  sees the same refusal and tries another member, and a four-letter word such as
  ``srvr`` on a quiet port still gets its answer.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable

import trio

from trizab.logflood import limit_floods

__all__ = ["ACCEPT_BURST", "HANDLED_PER_WAKEUP", "serve_listener"]

log = logging.getLogger("trizab.server")
limit_floods(log)

HANDLED_PER_WAKEUP = 8  # connections given a handler per wake-up of the accept loop
ACCEPT_BURST = 256  # connections a member serving no clients accepts (and closes) per wake-up
CAPACITY_PAUSE_S = 0.1  # trio's serve_listeners waits as long after EMFILE and the like
_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
# The client went away between its connect and our accept (trio's SocketListener skips these).
_SKIPPED_ERRNOS = frozenset({errno.ECONNABORTED, errno.EPERM, errno.EPROTO})

Handler = Callable[[trio.SocketStream], Awaitable[object]]


async def serve_listener(
    listener: trio.SocketListener,
    handler: Handler,
    *,
    serving: Callable[[], bool] = lambda: True,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Accept on ``listener`` and run ``handler(stream)`` for each connection, until cancelled.

    Takes ownership of ``listener`` (closed on return)."""
    # A descriptor of our own for the same listening socket: trio's socket object offers only
    # an accept that yields, and the standard socket's accept never does.
    accepting = socket.socket(fileno=os.dup(listener.socket.fileno()))
    accepting.setblocking(False)
    try:
        async with trio.open_nursery() as handlers, listener:
            task_status.started()
            while True:
                await trio.lowlevel.wait_readable(accepting)
                handled = 0
                for _ in range(ACCEPT_BURST):
                    if handled >= HANDLED_PER_WAKEUP and serving():
                        break  # the rest wait in the accept queue for the next pass
                    try:
                        sock, _address = accepting.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in _SKIPPED_ERRNOS:
                            continue
                        if exc.errno not in _CAPACITY_ERRNOS:
                            raise
                        log.error(
                            "accept failed: %s; retrying in %.1f s", os.strerror(exc.errno), CAPACITY_PAUSE_S
                        )
                        await trio.sleep(CAPACITY_PAUSE_S)
                        break
                    if handled >= HANDLED_PER_WAKEUP:
                        sock.close()  # not serving: refused, as after its ConnectRequest would be
                        continue
                    handled += 1
                    stream = trio.SocketStream(trio.socket.from_stdlib_socket(sock))
                    handlers.start_soon(_run_handler, handler, stream)
                await trio.lowlevel.checkpoint()  # the new handlers, and everybody else, run
    finally:
        trio.lowlevel.notify_closing(accepting)
        accepting.close()


async def _run_handler(handler: Handler, stream: trio.SocketStream) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)
