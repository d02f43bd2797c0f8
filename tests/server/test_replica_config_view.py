"""A learner keeps its own server lines after a SNAP until a reconfig (version > 0) replaces them."""

from __future__ import annotations

from trizab.config import QuorumServer
from trizab.server.core import CoreConfig
from trizab.server.replica import CONFIG_PATH, ReplicaCore, render_config
from trizab.storage import Recovered

T0 = 1_700_000_000_000


def _servers(ports: dict[int, int]) -> dict[int, QuorumServer]:
    return {sid: QuorumServer(sid, "127.0.0.1", port, port + 1) for sid, port in ports.items()}


def _snapshot_of_leader(leader_view: dict[int, QuorumServer], version: int) -> bytes:
    leader = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=1), now_ms=T0)
    leader.init_ensemble(leader_view, 1, 2181)
    node = leader.tree.nodes[CONFIG_PATH]
    node.data = render_config(leader_view, version)
    return leader.snapshot()


def test_learner_keeps_its_own_view_after_a_snap_of_version_0() -> None:
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    leaders = _servers({1: 6000, 2: 6010, 3: 6020})  # the leader reaches us elsewhere
    learner = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    learner.init_ensemble(mine, 2, 2182)
    learner.load(Recovered(_snapshot_of_leader(leaders, 0), 0, [], 0, 0))
    learner.init_ensemble(mine, 2, 2182)
    assert learner.ensemble == mine
    assert learner.tree.nodes[CONFIG_PATH].data == render_config(mine, 0)


def test_learner_takes_a_reconfigured_view_from_the_snap() -> None:
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    reconfigured = _servers({1: 5000, 2: 5010})
    learner = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    learner.init_ensemble(mine, 2, 2182)
    learner.load(Recovered(_snapshot_of_leader(reconfigured, 0x100000003), 0, [], 0, 0))
    learner.init_ensemble(mine, 2, 2182)
    assert learner.ensemble == reconfigured
    assert learner.config_version == 0x100000003
