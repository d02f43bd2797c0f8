"""``trizab serve`` with the Prometheus keys, scraped over HTTP: standalone and a 3-member ensemble."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from testkit.process import TrizabProcess, free_port
from testkit.trizab_ensemble import TrizabEnsemble

pytestmark = pytest.mark.timeout(120)

PROMETHEUS = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"


def scrape(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        body = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(body)}


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    for s in families[name].samples:
        if s.name == (sample or name) and s.labels == labels:
            return float(s.value)
    raise KeyError((name, sample, labels))


def wait_for(check: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)


def test_standalone_txnlog_scrape(tmp_path: Path) -> None:
    port = free_port()
    nodes, sessions = 30, 3
    extra = [PROMETHEUS, f"metricsProvider.httpPort={port}"]
    with TrizabProcess(tmp_path / "s", extra_config=extra, storage="txnlog") as server:
        before = scrape(port)
        clients = [KazooClient(hosts=server.address, timeout=10) for _ in range(sessions)]
        try:
            for c in clients:
                c.start(timeout=10)
            for i in range(nodes):
                clients[0].create(f"/p{i}", b"v")
                clients[1].exists(f"/p{i}", watch=lambda event: None)
            after = scrape(port)
        finally:
            for c in clients:
                c.stop()
                c.close()
    assert value(after, "znode_count") == value(before, "znode_count") + nodes
    assert value(after, "watch_count") == nodes
    assert value(after, "num_alive_connections") == sessions
    assert value(after, "updatelatency", "updatelatency_count") >= nodes
    assert value(after, "readlatency", "readlatency_count") >= nodes
    # The txnlog engine syncs each batch: fsynctime and the batch sizes count them.
    syncs = value(after, "fsynctime", "fsynctime_count")
    assert syncs >= 1
    assert value(after, "trizab_group_commit_batch_size", "trizab_group_commit_batch_size_count") == syncs
    assert value(after, "trizab_group_commit_batch_size", "trizab_group_commit_batch_size_sum") >= nodes
    assert value(after, "trizab_storage_engine_info", engine="txnlog") == 1
    assert value(after, "snapshottime", "snapshottime_count") == 1  # the fresh dataDir's initial one
    assert value(after, "trizab_storage_background_sync") in (0, 1)
    assert "trizab_storage_fsync_helpers" in after


def test_a_taken_metrics_port_fails_start_up_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "zoo.cfg"
        lines = [f"dataDir={tmp_path / 'data'}", f"clientPort={free_port()}", PROMETHEUS]
        config.write_text("\n".join([*lines, f"metricsProvider.httpPort={port}"]) + "\n")
        done = subprocess.run(
            [sys.executable, "-m", "trizab", "serve", "--config", str(config), "--log-level", "ERROR"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert f"Prometheus metrics: cannot listen on 127.0.0.1:{port}" in last, done.stderr
    assert "Traceback" not in done.stderr


def metrics_ensemble(workdir: Path) -> tuple[TrizabEnsemble, dict[int, int]]:
    """A 3-member ensemble (not started) whose members serve /metrics, each on a port of its own."""
    ensemble = TrizabEnsemble(3, tick_time=200, storage="memory", extra_config=[PROMETHEUS], workdir=workdir)
    ports = {}
    for member in ensemble.members:
        ports[member.sid] = free_port()
        with member.config.open("a") as f:
            f.write(f"metricsProvider.httpPort={ports[member.sid]}\n")
    return ensemble, ports


def test_ensemble_members_export_their_roles(tmp_path: Path) -> None:
    nodes, sessions = 10, 3
    ensemble, ports = metrics_ensemble(tmp_path)
    with ensemble as ens:
        clients = [KazooClient(hosts=m.address, timeout=10) for m in ens.members[:sessions]]
        try:
            for c in clients:
                c.start(timeout=10)
            for i in range(nodes):
                clients[0].create(f"/e{i}", ephemeral=i == 0)
            clients[0].sync("/")
            wait_for(
                lambda: (
                    len({value(scrape(p), "znode_count") for p in ports.values()}) == 1
                    and all(value(scrape(p), "ephemerals_count") == 1 for p in ports.values())
                ),
                "every member has the writes",
            )
            fams = {sid: scrape(p) for sid, p in ports.items()}
            leader = ens.leader()  # after the scrapes: its srvr is a client connection too
            assert leader is not None
        finally:
            for c in clients:
                c.stop()
                c.close()
    for sid, f in fams.items():
        assert value(f, "quorum_size") == 3, sid
        assert value(f, "election_time", "election_time_count") >= 1, sid
        assert f["election_time"].type == "summary"
        assert value(f, "num_alive_connections") == 1, sid  # one client on each member
        assert value(f, "ephemerals_count") == 1, sid
        [info] = f["trizab_server_info"].samples
        assert info.labels["server_state"] == ("leader" if sid == leader.sid else "follower"), sid
    on_leader = fams[leader.sid]
    assert value(on_leader, "synced_followers") == 2
    assert value(on_leader, "learners") == 2
    assert value(on_leader, "pending_syncs") == 0
    followers = [f for sid, f in fams.items() if sid != leader.sid]
    assert all("synced_followers" not in f and "learners" not in f for f in followers)
    # A write is counted as an update where its client is connected: on member 1.
    assert value(fams[1], "updatelatency", "updatelatency_count") >= nodes
