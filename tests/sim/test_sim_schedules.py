"""The simulated ensemble: thousands of random schedules of crashes, restarts and partitions.

Every schedule is checked after every step for agreement, integrity, primary order,
commit-on-quorum and one established leader per epoch, and at the end for
durability and liveness (see trizab.testing.sim).  A failure names its seed and
the one-line command that replays it.
"""

from __future__ import annotations

import io
import os
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trizab.server.replica import config_membership
from trizab.testing import sim as S
from trizab.zab import peer as P
from trizab.zab import peer_leader
from trizab.zab.membership import Membership, render_membership
from trizab.zab.messages import NewLeader, Proposal, UpToDate

# CI: 1,000 schedules per ensemble size, i.e. 2,000 per election plugin.
SCHEDULES = int(os.environ.get("TRIZAB_SIM_SCHEDULES", "1000"))
WORKERS = max(1, min(2, os.cpu_count() or 1))


def _one(args: tuple[int, int, str, bool]) -> str | None:
    seed, peers, election, reconfig = args
    try:
        S.run_schedule(seed, peers, election, reconfig=reconfig)
    except Exception as exc:
        replay = S.replay_command(seed, peers, election, reconfig)
        return f"seed {seed}: {type(exc).__name__}: {exc}\n  replay: {replay}"
    return None


def run_many(seeds: range, peers: int, election: str, reconfig: bool = False) -> list[str]:
    jobs = [(seed, peers, election, reconfig) for seed in seeds]
    if WORKERS == 1:
        return [f for f in map(_one, jobs) if f]
    with ProcessPoolExecutor(WORKERS) as pool:
        return [f for f in pool.map(_one, jobs, chunksize=25) if f]


@pytest.mark.slow
@pytest.mark.parametrize("peers", [3, 5])
@pytest.mark.parametrize("election", ["fast", "priority", "static"])
def test_random_schedules(election: str, peers: int) -> None:
    failures = run_many(range(SCHEDULES), peers, election)
    assert not failures, "\n".join(failures[:5])


@pytest.mark.slow
@pytest.mark.parametrize("peers", [3, 5])
@pytest.mark.parametrize("election", ["fast", "priority", "static", "perverse"])
def test_random_reconfig_schedules(election: str, peers: int) -> None:
    # New servers join and are added as voters, voters (the leader too) are removed or
    # demoted to observers, among the crashes, restarts and partitions; the checker
    # requires a durable quorum of the configuration in force for every commit.
    failures = run_many(range(SCHEDULES // 2), peers, election, reconfig=True)
    assert not failures, "\n".join(failures[:5])


def test_reconfig_schedules_really_reconfigure() -> None:
    # (A seed's schedule moves with any change in how many messages the peers send, so the
    # sample is wide enough that the count does not hang on a few seeds: about one committed
    # reconfig per schedule over thousands of them.)
    sims = [S.Simulation(S.params_for(seed, 3, "fast", reconfig=True), seed) for seed in range(60)]
    results = [sim.run() for sim in sims]
    assert sum(r["reconfigs"] for r in results) >= 30
    # Voters were added and removed: some schedule ends with a new server voting and
    # some with an original one no longer voting.
    finals = [sim.current_config.voters for sim in sims]
    assert any(v - {1, 2, 3} for v in finals) and any({1, 2, 3} - v for v in finals)


@pytest.mark.slow
@pytest.mark.parametrize("peers", [3, 5])
def test_safety_does_not_depend_on_the_election(peers: int) -> None:
    # An elector that picks the LEAST up-to-date peer it can: discovery must make
    # that leader learn the quorum's best history.
    failures = run_many(range(300), peers, "perverse")
    assert not failures, "\n".join(failures[:5])


peer_ids = st.integers(1, 5)
actions = st.one_of(
    st.tuples(st.just("crash"), peer_ids),
    st.tuples(st.just("restart"), peer_ids),
    st.tuples(st.just("crash_leader")),
    st.tuples(st.just("crash_leader"), peer_ids),
    st.tuples(st.just("partition"), st.lists(peer_ids, min_size=1, max_size=4, unique=True).map(tuple)),
    st.tuples(st.just("heal")),
    st.tuples(st.just("break"), peer_ids, peer_ids),
    st.tuples(st.just("slow"), peer_ids, peer_ids, st.sampled_from([50, 500, 3000])),
    st.tuples(st.just("snapshot"), peer_ids),
    st.tuples(st.just("pause"), peer_ids, st.sampled_from([1_000, 12_000, 25_000])),
    st.tuples(st.just("pause_leader"), st.sampled_from([1_000, 12_000, 25_000])),
)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    peers=st.sampled_from([3, 5]),
    election=st.sampled_from(["fast", "priority", "static"]),
    faults=st.lists(st.tuples(st.integers(0, 8000), actions), max_size=25),
)
def test_hypothesis_chosen_faults(seed: int, peers: int, election: str, faults: list) -> None:  # type: ignore[type-arg]
    params = S.params_for(seed, peers, election)
    sim = S.Simulation(params, seed)
    sim.run(actions=[(t, a) for t, a in faults if all(x <= peers for x in _ids(a) if isinstance(x, int))])


def _ids(action: tuple) -> tuple:  # type: ignore[type-arg]
    """The peer ids an action names (a pause's duration is not one)."""
    if action[0] == "pause_leader":
        return ()
    return action[1:2] if action[0] == "pause" else action[1:3]


reconfig_actions = st.one_of(
    actions,
    st.tuples(st.just("add_voter")),
    st.tuples(st.just("remove_voter"), st.integers(1, 7)),
    st.tuples(st.just("remove_leader")),
    st.tuples(st.just("demote"), st.integers(1, 7)),
)


@settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    peers=st.sampled_from([3, 5]),
    election=st.sampled_from(["fast", "priority", "perverse"]),
    faults=st.lists(st.tuples(st.integers(0, 8000), reconfig_actions), max_size=25),
)
def test_hypothesis_chosen_reconfigs_among_faults(seed: int, peers: int, election: str, faults: list) -> None:  # type: ignore[type-arg]
    params = S.params_for(seed, peers, election, reconfig=True)
    sim = S.Simulation(params, seed, S.electors(election))
    sim.run(actions=list(faults))


