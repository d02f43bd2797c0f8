"""The sans-I/O client connection: handshake, framing, four-letter words, hostile input."""

from __future__ import annotations

import contextlib
import ssl
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trizab.frontend.connection import (
    FOUR_LETTER_WORDS,
    NEED_DATA,
    ClientConnection,
    ConnectReceived,
    FourLetterWord,
    ProtocolError,
    RequestReceived,
    State,
    encode_outputs,
)

from trizab.server.api import Connected, Notification, Reply
from trizab.wire import records as r
from trizab.wire.jute import decode, encode

PASSWD = bytes(range(16))


def frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def connect_frame(*, read_only: bool | None = False, session_id: int = 0, version: int = 0) -> bytes:
    if read_only is None:
        rec = r.ConnectRequestNoRO(version, 5, 30000, session_id, PASSWD)
    else:
        rec = r.ConnectRequest(version, 5, 30000, session_id, PASSWD, read_only)
    return frame(encode(rec))


def request_frame(xid: int, opcode: int, body: bytes = b"") -> bytes:
    return frame(struct.pack(">ii", xid, opcode) + body)


def drain(conn: ClientConnection) -> list[object]:
    events = []
    while True:
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events
        events.append(ev)
        if isinstance(ev, (ProtocolError, FourLetterWord)):
            return events


def normalise(events: list[object]) -> list[object]:
    # memoryview payloads compare by content only after conversion.
    return [(e.xid, e.opcode, bytes(e.payload)) if isinstance(e, RequestReceived) else e for e in events]


def feed_chunks(data: bytes, cuts: list[int], **kw: int) -> list[object]:
    conn = ClientConnection(**kw)
    events: list[object] = []
    pos = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut == pos:
            continue  # b"" would mean end of stream
        conn.receive_data(data[pos:cut])
        pos = cut
        events += drain(conn)
    return normalise(events)


def test_handshake_then_requests() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame(read_only=True) + request_frame(1, 4, b"body") + request_frame(-2, 11))
    events = drain(conn)
    assert isinstance(events[0], ConnectReceived)
    assert events[0].has_read_only_flag
    assert events[0].request == r.ConnectRequest(0, 5, 30000, 0, PASSWD, True)
    assert normalise(events[1:]) == [(1, 4, b"body"), (-2, 11, b"")]
    assert conn.state is State.SESSION


def test_old_client_without_read_only_flag() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame(read_only=None, session_id=77))
    (ev,) = drain(conn)
    assert isinstance(ev, ConnectReceived)
    assert not ev.has_read_only_flag
    assert ev.request.session_id == 77 and ev.request.read_only is False


def test_protocol_version_is_passed_through_like_zookeeper() -> None:
    # ZooKeeperServer.processConnectRequest does not look at protocolVersion.
    conn = ClientConnection()
    conn.receive_data(connect_frame(version=12345))
    (ev,) = drain(conn)
    assert isinstance(ev, ConnectReceived) and ev.request.protocol_version == 12345


@given(
    st.lists(st.tuples(st.integers(-(2**31), 2**31 - 1), st.integers(-20, 200), st.binary(max_size=40))),
    st.lists(st.integers(0, 2000), max_size=30),
)
@settings(derandomize=True, max_examples=200)
def test_chunking_does_not_change_events(requests: list[tuple[int, int, bytes]], cuts: list[int]) -> None:
    data = connect_frame() + b"".join(request_frame(x, o, b) for x, o, b in requests)
    whole = feed_chunks(data, [])
    assert feed_chunks(data, [c % (len(data) + 1) for c in cuts]) == whole
    assert whole[1:] == [(x, o, b) for x, o, b in requests]


def test_byte_by_byte_equals_whole() -> None:
    data = connect_frame() + request_frame(7, 5, b"x" * 100) + request_frame(8, 3, b"")
    assert feed_chunks(data, list(range(len(data)))) == feed_chunks(data, [])


