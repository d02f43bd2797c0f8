"""``Ready.may_send_early``: the one rule the runtime and the simulation share.

An established leader may send PROPOSAL, COMMIT, INFORM and PING before its own
storage barrier (it counts its own acknowledgement only after it); anything that
writes epochs, truncates, installs a snapshot, or carries another message, a
disconnect or a notification waits.
"""

from __future__ import annotations

import pytest

from trizab.zab.messages import (
    Ack,
    AckEpoch,
    Commit,
    Diff,
    Disconnect,
    Entry,
    Inform,
    LeaderInfo,
    NewLeader,
    Notification,
    PeerState,
    Ping,
    Proposal,
    QuorumMessage,
    Snap,
    Trunc,
    UpToDate,
)
from trizab.zab.ready import HardState, Ready, SnapshotInstall
from trizab.zab.zxid import zxid

Z = zxid(3, 7)
BROADCAST: tuple[tuple[int, QuorumMessage] | Disconnect, ...] = (
    (2, Proposal(1, Z, b"x")),
    (3, Proposal(1, Z, b"x")),
    (2, Commit(1, Z - 1)),
    (4, Inform(1, Z - 1, b"w")),
    (3, Ping(1, 5)),
)
APPEND = (Entry(Z, b"x"),)


def test_broadcast_of_an_established_leader_may_go_early() -> None:
    rd = Ready(to_persist=APPEND, messages=BROADCAST)
    assert rd.may_send_early(leader_established=True)
    assert Ready(to_persist=APPEND).may_send_early(leader_established=True)


def test_only_an_established_leader() -> None:
    # A follower's Ready, or a leader's before a quorum acknowledged NEWLEADER: everything waits.
    assert not Ready(to_persist=APPEND, messages=BROADCAST).may_send_early(leader_established=False)
    assert not Ready(to_persist=APPEND, messages=((1, Ack(2, Z)),)).may_send_early(leader_established=False)


@pytest.mark.parametrize(
    "storage",
    [
        {"hard_state": HardState(3, 3)},
        {"truncate_after": Z - 2},
        {"snapshot": SnapshotInstall(Z - 1, b"snap")},
    ],
    ids=["epochs", "truncate", "snapshot"],
)
def test_epochs_truncation_and_snapshots_wait(storage: dict[str, object]) -> None:
    rd = Ready(to_persist=APPEND, messages=BROADCAST, **storage)  # type: ignore[arg-type]
    assert not rd.may_send_early(leader_established=True)


@pytest.mark.parametrize(
    "extra",
    [
        (2, Ack(1, Z)),
        (2, AckEpoch(1, 3, Z)),
        (5, LeaderInfo(1, 3)),
        (5, Diff(1, Z)),
        (5, Trunc(1, Z)),
        (5, Snap(1, Z, b"snap")),
        (5, NewLeader(1, 3)),
        (5, UpToDate(1, Z)),
        Disconnect(5),
    ],
    ids=lambda m: type(m[1] if isinstance(m, tuple) else m).__name__,
)
def test_one_other_message_makes_the_whole_ready_wait(extra: tuple[int, QuorumMessage] | Disconnect) -> None:
    for messages in ((extra, *BROADCAST), (*BROADCAST, extra)):
        assert not Ready(to_persist=APPEND, messages=messages).may_send_early(leader_established=True)


def test_a_notification_waits() -> None:
    note = (5, Notification(1, 1, Z, 4, 3, PeerState.LEADING))
    rd = Ready(to_persist=APPEND, messages=BROADCAST, notifications=(note,))
    assert not rd.may_send_early(leader_established=True)
