"""``static``: the leader is the configured server; nobody votes.

Theory of operation
-------------------
Every peer decides ``election.leader`` at once.  If that server is down the
others time out of discovery (initLimit) and decide it again, so the ensemble
waits for it: useful for tests and for manual fail-over drills (change the
configuration, restart).  Discovery still makes the configured leader learn
the most up-to-date history of a quorum before it proposes, so choosing a
server that is behind costs nothing but time.
"""

from __future__ import annotations

from typing import ClassVar

from trizab.plugin import Option, parse_int
from trizab.zab.election import Candidate, ElectionTiming
from trizab.zab.messages import Notification
from trizab.zab.vote import Vote


class StaticElector:
    def __init__(self, my_id: int, leader: int) -> None:
        self.my_id = my_id
        self.leader = leader
        self.logical_clock = 0
        self.decision: int | None = None
        self.vote = Vote(leader, 0, 0)

    def start(self, me: Candidate) -> None:
        self.logical_clock += 1
        self.decision = self.leader

    def step(self, n: Notification) -> None:
        return None

    def tick(self) -> None:
        return None

    def take_notifications(self) -> list[tuple[int, Notification]]:
        return []


class StaticElectionPlugin:
    description: ClassVar[str] = "No election: election.leader is the leader, the others wait for it"
    options: ClassVar[tuple[Option, ...]] = (
        Option("leader", parse_int(minimum=0), None, "the server id that leads (required)", kind="int"),
    )

    def __init__(self, leader: int | None = None) -> None:
        if leader is None:
            raise ValueError("election=static needs election.leader=<server id>")
        self.leader = leader

    def elector(
        self, my_id: int, voters: frozenset[int], observers: frozenset[int], timing: ElectionTiming
    ) -> StaticElector:
        if self.leader not in voters:
            raise ValueError(f"election.leader={self.leader} is not a voting member")
        return StaticElector(my_id, self.leader)
