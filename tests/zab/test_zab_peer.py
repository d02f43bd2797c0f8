"""Protocol rules of the ZAB peer, each driven by hand on a small in-process network."""

from __future__ import annotations

import attrs
import pytest
from trizab.plugins.election.fast import FastElectionPlugin
from trizab.plugins.election.static import StaticElectionPlugin

from trizab.testing.zabnet import ZabNet
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.zab.membership import Membership, parse_config_text
from trizab.zab.messages import (
    Ack,
    AckEpoch,
    Diff,
    Disconnect,
    Entry,
    FollowerInfo,
    Inform,
    LeaderInfo,
    NewLeader,
    Ping,
    Proposal,
    QuorumMessage,
    Snap,
    Trunc,
    UpToDate,
)
from trizab.zab.peer import NotLeader, Peer, PeerConfig
from trizab.zab.ready import Role
from trizab.zab.zxid import MAX_COUNTER, epoch_of, zxid

FAST = FastElectionPlugin()


def static(leader: int):  # type: ignore[no-untyped-def]
    plugin = StaticElectionPlugin(leader)
    return lambda cfg: plugin.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())


def fast(cfg: PeerConfig):  # type: ignore[no-untyped-def]
    return FAST.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())


def elect(net: ZabNet, ticks: int = 50):  # type: ignore[no-untyped-def]
    net.stabilize()
    for _ in range(ticks):
        if net.leader() is not None and all(p.established for p in net.peers.values()):
            return net.leader()
        net.tick()
    raise AssertionError("no leader")


def applied(net: ZabNet, i: int) -> list[bytes]:
    return [e.data for e in net.stores[i].app]


def test_three_peers_elect_the_most_up_to_date_and_replicate() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    assert leader.id == 3  # equal histories: the highest id wins
    z1 = leader.propose(b"a")
    z2 = leader.propose(b"b")
    net.stabilize()
    assert (epoch_of(z1), z2) == (leader.epoch, z1 + 1)
    for i in (1, 2, 3):
        assert applied(net, i) == [b"a", b"b"]


def follower(accepted: int = 0, current: int = 0, history: tuple[Entry, ...] = ()) -> Peer:
    cfg = PeerConfig(my_id=1, voters=frozenset({1, 2, 3}))
    p = Peer(cfg, static(2)(cfg), accepted_epoch=accepted, current_epoch=current, history=history)
    rd = p.ready()
    assert rd.messages[0][1].accepted_epoch == accepted  # FOLLOWERINFO
    p.advance(rd)
    return p


def test_accepted_epoch_is_persisted_with_ackepoch() -> None:
    p = follower(accepted=2, current=2)
    p.step(LeaderInfo(2, epoch=5, current_epoch=2, last_zxid=0))
    rd = p.ready()
    # The hard state rides in the same Ready as ACKEPOCH: the driver persists it first.
    assert rd.hard_state is not None and rd.hard_state.accepted_epoch == 5
    assert rd.messages == ((2, AckEpoch(1, 2, 0)),)
    assert rd.must_sync


def test_follower_never_accepts_an_older_epoch() -> None:
    p = follower(accepted=7, current=6)
    p.step(LeaderInfo(2, epoch=6))
    rd = p.ready()
    assert p.accepted_epoch == 7
    assert rd.hard_state is None
    assert not any(isinstance(m, tuple) and isinstance(m[1], AckEpoch) for m in rd.messages)
    assert Disconnect(2) in rd.messages


def test_an_epoch_already_accepted_is_acknowledged_as_not_counting() -> None:
    p = follower(accepted=5, current=4)
    p.step(LeaderInfo(2, epoch=5))
    rd = p.ready()
    assert rd.messages == ((2, AckEpoch(1, -1, 0)),)


def test_proposal_is_persisted_before_its_ack() -> None:
    p = follower(accepted=0, current=0)
    p.step(LeaderInfo(2, epoch=1))
    p.advance(p.ready())
    p.step(Trunc(2, 0))
    p.step(NewLeader(2, 1))
    rd = p.ready()
    assert rd.hard_state is not None and rd.hard_state.current_epoch == 1
    assert rd.messages == ((2, Ack(1, zxid(1, 0))),)
    p.advance(rd)
    p.step(Proposal(2, zxid(1, 1), b"x"))
    rd = p.ready()
    assert rd.to_persist == (Entry(zxid(1, 1), b"x"),)
    assert rd.messages == ((2, Ack(1, zxid(1, 1))),)
    assert rd.committed == ()  # not applied before its COMMIT


