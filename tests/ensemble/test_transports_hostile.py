"""The quorum and election ports against connections that are not trizab members."""

from __future__ import annotations

import logging
import struct
from typing import Any

import pytest
import trio

from trizab.runtime.election import MAX_GUESTS, ElectionTransport, peer_address
from trizab.runtime.election import PROTOCOL_VERSION as ELECTION_PROTOCOL_VERSION
from trizab.runtime.events import QuorumAccepted, QuorumReceived
from trizab.runtime.launcher import free_ports
from trizab.runtime.quorum import MAX_FIRST_FRAME, QuorumTransport, encode_packet, read_packet
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import encode
from trizab.wire.quorum_stream import PacketReader
from trizab.zab.messages import Notification, PeerState

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
            await stranger.send_all(struct.pack(">iqi", int(T.FOLLOWERINFO), 0, 256 << 20) + b"\0" * 65536)
            t0 = trio.current_time()
            with trio.move_on_after(3.0):
                while await stranger.receive_some(4096):
                    pass
            assert trio.current_time() - t0 < 2.0, "the connection was kept open, buffering"
            # A first frame just above the limit is refused as soon as its length arrives; one
            # at the limit is waited for.
            for size, refused in ((MAX_FIRST_FRAME + 1, True), (MAX_FIRST_FRAME, False)):
                s = await trio.open_tcp_stream("127.0.0.1", port)
                await s.send_all(struct.pack(">iqi", int(T.FOLLOWERINFO), 0, size) + b"\0" * 100)
                with trio.move_on_after(0.5) as waited:
                    while await s.receive_some(4096):
                        pass
                assert waited.cancelled_caught is not refused, size
                await s.aclose()
            assert inbox.statistics().current_buffer_used == 0
            nursery.cancel_scope.cancel()


def _follower_info(sid: int) -> bytes:
    info = encode(r.LearnerInfo(sid, 0x10000, 0))
    return encode_packet(r.QuorumPacket(int(T.FOLLOWERINFO), 1 << 32, info, None))


async def test_a_connection_claiming_a_connected_servers_id_does_not_replace_its_link() -> None:
    # Anyone can connect and say "I am server 2".  While the real server 2's link is alive
    # (it keeps talking), the impostor is turned away instead of replacing that link.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _transport(nursery, heartbeat_s=1.0)
            real = await trio.open_tcp_stream("127.0.0.1", port)
            await real.send_all(_follower_info(2))
            accepted_event = await inbox.receive()
            assert isinstance(accepted_event, QuorumAccepted)
            link = accepted_event.link
            qt.register(link, 0)

            async def keep_talking() -> None:
                while True:
                    await real.send_all(encode_packet(r.QuorumPacket(int(T.PING), 0, None, None)))
                    await trio.sleep(0.1)

            nursery.start_soon(keep_talking)
            impostor = await trio.open_tcp_stream("127.0.0.1", port)
            await impostor.send_all(_follower_info(2))
            with trio.move_on_after(3.0):
                while await impostor.receive_some(4096):
                    pass
            # Turned away (closed by the member), and only ever pings from the real link arrived.
            assert qt.current(link)
            while True:
                try:
                    msg = inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                assert isinstance(msg, QuorumReceived) and msg.link is link, msg
            nursery.cancel_scope.cancel()


async def test_a_server_that_reconnects_after_closing_its_link_is_taken_back_at_once() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _transport(nursery, heartbeat_s=5.0)
            first = await trio.open_tcp_stream("127.0.0.1", port)
            await first.send_all(_follower_info(2))
            link = (await inbox.receive()).link
            qt.register(link, 0)
            await first.aclose()
            second = await trio.open_tcp_stream("127.0.0.1", port)
            await second.send_all(_follower_info(2))
            t0 = trio.current_time()
            while True:
                msg = await inbox.receive()
                if isinstance(msg, QuorumAccepted):
                    break
            assert trio.current_time() - t0 < 1.0
            assert msg.link.sid == 2 and msg.link is not link
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------------
# election port


def _election_header(sid: int, address: bytes) -> bytes:
    return struct.pack(">qqi", ELECTION_PROTOCOL_VERSION, sid, len(address)) + address


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:3888", ("127.0.0.1", 3888)),
        ("[::1]:3888", ("::1", 3888)),
        ("zk-2.example.com:3888", ("zk-2.example.com", 3888)),
        ("h:\u00b2", None),  # a Unicode digit: str.isdigit() says yes, int() says no
        ("h:\u0663\u0663", None),  # Arabic-Indic digits: int() reads them, they are no port
        ("h:99999", None),
        ("h:0", None),
        ("a..b:3888", None),  # an empty label: the resolver's IDNA encoding fails
        ("h\x00st:3888", None),
        ("h\ufffd:3888", None),
        (":3888", None),
        ("h:", None),
    ],
)
def test_peer_address_only_takes_what_can_be_connected_to(
    address: str, expected: tuple[str, int] | None
) -> None:
    assert peer_address(address) == expected


