"""Large getData values leave from the tree's own bytes (writev), in order with everything else."""

from __future__ import annotations

import socket
import threading

import pytest
import trio
from trizab.frontend.connection import LARGE_VALUE, encode_output
from trizab.frontend.fourletter import ServerStats

from trizab.runtime.connections import Connection, Connections, write_out
from trizab.server.api import Reply
from trizab.wire import records as r

STAT = r.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)


def _reply(xid: int, size: int) -> Reply:
    return Reply(r.ReplyHeader(xid, 5, 0), r.GetDataResponse(bytes([xid % 251]) * size, STAT))


@pytest.mark.trio
async def test_large_and_small_replies_arrive_whole_and_in_order() -> None:
    replies = [_reply(1, 10), _reply(2, 3 * LARGE_VALUE), _reply(3, 20), _reply(4, 4 << 20), _reply(5, 1)]
    expected = bytearray()
    for reply in replies:
        encode_output(expected, reply)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    received = bytearray()

    def read_all() -> None:  # a slow client: the socket takes only part of the 4 MiB at first
        while len(received) < len(expected):
            chunk = theirs.recv(65536)
            if not chunk:
                return
            received.extend(chunk)

    reader = threading.Thread(target=read_all)
    reader.start()
    stream = trio.SocketStream(trio.socket.from_stdlib_socket(ours))
    connections = Connections(ServerStats(), lambda: 0, lambda: None)
    send, recv = trio.open_memory_channel[object](float("inf"))
    c = Connection(conn_id=1, remote="peer", host="peer", send=send, fd=ours.fileno())
    connections.add(c)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(write_out, stream, recv, c)
        connections.deliver([(1, reply) for reply in replies[:3]])
        connections.flush()
        connections.deliver([(1, reply) for reply in replies[3:]])
        connections.flush()
        with trio.fail_after(20):
            while c.queued_bytes:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    await trio.to_thread.run_sync(reader.join, 20)
    assert bytes(received) == bytes(expected)
    ours.close()
    theirs.close()
