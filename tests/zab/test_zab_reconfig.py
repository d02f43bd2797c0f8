"""Dynamic reconfiguration in the ZAB core: membership from the log, joint quorums, hand-over."""

from __future__ import annotations

import attrs
from hypothesis import given
from hypothesis import strategies as st
from trizab.plugins.election.fast import FastElectionPlugin
from trizab.plugins.election.static import StaticElectionPlugin

from trizab.testing.sim import config_membership, encode_config
from trizab.testing.zabnet import Store, ZabNet
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.zab.membership import Membership, parse_config_text, render_membership, txn_membership
from trizab.zab.messages import Entry, NewLeader, Notification, PeerState
from trizab.zab.peer import PeerConfig
from trizab.zab.quorum import commit_point, is_quorum
from trizab.zab.ready import Role
from trizab.zab.zxid import zxid

FAST = FastElectionPlugin()


def fast(cfg: PeerConfig):  # type: ignore[no-untyped-def]
    return FAST.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())


def static(leader: int):  # type: ignore[no-untyped-def]
    plugin = StaticElectionPlugin(leader)
    return lambda cfg: plugin.elector(cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing())


def settle(net: ZabNet, members: set[int], ticks: int = 200):  # type: ignore[no-untyped-def]
    net.stabilize()
    for _ in range(ticks):
        leader = net.leader()
        if leader is not None and all(net.peers[i].established for i in members):
            return leader
        net.tick()
    raise AssertionError("no established leader")


def cfg(voters: set[int], observers: set[int] = set(), version: int = 1) -> bytes:  # noqa: B006
    return encode_config(Membership(frozenset(voters), frozenset(observers), version))


# --- pure parts ------------------------------------------------------------------------


def _dumb_commit_point(
    acked: dict[int, int], active: frozenset[int], pending: list[tuple[int, frozenset[int]]]
):  # type: ignore[no-untyped-def]
    """Largest z (among acked values and reconfig points) for which every entry up to z
    is acknowledged by a quorum of the active voters and of each pending config at or before it."""
    zs = sorted({*acked.values(), *(z - 1 for z, _ in pending)})
    best = None
    for z in zs:
        ok = True
        for entry in range(1, z + 1):
            configs = [active] + [v for pz, v in pending if pz <= entry]
            if not all(is_quorum([s for s, a in acked.items() if a >= entry], c) for c in configs):
                ok = False
                break
        if ok and z >= 1:
            best = z
    return best


ids = st.integers(1, 6)
voter_sets = st.frozensets(ids, min_size=1, max_size=5)


@given(
    acked=st.dictionaries(ids, st.integers(1, 12)),
    active=voter_sets,
    pending=st.lists(st.tuples(st.integers(2, 12), voter_sets), max_size=3, unique_by=lambda p: p[0]),
)
def test_commit_point_matches_a_dumb_alternative(acked, active, pending) -> None:  # type: ignore[no-untyped-def]
    pending = sorted(pending)
    got = commit_point(acked, active, pending)
    want = _dumb_commit_point(acked, active, pending)
    if got is not None and got < 1:
        got = None  # "nothing before the first reconfig" when it is the very first entry
    assert got == want


def test_config_text_and_reconfig_txns_give_the_membership() -> None:
    text = (
        b"server.1=127.0.0.1:1:2:participant;0.0.0.0:3\nserver.2=127.0.0.1:4:5\n"
        b"server.7=127.0.0.1:6:7:observer;8\nversion=100000003"
    )
    m = parse_config_text(text)
    assert m == Membership(frozenset({1, 2}), frozenset({7}), 0x100000003)
    assert parse_config_text(render_membership(m)) == m
    # Rendered back as QuorumMaj.toString(): roles spelled out, a lone client port on the
    # wildcard address, server-id order, no newline after the version.
    assert render_membership(m) == (
        b"server.1=127.0.0.1:1:2:participant;0.0.0.0:3\nserver.2=127.0.0.1:4:5:participant\n"
        b"server.7=127.0.0.1:6:7:observer;0.0.0.0:8\nversion=100000003"
    )
    header = r.TxnHeader(5, 6, 0x200000001, 0, OpCode.RECONFIG)
    data = Txn(header, r.SetDataTxn("/zookeeper/config", text, 3)).encode()
    assert Txn.decode(data).header.type == OpCode.RECONFIG  # the log round-trips the type
    assert txn_membership(data) == Membership(frozenset({1, 2}), frozenset({7}), 0x200000001)
    plain = Txn(
        r.TxnHeader(5, 6, 0x200000001, 0, OpCode.SET_DATA), r.SetDataTxn("/zookeeper/config", text, 3)
    )
    assert txn_membership(plain.encode()) is None


# --- protocol ---------------------------------------------------------------------------


