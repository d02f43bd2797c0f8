"""The Prometheus endpoint and the summaries behind it: counts, quantiles, names, types, values.

The distribution is checked against a "dumb alternative" (a sorted list); the endpoint
against an in-process server (memory engine) driven by kazoo over loopback, scraped over
HTTP and parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import math
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families
from trizab.frontend import fourletter
from trizab.plugins.storage.memory import MemoryStoragePlugin

from trizab import config as cfg
from trizab.runtime.admin import trizab_version
from trizab.runtime.disk import StartupError
from trizab.runtime.launcher import four_letter
from trizab.runtime.server import Server
from trizab.server.distribution import EXACT, UPDATE_OPCODES, Distribution, ElectionTimer
from trizab.wire.codes import OpCode

PROMETHEUS = "metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider"

# -- the distribution ------------------------------------------------------------------


def _dumb_quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@given(st.lists(st.integers(0, 5000), min_size=1, max_size=200), st.sampled_from([0.5, 0.9, 0.95, 0.99]))
def test_distribution_agrees_with_a_sorted_list(values: list[int], q: float) -> None:
    d = Distribution("x", detailed=True)
    for v in values:
        d.record(v)
    assert (d.count, d.total, d.max) == (len(values), sum(values), max(values))
    small = min(values)
    assert d.min == small if small < EXACT else 1 << (small.bit_length() - 1) <= d.min <= small
    [(_, got)] = d.quantiles(0.0, (q,))
    want = _dumb_quantile(values, q)
    if want < EXACT:
        assert got == want
    else:  # a bucket per power of two above EXACT: never below, less than twice the value
        assert want <= got < 2 * want


def test_negative_values_count_as_zero_and_an_empty_summary_has_no_quantiles() -> None:
    d = Distribution("x")
    assert [v for _, v in d.quantiles(0.0)] and all(math.isnan(v) for _, v in d.quantiles(0.0))
    d.record(-3)
    assert (d.count, d.total, d.min, d.max) == (1, 0, 0, 0)


def test_quantiles_cover_the_last_ten_minutes_while_count_and_sum_keep_everything() -> None:
    d = Distribution("x", window_s=600)
    d.quantiles(0.0)  # a scrape at t=0
    d.record(5)
    for t in range(120, 721, 120):  # a scrape every two minutes
        if t == 600:
            d.record(100)
        got = d.quantiles(float(t))
    assert got == [(0.5, 100.0)]  # the 5 ms at t=0 has left the window
    assert (d.count, d.total) == (2, 105)


def test_mntr_rows_are_the_default_providers_keys() -> None:
    d = Distribution("readlatency", detailed=True)
    for v in (1, 2, 6):
        d.record(v)
    rows = dict(d.mntr_rows(0.0))
    assert list(rows) == [
        "avg_readlatency",
        "min_readlatency",
        "max_readlatency",
        "cnt_readlatency",
        "sum_readlatency",
        "p50_readlatency",
        "p95_readlatency",
        "p99_readlatency",
        "p999_readlatency",
    ]
    assert (rows["avg_readlatency"], rows["min_readlatency"], rows["max_readlatency"]) == (3.0, 1, 6)
    assert (rows["cnt_readlatency"], rows["sum_readlatency"], rows["p50_readlatency"]) == (3, 9, 2)
    assert [k for k, _ in Distribution("fsynctime").mntr_rows(0.0)][-1] == "sum_fsynctime"


def test_election_time_runs_from_looking_to_a_role() -> None:
    timer = ElectionTimer()
    timer.looking(True, 10.0)
    timer.looking(True, 11.0)  # still looking: the start stays
    timer.looking(False, 10.25 + 1)
    timer.looking(False, 20.0)  # not looking: nothing to record
    assert (timer.election_time.count, timer.election_time.total) == (1, 1250)


def test_update_opcodes_are_the_ones_with_a_txn() -> None:
    assert int(OpCode.SET_DATA) in UPDATE_OPCODES and int(OpCode.CLOSE_SESSION) in UPDATE_OPCODES
    assert int(OpCode.GET_DATA) not in UPDATE_OPCODES and int(OpCode.PING) not in UPDATE_OPCODES


# -- the endpoint, in process ----------------------------------------------------------


def _config(*lines: str) -> cfg.ServerConfig:
    return cfg.parse("\n".join(["clientPort=0", "4lw.commands.whitelist=*", *lines]) + "\n")


def scrape(port: int, path: str = "/metrics") -> tuple[str, dict[str, Any]]:
    """(Content-Type, {family name: family}) of one GET."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        body = resp.read().decode()
        content_type = resp.headers["Content-Type"]
    return content_type, {f.name: f for f in text_string_to_metric_families(body)}


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    for s in families[name].samples:
        if s.name == (sample or name) and s.labels == labels:
            return float(s.value)
    raise KeyError((name, sample, labels))


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


