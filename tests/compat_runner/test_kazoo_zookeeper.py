"""testkit.kazoo_zookeeper: Apache ZooKeeper members in the kazoo harness's clusters (mixed ensembles)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from testkit import kazoo_zookeeper
from testkit.kazoo_zookeeper import ZooKeeperMember, parse_server_ids
from trizab.runtime.launcher import four_letter, member_mode
from trizab.testing import kazoo_harness


def test_parse_server_ids() -> None:
    assert parse_server_ids("1,2", 3) == {1, 2}
    assert parse_server_ids(" 3 ", 3) == {3}
    for text, size, why in (
        ("", 3, "at least one"),
        ("a", 3, "server ids like"),
        ("0,2", 3, "outside 1..3"),
        ("4", 3, "outside 1..3"),
        ("1,2,3", 3, "leave at least one"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_server_ids(text, size)


def test_factory_builds_zookeeper_members_for_the_chosen_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kazoo_harness, "MEMBER_FACTORY", None)
    kazoo_zookeeper.install({2})
    try:
        cluster = kazoo_harness.TrizabCluster(size=3, configuration_entries=["storage=txnlog", "a=b"])
    finally:
        kazoo_zookeeper.uninstall()
    try:
        assert [type(m).__name__ for m in cluster] == ["TrizabMember", "ZooKeeperMember", "TrizabMember"]
        zookeeper = cluster[1]
        assert isinstance(zookeeper, ZooKeeperMember)
        # One ensemble: the same server.N lines; the ports the cluster picked; no trizab-only line.
        assert zookeeper.quorum_lines == cluster[0].quorum_lines
        lines = zookeeper.process.config_lines
        assert f"clientPort={zookeeper.client_port}" in lines
        assert f"secureClientPort={zookeeper.secure_client_port}" in lines
        assert "admin.enableServer=false" in lines and "a=b" in lines
        assert not any(line.startswith("storage=") for line in lines)
        assert all(line in lines for line in cluster[0].quorum_lines)
        assert "-Dreadonlymode.enabled=true" in zookeeper.process.java_properties
        assert kazoo_harness.MEMBER_FACTORY is None
        assert type(kazoo_harness.TrizabCluster(size=1)[0]).__name__ == "TrizabMember"
    finally:
        cluster.terminate()


@pytest.fixture
def mixed_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[kazoo_harness.TrizabCluster]:
    monkeypatch.setattr(kazoo_harness, "MEMBER_FACTORY", None)
    kazoo_zookeeper.install({3})
    try:
        cluster = kazoo_harness.TrizabCluster(
            size=3, configuration_entries=kazoo_harness.cluster_configuration(dict(kazoo_harness.DEFAULTS))
        )
    finally:
        kazoo_zookeeper.uninstall()
    yield cluster
    cluster.terminate()


def _modes(cluster: kazoo_harness.TrizabCluster, deadline_s: float) -> list[str | None]:
    deadline = time.monotonic() + deadline_s
    while True:
        modes = [member_mode(m.client_port) for m in cluster]
        if sorted(map(str, modes)) == ["follower", "follower", "leader"] or time.monotonic() > deadline:
            return modes
        time.sleep(0.2)


def _zxid(member: Any) -> str:
    """The ``Zxid:`` line of ``srvr`` (what the member has applied)."""
    with contextlib.suppress(OSError):
        for line in four_letter(member.client_port, "srvr", 2.0).splitlines():
            if line.startswith("Zxid:"):
                return line
    return ""


@pytest.mark.apache
@pytest.mark.slow
def test_zookeeper_member_joins_the_trizab_members(mixed_cluster: kazoo_harness.TrizabCluster) -> None:
    cluster = mixed_cluster
    cluster.start()
    zookeeper = cluster[2]
    assert zookeeper.running and zookeeper.pid is not None
    assert "QuorumPeerMain" in Path(f"/proc/{zookeeper.pid}/cmdline").read_text()
    assert "QuorumPeerMain" not in Path(f"/proc/{cluster[0].pid}/cmdline").read_text()
    modes = _modes(cluster, 60)
    # Started last to first, as kazoo's harness does: 3 and 2 form the quorum, the higher id leads.
    assert modes == ["follower", "follower", "leader"], modes
    client = KazooClient(cluster[0].address, timeout=10)
    client.start(timeout=30)
    try:
        client.create("/through-trizab", b"v")
    finally:
        client.stop()
        client.close()
    # A trizab follower restarted under the ZooKeeper leader, with no write after it, applies what
    # it had logged (the leader's empty DIFF and UPTODATE commit it; before, it stayed at its
    # snapshot's state until the next write, and refused sessions that had seen more).
    cluster[0].stop()
    cluster[0].run()
    leader_zxid = _zxid(cluster[2])
    deadline = time.monotonic() + 20
    while _zxid(cluster[0]) != leader_zxid and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _zxid(cluster[0]) == leader_zxid
    # A restarted ZooKeeper member keeps its data and address, as kazoo's tests expect.
    zookeeper.stop()
    assert not zookeeper.running
    zookeeper.run()
    client = KazooClient(zookeeper.address, timeout=10)
    client.start(timeout=30)
    try:
        client.sync("/")
        assert client.get("/through-trizab")[0] == b"v"
    finally:
        client.stop()
        client.close()
    assert any("QuorumPeer" in line for line in zookeeper.get_logs(1000))
    zookeeper.reset()
    assert not any(zookeeper.process.data_dir.iterdir())
    zookeeper.destroy()
    assert not Path(zookeeper.working_path).exists()
