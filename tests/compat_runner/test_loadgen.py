"""The raw-frame load generator: load shapes, and a short real run whose writes are checked."""

from __future__ import annotations

import pytest

from bench import loadgen
from testkit import apache_zk
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode


@pytest.mark.parametrize("total", [1, 2, 3, 16, 17, 256])
@pytest.mark.parametrize(("processes", "connections"), [(1, 1), (2, 4), (3, 8)])
def test_shape_keeps_exactly_total_outstanding(total: int, processes: int, connections: int) -> None:
    p, c, k = loadgen.shape(total, processes, connections)
    assert p * c * k == total
    assert 1 <= p <= processes and 1 <= c <= connections and k >= 1


def test_percentile_matches_sorted_rank() -> None:
    values = list(range(1, 101))
    assert loadgen.percentile(values, 0.5) == 50
    assert loadgen.percentile(values, 0.99) == 99
    assert loadgen.percentile([7], 0.99) == 7


def test_server_names_and_addresses() -> None:
    assert loadgen.parse_server("apache") == ("apache", 1, "txnlog")
    assert loadgen.parse_server("apache-3") == ("apache", 3, "txnlog")
    assert loadgen.parse_server("trizab-memory") == ("trizab", 1, "memory")
    assert loadgen.parse_server("trizab-3-sqlite") == ("trizab", 3, "sqlite")
    with pytest.raises(ValueError):
        loadgen.parse_server("etcd")
    assert loadgen.parse_addresses("127.0.0.1:1,h:2") == [("127.0.0.1", 1), ("h", 2)]
    assert loadgen.read_replicas_of("trizab-txnlog-r1") == ("trizab-txnlog", 1)
    assert loadgen.read_replicas_of("trizab-3-memory-r12") == ("trizab-3-memory", 12)
    assert loadgen.read_replicas_of("trizab-txnlog") == ("trizab-txnlog", 0)
    assert loadgen.read_replicas_of("apache-r1") == ("apache-r1", 0)


def test_request_template_is_a_framed_request() -> None:
    frame = loadgen.request_template("setData", "/p", b"abc")
    length = int.from_bytes(frame[:4], "big")
    assert length == len(frame) - 4
    header, pos = jute.decode_prefix(r.RequestHeader, bytes(frame), 4)
    assert header.type == OpCode.SET_DATA
    assert jute.decode(r.SetDataRequest, bytes(frame), pos) == r.SetDataRequest(
        path="/p", data=b"abc", version=-1
    )


@pytest.mark.apache
def test_short_run_against_apache_zookeeper_really_writes() -> None:
    apache_zk.require_available()
    from kazoo.client import KazooClient

    with apache_zk.ApacheZooKeeper() as zk:
        result = loadgen.run_load(
            [("127.0.0.1", zk.client_port)],
            "setData",
            16,
            processes=2,
            connections=2,
            warmup=0.1,
            duration=0.5,
            pids=[zk.pid],
        )
        assert result.errors == 0
        assert result.ops_per_s > 0
        assert 0 < result.p50_ms <= result.p99_ms
        assert result.cpu_us_per_op is not None and result.cpu_us_per_op > 0
        client = KazooClient(zk.address)
        client.start(timeout=15)
        try:
            versions = [client.get(loadgen.node_path(p, c))[1].version for p in range(2) for c in range(2)]
        finally:
            client.stop()
            client.close()
        # Every connection's node was written at least as often as the window counted (the warm-up
        # and the drain add writes outside the window, never fewer).
        assert sum(versions) >= result.ops_per_s * 0.5
