"""ReadIndex: a leader answers a sync only after a heartbeat round started after it (Peer.read_index).

ZooKeeper's leader answers a sync from its own state at once, so a leader that was
paused, replaced and resumed answers from before it noticed (ZOOKEEPER-1675,
ZOOKEEPER-3522).  trizab's leader confirms first, as etcd raft's ReadIndex does:
a quorum must echo a PING round that started after the read_index call.
"""

from __future__ import annotations

import pytest
from trizab.plugins.election.fast import FastElectionPlugin
from trizab.plugins.election.static import StaticElectionPlugin

from trizab.testing.zabnet import ZabNet
from trizab.zab.messages import LeaderInfo, NewLeader, Ping, Trunc
from trizab.zab.peer import NotLeader, Peer, PeerConfig
from trizab.zab.ready import Ready, Role

FAST = FastElectionPlugin()


def fast(cfg: PeerConfig):  # type: ignore[no-untyped-def]
    return FAST.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())


def elect(net: ZabNet, ticks: int = 50) -> Peer:
    net.stabilize()
    for _ in range(ticks):
        leader = net.leader()
        if leader is not None and all(p.established for p in net.peers.values()):
            return leader
        net.tick()
    raise AssertionError("no leader")


def confirmed(net: ZabNet, i: int) -> list[object]:
    return [t for rd in net.readies[i] for t in rd.reads_confirmed]


def pings(rd: Ready) -> list[tuple[int, Ping]]:
    return [m for m in rd.messages if isinstance(m, tuple) and isinstance(m[1], Ping)]


def start_periodic_round(net: ZabNet, leader: Peer) -> Ready:
    """Tick the leader alone to its next periodic ping and queue that Ready's messages."""
    for _ in range(leader.config.ping_ticks):
        leader.tick()
        if leader.has_ready():
            rd = net.process(leader.id)
            if rd is not None and pings(rd):
                return rd
    raise AssertionError("no ping round")


def test_learners_echo_the_zxid_of_the_leaders_ping() -> None:
    # ZooKeeper's Learner.ping answers new QuorumPacket(PING, qp.getZxid(), sessions, ...).
    cfg = PeerConfig(my_id=1, voters=frozenset({1, 2, 3}))
    p = Peer(cfg, StaticElectionPlugin(2).elector(1, cfg.voters, cfg.observers, cfg.election_timing()))
    p.advance(p.ready())
    p.step(LeaderInfo(2, epoch=1))
    p.advance(p.ready())
    p.step(Trunc(2, 0))
    p.step(NewLeader(2, 1))
    p.advance(p.ready())
    p.report_sessions(b"touched")
    p.step(Ping(2, 0x1234_5678_9ABC))  # a ZooKeeper leader puts its last proposed zxid here
    rd = p.ready()
    assert rd.messages == ((2, Ping(1, 0x1234_5678_9ABC, b"touched")),)
    p.advance(rd)
    p.step(Ping(2, 7))
    assert p.ready().messages == ((2, Ping(1, 7, b"")),)


def test_leader_pings_carry_increasing_rounds() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    first = start_periodic_round(net, leader)
    second = start_periodic_round(net, leader)
    (r1,) = {m.zxid for _, m in pings(first)}
    (r2,) = {m.zxid for _, m in pings(second)}
    assert r2 == r1 + 1
    assert sorted(to for to, _ in pings(second)) == sorted(i for i in net.peers if i != leader.id)


def test_single_voter_confirms_at_once() -> None:
    net = ZabNet([1], fast, tick_ms=100)
    leader = elect(net)
    leader.read_index("a")
    leader.read_index("b")
    assert leader.has_ready()
    rd = net.process(leader.id)
    assert rd is not None and rd.reads_confirmed == ("a", "b")


def test_only_an_established_leader_takes_read_index() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    f = next(p for p in net.peers.values() if p is not leader)
    with pytest.raises(NotLeader) as info:
        f.read_index("x")
    assert info.value.leader == leader.id