def test_a_seed_replays_exactly() -> None:
    a = S.Simulation(S.params_for(7, 5, "fast"), 7)
    b = S.Simulation(S.params_for(7, 5, "fast"), 7)
    a.trace, b.trace = [], []
    assert a.run() == b.run()
    assert a.trace == b.trace and len(a.trace) > 100


def test_liveness_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    sim = S.Simulation(S.params_for(3, 3, "fast"), 3)
    monkeypatch.setattr(sim.net, "heal", lambda: None)  # the partition below never heals
    with pytest.raises(S.InvariantViolation, match="liveness"):
        sim.run(actions=[(100, ("partition", (1,))), (150, ("partition", (2,)))])


# --- the checker has teeth: deliberate bugs, monkeypatched only here --------------


def commit_without_quorum(monkeypatch: pytest.MonkeyPatch) -> None:
    # The leader's commit point is computed in peer_leader (_leader_progress).
    monkeypatch.setattr(
        peer_leader, "commit_point", lambda acked, active, pending: max(acked.values()) if acked else None
    )


def apply_before_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    orig = P.Peer._step_broadcast_learner

    def step(self, f, msg):  # type: ignore[no-untyped-def]
        orig(self, f, msg)
        if isinstance(msg, Proposal) and msg.zxid <= self.last_zxid:
            self.committed = max(self.committed, msg.zxid)

    monkeypatch.setattr(P.Peer, "_step_broadcast_learner", step)


def skip_history_adoption(monkeypatch: pytest.MonkeyPatch) -> None:
    # The leader completes discovery without adopting the quorum's best history.
    monkeypatch.setattr(P.Peer, "_install_plan", lambda self, plan: None)


def confirm_syncs_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The leader answers a sync from its own state, as ZooKeeper's does: a paused and
    # resumed leader then answers before it notices it was replaced (ZOOKEEPER-1675).
    def confirm(self):  # type: ignore[no-untyped-def]
        while self._reads:
            self._confirmed.append(self._reads.popleft()[1])

    monkeypatch.setattr(P.Peer, "_confirm_reads", confirm)


@pytest.mark.parametrize(
    ("bug", "election"),
    [
        (commit_without_quorum, "fast"),
        (apply_before_commit, "fast"),
        (skip_history_adoption, "perverse"),
        (confirm_syncs_at_once, "fast"),
    ],
)
def test_the_checker_catches_deliberate_bugs(monkeypatch: pytest.MonkeyPatch, bug, election: str) -> None:  # type: ignore[no-untyped-def]
    bug(monkeypatch)
    out = io.StringIO()
    _, failed = S.soak(range(60), 5, election, out=out)
    assert failed, "the bug went unnoticed"
    assert (
        f"replay: python -m trizab.testing.sim --replay {failed[0]} --peers 5 --election {election}"
        in out.getvalue()
    )