async def _running(nursery: trio.Nursery, config: cfg.ServerConfig) -> tuple[Server, int]:
    server = Server(config, storage=MemoryStoragePlugin())
    [(_, client_port)] = await nursery.start(server.run)
    return server, client_port


def _workload(client_port: int, nodes: int, sessions: int) -> list[KazooClient]:
    """``sessions`` clients; the first creates ``nodes`` nodes (3 ephemeral) under /m and
    reads each with a watch, the second sets 2 exists watches."""
    clients = [KazooClient(hosts=f"127.0.0.1:{client_port}", timeout=10) for _ in range(sessions)]
    for c in clients:
        c.start(timeout=10)
    first, second = clients[0], clients[1]
    first.create("/m")
    for i in range(nodes):
        first.create(f"/m/n{i}", b"x" * i, ephemeral=i < 3)
    for i in range(nodes):
        first.get(f"/m/n{i}", watch=lambda event: None)
    second.exists("/m/n0", watch=lambda event: None)
    second.exists("/m/absent", watch=lambda event: None)
    return clients


@pytest.mark.timeout(60)
async def test_scrape_after_known_operations() -> None:
    nodes, sessions = 20, 4
    async with trio.open_nursery() as nursery:
        server, client_port = await _running(nursery, _config(PROMETHEUS, "metricsProvider.httpPort=0"))
        assert server.metrics_port
        _, before = await in_thread(lambda: scrape(server.metrics_port))
        clients = await in_thread(lambda: _workload(client_port, nodes, sessions))
        try:
            content_type, fams = await in_thread(lambda: scrape(server.metrics_port))
        finally:
            for c in clients:
                await in_thread(c.stop)
        nursery.cancel_scope.cancel()
    assert content_type.startswith("text/plain")
    znodes = value(before, "znode_count")
    assert value(fams, "znode_count") == znodes + 1 + nodes
    assert value(fams, "watch_count") == nodes + 2
    assert value(fams, "ephemerals_count") == 3
    assert value(fams, "num_alive_connections") == sessions
    assert value(fams, "global_sessions") == sessions
    assert value(fams, "packets_received") >= 1 + 2 * nodes + 2
    assert value(fams, "approximate_data_size") >= value(before, "approximate_data_size") + sum(range(nodes))
    for gauge in ("znode_count", "watch_count", "avg_latency", "max_latency", "min_latency", "uptime"):
        assert fams[gauge].type == "gauge", gauge
    # ZooKeeper's summaries, with its quantiles: detailed (0.5/0.9/0.99) and basic (0.5).
    assert fams["readlatency"].type == fams["updatelatency"].type == fams["fsynctime"].type == "summary"
    quantiles = {s.labels["quantile"] for s in fams["readlatency"].samples if "quantile" in s.labels}
    assert quantiles == {"0.5", "0.9", "0.99"}
    assert {s.labels.get("quantile") for s in fams["fsynctime"].samples} == {"0.5", None}
    assert value(fams, "updatelatency", "updatelatency_count") >= 1 + nodes  # the creates
    assert value(fams, "readlatency", "readlatency_count") >= nodes + 2  # gets and exists
    assert value(fams, "updatelatency", quantile="0.5") >= 0
    # trizab's own: txns per sync, the engine, the disk.
    batches = fams["trizab_group_commit_batch_size"]
    assert batches.type == "summary"
    assert value(fams, "trizab_group_commit_batch_size", "trizab_group_commit_batch_size_sum") >= 1 + nodes
    assert value(fams, "trizab_storage_engine_info", engine="MemoryStoragePlugin") == 1
    assert value(fams, "trizab_disk_full") == 0
    assert value(fams, "trizab_storage_txns", "trizab_storage_txns_total") >= 1 + nodes
    # Info metrics are gauges of value 1 in the text format.
    assert (
        value(
            fams,
            "trizab_server_info",
            server_state="standalone",
            version=fourletter.version_string(trizab_version()),
        )
        == 1
    )
    # exportJvmInfo (default true): the Python process's facts.
    assert value(fams, "process_cpu_seconds", "process_cpu_seconds_total") > 0
    assert "python_info" in fams


