"""One client connection's bytes, as a sans-I/O state machine (h11 style).

Theory of operation
-------------------
The runtime feeds whatever the socket produced into :meth:`ClientConnection.receive_data`
and then calls :meth:`ClientConnection.next_event` until it returns :data:`NEED_DATA`.
Nothing here reads a socket, a clock or the data tree.

States (a connection only moves forward)::

    HANDSHAKE --ConnectRequest--> SESSION --(frames)--> SESSION
        |                            |
        +--four-letter word--+       +--ProtocolError--> CLOSED
        +--ProtocolError-----+--> CLOSED

Framing follows ``NIOServerCnxn``: every frame is a 4-byte big-endian signed
length and that many bytes.  In HANDSHAKE the first four bytes are first
compared with the known four-letter words (``ruok`` read as an int is a length
of 1,920,298,859); a match yields :class:`FourLetterWord` and the connection is
over, as in ZooKeeper (``stmk`` also consumes the 8-byte trace mask after it).
Otherwise the frame is a ``ConnectRequest``: 45 bytes with the ``readOnly``
flag, 44 bytes from a pre-3.4 client (``ProtocolManager`` reads the flag
optimistically; trailing bytes beyond it are ignored as ZooKeeper ignores them).
``protocolVersion`` is not checked, because ``ZooKeeperServer.processConnectRequest``
does not check it either; the decoded request goes to the core unchanged.

A TLS client (kazoo's ``use_ssl=True``, a Java client with ``zookeeper.client.secure``)
that reaches this plain-text port opens with a TLS record header, content type 22
(handshake) and version 3.x: read as a length that is 369,295,618 or so, which would only
say "frame length out of range".  Those first bytes are recognised instead and give a
:class:`ProtocolError` with ``tls_handshake`` set, so the runtime can say what happened.

In SESSION every frame is a ``RequestHeader`` (xid, opcode) plus the request
body, which stays undecoded here: the core decodes it and answers a malformed
body with ``MarshallingError`` per request.  A length below zero or above
``jute.maxbuffer`` ("Len error" in ZooKeeper) or a frame too short for its
header is a :class:`ProtocolError`: the remote's fault, and the end of this
connection only.

Outbound, :func:`encode_output` turns the core's outputs
(:class:`~trizab.server.api.Reply`, :class:`~trizab.server.api.Notification`,
:class:`~trizab.server.api.Connected`) into length-prefixed frames.
"""

from __future__ import annotations

import enum
import struct
from typing import Final, NamedTuple

import attrs

from trizab.server.api import Connected, Notification, Output, Reply
from trizab.wire import records as r
from trizab.wire.jute import JuteError, decode_prefix, encode_into

__all__ = [
    "FOUR_LETTER_WORDS",
    "NEED_DATA",
    "ClientConnection",
    "ConnectReceived",
    "Event",
    "FourLetterWord",
    "ProtocolError",
    "RequestReceived",
    "State",
    "encode_output",
    "encode_outputs",
]

DEFAULT_MAX_BUFFER: Final = 0xFFFFF

_LEN = struct.Struct(">i")
_HEADER = struct.Struct(">ii")

# FourLetterCommands.java: every word ZooKeeper 3.8 recognises on a fresh connection.
FOUR_LETTER_WORDS: Final = frozenset(
    "conf cons crst dirs dump envi gtmk ruok stmk srst srvr stat wchc wchp wchs mntr isro hash".split()
)
_WORD_BY_CODE: Final = {_LEN.unpack(w.encode("ascii"))[0]: w for w in FOUR_LETTER_WORDS}
# A telnet ^C (IAC IP IAC DO) on a fresh connection just closes it (FourLetterCommands.telnetCloseCmd).
_TELNET_CLOSE: Final = -720899

# A TLS record carrying a handshake (ClientHello): type 0x16, then version 0x03 0x00..0x04
# (SSL 3.0 up to TLS 1.3's record versions).
_TLS_HANDSHAKE: Final = 0x16
_TLS_MAJOR: Final = 0x03
_TLS_MAX_MINOR: Final = 0x04

# ConnectRequestNoRO is 44 bytes with a 16-byte password: 4 + 8 + 4 + 8 + 4 + 16.
_CONNECT_NO_RO_SIZE: Final = 44


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()


class State(enum.Enum):
    HANDSHAKE = "handshake"
    SESSION = "session"
    CLOSED = "closed"


@attrs.frozen
class FourLetterWord:
    """A four-letter word instead of a handshake; ``argument`` is stmk's 8-byte mask, else None."""

    word: str
    argument: int | None = None


