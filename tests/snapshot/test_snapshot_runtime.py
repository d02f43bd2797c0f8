"""The runtime takes fuzzy snapshots while it serves, and each one recovers to the live state.

A real :class:`ServerCore` behind the Trio runtime, a small ``snapCount`` and a
tiny walk step, and one client pipelining creates and setData as fast as it
can: the snapshot walks interleave with request processing.  Every saved
snapshot, loaded and followed by the log after its zxid, must reproduce the live
tree; and at least one of them must really be fuzzy (hold changes made after its
zxid), or the test did not test what it claims.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
import trio
import trio.testing
from trizab.plugins.storage.memory import MemoryStoragePlugin

from trizab import config as cfg
from trizab.runtime import server as rt
from trizab.runtime import snapshots
from trizab.server.core import CoreConfig, ServerCore
from trizab.storage import Recovered
from trizab.tree.datatree import DataTree
from trizab.tree.snapshot import deserialize_snapshot
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import decode, encode

OPEN = [r.ACL(31, r.Id("world", "anyone"))]


class RecordingMemory(MemoryStoragePlugin):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[int, bytes]] = []

    def save_snapshot(self, zxid: int, data: bytes) -> None:
        self.saved.append((zxid, bytes(data)))
        super().save_snapshot(zxid, data)


def frame(*records: Any) -> bytes:
    body = b"".join(encode(x) for x in records)
    return struct.pack(">i", len(body)) + body


async def read_frames(stream: trio.SocketStream, buf: bytearray, count: int) -> list[bytes]:
    out = []
    while len(out) < count:
        if len(buf) >= 4:
            (n,) = struct.unpack_from(">i", buf)
            if len(buf) >= 4 + n:
                out.append(bytes(buf[4 : 4 + n]))
                del buf[: 4 + n]
                continue
        data = await stream.receive_some(1 << 16)
        assert data, "server closed the connection"
        buf += data
    return out


def state(tree: DataTree) -> dict[str, Any]:
    return {
        "nodes": {p: (n.data, n.stat(), sorted(n.children)) for p, n in tree.nodes.items()},
        "ephemerals": {s: sorted(ps) for s, ps in tree.ephemerals.items() if ps},
        "sessions": dict(tree.sessions),
    }


def recover(snapshot: bytes | None, zxid: int, txns: list[Txn]) -> DataTree:
    core = ServerCore(CoreConfig(), now_ms=0)
    core.load(Recovered(snapshot, zxid, [t for t in txns if t.zxid > zxid], 0, 0))
    return core.tree


async def test_snapshots_taken_while_serving_recover_to_the_live_tree(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(snapshots, "SNAPSHOT_STEP_NODES", 8)
    storage = RecordingMemory()
    conf = cfg.ServerConfig(client_port=0, snap_count=60)
    server = rt.Server(conf, storage=storage)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            stream = await trio.open_tcp_stream("127.0.0.1", server.addresses[0][1])
            await stream.send_all(frame(r.ConnectRequest(0, 0, 30_000, 0, bytes(16), False)))
            buf = bytearray()
            (raw,) = await read_frames(stream, buf, 1)
            assert decode(r.ConnectResponse, raw).time_out > 0
            xid = 0
            for rnd in range(24):
                burst = bytearray()
                for i in range(40):
                    xid += 1
                    path = f"/n{(rnd * 40 + i) % 150}"
                    if rnd % 3 == 2 and i % 2:
                        req = r.RequestHeader(xid, int(OpCode.DELETE)), r.DeleteRequest(path, -1)
                    elif rnd % 3 == 1:
                        req = (
                            r.RequestHeader(xid, int(OpCode.SET_DATA)),
                            r.SetDataRequest(path, b"s%d" % xid, -1),
                        )
                    else:
                        req = r.RequestHeader(xid, int(OpCode.CREATE)), r.CreateRequest(path, b"c", OPEN, 0)
                    burst += frame(*req)
                await stream.send_all(bytes(burst))
                await read_frames(stream, buf, 40)
            await trio.testing.wait_all_tasks_blocked()
            live = state(server.core.tree)
            log = list(storage.read_from(0))
            nursery.cancel_scope.cancel()

    assert len(storage.saved) >= 3
    fuzzy = 0
    for zxid, data in storage.saved:
        assert state(recover(data, zxid, log)) == live
        alone = DataTree()
        deserialize_snapshot(alone, data)
        exact = recover(None, 0, [t for t in log if t.zxid <= zxid])
        fuzzy += state(alone)["nodes"] != state(exact)["nodes"]
    assert fuzzy >= 1, "no snapshot overlapped any transaction: the walk never interleaved"