def _mntr(port: int) -> dict[str, str]:
    return dict(line.split("\t", 1) for line in four_letter(port, "mntr").splitlines())


async def test_every_numeric_mntr_key_is_exported_under_its_name() -> None:
    async with trio.open_nursery() as nursery:
        server, client_port = await _running(nursery, _config(PROMETHEUS, "metricsProvider.httpPort=0"))
        mntr = await in_thread(lambda: _mntr(client_port))
        _, fams = await in_thread(lambda: scrape(server.metrics_port))
        nursery.cancel_scope.cancel()
    summaries = {"readlatency", "updatelatency", "fsynctime", "snapshottime"}
    assert {k.removeprefix("zk_cnt_") for k in mntr if k.startswith("zk_cnt_")} == summaries
    for key, text in mntr.items():
        name = key.removeprefix("zk_")
        if text in ("true", "false") or not text.replace(".", "", 1).isdigit():
            assert name in ("version", "server_state", "read_only"), key
            assert name not in fams, key  # ZooKeeper exports none of mntr's text keys
            continue
        prefix, _, rest = name.partition("_")
        if prefix in ("avg", "min", "max", "cnt", "sum", "p50", "p95", "p99", "p999") and rest in summaries:
            assert fams[rest].type == "summary", key
        else:
            assert fams[name].type == "gauge", key


async def test_exportjvminfo_false_leaves_the_process_out_and_other_paths_are_404() -> None:
    config = _config(PROMETHEUS, "metricsProvider.httpPort=0", "metricsProvider.exportJvmInfo=false")
    async with trio.open_nursery() as nursery:
        server, _ = await _running(nursery, config)
        _, fams = await in_thread(lambda: scrape(server.metrics_port))
        with pytest.raises(urllib.error.HTTPError) as caught:
            await in_thread(lambda: scrape(server.metrics_port, "/"))
        nursery.cancel_scope.cancel()
    assert caught.value.code == 404
    assert "znode_count" in fams
    assert not [name for name in fams if name.startswith(("process_", "python_"))]


async def test_no_endpoint_without_the_prometheus_provider() -> None:
    default = "metricsProvider.className=org.apache.zookeeper.metrics.impl.DefaultMetricsProvider"
    async with trio.open_nursery() as nursery:
        server, client_port = await _running(nursery, _config(default, "metricsProvider.httpPort=0"))
        mntr = await in_thread(lambda: _mntr(client_port))
        nursery.cancel_scope.cancel()
    assert server.metrics_port is None
    assert "zk_cnt_readlatency" in mntr  # mntr has the summaries either way


async def test_a_taken_port_stops_start_up_with_one_line() -> None:
    # ZooKeeper: MetricsProviderLifeCycleException -> "Cannot boot MetricsProvider", no server.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(PROMETHEUS, f"metricsProvider.httpPort={port}")
        with pytest.raises(BaseExceptionGroup) as caught:  # through the server's nursery (the CLI
            async with trio.open_nursery() as nursery:  # prints its StartupError as one line)
                await _running(nursery, config)
    found, rest = caught.value.split(StartupError)
    assert found is not None and rest is None
    while isinstance(found, BaseExceptionGroup):
        found = found.exceptions[0]
    message = str(found)
    assert "\n" not in message
    assert message.startswith(f"Prometheus metrics: cannot listen on 127.0.0.1:{port}")


