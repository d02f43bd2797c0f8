"""A tiny blocking ZooKeeper client built on the project's codec, for tests that need
to do what kazoo will not: stay silent, send garbage, lie about versions."""

from __future__ import annotations

import socket
import struct
from typing import Any

from trizab.wire import records as r
from trizab.wire.jute import decode, decode_prefix, encode

OPEN_ACL = [r.ACL(31, r.Id("world", "anyone"))]


class RawSession:
    def __init__(
        self, address: str, *, timeout_ms: int = 10000, session_id: int = 0, passwd: bytes = b""
    ) -> None:
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.buf = bytearray()
        self.xid = 0
        request = r.ConnectRequest(0, 0, timeout_ms, session_id, passwd or b"\0" * 16, False)
        self.send_frame(encode(request))
        self.connect_response = decode(r.ConnectResponse, self.read_frame())

    @property
    def session_id(self) -> int:
        return self.connect_response.session_id

    def send_frame(self, payload: bytes) -> None:
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)

    def read_frame(self) -> bytes:
        while True:
            if len(self.buf) >= 4:
                (n,) = struct.unpack_from(">i", self.buf)
                if len(self.buf) >= 4 + n:
                    frame = bytes(self.buf[4 : 4 + n])
                    del self.buf[: 4 + n]
                    return frame
            data = self.sock.recv(65536)
            if not data:
                raise EOFError("server closed the connection")
            self.buf += data

    def call(self, opcode: int, body: Any = None) -> tuple[r.ReplyHeader, bytes]:
        """Send one request and return the reply to it (skipping watch notifications)."""
        self.xid += 1
        payload = struct.pack(">ii", self.xid, opcode) + (encode(body) if body is not None else b"")
        self.send_frame(payload)
        while True:
            header, pos = decode_prefix(r.ReplyHeader, self.read_frame_bytes())
            if header.xid != -1:
                assert header.xid == self.xid, (header, self.xid)
                return header, self._last[pos:]

    def read_frame_bytes(self) -> bytes:
        self._last = self.read_frame()
        return self._last

    def create(self, path: str, data: bytes = b"", flags: int = 0) -> r.ReplyHeader:
        header, _ = self.call(1, r.CreateRequest(path, data, OPEN_ACL, flags))
        return header

    def close(self) -> None:
        self.sock.close()