def test_a_learner_reads_newleaders_configuration_but_keeps_its_historys() -> None:
    """NEWLEADER from a ZooKeeper leader carries its QuorumVerifier text; a trizab learner
    accepts it, and its configuration stays the one its synced history gives (a leader's
    last seen configuration can be a reconfig that never commits)."""
    proposed = (
        b"server.1=127.0.0.1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889:participant\n"
        b"server.3=127.0.0.1:2890:3890:participant\nserver.4=127.0.0.1:2891:3891:observer\n"
        b"version=100000003"
    )
    p = follower(accepted=0, current=0)
    p.step(LeaderInfo(2, epoch=1))
    p.advance(p.ready())
    p.step(Trunc(2, 0))
    p.step(NewLeader(2, 1, proposed))
    rd = p.ready()
    assert rd.messages == ((2, Ack(1, zxid(1, 0))),)
    p.advance(rd)
    p.step(UpToDate(2, 0))
    p.advance(p.ready())
    assert p.established
    assert p.active == Membership(frozenset({1, 2, 3}))


def test_a_leader_sends_its_configuration_in_newleader() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    elect(net)
    sent = [
        m[1]
        for readies in net.readies.values()
        for rd in readies
        for m in rd.messages
        if isinstance(m, tuple) and isinstance(m[1], NewLeader)
    ]
    assert len(sent) == 2, sent  # one to each follower
    assert all(parse_config_text(msg.config) == Membership(frozenset({1, 2, 3})) for msg in sent)


def test_commit_needs_a_quorum_and_counts_the_leader() -> None:
    net = ZabNet([1, 2, 3, 4, 5], fast, tick_ms=100)
    leader = elect(net)
    others = [i for i in net.peers if i != leader.id]
    net.held |= set(others[1:])  # these store nothing and acknowledge nothing
    leader.propose(b"x")
    net.stabilize()
    assert applied(net, leader.id) == []  # leader + one follower = 2 of 5
    net.held.discard(others[1])
    net.stabilize()
    assert applied(net, leader.id) == [b"x"]  # 3 of 5


def test_a_leader_learns_a_better_history_from_its_quorum() -> None:
    net = ZabNet([1, 2, 3], static(1), tick_ms=100)
    hist = [Entry(zxid(1, 1), b"a"), Entry(zxid(1, 2), b"b")]
    for i in (2, 3):
        net.stores[i] = attrs.evolve(net.stores[i], accepted_epoch=1, current_epoch=1, log=list(hist))
        net.start(i)
    net.start(1)
    leader = elect(net)
    assert leader.id == 1 and leader.epoch == 2
    for i in (1, 2, 3):
        assert applied(net, i) == [b"a", b"b"]


def test_trunc_discards_what_the_quorum_never_accepted() -> None:
    net = ZabNet([1, 2, 3], static(1), tick_ms=100, init_limit=2)
    common = [Entry(zxid(1, 1), b"a"), Entry(zxid(1, 2), b"b")]
    for i, log in ((1, common), (2, common), (3, [*common, Entry(zxid(1, 3), b"lost")])):
        net.stores[i] = attrs.evolve(net.stores[i], accepted_epoch=1, current_epoch=1, log=list(log))
    for i in (1, 2, 3):
        net.start(i)
    net.isolate(3)
    net.stabilize()
    net.tick(3)
    assert net.leader() is not None
    net.heal()
    elect(net, ticks=200)
    assert [e.data for e in net.stores[3].log] == [b"a", b"b"]
    assert any(rd.truncate_after == zxid(1, 2) for rd in net.readies[3])
    assert applied(net, 3) == [b"a", b"b"]


def test_snap_when_the_learner_is_older_than_the_committed_log() -> None:
    net = ZabNet([1, 2, 3], static(1), tick_ms=100, committed_log_size=2)
    net.crash(3)
    leader = elect_partial(net)
    for k in range(40):
        leader.propose(b"%d" % k)
        net.stabilize()
    net.start(3)
    elect(net)
    assert applied(net, 3) == [b"%d" % k for k in range(40)]
    assert any(rd.snapshot is not None for rd in net.readies[3])


