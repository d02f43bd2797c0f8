"""The quorum and election transports on loopback, driven directly (no ZAB peer)."""

from __future__ import annotations

import struct
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from trizab.runtime.election import ElectionTransport
from trizab.runtime.events import ElectionReceived, QuorumAccepted, QuorumLinkLost, QuorumReceived
from trizab.runtime.launcher import free_ports
from trizab.runtime.quorum import QuorumTransport, encode_packet, encode_simple, packet_limit, read_packet
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import encode
from trizab.wire.quorum_stream import PacketReader
from trizab.zab.messages import Notification, PeerState

WAIT = 10.0


def _follower_info(sid: int) -> bytes:
    info = encode(r.LearnerInfo(sid, 0x10000, 0))
    return encode_packet(r.QuorumPacket(int(T.FOLLOWERINFO), 1 << 32, info, None))


async def _leader_transport(nursery: trio.Nursery, **kw: Any) -> tuple[QuorumTransport, Any, int]:
    port, other = free_ports(2)
    send, recv = trio.open_memory_channel[tuple[Any, ...]](1000)
    qt = QuorumTransport(
        1, {1: ("127.0.0.1", port), 2: ("127.0.0.1", other)}, send.send, send.send_nowait, **kw
    )
    await nursery.start(qt.serve)
    return qt, recv, port


async def test_learner_link_is_identified_by_followerinfo_and_carries_packets_in_order() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _leader_transport(nursery)
            learner = await trio.open_tcp_stream("127.0.0.1", port)
            await learner.send_all(_follower_info(2))
            accepted = await inbox.receive()
            assert isinstance(accepted, QuorumAccepted)
            link = accepted.link
            assert (link.sid, accepted.packet.type) == (2, T.FOLLOWERINFO)
            qt.register(link, 0)
            for z in range(1, 101):
                assert qt.send_packet(2, r.QuorumPacket(int(T.COMMIT), z, None, None), 0, connect=False)
            buf = PacketReader(1 << 30)
            got = [(await read_packet(learner, buf)).zxid for _ in range(100)]  # type: ignore[arg-type]
            assert got == list(range(1, 101))
            # Packets from the learner reach the inbox tagged with their link, in order; what one
            # read brings may arrive as one batch.
            await learner.send_all(
                b"".join(encode_packet(r.QuorumPacket(int(T.ACK), z, None, None)) for z in range(7, 57))
            )
            zxids: list[int] = []
            while len(zxids) < 50:
                received = await inbox.receive()
                assert isinstance(received, QuorumReceived) and received.link is link and received.packets
                zxids += [p.zxid for p in received.packets]
            assert zxids == list(range(7, 57))
            # Closing the connection is reported once, for the current link only.
            await learner.aclose()
            assert isinstance(await inbox.receive(), QuorumLinkLost)
            assert qt.take_lost() == [2]
            assert qt.take_lost() == []
            nursery.cancel_scope.cancel()


async def test_a_learner_that_stops_reading_is_disconnected_not_waited_for() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _leader_transport(nursery, max_queued=4)
            learner = await trio.open_tcp_stream("127.0.0.1", port)
            await learner.send_all(_follower_info(2))
            link = (await inbox.receive()).link
            qt.register(link, 0)
            big = r.QuorumPacket(int(T.PROPOSAL), 1, b"x" * 65536, None)
            sent = 0
            # The learner never reads: once the kernel buffers and the bounded queue are
            # full, send reports the overflow (the caller steps Disconnected) at once.
            while qt.send_packet(2, big, 0, connect=False):
                sent += 1
                assert sent < 10_000
                await trio.sleep(0)
            assert 2 not in qt.links and link.closed
            # The learner sees its connection closed and can reconnect.
            with trio.fail_after(WAIT):
                while await learner.receive_some(1 << 20):
                    pass
            nursery.cancel_scope.cancel()


async def test_a_stale_link_is_ignored_after_the_learner_reconnects() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _leader_transport(nursery, heartbeat_s=2.0)
            first = await trio.open_tcp_stream("127.0.0.1", port)
            await first.send_all(_follower_info(2))
            old = (await inbox.receive()).link
            qt.register(old, 0)
            # The learner gave up on its first connection (silent since), without closing it.
            # (A link that is still talking is not replaced: test_transports_hostile.py.)
            await trio.sleep(1.2)
            second = await trio.open_tcp_stream("127.0.0.1", port)
            await second.send_all(_follower_info(2))
            new = (await inbox.receive()).link
            replaced = qt.register(new, 5)
            assert replaced is old and old.closed and qt.current(new) and not qt.current(old)
            # Messages of Readys from before the new link are not sent on it.
            assert qt.send_packet(2, r.QuorumPacket(int(T.COMMIT), 1, None, None), 4, connect=False)
            assert qt.send_packet(2, r.QuorumPacket(int(T.COMMIT), 2, None, None), 5, connect=False)
            pkt = await read_packet(second, PacketReader(1 << 30))
            assert pkt.zxid == 2
            # The old link's end is not reported as the loss of the peer.
            while True:
                msg = await inbox.receive()
                if isinstance(msg, QuorumLinkLost):
                    break
            assert qt.take_lost() == []
            nursery.cancel_scope.cancel()