def test_adding_two_voters_then_losing_two_originals_keeps_committing() -> None:
    net = ZabNet([1, 2, 3], fast, membership_fn=config_membership, tick_ms=100)
    leader = settle(net, {1, 2, 3})
    leader.propose(b"before")
    net.stabilize()
    # New servers start with the current ensemble plus themselves, and follow without a vote.
    net.join(4, [1, 2, 3, 4])
    net.join(5, [1, 2, 3, 5])
    settle(net, {1, 2, 3, 4, 5})
    assert net.peers[4].role == Role.FOLLOWING and 4 not in leader.voters
    assert leader.synced_voters() >= {4, 5}
    leader.propose(cfg({1, 2, 3, 4, 5}))
    net.stabilize()
    for i in range(1, 6):
        assert net.peers[i].active.voters == {1, 2, 3, 4, 5}, i
    # Two of the original three go away: 3 of the 5 new voters are a quorum.
    others = [i for i in (1, 2, 3) if i != leader.id]
    net.crash(others[0])
    net.crash(others[1])
    leader = settle(net, {leader.id, 4, 5})
    z = leader.propose(b"after")
    net.stabilize()
    assert leader.committed >= z
    assert [e.data for e in net.stores[4].app][-1] == b"after"


def test_a_reconfig_needs_a_quorum_of_the_new_voters_too() -> None:
    net = ZabNet([1, 2, 3], fast, membership_fn=config_membership, tick_ms=100)
    leader = settle(net, {1, 2, 3})
    # 6 and 7 do not exist: {1,2,3,6,7} has no quorum among the live servers but 1,2,3
    # (3 of 5 is a quorum), while {1,6,7} has none at all.
    z = leader.propose(cfg({1, 6, 7}))
    net.stabilize()
    assert leader.committed < z and leader.reconfig_in_flight
    # Everything after it waits too (it needs both quorums).
    z2 = leader.propose(b"x")
    net.stabilize()
    assert leader.committed < z2


def test_removing_the_leader_hands_over_to_the_remaining_voters() -> None:
    net = ZabNet([1, 2, 3, 4], fast, membership_fn=config_membership, tick_ms=100)
    old = settle(net, {1, 2, 3, 4})
    rest = {1, 2, 3, 4} - {old.id}
    z = old.propose(cfg(rest))
    net.stabilize()
    assert old.role == Role.LOOKING and old.committed >= z
    new = settle(net, rest)
    assert new.id in rest and new.voters == rest
    new.propose(b"after")
    net.stabilize()
    for i in rest:
        assert [e.data for e in net.stores[i].app][-1] == b"after"
    # The old leader is no longer listed: it serves nobody and stays LOOKING.
    net.tick(30)
    assert net.peers[old.id].role == Role.LOOKING and net.peers[old.id].removed


def test_a_demoted_voter_rejoins_as_observer() -> None:
    net = ZabNet([1, 2, 3], fast, membership_fn=config_membership, tick_ms=100)
    leader = settle(net, {1, 2, 3})
    demoted = next(i for i in (1, 2, 3) if i != leader.id)
    leader.propose(cfg({1, 2, 3} - {demoted}, {demoted}))
    net.stabilize()
    settle(net, {1, 2, 3})
    assert net.peers[demoted].role == Role.OBSERVING


def test_discovery_waits_for_a_quorum_of_every_config_in_the_adopted_history() -> None:
    # 2 holds an uncommitted reconfig to {1,2,3,4,5}; leader 1 hears from 2 only (3 is cut
    # off): {1,2} is a quorum of {1,2,3}, but the history it adopts (2's, the best) puts
    # {1,2,3,4,5} in force, of which {1,2} is not a quorum: it must wait.
    a = Entry(zxid(1, 1), b"a")
    reconf = Entry(zxid(1, 2), cfg({1, 2, 3, 4, 5}))
    net = ZabNet([1, 2, 3], static(1), membership_fn=config_membership, tick_ms=100, init_limit=50)
    for i, log in ((1, [a]), (2, [a, reconf]), (3, [a])):
        net.stores[i] = attrs.evolve(net.stores[i], accepted_epoch=1, current_epoch=1, log=log)
        net.start(i)
    net.isolate(3)
    net.tick(10)
    leader = net.peers[1]
    assert leader.role == Role.LEADING and not leader.established
    assert leader.last_zxid == a.zxid  # nothing adopted, nothing sent of the new epoch
    # A new server that has the reconfig too (the old leader reached it) joins: {1,2,4}.
    net.statics[4] = Membership(frozenset({1, 2, 3, 4}))
    net.stores[4] = Store(accepted_epoch=1, current_epoch=1, log=[a, reconf])
    net.start(4)
    net.tick(10)
    assert leader.established and leader.last_zxid == reconf.zxid
    assert leader.active.voters == {1, 2, 3, 4, 5}


