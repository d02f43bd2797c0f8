"""``fast``: ZooKeeper's Fast Leader Election as a sans-I/O elector.

Theory of operation
-------------------
This follows ``FastLeaderElection.lookForLeader``.  A LOOKING peer raises its
logical clock (the election epoch), votes for itself with (currentEpoch, last
zxid) and tells every voter.  On a LOOKING notification of a newer round it
joins that round, on one of an older round it answers with its own vote, and in
its own round it adopts any vote that beats its proposal under
:func:`~trizab.zab.vote.vote_beats` (peer epoch, then zxid, then server id) and
re-broadcasts.  Once a quorum of voters in its round agrees with its proposal it
waits ``finalize_ticks`` (ZooKeeper's 200 ms ``finalizeWait``); a better vote
arriving in that window re-opens the round, otherwise the proposal wins.

Peers that are already FOLLOWING/LEADING answer LOOKING peers with their final
vote (the :class:`~trizab.zab.peer.Peer` does that).  A LOOKING peer accepts such
a leader when a quorum reports it (``outofelection``) and the leader itself says
it is LEADING (``checkLeader``), so a restarted peer joins a running ensemble
without disturbing it.  Silence for the notification timeout makes the peer
re-send its vote, doubling the timeout up to the maximum (60 s in ZooKeeper).

Observers run the same machine but never count and are never counted: their
notifications only make voters answer with their current vote.  A committed
reconfig changes who counts (:meth:`FastElector.reconfigure`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from trizab.plugin import Option
from trizab.zab.election import Candidate, ElectionTiming
from trizab.zab.messages import Notification, PeerState
from trizab.zab.quorum import is_quorum
from trizab.zab.vote import Vote, default_rank, vote_beats

# An observer's own vote: beaten by any voter's, so it simply adopts theirs.
NO_CANDIDATE = -1


class FastElector:
    """One peer's FLE state across rounds (the logical clock survives rounds, not restarts)."""

    def __init__(
        self,
        my_id: int,
        voters: frozenset[int],
        observers: frozenset[int],
        timing: ElectionTiming,
        rank: Callable[[int], int] = default_rank,
    ) -> None:
        self.my_id = my_id
        self.voters = voters
        self.observers = observers
        self.timing = timing
        self._rank = rank
        self.is_voter = my_id in voters
        self.logical_clock = 0
        self.decision: int | None = None
        self.vote = Vote(my_id, 0, 0)
        self._initial = self.vote
        self._recv: dict[int, Vote] = {}
        self._ooe: dict[int, tuple[Vote, PeerState, int]] = {}
        self._out: list[tuple[int, Notification]] = []
        self._finalize_left: int | None = None
        self._silence = 0
        self._notify_timeout = timing.min_notify_ticks
        # Immediate answers go at most once per tick to each peer: two servers that
        # disagree on who votes (a reconfig one of them has not seen yet) would
        # otherwise answer each other forever.
        self._ticks = 0
        self._answered: dict[int, int] = {}

    # -- the Elector protocol ------------------------------------------------

    def start(self, me: Candidate) -> None:
        self.logical_clock += 1
        self.decision = None
        leader = self.my_id if self.is_voter else NO_CANDIDATE
        self._initial = Vote(leader, me.last_zxid, me.current_epoch)
        self._recv = {}
        self._ooe = {}
        self._finalize_left = None
        self._silence = 0
        self._notify_timeout = self.timing.min_notify_ticks
        self._propose(self._initial)

    def step(self, n: Notification) -> None:
        if self.decision is not None:
            return
        self._silence = 0
        if n.state == PeerState.LOOKING:
            self._step_looking(n)
        elif n.sender in self.voters:
            self._step_out_of_election(n)

    def tick(self) -> None:
        self._ticks += 1
        if self.decision is not None:
            return
        if self._finalize_left is not None:
            self._finalize_left -= 1
            if self._finalize_left <= 0:
                self._decide(self.vote)
                return
        self._silence += 1
        if self._silence >= self._notify_timeout:
            self._silence = 0
            self._notify_timeout = min(2 * self._notify_timeout, self.timing.max_notify_ticks)
            self._broadcast()

    def take_notifications(self) -> list[tuple[int, Notification]]:
        out, self._out = self._out, []
        return out

    def reconfigure(self, voters: frozenset[int], observers: frozenset[int]) -> None:
        """A reconfig committed: count the new voters from now on (QuorumPeer.processReconfig).

        A round in progress keeps its received votes; only who counts changes.
        """
        if (voters, observers) == (self.voters, self.observers):
            return
        self.voters = voters
        self.observers = observers
        self.is_voter = self.my_id in voters
        initial = self._initial
        leader = self.my_id if self.is_voter else NO_CANDIDATE
        self._initial = Vote(leader, initial.zxid, initial.peer_epoch)
        leading = self.vote.leader
        if (
            self.decision is None
            and self.logical_clock > 0
            and leading not in voters
            and leading != NO_CANDIDATE
        ):
            # We were voting for a server that no longer votes: start over from ourselves.
            self._recv = {sid: v for sid, v in self._recv.items() if sid in voters}
            self._propose(self._initial)

    # -- FLE -------------------------------------------------------------------

    def beats(self, new: Vote, cur: Vote) -> bool:
        return vote_beats(new, cur, self._rank)

    def _step_looking(self, n: Notification) -> None:
        v = Vote(n.leader, n.zxid, n.peer_epoch)
        if n.sender not in self.voters:
            # A non-voter looking for the leader: tell it what we think, never count it.
            self._answer(n.sender)
            return
        if n.election_epoch > self.logical_clock:
            self.logical_clock = n.election_epoch
            self._recv = {}
            better = self.beats(v, self._initial) and v.leader in self.voters
            self._propose(v if better else self._initial)
        elif n.election_epoch < self.logical_clock:
            # Bring the voter into our round; an observer does not answer (a voter
            # always answers an observer, and the two would echo each other forever).
            if self.is_voter:
                self._send(n.sender, PeerState.LOOKING)
            return
        elif self.beats(v, self.vote) and v.leader in self.voters:
            # (Never adopt a leader outside our voters: after a reconfig, a removed
            # server that does not know it yet may still run for leader.)
            self._propose(v)
        elif self.is_voter and self.beats(self.vote, v):
            # A voter of our round proposes worse than we do: tell it at once.  (FLE
            # waits for the next re-broadcast; a voter that answered our first
            # notification while it was still FOLLOWING would otherwise miss our
            # vote, and a quorum could finalize a worse leader the others leave.)
            self._answer(n.sender)
        self._recv[n.sender] = v
        self._check_termination()

    def _step_out_of_election(self, n: Notification) -> None:
        v = Vote(n.leader, n.zxid, n.peer_epoch)
        if n.election_epoch == self.logical_clock:
            self._recv[n.sender] = v
            if self._agree(self._recv, v) and self._leader_ok(v.leader, n.election_epoch):
                self._decide(v)
                return
        self._ooe[n.sender] = (v, n.state, n.election_epoch)
        ooe_votes = {sid: vote for sid, (vote, _, _) in self._ooe.items()}
        if self._agree(ooe_votes, v, loose=True) and self._leader_ok(v.leader, n.election_epoch):
            self.logical_clock = n.election_epoch
            self._decide(v)

    def _agree(self, votes: dict[int, Vote], v: Vote, loose: bool = False) -> bool:
        # ZooKeeper's termPredicate; out of election, votes match on (leader, peer epoch).
        if loose:
            same = [sid for sid, w in votes.items() if w.leader == v.leader and w.peer_epoch == v.peer_epoch]
        else:
            same = [sid for sid, w in votes.items() if w == v]
        return is_quorum(same, self.voters)

    def _leader_ok(self, leader: int, election_epoch: int) -> bool:
        # ZooKeeper's checkLeader: the leader must itself say it leads (or be us, in this round).
        if leader not in self.voters:
            return False
        if leader == self.my_id:
            return election_epoch == self.logical_clock
        entry = self._ooe.get(leader)
        return entry is not None and entry[1] == PeerState.LEADING

    def _check_termination(self) -> None:
        if self._agree(self._recv, self.vote):
            if self._finalize_left is None:
                self._finalize_left = self.timing.finalize_ticks
                if self._finalize_left <= 0:
                    self._decide(self.vote)
        else:
            self._finalize_left = None

    def _propose(self, v: Vote) -> None:
        self.vote = v
        self._finalize_left = None
        if self.is_voter:
            self._recv[self.my_id] = v
        self._broadcast()
        self._check_termination()

    def _broadcast(self) -> None:
        for sid in sorted(self.voters):
            if sid != self.my_id:
                self._send(sid, PeerState.LOOKING)

    def _answer(self, to: int) -> None:
        if self._answered.get(to) == self._ticks:
            return
        self._answered[to] = self._ticks
        self._send(to, PeerState.LOOKING)

    def _send(self, to: int, state: PeerState) -> None:
        v = self.vote
        self._out.append(
            (to, Notification(self.my_id, v.leader, v.zxid, self.logical_clock, v.peer_epoch, state))
        )

    def _decide(self, v: Vote) -> None:
        self.vote = v
        self.decision = v.leader
        self._finalize_left = None


class FastElectionPlugin:
    """Fast Leader Election, as Apache ZooKeeper's ``electionAlg=3``."""

    description: ClassVar[str] = (
        "Fast Leader Election (ZooKeeper electionAlg=3): vote for the most up-to-date peer, "
        "highest id breaks ties"
    )
    options: ClassVar[tuple[Option, ...]] = ()

    def elector(
        self, my_id: int, voters: frozenset[int], observers: frozenset[int], timing: ElectionTiming
    ) -> FastElector:
        return FastElector(my_id, voters, observers, timing)