def test_failover_time_after_a_leader_crash() -> None:
    for peers in (3, 5):
        times = sorted(S.measure_failover(peers, 15))
        # ZooKeeper takes a few hundred ms here; a second tickTime would mean a timeout fired.
        assert times[len(times) // 2] < 1000 and times[-1] < 2000, times


def test_command_line_soak_and_replay(capsys: pytest.CaptureFixture[str]) -> None:
    assert S.main(["--schedules", "3", "--peers", "3", "--election", "priority"]) == 0
    assert "3 schedules, 0 failed" in capsys.readouterr().out
    assert S.main(["--replay", "2", "--peers", "5", "--election", "static"]) == 0
    assert "seed 2: ok" in capsys.readouterr().out


def test_the_checker_catches_a_reconfig_committed_without_the_new_voters(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The deliberate bug: commits count only the active voters, not the pending config's.
    from trizab.zab.quorum import quorum_acked

    monkeypatch.setattr(
        peer_leader, "commit_point", lambda acked, active, pending: quorum_acked(acked, active)
    )
    out = io.StringIO()
    _, failed = S.soak(range(60), 5, "fast", out=out, reconfig=True)
    assert failed, "the bug went unnoticed"
    assert "no quorum" in out.getvalue()
    assert f"--replay {failed[0]} --peers 5 --election fast --reconfig" in out.getvalue()


def test_notifications_carry_reconfigured_configurations_only_once_committed() -> None:
    """The checker looks at every notification's configuration; in reconfig schedules many
    carry a reconfigured one, each durable at quorums of the old and new voters when sent."""
    sims = [S.Simulation(S.params_for(seed, 3, "fast", reconfig=True), seed) for seed in range(20)]
    for sim in sims:
        sim.run()
    assert sum(sim.notified_reconfigs for sim in sims) > 100


def test_the_checker_catches_a_proposed_configuration_in_a_notification(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The deliberate bug: notifications carry the last logged configuration, committed or not
    # (what a LOOKING ZooKeeper member would adopt as committed).
    monkeypatch.setattr(P.Peer, "notified_config", property(lambda peer: render_membership(peer.latest)))
    out = io.StringIO()
    _, failed = S.soak(range(100), 3, "fast", out=out, reconfig=True)
    assert failed, "the bug went unnoticed"
    assert "in a notification before it committed" in out.getvalue()


def test_zookeepers_uptodate_step_would_commit_without_a_quorum(monkeypatch: pytest.MonkeyPatch) -> None:
    """Why a trizab learner does not make NEWLEADER's configuration its committed one at
    UPTODATE, as ZooKeeper's Learner.syncWithLeader does (docs/mixed-ensembles.md): with that
    step, seed 713 delivers a transaction only one voter of the configuration in force held."""
    S.run_schedule(713, 3, "fast", reconfig=True)  # as trizab is: fine
    step_sync, step_broadcast = P.Peer._step_sync_learner, P.Peer._step_broadcast_learner
    newleader_config: dict[int, bytes] = {}

    def sync(peer: P.Peer, f: Any, msg: Any) -> None:
        if isinstance(msg, NewLeader):
            newleader_config[id(peer)] = msg.config  # setLastSeenQuorumVerifier
        step_sync(peer, f, msg)

    def broadcast(peer: P.Peer, f: Any, msg: Any) -> None:
        step_broadcast(peer, f, msg)
        config = newleader_config.pop(id(peer), b"")
        if isinstance(msg, UpToDate) and config:
            peer._adopt_config(config)  # processReconfig(newLeaderQV)

    monkeypatch.setattr(P.Peer, "_step_sync_learner", sync)
    monkeypatch.setattr(P.Peer, "_step_broadcast_learner", broadcast)
    # (The notification check would catch it earlier, when the learner announces it.)
    monkeypatch.setattr(S.Simulation, "_check_notified_config", lambda sim, i, n: None)
    with pytest.raises(S.InvariantViolation, match="no quorum"):
        S.run_schedule(713, 3, "fast", reconfig=True)


@given(
    st.frozensets(st.integers(1, 9), min_size=1, max_size=5),
    st.frozensets(st.integers(10, 12), max_size=2),
    st.integers(0, 2**40),
)
def test_sim_reconfig_entries_are_config_texts_the_runtime_reads(
    voters: frozenset[int], observers: frozenset[int], version: int
) -> None:
    """One membership reader: a simulated reconfig is the prefix and a ``/zookeeper/config``
    text, read by the runtime's own ``config_membership``; a snapshot's is its last one."""
    m = Membership(voters, observers, version)
    entry = S.encode_config(m)
    assert S.config_membership(entry) == m == config_membership(entry[len(b"cfg:") :])
    assert S.config_membership(b"a client write") is None
    older = S.encode_config(Membership(frozenset({1}), frozenset(), 0))
    snap = pickle.dumps([(1, older), (2, b"w"), (3, entry), (4, b"x")])
    assert S.snapshot_membership(snap) == m
    assert S.snapshot_membership(pickle.dumps([(1, b"w")])) is None
