"""Quorum messages round-trip through QuorumPacket and the Jute codec; notifications use FLE's format."""

from __future__ import annotations

import struct

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import decode, encode
from trizab.zab import messages as m
from trizab.zab.zxid import zxid

sid = st.integers(1, 255)
z = st.integers(0, 2**63 - 1)
epoch = st.integers(0, 2**31 - 1)
blob = st.binary(max_size=40)
entries = st.lists(st.builds(m.Entry, z, blob), max_size=4).map(tuple)
plans = st.builds(m.SyncPlan, st.sampled_from([T.DIFF, T.TRUNC, T.SNAP]), z, entries, st.none() | blob)

messages = st.one_of(
    st.builds(m.FollowerInfo, sid, epoch, st.booleans()),
    st.builds(m.LeaderInfo, sid, epoch, epoch, z),
    st.builds(m.AckEpoch, sid, epoch, z, st.none() | plans),
    st.builds(m.Diff, sid, z),
    st.builds(m.Trunc, sid, z),
    st.builds(m.Snap, sid, z, blob),
    st.builds(m.NewLeader, sid, epoch),
    st.builds(m.UpToDate, sid, z),
    st.builds(m.Proposal, sid, z, blob),
    st.builds(m.Ack, sid, z),
    st.builds(m.Commit, sid, z),
    st.builds(m.Inform, sid, z, blob),
    st.builds(m.Ping, sid, z, blob),
    st.builds(m.Request, sid, blob),
)


@settings(derandomize=True)
@given(messages)
def test_quorum_packet_round_trip(msg: m.QuorumMessage) -> None:
    pkt = m.to_packet(msg)
    wire = encode(pkt)
    back = m.from_packet(decode(r.QuorumPacket, wire), msg.sender)
    assert back == msg


def test_packet_types_are_zookeepers() -> None:
    assert m.to_packet(m.FollowerInfo(3, 5)).type == 11
    assert m.to_packet(m.FollowerInfo(3, 5, observer=True)).type == 16
    assert m.to_packet(m.Proposal(1, 7, b"x")).type == 2
    assert m.to_packet(m.NewLeader(1, 6)).zxid == zxid(6, 0)
    # LearnerHandler: NEWLEADER's data is the leader's QuorumVerifier.toString().
    qv = b"server.1=127.0.0.1:2888:3888:participant\nversion=100000002"
    assert m.to_packet(m.NewLeader(1, 6, qv)).data == qv
    assert m.from_packet(r.QuorumPacket(10, zxid(6, 0), qv, None), 1) == m.NewLeader(1, 6, qv)
    info = m.to_packet(m.FollowerInfo(3, 5))
    assert info.zxid == zxid(5, 0)
    assert decode(r.LearnerInfo, info.data) == r.LearnerInfo(3, 0x10000, 0)
    # ACKEPOCH: zxid = lastZxid, data starts with the 4-byte currentEpoch, as in Learner.java.
    ack = m.to_packet(m.AckEpoch(2, 4, zxid(4, 9)))
    assert (ack.type, ack.zxid, ack.data) == (18, zxid(4, 9), struct.pack(">i", 4))


@pytest.mark.parametrize("pkt", [r.QuorumPacket(99, 0, None, None), r.QuorumPacket(18, 0, b"\x00", None)])
def test_malformed_packets_raise_protocol_error(pkt: r.QuorumPacket) -> None:
    with pytest.raises(m.ProtocolError):
        m.from_packet(pkt, 1)


@settings(derandomize=True)
@given(sid, sid, z, epoch, epoch, st.sampled_from(list(m.PeerState)), blob, st.booleans())
def test_notification_round_trip(
    s: int, leader: int, zz: int, ee: int, pe: int, state: m.PeerState, cfg: bytes, marker: bool
) -> None:
    n = m.Notification(s, leader, zz, ee, pe, state, cfg, policy_marker=marker)
    data = m.encode_notification(n)
    # FastLeaderElection.buildMsg: int state, long leader, long zxid, long electionEpoch,
    # long peerEpoch, int version, int config length, config.
    assert struct.unpack_from(">iqqqqii", data) == (int(state), leader, zz, ee, pe, 2, len(cfg))
    assert len(data) == 44 + len(cfg) + (m.POLICY_MARKER.size if marker else 0)
    assert m.decode_notification(data, s) == n


def test_old_notification_format_and_garbage() -> None:
    old = struct.pack(">iqqq", 1, 3, zxid(2, 5), 7)
    assert m.decode_notification(old, 3) == m.Notification(3, 3, zxid(2, 5), 7, 2, m.PeerState.FOLLOWING)
    for bad in (b"", b"\x00" * 10, struct.pack(">iqqqqii", 9, 0, 0, 0, 0, 2, 0)):
        with pytest.raises(m.ProtocolError):
            m.decode_notification(bad, 1)


def test_notification_bytes_are_fast_leader_election_build_msg() -> None:
    """The exact bytes ``FastLeaderElection.buildMsg(state, leader, zxid, electionEpoch, epoch,
    configData)`` writes for a FOLLOWING vote for 3 at 0x200000005, round 7, epoch 2, with
    ZooKeeper's own configuration text (``QuorumMaj.toString()``): nothing after it."""
    cfg = b"server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2181\nversion=0"
    n = m.Notification(1, 3, zxid(2, 5), 7, 2, m.PeerState.FOLLOWING, cfg)
    java = (
        bytes.fromhex("00000001")  # putInt(state)
        + bytes.fromhex("0000000000000003")  # putLong(leader)
        + bytes.fromhex("0000000200000005")  # putLong(zxid)
        + bytes.fromhex("0000000000000007")  # putLong(electionEpoch)
        + bytes.fromhex("0000000000000002")  # putLong(epoch)
        + bytes.fromhex("00000002")  # putInt(Notification.CURRENTVERSION)
        + len(cfg).to_bytes(4, "big")  # putInt(configData.length)
        + cfg
    )
    assert m.encode_notification(n) == java
    assert m.decode_notification(java, 1) == n
    # Only a member with election=priority/static appends its marker, which WorkerReceiver
    # never reads (it reads configLength bytes and stops).
    marked = m.encode_notification(attrs.evolve(n, policy_marker=True))
    assert marked == java + b"TZAB" + bytes(4)
    assert m.decode_notification(marked, 1) == attrs.evolve(n, policy_marker=True)


def test_notifications_read_as_the_worker_receiver_reads_them() -> None:
    """WorkerReceiver: a version-1 message of 44+ bytes carries no config; bytes after the
    config are ignored; a config longer than what follows is malformed."""
    base = struct.pack(">iqqqq", 0, 2, zxid(1, 1), 3, 1)
    v1 = base + struct.pack(">i", 1) + b"\xff" * 8
    assert m.decode_notification(v1, 2) == m.Notification(2, 2, zxid(1, 1), 3, 1, m.PeerState.LOOKING)
    trailing = base + struct.pack(">ii", 2, 3) + b"abc" + b"zz"
    assert m.decode_notification(trailing, 2).config == b"abc"
    for bad in (base + struct.pack(">ii", 2, 9) + b"abc", base + struct.pack(">ii", 2, -1), base + b"\0\0"):
        with pytest.raises(m.ProtocolError):
            m.decode_notification(bad, 2)
