"""The election port reads every connection header ZooKeeper 3.8's ``QuorumCnxManager`` reads,
and tells a ZooKeeper member's notifications from a trizab member's."""

from __future__ import annotations

import logging
import struct
from typing import Any

import attrs
import pytest
import trio

from trizab.runtime.election import PROTOCOL_VERSION, PROTOCOL_VERSION_V2, ElectionTransport, parse_header
from trizab.runtime.launcher import free_ports
from trizab.runtime.quorum import FrameError
from trizab.zab.messages import (
    Notification,
    PeerState,
    decode_notification,
    encode_notification,
)


def _header(version: int, sid: int, address: bytes) -> bytes:
    # QuorumCnxManager.startConnection: writeLong(protocolVersion), writeLong(myId),
    # writeInt(addr_bytes.length), write(addr_bytes).
    return struct.pack(">qqi", version, sid, len(address)) + address


def test_version_1_header_as_zookeeper_sends_it_by_default() -> None:
    data = _header(-65536, 2, b"127.0.0.1:3888") + b"next"
    assert PROTOCOL_VERSION == -65536
    assert parse_header(data) == (2, "127.0.0.1:3888", len(data) - 4)


def test_version_2_header_with_several_addresses_keeps_the_first_usable_one() -> None:
    # multiAddress.enabled=true: "host1:port1|host2:port2", wildcards skipped (isWildcardAddress).
    data = _header(PROTOCOL_VERSION_V2, 5, b"0.0.0.0:3888|10.0.0.5:3888|10.0.1.5:3888")
    assert PROTOCOL_VERSION_V2 == -65535
    assert parse_header(data) == (5, "10.0.0.5:3888", len(data))


def test_a_pre_3_5_header_is_only_the_server_id() -> None:
    # handleConnection: "if (protocolVersion >= 0) { // this is a server id and not a protocol version"
    assert parse_header(struct.pack(">q", 3) + b"rest") == (3, "", 8)


def test_incomplete_headers_wait_for_more_bytes() -> None:
    data = _header(-65536, 2, b"127.0.0.1:3888")
    for cut in (0, 7, 8, 19, len(data) - 1):
        assert parse_header(data[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [
        _header(-65537, 2, b"127.0.0.1:3888"),  # unknown protocol version
        _header(-65536, 2, b""),  # InitialMessage.parse: "remaining <= 0" is unreasonable
        struct.pack(">qqi", -65536, 2, 4096),  # longer than we read (ZooKeeper: 2 KiB)
        struct.pack(">qqi", -65536, 2, -1),
    ],
)
def test_headers_zookeeper_refuses_are_refused(data: bytes) -> None:
    with pytest.raises(FrameError):
        parse_header(data)


# ---------------------------------------------------------------------------
# Recognising ZooKeeper's members, and what `priority` and `static` say about them

ZOOKEEPER_CONFIG = (
    b"server.1=127.0.0.1:2888:3888:participant;0.0.0.0:2181\n"
    b"server.2=127.0.0.1:2889:3889:participant;0.0.0.0:2182\nversion=0"
)


def _as_zookeeper_sends(n: Notification) -> bytes:
    """FastLeaderElection.buildMsg: the same fields, and nothing after the configuration
    (what a trizab member with election=fast sends too)."""
    return encode_notification(attrs.evolve(n, policy_marker=False))


def test_zookeeper_notifications_are_told_from_marked_ones() -> None:
    # Both carry the same configuration text; only the marker of a member with another
    # policy than fast tells them apart.
    note = Notification(6, 6, 0, 1, 0, PeerState.LOOKING, ZOOKEEPER_CONFIG)
    from_zookeeper = decode_notification(_as_zookeeper_sends(note), 6)
    assert not from_zookeeper.policy_marker
    assert from_zookeeper.config == ZOOKEEPER_CONFIG
    assert decode_notification(encode_notification(attrs.evolve(note, policy_marker=True)), 6).policy_marker
    without_config = _as_zookeeper_sends(Notification(6, 6, 0, 1, 0, PeerState.LOOKING))
    assert not decode_notification(without_config, 6).policy_marker


@pytest.mark.parametrize("policy", ["fast", "priority", "static"])
async def test_only_policies_other_than_fast_mark_their_notifications(policy: str) -> None:
    """What goes on the wire: with fast, exactly FastLeaderElection's bytes."""
    port, other = free_ports(2)
    send, _recv = trio.open_memory_channel[Any](100)
    addresses = {5: ("127.0.0.1", port), 6: ("127.0.0.1", other)}
    et = ElectionTransport(5, addresses, send.send, retry_s=0.05, handshake_s=2.0, policy=policy)
    note = Notification(5, 5, 0, 1, 0, PeerState.LOOKING, ZOOKEEPER_CONFIG)
    et.send(6, note)
    (queued,) = et.peers[6].queue
    marker = b"TZAB" + bytes(4) if policy != "fast" else b""
    assert queued == struct.pack(">i", len(_as_zookeeper_sends(note)) + len(marker)) + (
        _as_zookeeper_sends(note) + marker
    )


async def _notify_from_zookeeper_member(policy: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Server 6 (higher id: its connection is the one kept) sends member 5 two notifications
    with ZooKeeper's configuration; the member's log lines at WARNING and above."""
    caplog.set_level(logging.INFO, logger="trizab.election")
    port, other = free_ports(2)
    send, recv = trio.open_memory_channel[Any](100)
    addresses = {5: ("127.0.0.1", port), 6: ("127.0.0.1", other)}
    et = ElectionTransport(5, addresses, send.send, retry_s=0.05, handshake_s=2.0, policy=policy)
    note = _as_zookeeper_sends(Notification(6, 6, 0, 1, 0, PeerState.LOOKING, ZOOKEEPER_CONFIG))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(et.serve)
            s = await trio.open_tcp_stream("127.0.0.1", port)
            await s.send_all(_header(-65536, 6, f"127.0.0.1:{other}".encode()))
            for _ in range(2):
                await s.send_all(struct.pack(">i", len(note)) + note)
            for _ in range(2):
                received = await recv.receive()
                assert received.notification.config == ZOOKEEPER_CONFIG
            assert et.zookeeper_peers == {6}
            await s.aclose()
            nursery.cancel_scope.cancel()
    return [rec.getMessage() for rec in caplog.records if rec.levelno >= logging.WARNING]


@pytest.mark.parametrize("policy", ["priority", "static"])
async def test_priority_and_static_say_once_that_a_zookeeper_member_ignores_them(
    policy: str, caplog: pytest.LogCaptureFixture
) -> None:
    lines = await _notify_from_zookeeper_member(policy, caplog)
    assert len(lines) == 1, lines
    assert lines[0].startswith("server 6 sends Apache ZooKeeper's election notifications (an Apache")
    assert f"but election={policy}" in lines[0]
    assert "use election=fast" in lines[0]


async def test_fast_takes_zookeeper_members_without_a_word(caplog: pytest.LogCaptureFixture) -> None:
    assert await _notify_from_zookeeper_member("fast", caplog) == []
