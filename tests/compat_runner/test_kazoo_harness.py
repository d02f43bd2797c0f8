"""trizab.testing.kazoo_harness behaves like kazoo's ZookeeperCluster, with trizab processes as members."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from trizab.testing import kazoo_harness


@pytest.fixture
def fresh_global(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(kazoo_harness, "CLUSTER", None)
    monkeypatch.setattr(kazoo_harness, "CLUSTER_CONF", None)
    for key in kazoo_harness.CONF_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("ZOOKEEPER_CLUSTER_SIZE", "1")  # kazoo's default is 3; one is enough here
    yield
    if kazoo_harness.CLUSTER is not None:
        kazoo_harness.CLUSTER.terminate()


def _client(address: str) -> KazooClient:
    client = KazooClient(address, timeout=10)
    client.start(timeout=15)
    return client


def test_member_restart_keeps_data_and_address(fresh_global: None) -> None:
    cluster = kazoo_harness.get_global_cluster()
    assert len(cluster) == 1
    cluster.start()
    member = cluster[0]
    assert member.running
    client = _client(member.address)
    try:
        client.create("/kept", b"v")
    finally:
        client.stop()
        client.close()
    member.stop()
    assert not member.running
    member.run()  # same port, same dataDir (txnlog storage by default, like ZooKeeper's disk)
    client = _client(member.address)
    try:
        assert client.get("/kept")[0] == b"v"
    finally:
        client.stop()
        client.close()
    assert cluster.get_logs(), "the server log is readable through get_logs()"


def test_same_env_same_cluster_changed_env_rebuilds(
    fresh_global: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = kazoo_harness.get_global_cluster()
    assert kazoo_harness.get_global_cluster() is first
    first.start()
    pid = first[0].pid
    assert pid is not None
    monkeypatch.setenv("ZOOKEEPER_LOCAL_SESSION_RO", "true")
    second = kazoo_harness.get_global_cluster()
    assert second is not first
    # The old cluster was terminated: its process is gone and its working directory removed.
    assert not first[0].running
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert not Path(first[0].working_path).exists()


def test_reset_wipes_data(fresh_global: None) -> None:
    cluster = kazoo_harness.get_global_cluster()
    cluster.start()
    client = _client(cluster[0].address)
    try:
        client.create("/gone", b"")
    finally:
        client.stop()
        client.close()
    cluster.reset()
    cluster.start()
    client = _client(cluster[0].address)
    try:
        assert client.exists("/gone") is None
    finally:
        client.stop()
        client.close()


def test_configuration_mirrors_kazoo_harness() -> None:
    lines = kazoo_harness.cluster_configuration(
        {"ZOOKEEPER_LOCAL_SESSION_RO": "true", "TRIZAB_STORAGE": "memory", "ZOOKEEPER_CLUSTER_SIZE": "1"}
    )
    assert "4lw.commands.whitelist=*" in lines
    assert "localSessionsEnabled=true" in lines
    assert "storage=memory" in lines


def test_default_size_is_kazoos(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kazoo_harness, "CLUSTER", None)
    monkeypatch.setattr(kazoo_harness, "CLUSTER_CONF", None)
    monkeypatch.delenv("ZOOKEEPER_CLUSTER_SIZE", raising=False)
    cluster = kazoo_harness.get_global_cluster()  # built, not started: no process yet
    try:
        assert len(cluster) == 3
        assert all(not member.running for member in cluster)
    finally:
        cluster.terminate()
