"""A learner keeps its own server lines after a SNAP until a reconfig (version > 0) replaces them."""

from __future__ import annotations

from trizab.config import QuorumServer
from trizab.server.core import CoreConfig
from trizab.server.replica import CONFIG_PATH, Mode, ReplicaCore, render_config
from trizab.storage import Recovered

T0 = 1_700_000_000_000


def _servers(ports: dict[int, int]) -> dict[int, QuorumServer]:
    return {sid: QuorumServer(sid, "127.0.0.1", port, port + 1) for sid, port in ports.items()}


def _snapshot_of_leader(leader_view: dict[int, QuorumServer], version: int) -> bytes:
    leader = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=1), now_ms=T0)
    leader.init_ensemble(leader_view, 1, 2181, T0)
    node = leader.tree.nodes[CONFIG_PATH]
    node.data = render_config(leader_view, version)
    return leader.snapshot()


def test_learner_keeps_its_own_view_after_a_snap_of_version_0() -> None:
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    leaders = _servers({1: 6000, 2: 6010, 3: 6020})  # the leader reaches us elsewhere
    learner = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    learner.init_ensemble(mine, 2, 2182, T0)
    learner.load(Recovered(_snapshot_of_leader(leaders, 0), 0, [], 0, 0))
    learner.init_ensemble(mine, 2, 2182, T0)
    assert learner.ensemble == mine
    assert learner.tree.nodes[CONFIG_PATH].data == render_config(mine, 0)


def test_learner_takes_a_reconfigured_view_from_the_snap() -> None:
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    reconfigured = _servers({1: 5000, 2: 5010})
    learner = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    learner.init_ensemble(mine, 2, 2182, T0)
    learner.load(Recovered(_snapshot_of_leader(reconfigured, 0x100000003), 0, [], 0, 0))
    learner.init_ensemble(mine, 2, 2182, T0)
    assert learner.ensemble == reconfigured
    assert learner.config_version == 0x100000003


def _config_stat(core: ReplicaCore) -> tuple[int, int, int, int, int, int]:
    st = core.tree.nodes[CONFIG_PATH].stat()
    return st.czxid, st.mzxid, st.ctime, st.mtime, st.version, st.data_length


def test_the_config_node_is_installed_as_zookeeper_installs_it() -> None:
    """ZKDatabase.initConfigInZKDatabase: setData(version -1, mzxid = the configuration's
    version, mtime = the wall time) on the node DataTree.addConfigNode made."""
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    core = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=1), now_ms=T0)
    core.init_ensemble(mine, 1, 2181, T0 + 5)
    text = render_config(mine, 0)
    assert _config_stat(core) == (0, 0, 0, T0 + 5, -1, len(text))
    st = core.tree.nodes[CONFIG_PATH].stat()
    assert (st.cversion, st.aversion, st.ephemeral_owner, st.num_children, st.pzxid) == (0, -1, 0, 0, 0)


def test_a_restart_keeps_the_install_and_a_snap_installs_again() -> None:
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    first = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    first.init_ensemble(mine, 2, 2182, T0)
    restarted = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0 + 60_000)
    restarted.load(Recovered(first.snapshot(), 0, [], 0, 0))
    restarted.init_ensemble(mine, 2, 2182, T0 + 60_000)
    assert _config_stat(restarted) == _config_stat(first)  # the install time from its snapshot
    restarted.load(Recovered(first.snapshot(), 0, [], 0, 0))  # a SNAP from the leader
    restarted.init_ensemble(mine, 2, 2182, T0 + 90_000, reinstall=True)
    assert _config_stat(restarted)[3:5] == (T0 + 90_000, -1)  # Learner.syncWithLeader installs again


def test_a_learner_takes_zookeepers_renumbering_of_the_static_config_at_uptodate() -> None:
    """ZOOKEEPER-1783: a ZooKeeper leader's established version-0 config gets the NEWLEADER zxid
    as its version; a learner takes that renumbering, and only that, when it is in sync."""
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    renumbered = render_config(mine, 0x200000000)
    # Without reconfigEnabled, ZooKeeper's processReconfig takes nothing; nor do we.
    fixed = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2), now_ms=T0)
    fixed.init_ensemble(mine, 2, 2182, T0)
    fixed.newleader_config(renumbered)
    fixed.set_mode(Mode.LEARNER, T0 + 1)
    assert fixed.config_version == 0 and fixed.tree.nodes[CONFIG_PATH].data == render_config(mine, 0)
    learner = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2, reconfig_enabled=True), now_ms=T0)
    learner.init_ensemble(mine, 2, 2182, T0)
    # A leader's text with other members (a reconfig it has only proposed) is not taken.
    learner.newleader_config(render_config(_servers({1: 5000, 2: 5010}), 0x100000000))
    learner.set_mode(Mode.LEARNER, T0 + 1)
    assert learner.config_version == 0 and learner.tree.nodes[CONFIG_PATH].data == render_config(mine, 0)
    learner.set_mode(Mode.OFF, T0 + 2)
    learner.newleader_config(renumbered)
    learner.set_mode(Mode.LEARNER, T0 + 3)
    assert learner.config_version == 0x200000000 and learner.ensemble == mine
    assert learner.tree.nodes[CONFIG_PATH].data == renumbered
    assert _config_stat(learner) == (0, 0x200000000, 0, T0 + 3, -1, len(renumbered))
    assert learner.ready().ensemble_changed


def test_a_newleader_text_that_does_not_parse_changes_nothing() -> None:
    mine = _servers({1: 5000, 2: 5010, 3: 5020})
    learner = ReplicaCore(CoreConfig(tick_time_ms=2000, server_id=2, reconfig_enabled=True), now_ms=T0)
    learner.init_ensemble(mine, 2, 2182, T0)
    learner.newleader_config(render_config(mine, 0).replace(b"version=0", b"version=zz"))
    learner.set_mode(Mode.LEARNER, T0 + 1)
    assert learner.config_version == 0 and learner.tree.nodes[CONFIG_PATH].data == render_config(mine, 0)
