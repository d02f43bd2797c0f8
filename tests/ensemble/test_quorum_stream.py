"""Unframed QuorumPackets, as ZooKeeper writes them, parsed incrementally with limits."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trizab.tree.datatree import DataTree
from trizab.tree.snapshot import serialize_snapshot
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import decode, encode
from trizab.wire.quorum_stream import SIGNATURE, FrameError, PacketReader, encode_packet, packet_limit

LIMIT = packet_limit(4096)


def _snapshot() -> bytes:
    tree = DataTree()
    acl = (r.ACL(31, r.Id("digest", "u:hash")),)
    tree.create_node("/a", b"x" * 3000, acl, 0, -1, 1, 0)
    tree.sessions = {0x100000001: 30000, 0x200000002: 4000}
    return serialize_snapshot(tree)


def _packets() -> list[r.QuorumPacket]:
    return [
        r.QuorumPacket(int(T.FOLLOWERINFO), 1 << 32, encode(r.LearnerInfo(2, 0x10000, 0)), None),
        r.QuorumPacket(int(T.DIFF), 5, None, None),
        r.QuorumPacket(int(T.PROPOSAL), 6, b"txn" * 100, None),
        r.QuorumPacket(int(T.SNAP), 7, _snapshot(), None),
        r.QuorumPacket(int(T.NEWLEADER), 1 << 32, b"", None),
        r.QuorumPacket(int(T.REQUEST), -1, b"\0" * 16, [r.Id("ip", "127.0.0.1"), r.Id("digest", "u")]),
        r.QuorumPacket(int(T.UPTODATE), -1, None, []),
    ]


def test_packets_are_jute_records_with_no_outer_length() -> None:
    # BinaryOutputArchive.writeRecord(qp): int type, long zxid, buffer data, vector<Id> authinfo.
    ack = encode_packet(r.QuorumPacket(int(T.ACK), 0x100000001, None, None))
    assert ack == bytes.fromhex("000000030000000100000001ffffffffffffffff")
    # A SNAP has no data: the snapshot follows it on the stream, then the signature.
    snap = _snapshot()
    wire = encode_packet(r.QuorumPacket(int(T.SNAP), 7, snap, None))
    head = bytes.fromhex("0000000f0000000000000007ffffffffffffffff")
    assert wire == head + snap + struct.pack(">i", len(SIGNATURE)) + b"BenWasHere"


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_packets_cut_in_any_chunks_come_back_whole(seed: int) -> None:
    pkts = _packets()
    wire = b"".join(encode_packet(p) for p in pkts)
    rnd = random.Random(seed)
    reader = PacketReader(LIMIT)
    got: list[r.QuorumPacket] = []
    pos = 0
    while pos < len(wire):
        n = rnd.choice([1, 2, 7, 64, 1000, 5000])
        reader.feed(wire[pos : pos + n])
        pos += n
        while (p := reader.next_packet()) is not None:
            got.append(p)
    assert [(p.type, p.zxid, p.data or None, p.authinfo or None) for p in got] == [
        (p.type, p.zxid, p.data or None, p.authinfo or None) for p in pkts
    ]
    assert reader.buffered() == 0


@pytest.mark.parametrize("data", [None, b"", b"txn" * 50])
@pytest.mark.parametrize("authinfo", [None, [], [r.Id("ip", "127.0.0.1")]])
def test_each_packet_comes_back_as_the_codec_decodes_it(
    data: bytes | None, authinfo: list[r.Id] | None
) -> None:
    # Packets without authentication ids take a shortcut past the Jute codec: same record.
    pkt = r.QuorumPacket(int(T.PROPOSAL), 0x500000007, data, authinfo)
    reader = PacketReader(LIMIT)
    reader.feed(encode_packet(pkt) * 2)
    got = [reader.next_packet(), reader.next_packet(), reader.next_packet()]
    assert got == [decode(r.QuorumPacket, encode_packet(pkt))] * 2 + [None]
    assert got[0] == pkt


def test_a_packet_over_the_limit_is_refused_on_its_header() -> None:
    reader = PacketReader(LIMIT)
    reader.feed(struct.pack(">iqi", int(T.PROPOSAL), 1, LIMIT + 1))
    with pytest.raises(FrameError):
        reader.next_packet()
    # ACKEPOCH with a follower's history may be larger when the reader allows it.
    big = encode_packet(r.QuorumPacket(int(T.ACKEPOCH), 1, b"\0" * (2 * LIMIT), None))
    reader = PacketReader(LIMIT, big_types=frozenset({int(T.ACKEPOCH)}), big_limit=4 * LIMIT)
    reader.feed(big)
    p = reader.next_packet()
    assert p is not None and len(p.data or b"") == 2 * LIMIT


def test_a_snapshot_is_checked_node_by_node_and_needs_its_signature() -> None:
    snap = _snapshot()
    head = encode(r.QuorumPacket(int(T.SNAP), 7, None, None))
    # A node whose data is over the limit ends the stream before it is buffered.
    cut = snap.index(b"/a") + 2 + 4  # through the length of /a's data
    reader = PacketReader(1000)
    reader.feed(head + snap[:cut])
    with pytest.raises(FrameError):
        reader.next_packet()
    # A wrong signature.
    reader = PacketReader(LIMIT)
    reader.feed(head + snap + struct.pack(">i", 10) + b"BenWasGone")
    with pytest.raises(FrameError):
        reader.next_packet()
    # SNAP with data in the packet itself is not ZooKeeper's.
    reader = PacketReader(LIMIT)
    reader.feed(encode(r.QuorumPacket(int(T.SNAP), 7, b"inline", None)))
    with pytest.raises(FrameError):
        reader.next_packet()
    # The whole of it, after one more packet in the same bytes.
    reader = PacketReader(LIMIT)
    tail = encode_packet(r.QuorumPacket(int(T.NEWLEADER), 1 << 32, None, None))
    reader.feed(encode_packet(r.QuorumPacket(int(T.SNAP), 7, snap, None)) + tail)
    got = reader.next_packet()
    assert got is not None and (got.type, got.zxid, got.data) == (T.SNAP, 7, snap)
    nl = reader.next_packet()
    assert nl is not None and nl.type == T.NEWLEADER
