"""``Peer.early_messages``: an established leader's broadcast between Readies.

While the leader's own storage barrier runs (its Ready taken, its messages sent early,
not yet advanced), the proposals it makes and the COMMITs a quorum of followers earns
leave at once, in order; nothing else does, and its own acknowledgement still waits for
``advance``.
"""

from __future__ import annotations

from collections import deque

from trizab.plugins.election.fast import FastElectionPlugin

from trizab.testing.zabnet import ZabNet
from trizab.zab.messages import Ack, Commit, Disconnect, Ping, Proposal, QuorumMessage
from trizab.zab.peer import Peer, PeerConfig
from trizab.zab.ready import Ready

FAST = FastElectionPlugin()


def fast(cfg: PeerConfig):  # type: ignore[no-untyped-def]
    return FAST.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())


def established() -> tuple[ZabNet, Peer, list[int]]:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    net.stabilize()
    for _ in range(50):
        leader = net.leader()
        if leader is not None and all(p.established for p in net.peers.values()):
            return net, leader, sorted(i for i in net.peers if i != leader.id)
        net.tick()
    raise AssertionError("no leader")


def barrier_in_flight(net: ZabNet, leader: Peer) -> Ready:
    """Take the leader's Ready and send its messages early, without advancing it (as the runtime does)."""
    net.held.add(leader.id)
    rd = leader.ready()
    assert rd.must_sync and rd.may_send_early(leader.is_leader_established)
    send(net, leader.id, rd.messages)
    return rd


def send(net: ZabNet, i: int, messages: tuple[tuple[int, QuorumMessage] | Disconnect, ...]) -> None:
    for m in messages:
        assert not isinstance(m, Disconnect)
        net.links.setdefault((i, m[0]), deque()).append(m[1])


def test_proposals_leave_while_the_leaders_barrier_runs() -> None:
    net, leader, followers = established()
    za = leader.propose(b"a")
    barrier_in_flight(net, leader)
    zb = leader.propose(b"b")
    zc = leader.propose(b"c")
    assert leader.early_messages(inflight_sent=False) == ()  # the Ready in flight's messages wait
    early = leader.early_messages(inflight_sent=True)
    proposals = ((zb, b"b"), (zc, b"c"))
    assert early == tuple((f, Proposal(leader.id, z, d)) for z, d in proposals for f in followers)
    assert leader.early_messages(inflight_sent=True) == ()  # taken: they are not in the next Ready
    assert za < zb


def test_a_commit_leaves_before_the_leaders_own_barrier() -> None:
    net, leader, followers = established()
    z = leader.propose(b"a")
    rd = barrier_in_flight(net, leader)
    net.stabilize()  # the followers persist and acknowledge; the leader's Ready stays in flight
    assert leader.committed == z  # two followers are a quorum of three
    early = leader.early_messages(inflight_sent=True)
    assert early == tuple((f, Commit(leader.id, z)) for f in followers)
    # The leader's own share: only at advance; until then it applies nothing.
    assert leader.persisted < z and net.stores[leader.id].app == []
    send(net, leader.id, early)
    net.held.discard(leader.id)
    net.stores[leader.id].apply(rd)
    leader.advance(rd)
    net.stabilize()
    for i in net.peers:
        assert [e.data for e in net.stores[i].app] == [b"a"]


def test_one_commit_needs_the_followers_when_the_leader_has_not_synced() -> None:
    net, leader, followers = established()
    leader.propose(b"a")
    barrier_in_flight(net, leader)
    net.held.add(followers[1])  # one follower alone is no quorum without the leader's barrier
    net.stabilize()
    assert leader.early_messages(inflight_sent=True) == ()


def test_the_prefix_stops_at_anything_else() -> None:
    net, leader, followers = established()
    leader.propose(b"a")
    rd = barrier_in_flight(net, leader)
    zb = leader.propose(b"b")
    leader.step(Ack(9, zb))  # from nobody we lead: answered with a Disconnect
    zc = leader.propose(b"c")
    early = leader.early_messages(inflight_sent=True)
    assert early == tuple((f, Proposal(leader.id, zb, b"b")) for f in followers)
    assert leader.early_messages(inflight_sent=True) == ()
    leader.advance(rd)
    # The rest waits for the next Ready, in order; that Ready is not sent early.
    rd = leader.ready()
    assert rd.messages == (Disconnect(9), *((f, Proposal(leader.id, zc, b"c")) for f in followers))
    assert not rd.may_send_early(leader.is_leader_established)


def test_only_an_established_leader() -> None:
    net, leader, followers = established()
    f = net.peers[followers[0]]
    f.step(Ping(leader.id, 1))  # its answer waits for the next Ready
    assert f.has_ready() and f.early_messages(inflight_sent=True) == ()
    assert f.ready().messages == ((leader.id, Ping(f.id, 1, b"")),)
