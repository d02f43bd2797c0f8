"""The AdminServer comparison itself reports what differs (so that its silence means something)."""

from __future__ import annotations

from compat.differential.adminserver import compare


def test_equal_shapes_with_different_values_pass() -> None:
    zk = {"zxid": "1f", "timestamp": 1700000000, "command": "last_snapshot", "error": None}
    tz = {"zxid": "2", "timestamp": 1800000000, "command": "last_snapshot", "error": None}
    assert compare("lsnp", (200, zk), (200, tz)) == ([], [])


def test_missing_keys_types_statuses_and_errors_are_reported() -> None:
    zk = {"a": 1, "b": {"c": 1.5}, "command": "x", "error": None}
    tz = {"b": {"c": 2}, "d": True, "command": "x", "error": "boom"}
    diffs, _ = compare("x", (200, zk), (404, tz))
    text = "\n".join(diffs)
    assert "HTTP status 200 (ZooKeeper) vs 404" in text
    assert "error is None (ZooKeeper) vs 'boom'" in text
    assert "keys only ZooKeeper has: ['a']" in text
    assert "keys only trizab has: ['d']" in text
    assert "x.b.c: float" in text


def test_maps_keyed_by_session_compare_their_values() -> None:
    tail = {"command": "dump", "error": None}
    zk = {"session_id_to_ephemeral_paths": {"123": ["/a"]}, "expiry_time_to_session_ids": {}, **tail}
    tz = {"session_id_to_ephemeral_paths": {"456": [7]}, "expiry_time_to_session_ids": {"9": [1]}, **tail}
    diffs, _ = compare("dump", (200, zk), (200, tz))
    text = "\n".join(diffs)
    assert "dump.session_id_to_ephemeral_paths.*[0]: str" in text
    assert "dump.expiry_time_to_session_ids: 0 entries (ZooKeeper) vs 1" in text


def test_monitor_needs_the_health_check_keys_and_zookeepers_names() -> None:
    zk = {"version": "3.8.0", "znode_count": 5, "command": "monitor", "error": None}
    tz = {"version": "3.8.4", "not_zookeepers": 1, "command": "monitor", "error": None}
    diffs, _ = compare("mntr", (200, zk), (200, tz))
    text = "\n".join(diffs)
    assert "monitor: trizab lacks znode_count" in text
    assert "monitor: not_zookeepers is not one of ZooKeeper's keys" in text