def elect_partial(net: ZabNet) -> Peer:
    for _ in range(50):
        if (leader := net.leader()) is not None:
            return leader
        net.tick()
    raise AssertionError("no leader")


def test_observer_gets_inform_and_never_votes() -> None:
    net = ZabNet([1, 2, 3], fast, observers=[4], tick_ms=100)
    leader = elect(net)
    assert net.peers[4].role == Role.OBSERVING
    follower_ids = [i for i in (1, 2, 3) if i != leader.id]
    net.held |= set(follower_ids)
    leader.propose(b"x")
    net.stabilize()
    assert applied(net, 4) == [] and applied(net, leader.id) == []  # the observer's storage does not count
    net.held.clear()
    net.stabilize()
    assert applied(net, 4) == [b"x"]
    received = [m for rd in net.readies[leader.id] for m in rd.messages if isinstance(m, tuple) and m[0] == 4]
    assert any(isinstance(m[1], Inform) for m in received)
    assert not any(isinstance(m[1], Proposal) and m[1].zxid > zxid(leader.epoch, 0) for m in received)


def test_counter_overflow_forces_a_new_epoch() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    epoch = leader.epoch
    assert leader._lead is not None
    leader._lead.counter = MAX_COUNTER - 1
    leader.propose(b"last")
    with pytest.raises(NotLeader):
        leader.propose(b"overflow")
    assert leader.role == Role.LOOKING
    new = elect(net)
    assert new.epoch > epoch
    z = new.propose(b"next")
    net.stabilize()
    assert applied(net, new.id)[-2:] == [b"last", b"next"] and z == zxid(new.epoch, 1)


def test_followers_go_looking_and_leader_steps_down_when_cut_off() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100, sync_limit=2)
    leader = elect(net)
    net.isolate(leader.id)
    limit = leader.config.sync_limit_ticks
    net.tick(limit + 2)
    assert leader.role != Role.LEADING or not leader.established
    new = elect_partial(net)
    assert new.id != leader.id


def test_session_reports_ride_on_pings_and_only_the_leader_is_established() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    f = next(p for p in net.peers.values() if p is not leader)
    assert leader.is_leader_established and not f.is_leader_established
    f.report_sessions(b"sessions")
    net.tick(leader.config.ping_ticks + 1)
    reports = [rep for rd in net.readies[leader.id] for rep in rd.session_reports]
    assert (f.id, b"sessions") in reports


def test_forwarded_requests_reach_the_leader_and_followers_cannot_propose() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    f = next(p for p in net.peers.values() if p is not leader)
    with pytest.raises(NotLeader) as info:
        f.propose(b"x")
    assert info.value.leader == leader.id
    f.forward(b"req")
    net.stabilize()
    assert (f.id, b"req", ()) in [q for rd in net.readies[leader.id] for q in rd.requests]


def test_propose_stamps_the_zxid_into_a_txn() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    leader = elect(net)
    txn = Txn(r.TxnHeader(5, 1, 0, 1000, OpCode.CREATE_SESSION), r.CreateSessionTxn(30000))
    z = leader.propose(txn)
    net.stabilize()
    got = Txn.decode(net.stores[leader.id].app[-1].data)
    assert got.zxid == z and got.body == txn.body


def test_snap_message_installs_state() -> None:
    p = follower()
    p.step(LeaderInfo(2, epoch=1))
    p.advance(p.ready())
    p.step(Snap(2, zxid(1, 4), b"state"))
    p.step(NewLeader(2, 1))
    rd = p.ready()
    assert rd.snapshot is not None and (rd.snapshot.zxid, rd.snapshot.data) == (zxid(1, 4), b"state")
    assert p.last_zxid == zxid(1, 4)


