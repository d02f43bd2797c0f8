"""Pure functions checked against dumb alternatives."""

from __future__ import annotations

from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st
from trizab.plugins.election.priority import priority_rank

from trizab.zab.quorum import is_quorum, quorum_acked
from trizab.zab.vote import Vote, vote_beats
from trizab.zab.zxid import MAX_COUNTER, counter_of, epoch_of, fmt, zxid

ids = st.integers(1, 9)
votes = st.builds(Vote, ids, st.integers(0, 2**40), st.integers(0, 5))


@settings(derandomize=True)
@given(st.integers(0, 2**31), st.integers(0, 2**32 - 1))
def test_zxid_round_trip(epoch: int, counter: int) -> None:
    z = zxid(epoch, counter)
    assert (epoch_of(z), counter_of(z)) == (epoch, counter)
    assert z == epoch * 2**32 + counter
    assert fmt(z).startswith(hex(z))


def test_zxid_order_is_epoch_then_counter() -> None:
    assert zxid(1, MAX_COUNTER + 1) < zxid(2, 0) < zxid(2, 1)


@settings(derandomize=True)
@given(st.frozensets(ids, min_size=1), st.sets(ids))
def test_is_quorum_matches_counting(voters: frozenset[int], members: set[int]) -> None:
    assert is_quorum(members, voters) == (2 * len(members & voters) > len(voters))


@settings(derandomize=True)
@given(st.frozensets(ids, min_size=1), st.dictionaries(ids, st.integers(0, 50)))
def test_quorum_acked_is_the_largest_zxid_a_quorum_has(voters: frozenset[int], acked: dict[int, int]) -> None:
    # Dumb version: try every candidate zxid and every subset of voters.
    def dumb() -> int | None:
        best = None
        for z in sorted(set(acked.values())):
            have = [v for v in voters if acked.get(v, -1) >= z]
            for k in range(len(voters) // 2 + 1, len(have) + 1):
                if any(True for _ in combinations(have, k)):
                    best = z
        return best

    assert quorum_acked(acked, voters) == dumb()


@settings(derandomize=True)
@given(votes, votes)
def test_vote_order_is_epoch_then_zxid_then_id(a: Vote, b: Vote) -> None:
    if (a.peer_epoch, a.zxid, a.leader) == (b.peer_epoch, b.zxid, b.leader):
        assert not vote_beats(a, b) and not vote_beats(b, a)
    else:
        assert vote_beats(a, b) != vote_beats(b, a)
    if a.peer_epoch != b.peer_epoch:
        assert vote_beats(a, b) == (a.peer_epoch > b.peer_epoch)
    elif a.zxid != b.zxid:
        assert vote_beats(a, b) == (a.zxid > b.zxid)


@settings(derandomize=True, max_examples=300)
@given(votes, votes, st.lists(ids, unique=True, max_size=4))
def test_priority_only_breaks_ties(a: Vote, b: Vote, prefer: list[int]) -> None:
    rank = priority_rank(prefer)
    if (a.peer_epoch, a.zxid) != (b.peer_epoch, b.zxid):
        # Never prefer a less up-to-date candidate, whatever the priority.
        assert vote_beats(a, b, rank) == vote_beats(a, b)
    elif a.leader != b.leader:
        pa = prefer.index(a.leader) if a.leader in prefer else None
        pb = prefer.index(b.leader) if b.leader in prefer else None
        if pa is not None and pb is not None:
            assert vote_beats(a, b, rank) == (pa < pb)
        elif pa is not None or pb is not None:
            assert vote_beats(a, b, rank) == (pa is not None)
        else:
            assert vote_beats(a, b, rank) == (a.leader > b.leader)
