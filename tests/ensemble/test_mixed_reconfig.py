"""Reconfiguration in a mixed ensemble while a member of the other implementation runs.

Member 3 leads (the highest id wins an election of equal histories), member 1 runs the other
implementation and stays up throughout, member 2 runs the leader's implementation and is the
one reconfigured: removed, added back, then made an observer.  After each step every running
member shows the same ``/zookeeper/config`` (text and Stat), the same membership in ``conf``,
member 1 still follows the same leader without a new election, and a write through member 1
reaches every member.

``/zookeeper/config``'s Stat is ZooKeeper's: ``ZKDatabase.initConfigInZKDatabase`` installs
the configuration with version -1, the configuration's version as mzxid and the wall time as
mtime; a reconfig is a setData with version -1 (``PrepRequestProcessor``), so after one every
member shows the reconfig's zxid and the leader's time for it.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.protocol.states import ZnodeStat

from testkit.apache_zk import ApacheZooKeeper
from testkit.rolling_ensemble import HOST, Kind, RollingEnsemble, Slot
from testkit.rolling_migration import RECONFIG_CONFIG, SUPER_PASSWORD, SUPER_USER
from tests.ensemble.test_mixed_apache import wait_until
from trizab.testing.process import TrizabProcess

pytestmark = [pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(420)]

START_S = 90.0
CONVERGE_S = 60.0
HOUR_MS = 3_600_000

_ZK_TOOK = re.compile(r"(LEADING|FOLLOWING|OBSERVING) - LEADER ELECTION TOOK")
_TRIZAB_DECIDED = re.compile(r"member \d+: (leading|following|observing) \(leader \d+")


def connect(slot: Slot, **kw: Any) -> KazooClient:
    c = KazooClient(hosts=slot.address, timeout=10.0, **kw)
    c.start(timeout=30)
    return c


def config_of(slot: Slot) -> tuple[bytes, ZnodeStat]:
    c = connect(slot)
    try:
        c.sync("/")
        data, stat = c.get("/zookeeper/config")
        return data, stat
    finally:
        c.stop()
        c.close()


def membership(slot: Slot) -> list[str]:
    """The ``server.N=`` and ``version=`` lines of ``conf``'s membership section."""
    _, sep, rest = slot.four_letter_word("conf").partition("membership:")
    if not sep:
        return []
    return [line.strip() for line in rest.splitlines() if line.strip().startswith(("server.", "version="))]


def decisions(slot: Slot) -> int:
    """How many election decisions the program now running in ``slot`` has logged."""
    assert slot.kind is not None
    pattern = _ZK_TOOK if slot.kind == "zookeeper" else _TRIZAB_DECIDED
    return len(pattern.findall(slot.program_log(slot.kind)))


def lead_with(ens: RollingEnsemble, sid: int) -> None:
    """Make ``sid`` (the highest id) lead: a member slow to start may find the others formed
    without it; stopping the leader re-elects among equal histories, where the highest id wins."""
    for _ in range(3):
        leader = wait_until(ens.leader, START_S, "one leader")
        if leader.sid == sid:
            return
        kind = leader.kind
        leader.stop()
        wait_until(ens.leader, START_S, "a leader without the stopped one")
        leader.start(kind)
        ens.wait_one_ensemble(START_S)
    raise AssertionError(f"member {sid} does not lead: {ens.kinds()}")


def check_static_stat(data: bytes, stat: ZnodeStat) -> None:
    """A configuration no reconfig wrote: as ``initConfigInZKDatabase`` installed it."""
    assert (stat.version, stat.czxid, stat.ctime, stat.pzxid) == (-1, 0, 0, 0), stat
    assert stat.mzxid == version_of(data), stat
    assert (stat.cversion, stat.aversion, stat.ephemeralOwner, stat.numChildren) == (0, -1, 0, 0), stat
    assert stat.dataLength == len(data) > 0, stat
    assert abs(stat.mtime - time.time() * 1000) < HOUR_MS, stat  # the wall time it was installed


def version_of(text: bytes) -> int:
    return int(text.decode().rsplit("version=", 1)[1], 16)


def agree(ens: RollingEnsemble, want_text: bytes, want_stat: ZnodeStat, sids: list[int]) -> None:
    """Every member in ``sids`` shows ``want_text`` with ``want_stat`` and its membership."""
    lines = want_text.decode().splitlines()
    want_members = [line for line in lines if line.startswith(("server.", "version="))]
    assert want_stat.version == -1 and want_stat.mzxid == version_of(want_text), want_stat
    assert want_stat.dataLength == len(want_text), want_stat
    for sid in sids:
        slot = ens[sid]
        wait_until(lambda s=slot: config_of(s)[0] == want_text, CONVERGE_S, f"{slot.describe()}'s config")
        _, stat = config_of(slot)
        assert stat == want_stat, (slot.describe(), stat, want_stat)
        wait_until(
            lambda s=slot: membership(s) == want_members,
            CONVERGE_S,
            f"{slot.describe()}'s conf membership to be {want_members} (has {membership(slot)})",
        )