def test_frame_over_limit_is_a_protocol_error() -> None:
    conn = ClientConnection(max_buffer=100)
    conn.receive_data(connect_frame() + struct.pack(">i", 101))
    events = drain(conn)
    assert isinstance(events[-1], ProtocolError)
    assert "101" in events[-1].message and "jute.maxbuffer" in events[-1].message
    assert conn.state is State.CLOSED
    # Nothing more comes out of a closed connection, whatever arrives.
    conn.receive_data(request_frame(1, 4))
    assert conn.next_event() is NEED_DATA


def test_frame_at_limit_is_fine() -> None:
    conn = ClientConnection(max_buffer=100)
    conn.receive_data(connect_frame() + request_frame(1, 5, b"z" * 92))
    events = drain(conn)
    assert normalise(events[1:]) == [(1, 5, b"z" * 92)]


def test_negative_length_is_a_protocol_error() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame() + struct.pack(">i", -5))
    assert isinstance(drain(conn)[-1], ProtocolError)


def test_garbage_first_frame() -> None:
    conn = ClientConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    (ev,) = drain(conn)
    assert isinstance(ev, ProtocolError)  # "GET " as a length is far beyond jute.maxbuffer


def client_hello() -> bytes:
    """The first bytes a real TLS client sends (Python's ssl module, as kazoo's use_ssl uses)."""
    context = ssl.create_default_context()
    tls = context.wrap_bio(ssl.MemoryBIO(), outgoing := ssl.MemoryBIO(), server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("split", [None, 4, 5])
def test_tls_handshake_on_the_plain_port_is_named(split: int | None) -> None:
    conn = ClientConnection()
    hello = client_hello()
    assert hello[:2] == b"\x16\x03"
    for chunk in [hello] if split is None else [hello[:split], hello[split:]]:
        conn.receive_data(chunk)
    (ev,) = drain(conn)
    assert isinstance(ev, ProtocolError) and ev.tls_handshake
    assert "TLS handshake" in ev.message
    assert conn.state is State.CLOSED


def test_tls_looking_bytes_after_the_handshake_are_a_plain_length_error() -> None:
    # Only the first bytes of a connection can be a ClientHello; later they are a frame length.
    conn = ClientConnection()
    conn.receive_data(connect_frame() + client_hello())
    ev = drain(conn)[-1]
    assert isinstance(ev, ProtocolError) and not ev.tls_handshake


def test_truncated_connect_request_is_a_protocol_error() -> None:
    conn = ClientConnection()
    conn.receive_data(frame(b"\0" * 10))
    (ev,) = drain(conn)
    assert isinstance(ev, ProtocolError) and "ConnectRequest" in ev.message


def test_request_shorter_than_header() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame() + frame(b"\0\0\0"))
    events = drain(conn)
    assert isinstance(events[-1], ProtocolError) and "RequestHeader" in events[-1].message


def test_eof_inside_a_frame() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame() + request_frame(1, 4, b"abcdef")[:-2])
    assert len(drain(conn)) == 1
    conn.receive_data(b"")
    (ev,) = drain(conn)
    assert isinstance(ev, ProtocolError) and "partial" in ev.message


def test_clean_eof() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame())
    drain(conn)
    conn.receive_data(b"")
    assert conn.next_event() is NEED_DATA and conn.eof


@given(st.sampled_from(sorted(FOUR_LETTER_WORDS)), st.integers(1, 4))
@settings(derandomize=True)
def test_four_letter_words_are_sniffed(word: str, split: int) -> None:
    conn = ClientConnection()
    raw = word.encode() + (struct.pack(">q", 99) if word == "stmk" else b"")
    conn.receive_data(raw[:split])
    if split < 4:
        assert conn.next_event() is NEED_DATA
        conn.receive_data(raw[split:])
    elif word == "stmk":
        conn.receive_data(raw[split:])
    (ev,) = drain(conn)
    assert ev == FourLetterWord(word, 99 if word == "stmk" else None)
    assert conn.state is State.CLOSED


def test_four_letter_word_only_before_handshake() -> None:
    conn = ClientConnection()
    conn.receive_data(connect_frame() + b"ruok")
    events = drain(conn)
    # After the handshake "ruok" is just a (huge) length.
    assert isinstance(events[0], ConnectReceived) and isinstance(events[1], ProtocolError)


