"""Election plugins: FLE converges on the best vote; priority and static policies; plugin loading."""

from __future__ import annotations

import pytest

from trizab.plugin import PluginError, load_plugin
from trizab.testing.zabnet import ZabNet
from trizab.zab.election import Candidate, ElectionTiming, Elector
from trizab.zab.messages import Entry, Notification, PeerState
from trizab.zab.peer import PeerConfig
from trizab.zab.ready import Role
from trizab.zab.zxid import zxid

TIMING = ElectionTiming(finalize_ticks=2, min_notify_ticks=2, max_notify_ticks=64)
VOTERS = frozenset({1, 2, 3, 4, 5})


def run_round(
    electors: dict[int, Elector], candidates: dict[int, Candidate], ticks: int = 20
) -> dict[int, int]:
    for i, e in electors.items():
        e.start(candidates[i])
    for _ in range(ticks):
        moved = True
        while moved:
            moved = False
            for e in electors.values():
                for to, n in e.take_notifications():
                    if to in electors and electors[to].decision is None:
                        electors[to].step(n)
                        moved = True
        for e in electors.values():
            e.tick()
    return {i: e.decision for i, e in electors.items() if e.decision is not None}


def make(name: str, options: dict[str, str] | None = None) -> dict[int, Elector]:
    plugin = load_plugin("trizab.election", name, options or {})
    return {i: plugin.elector(i, VOTERS, frozenset(), TIMING) for i in VOTERS}


def test_fle_elects_the_most_up_to_date_peer() -> None:
    cands = {
        1: Candidate(3, zxid(3, 9)),
        2: Candidate(4, zxid(3, 2)),  # highest currentEpoch wins over a higher zxid
        3: Candidate(3, zxid(3, 12)),
        4: Candidate(2, zxid(2, 50)),
        5: Candidate(4, zxid(3, 2)),  # ties with 2 on (epoch, zxid): the higher id wins
    }
    assert run_round(make("fast"), cands) == dict.fromkeys(VOTERS, 5)


def test_fle_decides_with_a_quorum_even_if_some_are_silent() -> None:
    electors = make("fast")
    del electors[4], electors[5]
    cands = {i: Candidate(1, zxid(1, i)) for i in electors}
    assert run_round(electors, cands) == dict.fromkeys((1, 2, 3), 3)


def test_priority_prefers_configured_servers_among_equals_only() -> None:
    equal = {i: Candidate(2, zxid(2, 7)) for i in VOTERS}
    assert set(run_round(make("priority", {"prefer": "2,4"}), equal).values()) == {2}
    behind = dict(equal)
    behind[2] = Candidate(2, zxid(2, 6))  # lacks a transaction the others have
    assert set(run_round(make("priority", {"prefer": "2,4"}), behind).values()) == {4}


def test_static_names_the_configured_leader() -> None:
    cands = {i: Candidate(0, 0) for i in VOTERS}
    assert run_round(make("static", {"leader": "2"}), cands, ticks=0) == dict.fromkeys(VOTERS, 2)
    with pytest.raises(PluginError):
        load_plugin("trizab.election", "static", {})
    with pytest.raises(PluginError):
        load_plugin("trizab.election", "priority", {"prefer": "x"})


def fast(cfg: PeerConfig) -> Elector:
    return load_plugin("trizab.election", "fast").elector(
        cfg.my_id, cfg.voters, cfg.observers, cfg.election_timing()
    )


def test_a_restarted_peer_joins_the_running_leader_without_a_new_epoch() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    for _ in range(30):
        net.tick()
    leader = net.leader()
    assert leader is not None
    epoch = leader.epoch
    leader.propose(b"a")
    net.stabilize()
    victim = next(i for i in net.peers if i != leader.id)
    net.crash(victim)
    net.start(victim)
    for _ in range(30):
        net.tick()
        if net.peers[victim].established:
            break
    assert net.peers[victim].role == Role.FOLLOWING and net.peers[victim].leader == leader.id
    assert net.leader() is leader and leader.epoch == epoch
    assert [e.data for e in net.stores[victim].app] == [b"a"]


def test_non_looking_peers_answer_looking_ones_with_the_leader() -> None:
    net = ZabNet([1, 2, 3], fast, tick_ms=100)
    for _ in range(30):
        net.tick()
    leader = net.leader()
    assert leader is not None
    f = next(p for p in net.peers.values() if p is not leader)
    f.step(Notification(9, 9, 0, 1, 0, PeerState.LOOKING))
    rd = f.ready()
    assert [(to, n.leader, n.state) for to, n in rd.notifications] == [(9, leader.id, PeerState.FOLLOWING)]
    f.advance(rd)


def test_static_leader_that_is_behind_still_loses_nothing() -> None:
    plugin = load_plugin("trizab.election", "static", {"leader": "1"})
    net = ZabNet([1, 2, 3], lambda c: plugin.elector(c.my_id, c.voters, c.observers, c.election_timing()))
    hist = [Entry(zxid(1, 1), b"a")]
    for i in (2, 3):
        net.stores[i].log = list(hist)
        net.stores[i].accepted_epoch = net.stores[i].current_epoch = 1
        net.start(i)
    for _ in range(30):
        net.tick()
    assert net.leader() is net.peers[1]
    assert [e.data for e in net.stores[1].app] == [b"a"]