@attrs.frozen
class ConnectReceived:
    """The handshake frame; ``has_read_only_flag`` False for a pre-3.4 (44-byte) request."""

    request: r.ConnectRequest
    has_read_only_flag: bool


class RequestReceived(NamedTuple):
    """One request frame: its header fields and the undecoded bytes after the header.

    A named tuple rather than an attrs class: one is built per request, and a tuple is
    built in about half the time.
    """

    xid: int
    opcode: int
    payload: bytes | memoryview


@attrs.frozen
class ProtocolError:
    """The remote broke the framing; log ``message`` and close this connection.

    ``tls_handshake``: the connection opened with a TLS handshake, so the remote is a TLS
    client on this plain-text port (a configuration mistake to name, not garbage).
    """

    message: str
    tls_handshake: bool = False


Event = FourLetterWord | ConnectReceived | RequestReceived | ProtocolError


class ClientConnection:
    """Server side of one client connection: bytes in, events out; see the module docstring."""

    def __init__(self, *, max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        self.max_buffer = max_buffer
        self.state = State.HANDSHAKE
        self._buf = bytearray()
        self._pos = 0  # start of unparsed bytes in _buf (compacted lazily)
        self._eof = False

    # -- input -----------------------------------------------------------

    def receive_data(self, data: bytes | memoryview) -> None:
        """Add bytes from the socket; ``b""`` means the remote closed its side."""
        if not data:
            self._eof = True
            return
        if self.state is State.CLOSED:
            return  # the runtime is closing us; later bytes are meaningless
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def eof(self) -> bool:
        return self._eof

    @property
    def buffered(self) -> int:
        """Bytes received but not yet turned into events."""
        return len(self._buf) - self._pos

    def next_event(self) -> Event | _NeedData:
        """The next complete event, or :data:`NEED_DATA`."""
        if self.state is State.CLOSED:
            return NEED_DATA
        avail = len(self._buf) - self._pos
        if avail < 4:
            return self._need_data(avail)
        (length,) = _LEN.unpack_from(self._buf, self._pos)
        if self.state is State.HANDSHAKE:
            word = _WORD_BY_CODE.get(length)
            if word is not None:
                return self._four_letter_word(word, avail)
            if length == _TELNET_CLOSE:
                return self._fail("telnet close request before the handshake")
            buf, pos = self._buf, self._pos
            if buf[pos] == _TLS_HANDSHAKE and buf[pos + 1] == _TLS_MAJOR and buf[pos + 2] <= _TLS_MAX_MINOR:
                return self._fail("TLS handshake on a plain-text port", tls_handshake=True)
        if length < 0 or length > self.max_buffer:
            return self._fail(f"frame length {length} out of range 0..{self.max_buffer} (jute.maxbuffer)")
        if avail < 4 + length:
            return self._need_data(avail)
        start = self._pos + 4
        end = start + length
        self._pos = end
        if self.state is State.SESSION and length >= _HEADER.size:
            # Hot path: one copy of the body straight out of the buffer.
            xid, opcode = _HEADER.unpack_from(self._buf, start)
            return RequestReceived(xid, opcode, bytes(self._buf[start + _HEADER.size : end]))
        frame = bytes(self._buf[start:end])
        if self.state is State.HANDSHAKE:
            return self._connect(frame)
        return self._request(frame)

    def next_requests(self, out: list[Event], most: int = 1 << 30) -> None:
        """Append the buffered complete request frames to ``out``, as :meth:`next_event` would.

        The bulk form of the hot path (an established session, frames of sane length);
        it stops at anything else, which :meth:`next_event` then handles, and once ``out``
        holds ``most`` events (the rest stay buffered: a caller that may not take more
        requests yet).  Under load a receive holds dozens of requests, and one call for
        all of them saves most of the per-request overhead.
        """
        if self.state is not State.SESSION:
            return
        buf = self._buf
        pos = self._pos
        size = len(buf)
        limit = self.max_buffer
        header_size = _HEADER.size
        unpack_len = _LEN.unpack_from
        unpack_header = _HEADER.unpack_from
        append = out.append
        new = tuple.__new__  # RequestReceived(...) minus its Python-level __new__
        room = most - len(out)
        while size - pos >= 4 and room > 0:
            (length,) = unpack_len(buf, pos)
            if length < header_size or length > limit or size - pos - 4 < length:
                break
            start = pos + 4
            pos = start + length
            xid, opcode = unpack_header(buf, start)
            append(new(RequestReceived, (xid, opcode, bytes(buf[start + header_size : pos]))))
            room -= 1
        self._pos = pos

    def _need_data(self, avail: int) -> _NeedData | ProtocolError:
        if self._eof and avail:
            return self._fail(f"connection closed inside a frame ({avail} bytes of a partial frame)")
        return NEED_DATA

    def _fail(self, message: str, *, tls_handshake: bool = False) -> ProtocolError:
        self.state = State.CLOSED
        self._buf = bytearray()
        self._pos = 0
        return ProtocolError(message, tls_handshake)

    def _four_letter_word(self, word: str, avail: int) -> Event | _NeedData:
        argument = None
        if word == "stmk":
            # SetTraceMaskCommand reads a long after the word.
            if avail < 12:
                return self._need_data(avail)
            (argument,) = struct.unpack_from(">q", self._buf, self._pos + 4)
        self.state = State.CLOSED
        self._buf = bytearray()
        self._pos = 0
        return FourLetterWord(word, argument)

    def _connect(self, frame: bytes) -> ConnectReceived | ProtocolError:
        try:
            base, pos = decode_prefix(r.ConnectRequestNoRO, frame)
        except JuteError as exc:
            return self._fail(f"undecodable ConnectRequest ({len(frame)} bytes): {exc}")
        has_flag = pos < len(frame)
        read_only = bool(frame[pos]) if has_flag else False
        self.state = State.SESSION
        request = r.ConnectRequest(
            protocol_version=base.protocol_version,
            last_zxid_seen=base.last_zxid_seen,
            time_out=base.time_out,
            session_id=base.session_id,
            passwd=base.passwd,
            read_only=read_only,
        )
        return ConnectReceived(request, has_flag)

    def _request(self, frame: bytes) -> RequestReceived | ProtocolError:
        if len(frame) < _HEADER.size:
            return self._fail(f"request frame of {len(frame)} bytes is shorter than a RequestHeader (8)")
        xid, opcode = _HEADER.unpack_from(frame)
        return RequestReceived(xid, opcode, frame[_HEADER.size :])


# ---------------------------------------------------------------------------
# Output encoding.


def encode_output(out: bytearray, output: Output) -> None:
    """Append ``output`` to ``out`` as one length-prefixed frame."""
    start = len(out)
    out += b"\0\0\0\0"  # length placeholder, patched below
    if isinstance(output, Reply):
        output.header.jute_encode(out)  # type: ignore[attr-defined]
        body = output.body
        if body is not None:
            body.jute_encode(out)
    elif isinstance(output, Notification):
        encode_into(out, r.ReplyHeader(xid=-1, zxid=output.zxid, err=0), output.event)
    elif isinstance(output, Connected):
        resp = output.response
        if output.send_read_only_flag:
            encode_into(out, resp)
        else:
            encode_into(
                out,
                r.ConnectResponseNoRO(
                    protocol_version=resp.protocol_version,
                    time_out=resp.time_out,
                    session_id=resp.session_id,
                    passwd=resp.passwd,
                ),
            )
    else:  # pragma: no cover - a programming error in the core
        raise TypeError(f"not a core output: {output!r}")
    _LEN.pack_into(out, start, len(out) - start - 4)


# A getData reply's value at least this large is not copied into the connection's buffer: the
# server sends it from the tree's own bytes (writev), see encode_around_value.
LARGE_VALUE = 64 * 1024


def encode_around_value(out: bytearray, output: Output) -> bytes | None:
    """For a getData reply with a value of ``LARGE_VALUE`` bytes or more: append its frame up to
    the value to ``out`` and return what follows the value (the Stat); the caller sends the value
    itself in between.  None (nothing appended) for any other output.

    Copying a 1 MiB value into the buffer cost about 200 us per reply, a third of the server's
    CPU for getData of 1 MiB values (bench/scenarios large-values)."""
    if output.__class__ is not Reply:
        return None
    body = output.body  # type: ignore[union-attr]
    if body.__class__ is not r.GetDataResponse or len(body.data or b"") < LARGE_VALUE:
        return None
    start = len(out)
    out += b"\0\0\0\0"
    output.header.jute_encode(out)  # type: ignore[union-attr]
    out += _LEN.pack(len(body.data))
    rest = bytearray()
    body.stat.jute_encode(rest)
    _LEN.pack_into(out, start, len(out) - start - 4 + len(body.data) + len(rest))
    return bytes(rest)


def encode_outputs(outputs: list[Output]) -> bytes:
    out = bytearray()
    for o in outputs:
        encode_output(out, o)
    return bytes(out)
