"""The quorum and election ports against connections that are not trizab members."""

from __future__ import annotations

import struct
from typing import Any

import trio

from trizab.runtime.launcher import free_ports
from trizab.runtime.quorum import MAX_FIRST_FRAME, QuorumTransport

WAIT = 10.0


async def _transport(nursery: trio.Nursery, **kw: Any) -> tuple[QuorumTransport, Any, int]:
    port, other = free_ports(2)
    send, recv = trio.open_memory_channel[tuple[Any, ...]](1000)
    qt = QuorumTransport(
        1, {1: ("127.0.0.1", port), 2: ("127.0.0.1", other)}, send.send, send.send_nowait, **kw
    )
    await nursery.start(qt.serve)
    return qt, recv, port


async def test_a_stranger_cannot_make_the_quorum_port_buffer_a_huge_first_frame() -> None:
    # Before its FOLLOWERINFO names a server, a connection is anyone's: a first frame that
    # claims 256 MiB is refused at once, not buffered until the handshake timeout.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            _qt, inbox, port = await _transport(nursery, heartbeat_s=5.0)
            stranger = await trio.open_tcp_stream("127.0.0.1", port)
            await stranger.send_all(struct.pack(">i", 256 << 20) + b"\0" * 65536)
            t0 = trio.current_time()
            with trio.move_on_after(3.0):
                while await stranger.receive_some(4096):
                    pass
            assert trio.current_time() - t0 < 2.0, "the connection was kept open, buffering"
            # A first frame just above the limit is refused as soon as its length arrives; one
            # at the limit is waited for.
            for size, refused in ((MAX_FIRST_FRAME + 1, True), (MAX_FIRST_FRAME, False)):
                s = await trio.open_tcp_stream("127.0.0.1", port)
                await s.send_all(struct.pack(">i", size) + b"\0" * 100)
                with trio.move_on_after(0.5) as waited:
                    while await s.receive_some(4096):
                        pass
                assert waited.cancelled_caught is not refused, size
                await s.aclose()
            assert inbox.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()
