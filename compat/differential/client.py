"""A synchronous raw ZooKeeper protocol client for differential testing.

Theory of operation
-------------------
The differential tester must send *anything* (unknown opcodes, null paths,
malformed ACLs, requests on special xids) and see *everything* the server
answers, in arrival order, including watch notifications and a closed
connection.  A real client library hides most of that, so this one is a thin
layer over a blocking socket and the project's Jute codec:

* :meth:`RawClient.connect` sends a ``ConnectRequest`` (no ``RequestHeader``)
  and reads the ``ConnectResponse``;
* :meth:`RawClient.send` frames ``RequestHeader`` + body bytes;
* :meth:`RawClient.read_until_xid` reads frames until the reply with a given
  xid arrives, returning every frame it saw on the way (notifications, other
  replies), or stops at end of stream / timeout.

Frames are returned as :class:`Frame` objects carrying the decoded
``ReplyHeader`` and the raw body bytes; decoding bodies is the caller's job
(it alone knows which opcode a reply answers).
"""

from __future__ import annotations

import socket
import struct
import time

import attrs

from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode, Xid

__all__ = ["Closed", "Frame", "RawClient", "TimedOut"]

_LEN = struct.Struct(">i")


@attrs.frozen
class Frame:
    """One server-to-client frame after the handshake."""

    header: r.ReplyHeader
    body: bytes


@attrs.frozen
class Closed:
    """The server closed the connection (end of stream or reset)."""


@attrs.frozen
class TimedOut:
    """Nothing arrived within the read deadline."""


class RawClient:
    """One TCP connection speaking the ZooKeeper client protocol, blocking, with deadlines."""

    def __init__(self, address: tuple[str, int], *, timeout: float = 5.0) -> None:
        self.address = address
        self.timeout = timeout
        self.sock: socket.socket | None = socket.create_connection(address, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self.closed = False
        self._xid = 0

    # -- low level -------------------------------------------------------

    def send_raw(self, payload: bytes) -> bool:
        """Send one length-prefixed frame; False if the connection is already gone."""
        if self.sock is None or self.closed:
            return False
        try:
            self.sock.sendall(_LEN.pack(len(payload)) + payload)
        except OSError:
            self._mark_closed()
            return False
        return True

    def _mark_closed(self) -> None:
        self.closed = True
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _fill(self, deadline: float) -> bool:
        """Read more bytes into the buffer; False on close or timeout (sets ``closed`` on close)."""
        if self.sock is None:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except TimeoutError:
            return False
        except OSError:
            self._mark_closed()
            return False
        if not chunk:
            self._mark_closed()
            return False
        self._buf += chunk
        return True

    def read_frame_bytes(self, timeout: float | None = None) -> bytes | Closed | TimedOut:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self._buf) >= 4:
                (length,) = _LEN.unpack_from(self._buf, 0)
                if len(self._buf) >= 4 + length:
                    payload = bytes(self._buf[4 : 4 + length])
                    del self._buf[: 4 + length]
                    return payload
            if not self._fill(deadline):
                return Closed() if self.closed else TimedOut()

    def read_frame(self, timeout: float | None = None) -> Frame | Closed | TimedOut:
        payload = self.read_frame_bytes(timeout)
        if not isinstance(payload, bytes):
            return payload
        header, pos = jute.decode_prefix(r.ReplyHeader, payload, 0)
        return Frame(header, payload[pos:])

    # -- protocol ----------------------------------------------------------

    def connect(
        self,
        *,
        time_out: int = 10000,
        session_id: int = 0,
        passwd: bytes = b"\0" * 16,
        last_zxid_seen: int = 0,
        read_only: bool = False,
    ) -> r.ConnectResponse | r.ConnectResponseNoRO | Closed | TimedOut:
        req = r.ConnectRequest(0, last_zxid_seen, time_out, session_id, passwd, read_only)
        if not self.send_raw(jute.encode(req)):
            return Closed()
        payload = self.read_frame_bytes()
        if not isinstance(payload, bytes):
            return payload
        if len(payload) == 36:
            return jute.decode(r.ConnectResponseNoRO, payload)
        return jute.decode(r.ConnectResponse, payload)

    def next_xid(self) -> int:
        self._xid += 1
        return self._xid

    def send(self, xid: int, opcode: int, body: bytes = b"") -> bool:
        return self.send_raw(jute.encode(r.RequestHeader(xid, opcode)) + body)

    def read_until_xid(self, xid: int, timeout: float | None = None) -> list[Frame | Closed | TimedOut]:
        """Frames up to and including the reply with ``xid``; ends with Closed/TimedOut if it never came."""
        out: list[Frame | Closed | TimedOut] = []
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            frame = self.read_frame(max(0.0, deadline - time.monotonic()))
            out.append(frame)
            if not isinstance(frame, Frame) or frame.header.xid == xid:
                return out

    def ping(self, timeout: float | None = None) -> list[Frame | Closed | TimedOut]:
        """Send a ping and return everything up to its reply (the notification barrier)."""
        if not self.send(Xid.PING, OpCode.PING):
            return [Closed()]
        return self.read_until_xid(Xid.PING, timeout)

    def close(self) -> None:
        self._mark_closed()