async def _election(nursery: trio.Nursery, my_id: int = 5) -> tuple[ElectionTransport, Any, int]:
    port, other = free_ports(2)
    send, recv = trio.open_memory_channel[tuple[Any, ...]](1000)
    addresses = {my_id: ("127.0.0.1", port), my_id + 1: ("127.0.0.1", other)}
    et = ElectionTransport(my_id, addresses, send.send, retry_s=0.05, handshake_s=2.0)
    await nursery.start(et.serve)
    return et, recv, port


async def _wait_until(cond: Any, timeout: float = 5.0) -> None:
    with trio.fail_after(timeout):
        while not cond():
            await trio.sleep(0.02)


async def test_an_unknown_server_with_an_unusable_address_does_not_stop_the_election_port() -> None:
    # A header from a server we do not know, giving a "port" that str.isdigit() accepts and
    # int() does not, raised ValueError out of the accept handler: that ended the listener's
    # nursery, so the member stopped.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            et, _inbox, port = await _election(nursery)
            for address in ("127.0.0.1:\u00b2".encode(), b"127.0.0.1:999999", b"a..b:3888"):
                s = await trio.open_tcp_stream("127.0.0.1", port)
                await s.send_all(_election_header(9, address))
                with trio.move_on_after(2.0):
                    while await s.receive_some(4096):
                        pass
                await s.aclose()
            assert set(et.peers) == {6}
            # Still serving: a configured peer's connection is taken.
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(_election_header(6, b"127.0.0.1:1"))
            await _wait_until(lambda: et.connected() == [6])
            nursery.cancel_scope.cancel()


async def test_unknown_servers_are_bounded_and_forgotten_when_their_connections_end() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            et, _inbox, port = await _election(nursery)
            streams = []
            for sid in range(100, 100 + 3 * MAX_GUESTS):
                s = await trio.open_tcp_stream("127.0.0.1", port)
                await s.send_all(_election_header(sid, b"127.0.0.1:9"))
                streams.append(s)
            await _wait_until(lambda: len(et.peers) == 1 + MAX_GUESTS)
            await trio.sleep(0.3)
            assert len(et.peers) == 1 + MAX_GUESTS
            for s in streams:
                await s.aclose()
            await _wait_until(lambda: set(et.peers) == {6})
            # A lower id than ours gets one connection attempt from us (ZooKeeper's rule: the
            # higher id connects), and is forgotten when that fails.
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(_election_header(2, f"127.0.0.1:{free_ports(1)[0]}".encode()))
            await _wait_until(lambda: set(et.peers) == {6})
            nursery.cancel_scope.cancel()


async def test_garbage_after_a_good_election_header_costs_one_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="trizab.election")
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            _et, inbox, port = await _election(nursery)
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(_election_header(6, b"127.0.0.1:1") + struct.pack(">i", 3) + b"abc")
            with trio.move_on_after(2.0):
                while await s.receive_some(4096):
                    pass
            nursery.cancel_scope.cancel()
    assert inbox.statistics().current_buffer_used == 0
    lines = [rec for rec in caplog.records if rec.levelno >= logging.INFO]
    assert len(lines) == 1, [rec.getMessage() for rec in caplog.records]
    # FastLeaderElection skips a malformed notification and keeps the connection.
    assert "skipping a malformed election notification from 6" in lines[0].getMessage()


async def test_a_peer_removed_while_a_nudge_to_it_is_due_does_not_stop_the_election_port() -> None:
    # send() to a higher id we are not connected to schedules a nudge; the peer was removed
    # (reconfig, or a guest whose connection just ended: the live fuzzer's case) before the
    # nudge ran, and its address lookup raised KeyError out of the transport's nursery.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            et, _inbox, port = await _election(nursery)
            et.send(6, Notification(5, 5, 0, 1, 0, PeerState.LOOKING))
            et.remove_peer(6)
            await trio.sleep(0.2)
            s = await trio.open_tcp_stream("127.0.0.1", port)  # still serving
            await s.send_all(_election_header(9, b"127.0.0.1:9"))
            await _wait_until(lambda: 9 in et.peers)
            nursery.cancel_scope.cancel()


