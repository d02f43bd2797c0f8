"""The simulated network: per directed pair, a FIFO quorum channel and a lossy election channel.

A quorum channel models a TCP connection (a partition holds bytes until it heals;
closing or breaking a connection delivers what was sent, then the close; whatever
the other side sent on the dead connection is discarded).  An election channel
drops notifications while partitioned.  Delays are random per message (drawn from
the simulation's generator) but never reorder a channel.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

import attrs

from trizab.zab.messages import Disconnected, Notification

if TYPE_CHECKING:
    from trizab.testing.sim.simulation import Simulation


@attrs.frozen
class _Marker:
    """The end of a quorum connection, travelling behind the data sent before it."""

    gen: int


class SimNetwork:
    """Per-pair FIFO quorum channels with connection generations, and lossy election channels."""

    def __init__(self, sim: Simulation, ids: list[int]) -> None:
        self.sim = sim
        self.q: dict[tuple[int, int], deque[tuple[int, int, Any]]] = {
            (a, b): deque() for a in ids for b in ids if a != b
        }
        self.last: dict[tuple[int, int], int] = dict.fromkeys(self.q, 0)
        self.elast: dict[tuple[int, int], int] = dict.fromkeys(self.q, 0)
        self.view: dict[tuple[int, int], int] = dict.fromkeys(self.q, 0)
        self.counter: dict[frozenset[int], int] = {frozenset(k): 0 for k in self.q}
        self.cut: set[tuple[int, int]] = set()
        self.slow: dict[tuple[int, int], int] = {}

    def _delay(self, a: int, b: int) -> int:
        return self.sim.rng.randint(1, 4) + self.slow.get((a, b), 0)

    def send(self, a: int, b: int, msg: Any, tag: int | None = None) -> None:
        key = (a, b)
        t = max(self.sim.now + self._delay(a, b), self.last[key])
        self.last[key] = t
        self.q[key].append((t, self.view[key] if tag is None else tag, msg))
        self.sim.schedule(t, self._deliver, key)

    def send_election(self, a: int, b: int, n: Notification) -> None:
        key = (a, b)
        if key in self.cut:
            return
        t = max(self.sim.now + self._delay(a, b), self.elast[key])
        self.elast[key] = t
        self.sim.schedule(t, self._deliver_election, key, n)

    def disconnect(self, a: int, b: int, notify_a: bool = False) -> None:
        """``a`` closes its connection to ``b`` (or the network breaks it: notify_a)."""
        pair = frozenset((a, b))
        self.counter[pair] += 1
        g = self.counter[pair]
        if not notify_a:
            self.view[(a, b)] = g
        else:
            self.send(b, a, _Marker(g), tag=g)
        self.send(a, b, _Marker(g), tag=g)

    def reset_node(self, a: int) -> None:
        """``a`` restarted: its new connections start a new generation."""
        for (x, y), _ in self.q.items():
            if x == a:
                self.view[(x, y)] = self.counter[frozenset((x, y))]

    def _deliver(self, key: tuple[int, int]) -> None:
        # Deliver everything due at the head of the channel (an earlier event may
        # have found the channel cut; its messages are still first in line).
        q = self.q[key]
        a, b = key
        resume = self.sim.nodes[b].paused_until
        if q and resume > self.sim.now:
            # Paused: the bytes wait in its socket buffer until it runs again.
            self.sim.schedule(resume, self._deliver, key)
            return
        while q and key not in self.cut and q[0][0] <= self.sim.now:
            _, tag, msg = q.popleft()
            node = self.sim.nodes[b]
            if node.peer is None:
                continue
            if isinstance(msg, _Marker):
                if msg.gen > self.view[(b, a)]:
                    self.view[(b, a)] = msg.gen
                    self.sim.step(b, Disconnected(a))
            elif tag == self.view[(b, a)]:
                self.sim.step(b, msg)

    def _deliver_election(self, key: tuple[int, int], n: Notification) -> None:
        if key in self.cut or self.sim.nodes[key[1]].peer is None:
            return
        resume = self.sim.nodes[key[1]].paused_until
        if resume > self.sim.now:
            self.sim.schedule(resume, self._deliver_election, key, n)
            return
        self.sim.step(key[1], n)

    def partition(self, groups: list[set[int]]) -> None:
        self._set_cut({(a, b) for a, b in self.q if not any(a in g and b in g for g in groups)})

    def heal(self) -> None:
        self.slow = {}
        self._set_cut(set())

    def _set_cut(self, cut: set[tuple[int, int]]) -> None:
        reopened = [k for k in self.cut - cut if self.q[k]]
        self.cut = cut
        for k in reopened:
            self.sim.schedule(self.sim.now + 1, self._deliver, k)
