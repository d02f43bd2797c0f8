"""An fsync that fails (EIO): never acknowledged, never retried and trusted; the server stops
with one line and recovers from its log on restart ("fsyncgate")."""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path
from typing import Any

import pytest
import trio
from trizab.plugins.storage import txnlog

from trizab import config as cfg
from trizab.runtime.disk import DiskFailed
from trizab.runtime.server import Server
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import decode, decode_prefix, encode


class _Client:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = bytearray()

    @classmethod
    async def connect(cls, port: int) -> _Client:
        c = cls(await trio.open_tcp_stream("127.0.0.1", port))
        await c.send(encode(r.ConnectRequest(0, 0, 10_000, 0, b"\0" * 16, False)))
        decode(r.ConnectResponse, await c.frame())
        return c

    async def send(self, payload: bytes) -> None:
        await self.stream.send_all(struct.pack(">i", len(payload)) + payload)

    async def create(self, xid: int, path: str) -> None:
        body = encode(r.CreateRequest(path, b"", list(OPEN_ACL_UNSAFE), 0))
        await self.send(struct.pack(">ii", xid, OpCode.CREATE) + body)

    async def frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + n:
                    out = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return out
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buf += data

    async def reply(self) -> r.ReplyHeader:
        return decode_prefix(r.ReplyHeader, await self.frame())[0]


def _config(tmp_path: Path) -> cfg.ServerConfig:
    return cfg.ServerConfig(
        client_port=0, data_dir=tmp_path, storage_name="txnlog", storage_options={"syncer": "inline"}
    )


async def test_an_fsync_error_is_never_acknowledged_and_stops_the_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real_fdatasync = os.fdatasync

    def failing_fdatasync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    server = Server(_config(tmp_path))
    got: list[Any] = []
    with trio.fail_after(20), pytest.RaisesGroup(DiskFailed, allow_unwrapped=True, flatten_subgroups=True):
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            c = await _Client.connect(server.addresses[0][1])
            await c.create(1, "/kept")
            assert (await c.reply()).err == 0
            monkeypatch.setattr(txnlog.os, "fdatasync", failing_fdatasync)
            await c.create(2, "/lost")
            try:
                got.append(await c.reply())
            except (EOFError, trio.BrokenResourceError):
                pass
    monkeypatch.setattr(txnlog.os, "fdatasync", real_fdatasync)
    assert calls, "the fsync was never tried"
    assert not [h for h in got if h.xid == 2 and h.err == 0], "a write whose fsync failed was acknowledged"
    assert len(calls) == 1, "the failed fsync was retried"
    # A restart recovers from the log: /kept is there.  (/lost may be too: its bytes reached
    # the file before the fsync "failed", and its client only saw the connection close, as
    # after a crash between the write and its answer.)
    server = Server(_config(tmp_path))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        assert "/kept" in server.core.tree.nodes
        nursery.cancel_scope.cancel()
