"""trizab's Prometheus names are Apache ZooKeeper 3.8's: checked against a real server's ``mntr``.

The Debian package has no Prometheus jar, but ZooKeeper 3.8's ``mntr`` prints the metric set
its Prometheus provider exports (``ServerMetrics`` and the gauges of ``ZooKeeperServer``),
with ``zk_`` in front and each summary ``X`` as ``avg_X/min_X/max_X/cnt_X/sum_X`` (plus
``p50_X``...).  Both servers get the same workload; every key the two ``mntr`` share must
be exported by trizab under ZooKeeper's name with ZooKeeper's type: a summary for the
summaries' keys, a counter for ``ServerMetrics``' counters, a gauge otherwise.  The names
ZooKeeper has and trizab does not export are printed (``-s`` shows them).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

from testkit import apache_zk
from testkit.process import TrizabProcess, free_port
from testkit.trizab_ensemble import TrizabEnsemble

pytestmark = [pytest.mark.apache, pytest.mark.timeout(180)]

PROMETHEUS = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"
SUMMARY_PREFIXES = ("avg_", "min_", "max_", "cnt_", "sum_", "p50_", "p95_", "p99_", "p999_")
# ServerMetrics' getCounter names in ZooKeeper 3.8 (mntr does not say which keys are counters).
ZK_COUNTERS = frozenset(
    """looking_count diff_count snap_count commit_count connection_request_count connection_rejected
    bytes_received_count unrecoverable_error_count add_dead_watcher_stall_time dead_watchers_queued
    dead_watchers_cleared response_packet_cache_hits response_packet_cache_misses
    response_packet_get_children_cache_hits response_packet_get_children_cache_misses
    ensemble_auth_success ensemble_auth_fail ensemble_auth_skip prep_processor_request_queued
    outstanding_changes_queued outstanding_changes_removed revalidate_count connection_drop_count
    connection_revalidate_count sessionless_connections_expired stale_sessions_expired
    request_commit_queued throttled_ops learner_proposal_received_count learner_commit_received_count
    sync_processor_request_queued proposal_count quit_leading_due_to_disloyal_voter stale_requests
    stale_requests_dropped stale_replies request_throttle_wait_count large_requests_rejected
    digest_mismatches_count unsuccessful_handshake insecure_admin_count tls_handshake_exceeded
    cnxn_closed_without_zk_server_running skip_learner_request_to_next_processor_count response_bytes
    watch_bytes""".split()
)
# What the task promises at least (each present in both servers' mntr and exported).
REQUIRED = {
    "znode_count",
    "watch_count",
    "ephemerals_count",
    "approximate_data_size",
    "num_alive_connections",
    "outstanding_requests",
    "packets_received",
    "packets_sent",
    "avg_latency",
    "min_latency",
    "max_latency",
    "readlatency",
    "updatelatency",
    "fsynctime",
    "snapshottime",
}


def _workload(address: str) -> None:
    client = KazooClient(hosts=address, timeout=15)
    client.start(timeout=15)
    try:
        client.create("/w")
        for i in range(10):
            client.create(f"/w/n{i}", b"v", ephemeral=i < 2)
            client.get(f"/w/n{i}", watch=lambda event: None)
        client.set("/w", b"x")
        client.get_children("/w")
        client.delete("/w/n9")
    finally:
        client.stop()
        client.close()


def _mntr(text: str) -> dict[str, str]:
    rows = dict(line.split("\t", 1) for line in text.splitlines() if "\t" in line)
    return {k.removeprefix("zk_"): v for k, v in rows.items() if k.startswith("zk_")}


@pytest.fixture(scope="module")
def zookeeper_mntr() -> Iterator[dict[str, str]]:
    apache_zk.require_available()  # fail, never skip: a skipped comparison proves nothing
    with apache_zk.ApacheZooKeeper() as zk:
        _workload(zk.address)
        yield _mntr(zk.four_letter_word("mntr"))


@pytest.fixture(scope="module")
def trizab_side(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, Any]]]:
    port = free_port()
    extra = [PROMETHEUS, f"metricsProvider.httpPort={port}"]
    with TrizabProcess(tmp_path_factory.mktemp("trizab"), extra_config=extra, storage="txnlog") as server:
        _workload(server.address)
        mntr = _mntr(server.command("mntr"))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
        yield mntr, families


def _zk_summaries(keys: set[str]) -> set[str]:
    return {k.removeprefix("cnt_") for k in keys if k.startswith("cnt_")}


def _exported_as(name: str, summaries: set[str]) -> tuple[str, str]:
    """(Prometheus family, ZooKeeper's type) of the mntr key ``name``."""
    for prefix in SUMMARY_PREFIXES:
        if name.startswith(prefix) and name.removeprefix(prefix) in summaries:
            return name.removeprefix(prefix), "summary"
    return name, "counter" if name in ZK_COUNTERS else "gauge"


def test_shared_mntr_names_are_exported_with_zookeepers_names_and_types(
    zookeeper_mntr: dict[str, str], trizab_side: tuple[dict[str, str], dict[str, Any]]
) -> None:
    trizab_mntr, families = trizab_side
    summaries = _zk_summaries(set(zookeeper_mntr))
    shared = set(zookeeper_mntr) & set(trizab_mntr) - {"version", "server_state"}  # dumpMonitorValues' text
    wrong = []
    for key in sorted(shared):
        family, zk_type = _exported_as(key, summaries)
        found = families.get(family)
        if found is None or found.type != zk_type:
            wrong.append(f"{key}: ZooKeeper exports {family} as a {zk_type}; trizab: {found and found.type}")
    assert not wrong, "\n".join(wrong)
    covered = {_exported_as(key, summaries)[0] for key in shared}
    assert REQUIRED <= covered, sorted(REQUIRED - covered)
    missing = sorted({_exported_as(k, summaries)[0] for k in set(zookeeper_mntr) - set(trizab_mntr)})
    print(f"ZooKeeper 3.8 metrics trizab does not export ({len(missing)}): {', '.join(missing)}")


def test_summaries_count_the_same_workload(
    zookeeper_mntr: dict[str, str], trizab_side: tuple[dict[str, str], dict[str, Any]]
) -> None:
    # Counts are not timings: the same requests give the same cnt_ on both servers for the
    # latencies (readlatency: the gets, exists and children; updatelatency: the writes).
    trizab_mntr, families = trizab_side
    for name in ("readlatency", "updatelatency"):
        count = next(s.value for s in families[name].samples if s.name == f"{name}_count")
        assert int(count) == int(trizab_mntr[f"cnt_{name}"])
        assert int(trizab_mntr[f"cnt_{name}"]) == int(zookeeper_mntr[f"cnt_{name}"]), name
    # One snapshot each: the one both write at start-up into an empty dataDir.
    assert int(trizab_mntr["cnt_snapshottime"]) == int(zookeeper_mntr["cnt_snapshottime"]) == 1
    assert int(trizab_mntr["znode_count"]) == int(zookeeper_mntr["znode_count"])
    assert int(trizab_mntr["watch_count"]) == int(zookeeper_mntr["watch_count"])


def _wait_for_leader(ensemble: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while (leader := ensemble.leader()) is None:
        assert time.monotonic() < deadline, "no leader"
        time.sleep(0.1)
    return leader


def test_an_ensemble_leaders_names_and_types(tmp_path_factory: pytest.TempPathFactory) -> None:
    # The member-only keys (quorum_size on every member, the learner counts on the leader).
    apache_zk.require_available()
    with apache_zk.ApacheEnsemble(3, workdir=tmp_path_factory.mktemp("zk")) as zk:
        leader = _wait_for_leader(zk)
        _workload(leader.address)
        zookeeper = _mntr(leader.four_letter_word("mntr"))
    ensemble = TrizabEnsemble(
        3, storage="memory", extra_config=[PROMETHEUS], workdir=tmp_path_factory.mktemp("tz")
    )
    ports = {}
    for member in ensemble.members:  # a /metrics port of its own for each member
        ports[member.sid] = free_port()
        with member.config.open("a") as f:
            f.write(f"metricsProvider.httpPort={ports[member.sid]}\n")
    with ensemble as ens:
        leader = _wait_for_leader(ens)
        _workload(leader.address)
        trizab = _mntr(leader.four_letter_word("mntr"))
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[leader.sid]}/metrics", timeout=10) as resp:
            families = {f.name: f for f in text_string_to_metric_families(resp.read().decode())}
    member_keys = {"quorum_size", "synced_followers", "learners", "pending_syncs", "synced_observers"}
    assert member_keys <= set(zookeeper) & set(trizab)
    summaries = _zk_summaries(set(zookeeper))
    for key in sorted(set(zookeeper) & set(trizab) - {"version", "server_state"}):
        family, zk_type = _exported_as(key, summaries)
        assert family in families and families[family].type == zk_type, key
    assert families["election_time"].type == "summary"
    assert int(trizab["synced_followers"]) == int(zookeeper["synced_followers"]) == 2