async def test_election_keeps_one_connection_per_pair_and_delivers_both_ways() -> None:
    ports = free_ports(3)
    addresses = {sid: ("127.0.0.1", ports[sid - 1]) for sid in (1, 2, 3)}
    inboxes = {}
    transports = {}
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            for sid in (1, 2, 3):
                send, recv = trio.open_memory_channel[tuple[Any, ...]](100)
                inboxes[sid] = recv
                transports[sid] = ElectionTransport(sid, addresses, send.send)
            # Start the lowest first: its notifications to higher ids must nudge them.
            for sid in (1, 2, 3):
                await nursery.start(transports[sid].serve)
            for a in (1, 2, 3):
                for b in (1, 2, 3):
                    if a != b:
                        transports[a].send(b, Notification(a, a, 0, 1, 0, PeerState.LOOKING))
            for b in (1, 2, 3):
                senders = set()
                while len(senders) < 2:
                    got = await inboxes[b].receive()
                    assert isinstance(got, ElectionReceived)
                    n = got.notification
                    assert n.leader == n.sender
                    senders.add(n.sender)
                assert senders == {1, 2, 3} - {b}
            # Exactly one established connection per pair: each side sees the other.
            while not all(transports[s].connected() == sorted({1, 2, 3} - {s}) for s in (1, 2, 3)):
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()


async def test_a_silent_link_is_closed_by_its_heartbeat() -> None:
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _leader_transport(nursery, heartbeat_s=0.3)
            learner = await trio.open_tcp_stream("127.0.0.1", port)
            await learner.send_all(_follower_info(2))
            link = (await inbox.receive()).link
            qt.register(link, 0)
            started = trio.current_time()
            # The learner sends nothing more (a stopped process keeps its socket open).
            assert isinstance(await inbox.receive(), QuorumLinkLost)
            assert qt.take_lost() == [2]
            assert trio.current_time() - started >= 0.3
            nursery.cancel_scope.cancel()


@settings(derandomize=True, max_examples=200)
@given(
    st.sampled_from([int(T.PROPOSAL), int(T.ACK), int(T.COMMIT)]),
    st.integers(0, 2**63 - 1),
    st.none() | st.binary(max_size=300),
)
def test_simple_packets_encode_as_the_codec_does(type_: int, z: int, data: bytes | None) -> None:
    assert encode_simple(type_, z, data) == encode_packet(r.QuorumPacket(type_, z, data, None))


async def test_quorum_packets_are_bounded_by_jute_maxbuffer_except_snapshots() -> None:
    # jute.maxbuffer = 4096: a packet's data may be 4096 + 4096 (ZooKeeper's extrasize) + 1024 bytes.
    limit = packet_limit(4096)
    with trio.fail_after(WAIT):
        async with trio.open_nursery() as nursery:
            qt, inbox, port = await _leader_transport(nursery, max_packet=limit)
            # The first packet of a connection: even a claimed SNAP is refused past the limit,
            # on its length prefix, before anything is buffered.
            stranger = await trio.open_tcp_stream("127.0.0.1", port)
            await stranger.send_all(struct.pack(">iqi", int(T.SNAP), 0, limit + 1))
            assert await stranger.receive_some(10) == b""
            learner = await trio.open_tcp_stream("127.0.0.1", port)
            await learner.send_all(_follower_info(2))
            accepted = await inbox.receive()
            assert isinstance(accepted, QuorumAccepted)
            qt.register(accepted.link, 0)
            # An ACKEPOCH carrying a follower's history (a snapshot) may be larger ...
            big = encode_packet(r.QuorumPacket(int(T.ACKEPOCH), 5, b"\0" * (4 * limit), None))
            fits = encode_packet(r.QuorumPacket(int(T.REQUEST), 0, b"r" * 8192, None))
            await learner.send_all(big + fits)
            got: list[int] = []
            while len(got) < 2:
                received = await inbox.receive()
                assert isinstance(received, QuorumReceived)
                got += [p.type for p in received.packets]
            assert got == [T.ACKEPOCH, T.REQUEST]
            # ... any other packet over the limit ends the link.
            await learner.send_all(encode_packet(r.QuorumPacket(int(T.REQUEST), 0, b"r" * (limit + 1), None)))
            assert isinstance(await inbox.receive(), QuorumLinkLost)
            assert qt.take_lost() == [2]
            nursery.cancel_scope.cancel()