def test_echoes_of_a_round_sent_before_read_index_do_not_confirm() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    followers = [i for i in net.peers if i != leader.id]
    # A round goes out and the followers answer it, but the answers are still on the way...
    old = start_periodic_round(net, leader)
    for f in followers:
        net.deliver(leader.id, f)
        net.process(f)
    # ... when the sync arrives; then they are delivered.
    leader.read_index("sync")
    for f in followers:
        assert net.deliver(f, leader.id) == 1
    rd = net.process(leader.id)
    assert rd is not None and rd.reads_confirmed == ()
    # That Ready starts the round the sync needs (not waiting for the periodic one) ...
    (old_round,) = {m.zxid for _, m in pings(old)}
    assert {m.zxid for _, m in pings(rd)} == {old_round + 1}
    assert confirmed(net, leader.id) == []
    # ... and the echoes of that fresh round confirm it.
    net.stabilize()
    assert confirmed(net, leader.id) == ["sync"]


def test_a_quorum_of_fresh_echoes_confirms_in_request_order() -> None:
    net = ZabNet([1, 2, 3, 4, 5], fast, tick_ms=100)
    leader = elect(net)
    a, b, c, d = sorted(i for i in net.peers if i != leader.id)
    net.cut(leader.id, a)
    net.cut(leader.id, b)
    leader.read_index(1)
    leader.read_index(2)
    rd = net.process(leader.id)
    assert rd is not None and rd.reads_confirmed == ()
    # Syncs that arrived together share one round: one PING per learner.
    assert sorted(to for to, _ in pings(rd)) == [a, b, c, d]
    net.deliver(leader.id, c)
    net.process(c)
    net.deliver(c, leader.id)
    leader.read_index(3)  # needs the next round
    rd = net.process(leader.id)
    assert rd is not None and rd.reads_confirmed == ()  # the leader and c: 2 of 5
    assert {m.zxid for _, m in pings(rd)} == {pings(net.readies[leader.id][-2])[0][1].zxid + 1}
    net.deliver(leader.id, d, count=1)  # d answers the first round only
    net.process(d)
    net.deliver(d, leader.id)
    rd = net.process(leader.id)
    assert rd is not None and rd.reads_confirmed == (1, 2)  # 3 of 5 echoed their round
    net.stabilize()
    assert confirmed(net, leader.id) == [1, 2, 3]


def test_a_cut_off_leader_never_confirms_and_steps_down() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100, sync_limit=2)
    leader = elect(net)
    net.isolate(leader.id)
    leader.read_index("stale")
    net.tick(leader.config.sync_limit_ticks + 2)
    assert not (leader.role == Role.LEADING and leader.established)
    assert confirmed(net, leader.id) == []
    with pytest.raises(NotLeader):
        leader.read_index("again")
    # Healed, it follows the new leader; the token it took as leader never comes back.
    net.heal()
    new = elect(net)
    assert new.id != leader.id
    assert confirmed(net, leader.id) == []
    new.read_index("fresh")
    net.stabilize()
    assert confirmed(net, new.id) == ["fresh"]


def test_a_paused_leader_resumes_and_cannot_confirm_a_sync() -> None:
    # The scenario of ZOOKEEPER-1675/3522: the leader stops (SIGSTOP), the others elect
    # a new leader and commit a write, the old leader resumes and is asked to sync
    # before it notices.  It must not answer from its stale state.
    net = ZabNet([1, 2, 3], fast, tick_ms=100, sync_limit=2)
    old = elect(net)
    paused = net.peers.pop(old.id)  # no ticks, no input, no Ready: frozen
    new = elect(net)
    assert new.id != old.id
    new.propose(b"written while the old leader slept")
    net.stabilize()
    net.peers[old.id] = paused  # SIGCONT: it still believes it leads
    assert paused.role == Role.LEADING and paused.established
    paused.read_index("stale sync")
    net.stabilize()
    for _ in range(paused.config.sync_limit_ticks + 2):
        net.tick()
    assert confirmed(net, old.id) == []
    assert paused.role != Role.LEADING
    assert [e.data for e in net.stores[new.id].app][-1] == b"written while the old leader slept"


def test_observer_echoes_do_not_count() -> None:
    net = ZabNet([1, 2, 3], fast, observers=[4], tick_ms=100)
    leader = elect(net)
    for f in (1, 2, 3):
        if f != leader.id:
            net.cut(leader.id, f)
    leader.read_index("t")
    net.stabilize()
    assert any(to == 4 for rd in net.readies[leader.id] for to, _ in pings(rd))
    assert confirmed(net, leader.id) == []