def test_leader_gives_up_when_a_learner_is_ahead_without_history() -> None:
    # A ZooKeeper follower never sends its history: a leader behind it steps down, as
    # ZooKeeper's Leader.waitForEpochAck does ("Follower is ahead of the leader").
    cfg = PeerConfig(my_id=1, voters=frozenset({1, 2, 3}))
    p = Peer(cfg, static(1)(cfg))
    p.advance(p.ready())
    p.step(FollowerInfo(2, 0))
    rd = p.ready()
    assert rd.hard_state is not None and rd.hard_state.accepted_epoch == 1
    assert rd.messages == ((2, LeaderInfo(1, 1, 0, 0)),)
    p.advance(rd)
    assert p.role == Role.LEADING
    p.step(AckEpoch(2, 5, zxid(5, 3), history=None))
    rd = p.ready()
    # It left leadership (a static election puts it straight back, in a fresh discovery).
    view = p.leader_view()
    assert view is None or view.learners == 0
    assert Disconnect(2) in rd.messages
    assert not any(isinstance(m, tuple) and isinstance(m[1], NewLeader) for m in rd.messages)


def test_leader_pings_a_learner_only_once_its_sync_is_out() -> None:
    # A ZooKeeper learner reads LEADERINFO, then DIFF/TRUNC/SNAP, and exits on anything else
    # (Learner.syncWithLeader: "Got unexpected packet from leader: PING").
    cfg = PeerConfig(my_id=1, voters=frozenset({1, 2, 3, 4, 5}))
    p = Peer(cfg, static(1)(cfg))
    p.advance(p.ready())

    def to(sid: int) -> list[object]:
        out = []
        for _ in range(3 * cfg.ping_ticks):
            p.tick()
            rd = p.ready()
            out += [m for dest, m in (x for x in rd.messages if isinstance(x, tuple)) if dest == sid]
            p.advance(rd)
        return out

    p.step(FollowerInfo(2, 0))
    p.step(FollowerInfo(3, 0))
    assert [type(m) for m in to(2)] == [LeaderInfo]
    p.step(AckEpoch(2, 0, 0))  # discovery needs a quorum of five: no sync yet
    assert to(2) == []
    p.step(AckEpoch(3, 0, 0))
    sent = to(2)
    kinds = [type(m) for m in sent]
    assert kinds[:2] == [Diff, NewLeader] and Ping in kinds[2:]


def _rejoin(history: tuple[Entry, ...], sync: QuorumMessage, uptodate_zxid: int) -> tuple[int, ...]:
    """A follower restarted with ``history`` (nothing known committed) rejoins an established
    epoch-1 leader: ``sync`` (DIFF or TRUNC), NEWLEADER, UPTODATE; the zxids it may now apply."""
    p = follower(accepted=1, current=1, history=history)
    p.step(LeaderInfo(2, epoch=1))
    p.advance(p.ready())
    p.step(sync)
    p.step(NewLeader(2, 1))
    p.advance(p.ready())
    p.step(UpToDate(2, uptodate_zxid))
    rd = p.ready()
    p.advance(rd)
    assert p.established
    return tuple(e.zxid for e in rd.committed)


def test_a_zookeeper_leaders_sync_commits_the_history_it_kept() -> None:
    """ZooKeeper's leader sends an empty DIFF at our last zxid (or TRUNC to a committed one) and
    UPTODATE with zxid -1, and never a COMMIT for that history; a trizab learner that waited for
    one served its snapshot's state (and refused clients that had seen later zxids) until the
    next write (kazoo's test_request_queuing_session_expired, ZooKeeper leading)."""
    history = tuple(Entry(zxid(1, n), b"t%d" % n) for n in (1, 2, 3))
    assert _rejoin(history, Diff(2, zxid(1, 3)), -1) == (zxid(1, 1), zxid(1, 2), zxid(1, 3))
    # DIFF at the leader's last committed zxid, beyond ours (its proposals follow): ours only.
    assert _rejoin(history, Diff(2, zxid(1, 9)), -1) == (zxid(1, 1), zxid(1, 2), zxid(1, 3))
    assert _rejoin(history, Trunc(2, zxid(1, 2)), -1) == (zxid(1, 1), zxid(1, 2))


def test_a_trizab_leaders_uptodate_names_the_commit_point() -> None:
    """A trizab leader's DIFF may end at a proposal it has not committed yet; its UPTODATE says
    how far is committed, and the learner goes no further."""
    history = tuple(Entry(zxid(1, n), b"t%d" % n) for n in (1, 2, 3))
    assert _rejoin(history, Diff(2, zxid(1, 3)), zxid(1, 1)) == (zxid(1, 1),)
