"""A hand-driven network of ZAB peers for unit tests (etcd raft's ``network`` in ``raft_test.go``).

Theory of operation
-------------------
Unlike :mod:`trizab.testing.sim` there is no clock and no randomness: a test
decides every step.  :meth:`ZabNet.stabilize` carries out every peer's Ready
(storage is instantly durable) and delivers every message, in FIFO order per
link, until nothing moves; :meth:`ZabNet.cut` / :meth:`ZabNet.isolate` drop
traffic; :meth:`ZabNet.tick` advances every live peer; :meth:`ZabNet.process` and
:meth:`ZabNet.deliver` do one step of that by hand.  ``hold`` keeps a peer's
Ready un-advanced to look at what it would do before its storage barrier.
:meth:`ZabNet.join` starts a new server with its own static configuration (for
reconfiguration tests, with ``membership_fn`` saying which entries are reconfigs).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from trizab.zab.election import Elector
from trizab.zab.membership import Membership
from trizab.zab.messages import Disconnect, Disconnected, Entry
from trizab.zab.peer import Peer, PeerConfig
from trizab.zab.ready import Ready, Role


@attrs.define
class Store:
    """Instantly durable storage: what survives a crash in this network."""

    accepted_epoch: int = 0
    current_epoch: int = 0
    base: int = 0
    log: list[Entry] = attrs.Factory(list)
    # The durable snapshot (the state at ``base``) and the volatile applied state.
    snapshot: list[Entry] = attrs.Factory(list)
    app: list[Entry] = attrs.Factory(list)

    def apply(self, rd: Ready) -> None:
        if rd.snapshot is not None:
            import pickle

            self.app = pickle.loads(rd.snapshot.data)
            self.snapshot = list(self.app)
            self.base = rd.snapshot.zxid
            self.log = [e for e in self.log if e.zxid > rd.snapshot.zxid]
        if rd.truncate_after is not None:
            self.log = [e for e in self.log if e.zxid <= rd.truncate_after]
        self.log.extend(rd.to_persist)
        if rd.hard_state is not None:
            self.accepted_epoch = rd.hard_state.accepted_epoch
            self.current_epoch = rd.hard_state.current_epoch


class ZabNet:
    def __init__(
        self,
        voters: Iterable[int],
        make_elector: Callable[[PeerConfig], Elector],
        observers: Iterable[int] = (),
        membership_fn: Callable[[bytes], Membership | None] | None = None,
        **config: Any,
    ) -> None:
        self.voters = frozenset(voters)
        self.observers = frozenset(observers)
        self.make_elector = make_elector
        self.membership_fn = membership_fn
        self.statics: dict[int, Membership] = {}
        self.config = config
        self.stores: dict[int, Store] = {}
        self.peers: dict[int, Peer] = {}
        self.links: dict[tuple[int, int], deque[Any]] = {}
        self.dropped: set[tuple[int, int]] = set()
        self.readies: dict[int, list[Ready]] = {}
        self.held: set[int] = set()
        for i in sorted(self.voters | self.observers):
            self.stores[i] = Store()
            self.start(i)

    def cfg(self, i: int) -> PeerConfig:
        static = self.statics.get(i, Membership(self.voters, self.observers))
        return PeerConfig(my_id=i, voters=static.voters, observers=static.observers, **self.config)

    def join(self, i: int, voters: Iterable[int], observers: Iterable[int] = ()) -> Peer:
        """Start a new server ``i`` whose static configuration is ``voters``/``observers``."""
        self.statics[i] = Membership(frozenset(voters), frozenset(observers))
        self.stores[i] = Store()
        return self.start(i)

    def start(self, i: int) -> Peer:
        import pickle

        st = self.stores[i]
        st.app = list(st.snapshot)
        cfg = self.cfg(i)
        history = [e for e in st.log if e.zxid > st.base]
        peer = Peer(
            cfg,
            self.make_elector(cfg),
            accepted_epoch=st.accepted_epoch,
            current_epoch=st.current_epoch,
            base_zxid=st.base,
            history=history,
            snapshot_fn=lambda st=st: (st.app[-1].zxid if st.app else st.base, pickle.dumps(st.app)),
            **({"membership_fn": self.membership_fn} if self.membership_fn is not None else {}),
        )
        self.peers[i] = peer
        self.readies[i] = []
        return peer

    def crash(self, i: int) -> None:
        self.peers.pop(i, None)
        for (a, b), q in self.links.items():
            if i in (a, b):
                q.clear()
        for j in self.peers:
            self.peers[j].step(Disconnected(i))

    def cut(self, a: int, b: int) -> None:
        self.dropped |= {(a, b), (b, a)}

    def isolate(self, a: int) -> None:
        for b in self.stores:
            if b != a:
                self.cut(a, b)

    def heal(self) -> None:
        self.dropped = set()

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            for p in list(self.peers.values()):
                p.tick()
            self.stabilize()

    def process(self, i: int) -> Ready | None:
        """Carry out one Ready of peer ``i`` (its messages are queued, not delivered); which."""
        return self.readies[i][-1] if self._process(i) else None

    def deliver(self, a: int, b: int, count: int | None = None) -> int:
        """Step what is queued on the link ``a`` -> ``b`` (all, or the first ``count``) into ``b``.

        No Ready is carried out; returns how many messages were delivered.
        """
        q = self.links.get((a, b), deque())
        n = 0
        while q and (count is None or n < count):
            self.peers[b].step(q.popleft())
            n += 1
        return n

    def _process(self, i: int) -> bool:
        peer = self.peers.get(i)
        if peer is None or i in self.held or not peer.has_ready():
            return False
        rd = peer.ready()
        self.readies[i].append(rd)
        self.stores[i].apply(rd)
        for m in rd.messages:
            if isinstance(m, Disconnect):
                # TCP close: what is queued either way is gone, the other side notices.
                self.links.get((i, m.peer), deque()).clear()
                self.links.get((m.peer, i), deque()).clear()
                if m.peer in self.peers:
                    self.peers[m.peer].step(Disconnected(i))
                continue
            to, msg = m
            if (i, to) not in self.dropped:
                self.links.setdefault((i, to), deque()).append(msg)
        for to, n in rd.notifications:
            if (i, to) not in self.dropped:
                self.links.setdefault((i, to), deque()).append(n)
        self.stores[i].app.extend(rd.committed)
        peer.advance(rd)
        return True

    def stabilize(self, limit: int = 100_000) -> None:
        for _ in range(limit):
            moved = False
            for i in list(self.peers):
                moved |= self._process(i)
            for (a, b), q in list(self.links.items()):
                if q and b in self.peers and (a, b) not in self.dropped:
                    self.peers[b].step(q.popleft())
                    moved = True
                elif q and ((a, b) in self.dropped or b not in self.peers):
                    q.clear()
            if not moved:
                return
        raise AssertionError("network did not stabilize")

    def leader(self) -> Peer | None:
        found = [p for p in self.peers.values() if p.role == Role.LEADING and p.established]
        return found[0] if len(found) == 1 else None