def test_rendered_configuration_is_zookeepers_text() -> None:
    """What ZooKeeper 3.8 members put in their notifications (QuorumMaj.toString(), as a
    static ensemble's member sends it) parses and renders back to the same bytes; so does an
    IPv6 member's bracketed address.  Without addresses (the simulation) each member is
    ``server.N=:::role``, which reads back as the same membership."""
    zookeeper = (
        b"server.1=127.0.0.1:2888:3888:participant\nserver.2=127.0.0.1:2889:3889:participant\n"
        b"server.3=[::1]:2890:3890:observer;127.0.0.1:2183\nversion=0"
    )
    m = parse_config_text(zookeeper)
    assert m == Membership(frozenset({1, 2}), frozenset({3}), 0)
    assert render_membership(m) == zookeeper
    bare = Membership(frozenset({1, 2}), frozenset({3}), 0x100000004)
    assert render_membership(bare) == (
        b"server.1=:::participant\nserver.2=:::participant\nserver.3=:::observer\nversion=100000004"
    )
    assert parse_config_text(render_membership(bare)) == bare


# --- the configuration in election notifications --------------------------------------


def _looking(sender: int) -> Notification:
    return Notification(sender, sender, 0, 1, 0, PeerState.LOOKING)


def test_notifications_carry_the_committed_configuration_never_a_proposed_one() -> None:
    """As ZooKeeper sends ``getQuorumVerifier()`` (committed), never its last seen verifier: a
    LOOKING ZooKeeper member makes any newer configuration a notification brings its own."""
    net = ZabNet([1, 2, 3], fast, membership_fn=config_membership, tick_ms=100)
    leader = settle(net, {1, 2, 3})
    committed = Membership(frozenset({1, 2, 3}), frozenset({9}), 1)
    leader.propose(cfg({1, 2, 3}, {9}, version=1))
    net.stabilize()
    # 6 and 7 do not exist: this one is logged everywhere and never commits.
    leader.propose(cfg({1, 6, 7}, version=2))
    net.stabilize()
    assert leader.reconfig_in_flight
    for i in (1, 2, 3):
        peer = net.peers[i]
        assert peer.latest.voters == {1, 6, 7} and peer.active == committed
        # A LOOKING server asks: every member answers with the committed configuration.
        peer.step(_looking(4))
        rd = net.process(i)
        assert rd is not None
        answers = [n for to, n in rd.notifications if to == 4]
        assert answers and {n.config for n in answers} == {render_membership(committed)}, i
    # A follower restarted with the reconfig in its log votes with what it knows committed.
    follower = next(i for i in (1, 2, 3) if i != leader.id)
    net.crash(follower)
    restarted = net.start(follower)
    assert restarted.latest.voters == {1, 6, 7}
    rd = net.process(follower)
    assert rd is not None and rd.notifications
    for _, n in rd.notifications:
        assert parse_config_text(n.config).version < 2 and n.config == render_membership(restarted.active)


def test_a_newer_configuration_in_newleader_is_voted_with_not_made_active() -> None:
    """Learner.syncWithLeader: NEWLEADER's configuration becomes the learner's last seen one
    (it votes with it); it becomes active only once the synced history commits it."""
    net = ZabNet([1, 2, 3], fast, membership_fn=config_membership, tick_ms=100)
    leader = settle(net, {1, 2, 3})
    follower = next(i for i in (1, 2, 3) if i != leader.id)
    net.crash(follower)
    learner = net.start(follower)
    # A leader whose last seen configuration is not in the history it syncs (a ZooKeeper
    # leader's can come from its own dynamic configuration file): rewrite NEWLEADER in flight.
    newer = Membership(frozenset({1, 2, 3, 4}), frozenset(), 0x500000001)
    rewritten = 0
    for _ in range(10_000):
        if learner.established:
            break
        for i in list(net.peers):
            net.process(i)
        for (a, b), q in net.links.items():
            for k, m in enumerate(q):
                if isinstance(m, NewLeader):
                    q[k] = attrs.evolve(m, config=render_membership(newer))
                    rewritten += 1
            if b in net.peers:
                net.deliver(a, b)
        for p in list(net.peers.values()):
            p.tick()  # (ZabNet.tick would deliver before the rewrite)
    assert learner.established and rewritten == 1
    assert learner.active.version == 0 and learner.active.voters == {1, 2, 3}
    assert learner.elector.voters == newer.voters  # type: ignore[attr-defined]
    # What it tells a LOOKING server is still its committed configuration.
    learner.step(_looking(5))
    rd = net.process(follower)
    assert rd is not None
    assert [n.config for to, n in rd.notifications if to == 5] == [render_membership(learner.active)]