def test_unknown_four_letters_are_a_length() -> None:
    conn = ClientConnection()
    conn.receive_data(b"xxxx")
    (ev,) = drain(conn)
    assert isinstance(ev, ProtocolError)


def test_encode_outputs() -> None:
    header = r.ReplyHeader(5, 0x10, 0)
    body = r.SetDataResponse(r.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11))
    resp = r.ConnectResponse(0, 4000, 0x55, PASSWD, False)
    event = r.WatcherEvent(3, 3, "/a")
    data = encode_outputs(
        [
            Reply(header, body),
            Reply(r.ReplyHeader(6, 0x10, -101)),
            Notification(0x11, event),
            Connected(resp),
            Connected(resp, send_read_only_flag=False),
        ]
    )
    frames = []
    pos = 0
    while pos < len(data):
        (n,) = struct.unpack_from(">i", data, pos)
        frames.append(data[pos + 4 : pos + 4 + n])
        pos += 4 + n
    assert frames[0] == encode(header) + encode(body)
    assert frames[1] == encode(r.ReplyHeader(6, 0x10, -101))
    assert frames[2] == encode(r.ReplyHeader(-1, 0x11, 0)) + encode(event)
    assert decode(r.ConnectResponse, frames[3]) == resp
    assert len(frames[4]) == len(frames[3]) - 1
    assert decode(r.ConnectResponseNoRO, frames[4]).session_id == 0x55


def drain_bulk(conn: ClientConnection) -> list[object]:
    """As the runtime reads: the bulk request form first, then next_event for the rest."""
    events: list[object] = []
    while True:
        conn.next_requests(events)  # type: ignore[arg-type]
        ev = conn.next_event()
        if ev is NEED_DATA:
            return events
        events.append(ev)
        if isinstance(ev, (ProtocolError, FourLetterWord)):
            return events


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    frames=st.lists(
        st.one_of(
            st.builds(
                request_frame, st.integers(-(2**31), 2**31 - 1), st.integers(-20, 120), st.binary(max_size=40)
            ),
            st.binary(min_size=4, max_size=4).map(frame),  # a frame too short for a RequestHeader
            st.just(struct.pack(">i", 1 << 20)),  # a length over jute.maxbuffer
            st.binary(max_size=6),  # garbage
        ),
        max_size=12,
    ),
    cuts=st.lists(st.integers(0, 400), max_size=8),
)
def test_bulk_request_parsing_gives_the_same_events_as_next_event(
    frames: list[bytes], cuts: list[int]
) -> None:
    data = connect_frame() + b"".join(frames)
    cuts = [min(cut, len(data)) for cut in cuts]  # (a cut past the end would mean end of stream)
    one_by_one = feed_chunks(data, cuts, max_buffer=4096)
    bulk_conn = ClientConnection(max_buffer=4096)
    bulk: list[object] = []
    pos = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut <= pos:
            continue
        bulk_conn.receive_data(data[pos:cut])
        pos = cut
        bulk += drain_bulk(bulk_conn)
        if bulk and isinstance(bulk[-1], (ProtocolError, FourLetterWord)):
            break
    assert normalise(bulk) == one_by_one


def test_a_large_value_is_framed_around_for_the_server_to_send_it_uncopied() -> None:
    from trizab.frontend.connection import LARGE_VALUE, encode_around_value, encode_output

    stat = r.Stat(1, 2, 3, 4, 5, 6, 7, 8, 9, LARGE_VALUE, 11)
    large = Reply(r.ReplyHeader(7, 99, 0), r.GetDataResponse(b"v" * LARGE_VALUE, stat))
    whole = bytearray()
    encode_output(whole, large)
    head = bytearray(b"earlier")
    rest = encode_around_value(head, large)
    assert rest is not None
    assert bytes(head) + b"v" * LARGE_VALUE + rest == b"earlier" + bytes(whole)
    small = Reply(r.ReplyHeader(8, 99, 0), r.GetDataResponse(b"v" * (LARGE_VALUE - 1), stat))
    untouched = bytearray()
    assert encode_around_value(untouched, small) is None and not untouched
