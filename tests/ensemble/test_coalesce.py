"""A Ready's ACKs and COMMITs coalesced per destination, checked against a dumb receiver model."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trizab.runtime.zab_commit import coalesce
from trizab.zab.messages import Ack, Commit, Disconnect, Ping, Proposal
from trizab.zab.zxid import counter_of, zxid

PEERS = (2, 3)


@st.composite
def ready_messages(draw: st.DrawFn) -> list:
    """Messages as a Ready holds them: per destination, ACK and COMMIT zxids only grow."""
    out: list = []
    last = dict.fromkeys(PEERS, 0)
    for _ in range(draw(st.integers(0, 40))):
        to = draw(st.sampled_from(PEERS))
        kind = draw(st.sampled_from(["ack", "newleader-ack", "commit", "proposal", "ping", "disconnect"]))
        if kind == "disconnect":
            out.append(Disconnect(to))
            continue
        if kind == "newleader-ack":
            out.append((to, Ack(1, zxid(5, 0))))
            continue
        if kind in ("ack", "commit"):
            last[to] += draw(st.integers(0, 3))
            z = zxid(5, max(1, last[to]))
            out.append((to, Ack(1, z) if kind == "ack" else Commit(1, z)))
        elif kind == "proposal":
            out.append((to, Proposal(1, zxid(5, 7), b"x")))
        else:
            out.append((to, Ping(1)))
    return out


def _cumulative(m: object) -> bool:
    return not isinstance(m, Disconnect) and (
        isinstance(m[1], Commit) or (isinstance(m[1], Ack) and counter_of(m[1].zxid) != 0)  # type: ignore[index]
    )


def _receiver_views(messages: list) -> dict[int, list[tuple[int, int, int]]]:
    """Per peer: (highest ACK, highest COMMIT, ACK+COMMIT count) at each disconnect and at the end."""
    views: dict[int, list[tuple[int, int, int]]] = {p: [] for p in PEERS}
    state = {p: [0, 0, 0] for p in PEERS}
    for m in messages:
        if isinstance(m, Disconnect):
            views[m.peer].append(tuple(state[m.peer]))  # type: ignore[arg-type]
            state[m.peer] = [0, 0, 0]
        elif _cumulative(m):
            to, msg = m
            i = 0 if isinstance(msg, Ack) else 1
            state[to][i] = max(state[to][i], msg.zxid)
            state[to][2] += 1
    for p in PEERS:
        views[p].append(tuple(state[p]))  # type: ignore[arg-type]
    return views


@settings(derandomize=True, max_examples=400)
@given(ready_messages())
def test_coalescing_keeps_what_each_peer_learns_and_everything_else(messages: list) -> None:
    out = coalesce(messages)
    # Everything that is not a cumulative ACK/COMMIT is kept, in order.
    assert [m for m in out if not _cumulative(m)] == [m for m in messages if not _cumulative(m)]
    # Each connection (a run between disconnects) learns the same highest ACK and COMMIT ...
    before, after = _receiver_views(messages), _receiver_views(out)
    for p in PEERS:
        assert [v[:2] for v in after[p]] == [v[:2] for v in before[p]]
        # ... from at most one of each.
        assert all(v[2] <= 2 for v in after[p])
    # Kept messages keep their relative order (the last ACK/COMMIT of a run stays where it was).
    it = iter(messages)
    assert all(any(m is n for n in it) for m in out)


def test_one_ack_for_a_batch_of_proposals() -> None:
    msgs = [(1, Ack(2, zxid(3, c))) for c in range(1, 51)] + [(1, Ping(2, zxid(3, 50)))]
    assert coalesce(msgs) == [(1, Ack(2, zxid(3, 50))), (1, Ping(2, zxid(3, 50)))]
    newleader = [(1, Ack(2, zxid(3, 0))), (1, Ack(2, zxid(3, 1))), (1, Ack(2, zxid(3, 2)))]
    assert coalesce(newleader) == [newleader[0], newleader[2]]