def write_through(slot: Slot, path: str, readers: list[Slot]) -> None:
    c = connect(slot)
    try:
        c.ensure_path("/t")
        c.create(path, slot.describe().encode())
    finally:
        c.stop()
        c.close()
    for reader in readers:
        rc = connect(reader)
        try:
            rc.sync("/")
            assert rc.exists(path) is not None, f"{path} not on {reader.describe()}"
        finally:
            rc.stop()
            rc.close()


def modes(ens: RollingEnsemble, want: dict[int, str]) -> bool:
    return all(ens[sid].mode() == mode for sid, mode in want.items())


@pytest.mark.parametrize(
    "kinds",
    [("zookeeper", "trizab", "trizab"), ("trizab", "zookeeper", "zookeeper")],
    ids=["trizab-leader-zookeeper-follower", "zookeeper-leader-trizab-follower"],
)
def test_a_running_follower_of_the_other_kind_follows_the_leaders_reconfigs(
    tmp_path: Any, kinds: tuple[Kind, Kind, Kind]
) -> None:
    with RollingEnsemble(3, workdir=tmp_path, extra_config=RECONFIG_CONFIG) as ens:
        ens.start(list(kinds), timeout=START_S)
        lead_with(ens, 3)
        other, moved, leader = ens[1], ens[2], ens[3]
        start_text, _ = config_of(leader)
        for slot in ens.slots:
            data, stat = config_of(slot)
            assert data == start_text, (slot.describe(), data, start_text)
            check_static_stat(data, stat)
        # A ZooKeeper leader renumbers the static configuration to its NEWLEADER zxid once
        # established (ZOOKEEPER-1783), and every follower, the trizab one included, takes that
        # (the loop above); a trizab leader keeps version 0 (docs/mixed-ensembles.md).
        assert (version_of(start_text) == 0) == (kinds[2] == "trizab"), start_text
        elected = decisions(other)
        moved_line = next(line for line in ens.server_lines if line.startswith("server.2="))
        admin = connect(leader, auth_data=[("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")])
        try:
            # 1. Remove member 2; it is stopped, as an operator would.
            text, stat = admin.reconfig(joining=None, leaving="2", new_members=None)
            assert b"server.2=" not in text and version_of(text) > 0, text
            moved.stop()
            wait_until(lambda: modes(ens, {1: "follower", 3: "leader"}), CONVERGE_S, "1 follows 3")
            agree(ens, text, stat, [1, 3])
            write_through(other, "/t/after-remove", [leader])

            # 2. Add it back: started again with its zoo.cfg, then joined by reconfig.
            moved.start(kinds[1])
            text, stat = admin.reconfig(
                joining=f"{moved_line};{HOST}:{moved.client_port}", leaving=None, new_members=None
            )
            assert f"server.2={moved_line.split('=', 1)[1]}".encode() in text, text
            voters = {1: "follower", 2: "follower", 3: "leader"}
            wait_until(lambda: modes(ens, voters), CONVERGE_S, "3 voters")
            agree(ens, text, stat, [1, 2, 3])
            write_through(other, "/t/after-add", [leader, moved])

            # 3. Member 2 becomes an observer.
            observer_line = moved_line.replace(":participant", ":observer")
            text, stat = admin.reconfig(
                joining=f"{observer_line};{HOST}:{moved.client_port}", leaving=None, new_members=None
            )
            assert observer_line.split("=", 1)[1].encode() in text, text
            observing = {1: "follower", 2: "observer", 3: "leader"}
            wait_until(lambda: modes(ens, observing), CONVERGE_S, "2 observes")
            agree(ens, text, stat, [1, 3])
            # The observer re-synced as one (ZooKeeper's learner installs its configuration again
            # after a sync, with the time of that sync): the same text and zxids, its own mtime.
            data, observed = config_of(moved)
            assert data == text
            assert (observed.mzxid, observed.version, observed.dataLength) == (stat.mzxid, -1, len(text))
            write_through(other, "/t/after-role-change", [leader, moved])
        finally:
            admin.stop()
            admin.close()
        assert decisions(other) == elected, f"{other.describe()} ran a new election:\n{other.tail()}"
        assert other.mode() == "follower"


def test_a_standalone_servers_config_node_is_zookeepers(tmp_path: Any) -> None:
    """``ZooKeeperServerMain`` never installs a configuration: the node ``DataTree.addConfigNode``
    made stays empty, its Stat all zero but ``aversion`` -1 (its READ ACL was set with -1)."""
    with (
        ApacheZooKeeper(workdir=tmp_path / "zookeeper") as zookeeper,
        TrizabProcess(tmp_path / "trizab", storage="memory") as trizab,
    ):
        seen = {}
        for name, address in (("zookeeper", zookeeper.address), ("trizab", trizab.address)):
            c = KazooClient(hosts=address, timeout=10.0)
            c.start(timeout=30)
            try:
                seen[name] = c.get("/zookeeper/config")
            finally:
                c.stop()
                c.close()
    assert seen["zookeeper"] == (b"", ZnodeStat(0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 0)), seen
    assert seen["trizab"] == seen["zookeeper"]
