"""Runs of per-zxid ACKs or COMMITs read together are stepped once (``trizab.zab.messages.superseded``)."""

from __future__ import annotations

import pytest

from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.zab.messages import superseded
from trizab.zab.zxid import zxid


def pkt(kind: T, z: int) -> r.QuorumPacket:
    return r.QuorumPacket(int(kind), z, None, None)


@pytest.mark.parametrize("kind", [T.ACK, T.COMMIT])
def test_a_run_of_rising_acks_or_commits_keeps_only_its_last(kind: T) -> None:
    assert superseded(pkt(kind, zxid(4, 7)), pkt(kind, zxid(4, 8)))
    assert superseded(pkt(kind, zxid(4, 7)), pkt(kind, zxid(4, 7)))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (pkt(T.ACK, zxid(4, 8)), pkt(T.ACK, zxid(4, 7))),  # falling: the first says more
        (pkt(T.ACK, zxid(4, 0)), pkt(T.ACK, zxid(4, 1))),  # a NEWLEADER/UPTODATE ack
        (pkt(T.ACK, zxid(4, 9)), pkt(T.ACK, zxid(5, 0))),
        (pkt(T.ACK, zxid(4, 9)), pkt(T.ACK, zxid(5, 1))),  # another epoch
        (pkt(T.ACK, zxid(4, 7)), pkt(T.COMMIT, zxid(4, 8))),
        (pkt(T.PROPOSAL, zxid(4, 7)), pkt(T.PROPOSAL, zxid(4, 8))),
        (pkt(T.COMMITANDACTIVATE, zxid(4, 7)), pkt(T.COMMITANDACTIVATE, zxid(4, 8))),
        (pkt(T.INFORM, zxid(4, 7)), pkt(T.INFORM, zxid(4, 8))),
        (pkt(T.PING, zxid(4, 7)), pkt(T.PING, zxid(4, 8))),
    ],
)
def test_anything_else_is_stepped(first: r.QuorumPacket, second: r.QuorumPacket) -> None:
    assert not superseded(first, second)
