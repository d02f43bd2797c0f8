"""Zxids: ZooKeeper's 64-bit transaction ids, ``epoch << 32 | counter``.

Theory of operation
-------------------
Every transaction a leader proposes gets the next zxid of its epoch.  The epoch
(high 32 bits) is the leader's, chosen in discovery one above any epoch a quorum
has accepted; the counter (low 32 bits) restarts at 0 with every epoch, and the
leader of an epoch never reuses a counter.  Comparing zxids as integers is
therefore comparing (epoch, counter) lexicographically (ZooKeeper's ``ZxidUtils``).
When the counter would overflow the leader must give up and let a new epoch
start, as ZooKeeper does ("zxid lower 32 bits have rolled over").
"""

from __future__ import annotations

from typing import NewType

Zxid = NewType("Zxid", int)

COUNTER_BITS = 32
COUNTER_MASK = (1 << COUNTER_BITS) - 1
# The last counter a leader may use; the next proposal forces a new epoch.
MAX_COUNTER = COUNTER_MASK - 1


def zxid(epoch: int, counter: int) -> Zxid:
    """The zxid of transaction ``counter`` in ``epoch``."""
    if not 0 <= counter <= COUNTER_MASK:
        raise ValueError(f"zxid counter out of range: {counter}")
    if epoch < 0:
        raise ValueError(f"negative epoch: {epoch}")
    return Zxid(epoch << COUNTER_BITS | counter)


def epoch_of(z: int) -> int:
    return z >> COUNTER_BITS


def counter_of(z: int) -> int:
    return z & COUNTER_MASK


def fmt(z: int) -> str:
    """Hex as ZooKeeper logs it, with the epoch/counter split for humans: ``0x500000003(5:3)``."""
    return f"{z:#x}({epoch_of(z)}:{counter_of(z)})"