async def _learner_with_a_leader(
    nursery: trio.Nursery, heartbeat_s: float
) -> tuple[QuorumTransport, Any, int, trio.SocketListener]:
    """Member 3, a learner, linked to a fake leader 1 that we hold the other end of."""
    (leader_listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
    leader_port = leader_listener.socket.getsockname()[1]
    port = free_ports(1)[0]
    send, recv = trio.open_memory_channel[tuple[Any, ...]](1000)
    qt = QuorumTransport(
        3,
        {3: ("127.0.0.1", port), 1: ("127.0.0.1", leader_port)},
        send.send,
        send.send_nowait,
        heartbeat_s=heartbeat_s,
    )
    await nursery.start(qt.serve)
    return qt, recv, port, leader_listener


async def test_a_learners_own_link_to_its_leader_is_not_taken_over_even_when_quiet() -> None:
    # Someone connects to a follower's quorum port saying "I am server 1" (its leader).  The
    # follower's own connection to 1 stays: before, the impostor replaced it and what it sent
    # next (a TRUNC below the applied transactions) was taken as the leader's word, and the
    # ZAB peer stopped the member.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port, leader_listener = await _learner_with_a_leader(nursery, heartbeat_s=2.0)
            assert qt.send_packet(1, r.QuorumPacket(int(T.ACK), 1, None, None), 0, connect=True)
            leader_end = await leader_listener.accept()
            buf = PacketReader(1 << 30)
            assert (await read_packet(leader_end, buf)).type == T.ACK  # type: ignore[arg-type]
            ours = qt.links[1]

            async def leader_pings_now_and_then() -> None:
                # Quiet spells longer than half the heartbeat limit, never the whole of it.
                while True:
                    await trio.sleep(1.2)
                    await leader_end.send_all(encode_packet(r.QuorumPacket(int(T.PING), 0, None, None)))

            nursery.start_soon(leader_pings_now_and_then)
            await trio.sleep(1.1)
            impostor = await trio.open_tcp_stream("127.0.0.1", port)
            await impostor.send_all(_follower_info(1))
            with trio.move_on_after(5.0):
                while await impostor.receive_some(4096):
                    pass
            assert qt.links[1] is ours and not ours.closed
            while True:
                try:
                    msg = inbox.receive_nowait()
                except trio.WouldBlock:
                    break
                assert not isinstance(msg, QuorumAccepted), "the impostor was taken"
            nursery.cancel_scope.cancel()


async def test_a_learner_reaches_its_leader_on_its_own_connection_not_an_accepted_one() -> None:
    # While looking, a member parks whatever says it is a learner; if the one that said "I am
    # server 1" is still registered when we follow 1, our messages to 1 go on a connection we
    # open to 1's configured address, and the accepted one is closed.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port, leader_listener = await _learner_with_a_leader(nursery, heartbeat_s=5.0)
            impostor = await trio.open_tcp_stream("127.0.0.1", port)
            await impostor.send_all(_follower_info(1))
            accepted_event = await inbox.receive()
            assert isinstance(accepted_event, QuorumAccepted)
            accepted = accepted_event.link
            qt.register(accepted, 0)
            assert qt.send_packet(1, r.QuorumPacket(int(T.ACK), 7, None, None), 1, connect=True)
            leader_end = await leader_listener.accept()
            pkt = await read_packet(leader_end, PacketReader(1 << 30))
            assert (pkt.type, pkt.zxid) == (T.ACK, 7)
            assert qt.links[1] is not accepted and qt.links[1].outgoing
            with trio.move_on_after(2.0):
                while await impostor.receive_some(4096):
                    pass
            assert accepted.closed
            nursery.cancel_scope.cancel()


async def test_a_link_that_ended_before_it_was_registered_is_reported_lost() -> None:
    # The accept posts QuorumAccepted; the connection ends at once and its loss is queued; the peer
    # task takes that loss with an earlier batch (the link is nobody's yet, so it is ignored)
    # and registers the link afterwards.  The dead link then stayed registered for good: with
    # the live fuzzer's quorum connections the links table (and the leader's learners) grew
    # with every such connection.
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _transport(nursery)
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(_follower_info(7))
            await s.aclose()
            accepted_event = await inbox.receive()
            assert isinstance(accepted_event, QuorumAccepted)
            link = accepted_event.link
            await link.ended.wait()
            assert qt.take_lost() == []  # an earlier batch's take: not registered yet
            qt.register(link, 0)
            assert qt.take_lost() == [7]
            assert 7 not in qt.links
            nursery.cancel_scope.cancel()
