"""Fuzz targets: one per decoder that reads bytes (or text) from outside the process.

Theory of operation
-------------------
A target is a function ``check(data: bytes) -> None`` that feeds ``data`` to one decoder
the way the server does and lets through only the decoder's *documented* error type,
which :data:`TARGETS` records beside it.  Anything else escaping ``check`` is a crash
(the fuzzer saves the input); a documented error is a correct rejection and ``check``
swallows it.  Besides "no other exception", some targets assert invariants that a
hostile input must not break (a bounded buffer, a closed connection staying closed).

Every target has seeds built by encoding real records with the Jute codec (the same
bytes a kazoo client, a learner or a peer sends), so a coverage-guided fuzzer starts
from inputs that reach deep into each decoder rather than from the first length check.

The documented error types, per decoder:

========== ======================================== =========================================
target     decoder                                  documented error
========== ======================================== =========================================
handshake  ``ClientConnection`` on a fresh           none raised: a :class:`ProtocolError`
           connection (ConnectRequest, 4lw, TLS)    *event* (then the connection is CLOSED)
frame      ``ClientConnection`` in SESSION state     none raised: a ``ProtocolError`` event
           (``next_event`` and ``next_requests``)
request    ``wire.requests.decode_request`` and      ``JuteError`` (``KeyError`` for an opcode
           ``decode_multi`` (the core decodes a      that is not a client request, as
           request body with them)                  ``decode_request`` documents)
fourletter four-letter word detection + ``run`` +    none raised: an unknown or unlisted word
           the ``4lw.commands.whitelist`` parser     gets its text answer
quorum     unframed QuorumPackets (``PacketReader``,  ``FrameError`` (framing, limits),
           a SNAP's snapshot), the first packet's   ``JuteError`` (records),
           ``LearnerInfo``, ``from_packet``, a       ``zab.messages.ProtocolError``
           forwarded request, a session report      (``from_packet``), ``ValueError``
                                                    (``decode_forward``)
election   the connection header (``parse_header``), ``FrameError`` (header, framing),
           notification frames, FLE notifications   ``zab.messages.ProtocolError``
config     ``config.parse`` of a zoo.cfg             ``ConfigError`` (non-UTF-8 bytes:
                                                    ``load`` says ConfigError too)
========== ======================================== =========================================
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import attrs
from trizab.frontend import fourletter
from trizab.frontend.connection import (
    NEED_DATA,
    ClientConnection,
    ConnectReceived,
    FourLetterWord,
    ProtocolError,
    RequestReceived,
    State,
)

from trizab import config as cfg
from trizab.runtime import election, quorum
from trizab.server.replica import Forward, decode_forward, decode_report, encode_forward, encode_report
from trizab.tree.datatree import DataTree
from trizab.tree.snapshot import serialize_snapshot
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import JuteError, decode, encode
from trizab.wire.quorum_stream import PacketReader, packet_limit
from trizab.wire.requests import REQUEST_RECORD, MultiOp, decode_multi, decode_request, encode_multi
from trizab.zab import messages as m

__all__ = ["TARGETS", "FuzzInvariantError", "Target"]

_LEN = struct.Struct(">i")


class FuzzInvariantError(AssertionError):
    """A decoder returned, but broke a promise it makes about hostile input."""


def _frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


@attrs.frozen
class Target:
    name: str
    check: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]
    documented: tuple[type[BaseException], ...]
    description: str


# ---------------------------------------------------------------------------
# valid records, encoded: the seeds

_PASSWD = bytes(range(16))
_ACL = [r.ACL(31, r.Id("world", "anyone")), r.ACL(1, r.Id("digest", "u:hash="))]


def _connect_request(read_only: bool | None = False) -> bytes:
    if read_only is None:
        return encode(r.ConnectRequestNoRO(0, 0x100000005, 30000, 0, _PASSWD))
    return encode(r.ConnectRequest(0, 0x100000005, 30000, 0x1234, _PASSWD, read_only))


def _request_bodies() -> list[tuple[int, bytes]]:
    """(opcode, encoded body) for every client request kazoo and the Java client send."""
    out: list[tuple[int, bytes]] = [
        (OpCode.CREATE, encode(r.CreateRequest("/a/b", b"data", _ACL, 0))),
        (OpCode.CREATE2, encode(r.CreateRequest("/seq-", b"", _ACL, 2))),
        (OpCode.CREATE_CONTAINER, encode(r.CreateRequest("/c", None, _ACL, 4))),
        (OpCode.CREATE_TTL, encode(r.CreateTTLRequest("/t", b"x", _ACL, 5, 1000))),
        (OpCode.DELETE, encode(r.DeleteRequest("/a", -1))),
        (OpCode.EXISTS, encode(r.ExistsRequest("/a", True))),
        (OpCode.GET_DATA, encode(r.GetDataRequest("/a", False))),
        (OpCode.SET_DATA, encode(r.SetDataRequest("/a", b"\x00" * 10, 3))),
        (OpCode.GET_ACL, encode(r.GetACLRequest("/a"))),
        (OpCode.SET_ACL, encode(r.SetACLRequest("/a", _ACL, 0))),
        (OpCode.GET_CHILDREN, encode(r.GetChildrenRequest("/", True))),
        (OpCode.GET_CHILDREN2, encode(r.GetChildren2Request("/", False))),
        (OpCode.SYNC, encode(r.SyncRequest("/"))),
        (OpCode.CHECK, encode(r.CheckVersionRequest("/a", 2))),
        (OpCode.AUTH, encode(r.AuthPacket(0, "digest", b"user:pw"))),
        (OpCode.SET_WATCHES, encode(r.SetWatches(7, ["/a"], ["/b"], ["/c"]))),
        (OpCode.SET_WATCHES2, encode(r.SetWatches2(7, ["/a"], [], ["/c"], ["/p"], ["/r"]))),
        (OpCode.ADD_WATCH, encode(r.AddWatchRequest("/w", 1))),
        (OpCode.REMOVE_WATCHES, encode(r.RemoveWatchesRequest("/w", 3))),
        (OpCode.CHECK_WATCHES, encode(r.CheckWatchesRequest("/w", 1))),
        (OpCode.GET_EPHEMERALS, encode(r.GetEphemeralsRequest("/"))),
        (OpCode.GET_ALL_CHILDREN_NUMBER, encode(r.GetAllChildrenNumberRequest("/"))),
        (OpCode.RECONFIG, encode(r.ReconfigRequest("server.4=127.0.0.1:1:2", None, None, -1))),
        (OpCode.SASL, encode(r.GetSASLRequest(b"token"))),
        (OpCode.PING, b""),
        (OpCode.CLOSE_SESSION, b""),
        (OpCode.WHO_AM_I, b""),
    ]
    writes = [
        MultiOp(OpCode.CREATE, r.CreateRequest("/m", b"1", _ACL, 0)),
        MultiOp(OpCode.SET_DATA, r.SetDataRequest("/m", b"2", -1)),
        MultiOp(OpCode.CHECK, r.CheckVersionRequest("/m", 1)),
        MultiOp(OpCode.DELETE, r.DeleteRequest("/m", -1)),
    ]
    reads = [
        MultiOp(OpCode.GET_DATA, r.GetDataRequest("/m", False)),
        MultiOp(OpCode.GET_CHILDREN, r.GetChildrenRequest("/", False)),
    ]
    out.append((OpCode.MULTI, encode_multi(writes)))
    out.append((OpCode.MULTI_READ, encode_multi(reads)))
    return out


def _request_frames() -> list[bytes]:
    return [_frame(struct.pack(">ii", xid, op) + body) for xid, (op, body) in enumerate(_request_bodies(), 1)]


def _quorum_packets() -> list[r.QuorumPacket]:
    plan = m.SyncPlan(T.DIFF, 0x100000003, (m.Entry(0x100000004, b"txn4"), m.Entry(0x100000005, b"txn5")))
    snap_plan = m.SyncPlan(T.SNAP, 0x200000000, (), b"snapshot")
    msgs: list[m.QuorumMessage] = [
        m.FollowerInfo(2, 1),
        m.FollowerInfo(4, 1, observer=True),
        m.LeaderInfo(1, 2, 1, 0x100000005),
        m.AckEpoch(2, 1, 0x100000005),
        m.AckEpoch(2, 1, 0x100000005, plan),
        m.AckEpoch(2, 1, 0x100000005, snap_plan),
        m.Diff(1, 0x100000005),
        m.Trunc(1, 0x100000003),
        m.Snap(1, 0x100000005, serialize_snapshot(DataTree())),
        m.NewLeader(1, 2),
        m.UpToDate(1, 0x200000000),
        m.Proposal(1, 0x200000001, b"txn"),
        m.Ack(2, 0x200000001),
        m.Commit(1, 0x200000001),
        m.Inform(1, 0x200000001, b"txn"),
        m.Commit(1, 0x200000002, 3),
        m.Inform(1, 0x200000002, b"txn", 3),
        m.Ping(1, 7, encode_report([(0x1234, 30000), (0x5678, 4000)])),
        m.Request(2, encode_forward(Forward(0x1234, 5, OpCode.SET_DATA, b"body")), (r.Id("ip", "::1"),)),
    ]
    pkts = [m.to_packet(x) for x in msgs]
    pkts.append(r.QuorumPacket(int(T.SYNC), 0x200000001, None, None))
    pkts.append(r.QuorumPacket(int(T.REVALIDATE), 0, struct.pack(">qi", 0x1234, 30000), None))
    pkts.append(r.QuorumPacket(int(T.PING), 0, None, [r.Id("digest", "x")]))
    return pkts


def _notifications() -> list[bytes]:
    n = m.Notification(3, 3, 0x100000005, 2, 1, m.PeerState.LOOKING)
    return [
        m.encode_notification(n),
        m.encode_notification(attrs.evolve(n, state=m.PeerState.LEADING, config=b"server.1=127.0.0.1:1:2")),
        m.encode_notification(n)[:40],
        m.encode_notification(n)[:28],
    ]


def _election_header(sid: int = 3, address: bytes = b"127.0.0.1:3888") -> bytes:
    return struct.pack(">qqi", election.PROTOCOL_VERSION, sid, len(address)) + address


# ---------------------------------------------------------------------------
# client port


def _chunks(data: bytes, selector: int) -> list[bytes]:
    """Split ``data`` as the network might: one piece, single bytes, or pieces of 2..64."""
    if selector < 64:
        return [data]
    size = 1 if selector < 96 else 2 + selector % 63
    return [data[i : i + size] for i in range(0, len(data), size)]


def _max_buffer(selector: int) -> int:
    """jute.maxbuffer: the default, or a small one so the fuzzer reaches the limit."""
    return cfg.ServerConfig().jute_max_buffer if selector & 1 else 16 + selector


def _drive(conn: ClientConnection, data: bytes, selector: int, bulk: bool) -> list[Any]:
    """Feed ``data`` the way the runtime does, return the events, check the invariants."""
    events: list[Any] = []
    chunks = _chunks(data, selector)
    for chunk in [*chunks, b""]:  # b"": the remote closed its side
        conn.receive_data(chunk)
        while True:
            if bulk and conn.state is State.SESSION:
                batch: list[Any] = []
                conn.next_requests(batch)
                events += batch
            ev = conn.next_event()
            if ev is NEED_DATA:
                break
            events.append(ev)
        if conn.state is State.CLOSED and conn.buffered:
            raise FuzzInvariantError(f"a closed connection keeps {conn.buffered} bytes")
        # Never more than one frame's worth waits for the rest of its frame (plus what the last
        # read brought): a length above jute.maxbuffer must be refused, not buffered.
        if conn.buffered > 4 + conn.max_buffer + len(chunk):
            raise FuzzInvariantError(f"{conn.buffered} bytes buffered with jute.maxbuffer {conn.max_buffer}")
    for i, ev in enumerate(events):
        if isinstance(ev, ProtocolError | FourLetterWord) and i != len(events) - 1:
            raise FuzzInvariantError(f"event after the connection ended: {events[i + 1]!r}")
        if isinstance(ev, RequestReceived) and len(ev.payload) + 8 > conn.max_buffer:
            raise FuzzInvariantError(f"a request of {len(ev.payload) + 8} bytes got through")
    return events


def check_handshake(data: bytes) -> None:
    if not data:
        return
    selector, rest = data[0], data[1:]
    conn = ClientConnection(max_buffer=_max_buffer(selector))
    events = _drive(conn, rest, selector, bulk=bool(selector & 2))
    for i, ev in enumerate(events):
        if isinstance(ev, ConnectReceived) and i != 0:
            raise FuzzInvariantError("a second ConnectRequest was taken as a handshake")
        if isinstance(ev, RequestReceived) and not isinstance(events[0], ConnectReceived):
            raise FuzzInvariantError("a request before the handshake")
        if isinstance(ev, ConnectReceived):
            # What the core gets must encode again (it echoes parts of it in the reply).
            encode(ev.request)


def _handshake_seeds() -> list[bytes]:
    seeds = [
        b"\x01" + _frame(_connect_request()),
        b"\x03" + _frame(_connect_request(None)) + b"".join(_request_frames()[:3]),
        b"\x61" + _frame(_connect_request(True)) + _request_frames()[0],
        b"\x01ruok",
        b"\x41stmk\x00\x00\x00\x00\x00\x00\x01\x32",
        b"\x01\xff\xf4\xff\xfd\x06",  # telnet ^C
        b"\x01\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello's start
    ]
    return seeds


def _session(selector: int) -> ClientConnection:
    conn = ClientConnection(max_buffer=_max_buffer(selector))
    conn.receive_data(_frame(_connect_request()))
    ev = conn.next_event()
    if not isinstance(ev, ConnectReceived):  # pragma: no cover - the seed is valid
        raise AssertionError(f"handshake failed: {ev!r}")
    return conn


def check_frame(data: bytes) -> None:
    if not data:
        return
    selector, rest = data[0], data[1:]
    conn = _session(selector | 1)  # the default jute.maxbuffer, or the frames never fit
    if selector & 4:
        conn.max_buffer = 16 + selector  # a small limit: lengths just above and below it
    events = _drive(conn, rest, selector, bulk=bool(selector & 2))
    for ev in events:
        if not isinstance(ev, RequestReceived | ProtocolError):
            raise FuzzInvariantError(f"unexpected event in a session: {ev!r}")


def _frame_seeds() -> list[bytes]:
    frames = _request_frames()
    return [b"\x01" + f for f in frames] + [b"\x43" + b"".join(frames), b"\x63" + frames[0] + frames[-1]]


def check_request(data: bytes) -> None:
    if len(data) < 4:
        return
    (opcode,) = _LEN.unpack_from(data)
    body = data[4:]
    try:
        if opcode in (OpCode.MULTI, OpCode.MULTI_READ):
            decode_multi(body, read=opcode == OpCode.MULTI_READ)
        else:
            rec = decode_request(opcode, body)
            if rec is not None:
                encode(rec)  # a decoded record encodes again (replies and the log do)
    except JuteError:
        pass
    except KeyError:
        if opcode in REQUEST_RECORD:
            raise


def _request_seeds() -> list[bytes]:
    return [_LEN.pack(op) + body for op, body in _request_bodies()]


# ---------------------------------------------------------------------------
# four-letter words


def _snapshot() -> fourletter.Snapshot:
    conn = fourletter.ConnectionInfo("127.0.0.1:5000", 1, 0, 3, 3, 0x1234, 4, 10, 30000, 2, 5)
    return fourletter.Snapshot(
        version=fourletter.version_string("0"),
        mode="leader",
        read_only=False,
        zxid=0x100000005,
        node_count=4,
        approximate_data_size=100,
        outstanding_requests=0,
        stats=fourletter.ServerStats(),
        connections=[conn],
        sessions={0x1234: (30000, 1_700_000_000_000), 0x5678: (4000, None)},
        ephemerals_by_session={0x1234: ["/e"]},
        watches_by_session={0x1234: ["/w"]},
        watches_by_path={"/w": [0x1234]},
        conf=[("clientPort", "2181")],
        environment=[("host.name", "localhost")],
    )


def check_fourletter(data: bytes) -> None:
    """The first 4 bytes as a word on a fresh connection (with stmk's argument after them),
    the rest as a ``4lw.commands.whitelist`` value; the answer must be text."""
    conn = ClientConnection()
    conn.receive_data(data[:12])
    conn.receive_data(b"")
    ev = conn.next_event()
    whitelist = cfg._whitelist(data[12:].decode("utf-8", "replace"))
    if isinstance(ev, FourLetterWord):
        if conn.state is not State.CLOSED:
            raise FuzzInvariantError("a four-letter word left the connection open")
        answer = fourletter.run(ev.word, whitelist, _snapshot, ev.argument)
    else:
        # Not a known word: run() must still answer any four characters.
        answer = fourletter.run(data[:4].decode("latin-1"), whitelist, _snapshot)
    if not isinstance(answer, str):
        raise FuzzInvariantError(f"answer {answer!r} is not text")
    answer.encode("utf-8")


def _fourletter_seeds() -> list[bytes]:
    words = sorted(cfg.ALL_4LW)
    seeds = [w.encode() + b"\0" * 8 + b"*" for w in words]
    seeds.append(b"stmk" + struct.pack(">q", -1) + b"ruok,stmk, srvr")
    seeds.append(b"xxxx" + b"\0" * 8 + b"ruok")
    return seeds


# ---------------------------------------------------------------------------
# quorum port


def check_quorum(data: bytes) -> None:
    """``data`` is what a peer writes on a quorum connection: unframed QuorumPackets.

    The first packet also goes through the leader's accept (its LearnerInfo), every packet
    through ``from_packet``, and REQUEST/PING payloads through their decoders, as the
    member does.
    """
    reader = PacketReader(packet_limit(4096))
    reader.feed(data)
    first = True
    while True:
        try:
            pkt = reader.next_packet()
        except quorum.FrameError:
            return
        if pkt is None:
            return
        try:
            if first and pkt.type in (T.FOLLOWERINFO, T.OBSERVERINFO) and pkt.data:
                decode(r.LearnerInfo, pkt.data)
        except JuteError:
            return
        first = False
        if pkt.type == T.REQUEST and pkt.data:
            try:
                decode_forward(pkt.data, tuple(pkt.authinfo or ()))
            except ValueError:
                pass
            continue
        try:
            msg = m.from_packet(pkt, 2)
        except m.ProtocolError:
            continue
        if isinstance(msg, m.Ping):
            decode_report(msg.payload)


def _quorum_seeds() -> list[bytes]:
    frames = [quorum.encode_packet(p) for p in _quorum_packets()]
    return [*frames, b"".join(frames[:3]), b"".join(frames)]


# ---------------------------------------------------------------------------
# election port


def check_election(data: bytes) -> None:
    """``data`` is what arrives on an accepted election connection: header, then notifications."""
    buf = bytearray(data)
    try:
        header = election.parse_header(buf)
    except quorum.FrameError:
        return
    if header is None:
        return
    sid, address, used = header
    del buf[:used]
    election.peer_address(address)  # what the member makes of an unknown server's address
    while True:
        try:
            payload = quorum._frame_nowait(buf, election.MAX_NOTIFICATION)
        except quorum.FrameError:
            return
        if payload is None:
            return
        try:
            m.decode_notification(payload, sid)
        except m.ProtocolError:
            return


def _election_seeds() -> list[bytes]:
    notes = [_frame(n) for n in _notifications()]
    return [
        _election_header() + b"".join(notes),
        _election_header(7, b"[::1]:3888") + notes[0],
        _election_header(2, b"localhost:3889;localhost:2181") + notes[1],
        _election_header(1, b"") + notes[2] + notes[3],
    ]


# ---------------------------------------------------------------------------
# zoo.cfg


def check_config(data: bytes) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return  # load() reports a non-UTF-8 file as ConfigError before parsing
    try:
        cfg.parse(text, read_myid=False)
    except cfg.ConfigError as exc:
        if "\n" in str(exc).rstrip("\n") and "\n" not in text:
            raise FuzzInvariantError(f"ConfigError is not one line: {exc}") from None


def _config_seeds() -> list[bytes]:
    base = """tickTime=2000
initLimit=10
syncLimit=5
dataDir=/var/lib/zookeeper
clientPort=2181
clientPortAddress=127.0.0.1
maxClientCnxns=60
minSessionTimeout=4000
maxSessionTimeout=40000
jute.maxbuffer=0xfffff
4lw.commands.whitelist=ruok, srvr, mntr
server.1=127.0.0.1:2888:3888
server.2=127.0.0.1:2889:3889:participant;2182
server.3=[::1]:2890:3890:observer;127.0.0.1:2183
storage=txnlog
storage.fsync=true
election=fast
autopurge.purgeInterval=1
forceSync=no
sslQuorum=false
admin.enableServer=false
"""
    return [
        base.encode(),
        b"# comment\n! other\nkey: value\nsnapCount 1000\ndataDir=/tmp/\\\n  zk\n",
        b"secureClientPort=0\nauthProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n",
    ]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in [
        Target("handshake", check_handshake, _handshake_seeds, (), "a fresh client connection"),
        Target("frame", check_frame, _frame_seeds, (), "request frames of an established session"),
        Target("request", check_request, _request_seeds, (JuteError, KeyError), "request bodies by opcode"),
        Target("fourletter", check_fourletter, _fourletter_seeds, (), "four-letter words and the whitelist"),
        Target(
            "quorum",
            check_quorum,
            _quorum_seeds,
            (quorum.FrameError, JuteError, m.ProtocolError, ValueError),
            "quorum frames, QuorumPacket, from_packet",
        ),
        Target(
            "election",
            check_election,
            _election_seeds,
            (quorum.FrameError, m.ProtocolError),
            "election header and notifications",
        ),
        Target("config", check_config, _config_seeds, (cfg.ConfigError,), "zoo.cfg text"),
    ]
}
