"""In-memory listeners, so runtime tests can run under trio's MockClock.

Real sockets and an autojumping MockClock do not mix: the clock jumps while the
kernel still holds bytes in flight.  A :class:`MemoryListener` hands the server
one end of a ``trio.testing.memory_stream_pair`` per :meth:`connect`, so every
wait is a trio wait and virtual time only moves when the whole system is idle.
"""

from __future__ import annotations

import itertools

import trio
import trio.testing

__all__ = ["MemoryListener"]


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    def __init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[trio.abc.Stream](100)
        self._ids = itertools.count(1)
        self.closed = False

    async def connect(self) -> trio.testing.MemoryStapledStream:  # type: ignore[type-arg]
        """Open a connection; returns the client's end."""
        client, server = trio.testing.memory_stream_pair()
        server.peer_name = ("memory", next(self._ids))  # type: ignore[attr-defined]
        await self._send.send(server)
        return client

    async def accept(self) -> trio.abc.Stream:
        if self.closed:
            raise trio.ClosedResourceError
        return await self._recv.receive()

    async def aclose(self) -> None:
        self.closed = True
        await trio.lowlevel.checkpoint()