# -- configuration ----------------------------------------------------------------------


def test_metrics_keys_and_their_defaults() -> None:
    assert cfg.parse("").metrics_provider is None
    c = cfg.parse(PROMETHEUS + "\n")
    assert (c.metrics_provider, c.metrics_http_host, c.metrics_http_port) == ("prometheus", "127.0.0.1", 7000)
    assert c.metrics_export_process_info is True
    c = cfg.parse(
        PROMETHEUS
        + "\nmetricsProvider.httpHost=0.0.0.0\nmetricsProvider.httpPort=9141\n"
        + "metricsProvider.exportJvmInfo=false\nmetricsProvider.numWorkerThreads=4\n"
    )
    assert (c.metrics_http_host, c.metrics_http_port, c.metrics_export_process_info) == (
        "0.0.0.0",
        9141,
        False,
    )
    null = cfg.parse("metricsProvider.className=org.apache.zookeeper.metrics.impl.NullMetricsProvider\n")
    assert null.metrics_provider is None


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("metricsProvider.httpPort=seven", "bad value metricsProvider.httpPort=seven: expected an integer"),
        (
            "metricsProvider.httpPort=70000",
            "bad value metricsProvider.httpPort=70000: expected an integer <=",
        ),
        ("metricsProvider.httpPort=-1", "bad value metricsProvider.httpPort=-1: expected an integer >= 0"),
        ("metricsProvider.exportJvmInfo=maybe", "bad value metricsProvider.exportJvmInfo=maybe"),
        ("metricsProvider.httpHost=", "bad value metricsProvider.httpHost="),
        ("metricsProvider.className=com.example.Metrics", "metrics provider class not available"),
    ],
)
def test_bad_metrics_values_are_one_line(line: str, expected: str) -> None:
    with pytest.raises(cfg.ConfigError) as caught:
        cfg.parse(line + "\n")
    assert expected in str(caught.value) and "\n" not in str(caught.value)


def test_mntr_rows_feed_both_mntr_and_the_endpoint() -> None:
    # _mntr is mntr_rows formatted: one source, so the two cannot drift.
    stats = fourletter.ServerStats()
    snap = fourletter.Snapshot(
        version="v",
        mode="standalone",
        read_only=False,
        zxid=0,
        node_count=4,
        approximate_data_size=0,
        outstanding_requests=0,
        stats=stats,
        connections=[],
        sessions={},
        ephemerals_by_session={},
        watches_by_session={},
        watches_by_path={},
        conf=[],
        environment=[],
        summaries=[("cnt_readlatency", 7)],
    )
    text = fourletter.run("mntr", {"mntr"}, lambda: snap)
    assert text == "".join(f"{k}\t{fourletter.mntr_text(v)}\n" for k, v in fourletter.mntr_rows(snap))
    assert "zk_read_only\tfalse\n" in text
    assert "zk_cnt_readlatency\t7\n" in text


def test_srst_resets_mntrs_latencies_but_not_the_summaries() -> None:
    # ServerStats reads the summaries since its last reset: one count per reply feeds both.
    reads, updates = Distribution("readlatency"), Distribution("updatelatency")
    stats = fourletter.ServerStats(latencies=(reads, updates))
    reads.record(3)
    updates.record(7)
    updates.record(2000)
    assert (stats.count, stats.total_latency, stats.min_latency, stats.max_latency) == (3, 2010, 3, 2000)
    assert stats.avg_latency == 670.0
    stats.reset()
    assert (stats.count, stats.total_latency, stats.min_latency, stats.max_latency) == (0, 0, None, 0)
    assert stats.avg_latency == 0.0
    reads.record(5)
    updates.record(1500)
    assert (stats.count, stats.total_latency, stats.min_latency, stats.max_latency) == (2, 1505, 5, 1500)
    assert (reads.count, updates.count, updates.total) == (2, 3, 3507)  # Prometheus's never go back
