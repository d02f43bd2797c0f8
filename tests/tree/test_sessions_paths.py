"""Session ids and passwords as Java computes them; ZooKeeper's path validation."""

from __future__ import annotations

import pytest

from trizab.server.sessions import JavaRandom, SessionTracker, generate_password, initial_session_id
from trizab.tree.paths import InvalidPath, split, validate_path


def test_java_random_known_values() -> None:
    # new java.util.Random(42).nextInt() == -1170105035; new Random(0).nextInt() == -1155484576.
    assert JavaRandom(42).next_int() == -1170105035
    assert JavaRandom(0).next_int() == -1155484576


def test_password_matches_apache_zookeeper() -> None:
    # Observed from Apache ZooKeeper 3.8.0 (kazoo client_id) for this session id.
    assert generate_password(72057622353346560) == bytes.fromhex("a749217ba897e1d95d4e2f9a3134ea9f")


def test_initial_session_id_layout() -> None:
    sid = initial_session_id(0x0123456789AB, 1)
    # (now << 24) >>> 8 keeps the low 40 bits of now at bits 16..55; the server id sits in the top byte.
    assert sid >> 56 == 1
    assert (sid >> 16) & ((1 << 40) - 1) == 0x0123456789AB & ((1 << 40) - 1)
    assert sid & 0xFFFF == 0
    # Server id 255 makes the id negative, as a Java long.
    assert initial_session_id(5, 255) < 0


def test_tracker_expiry_buckets() -> None:
    t = SessionTracker(2000, 100)
    sid = t.new_session_id()
    assert t.new_session_id() == sid + 1
    t.add(sid, 4000, now_ms=1000)
    # Deadline rounds up to the next tick multiple after now + timeout: (5000 // 2000 + 1) * 2000.
    assert t.expired(5999) == []
    assert t.expired(6000) == [sid]
    assert not t.is_live(sid)
    assert not t.touch(sid, 7000)


@pytest.mark.parametrize(
    "path",
    ["/", "/a", "/a/b", "/a.b", "/..a", "/a..", "/.a", "/a/..b", "/\u00e9t\u00e9", "/a b"],
)
def test_valid_paths(path: str) -> None:
    validate_path(path)


@pytest.mark.parametrize(
    "path",
    [
        None,
        "",
        "a",
        "/a/",
        "//",
        "/a//b",
        "/.",
        "/..",
        "/a/.",
        "/a/../b",
        "/a\0b",
        "/a\x01",
        "/\x7f",
        "/\ud800",
        "/\U0001f600",
        "/\ufff0",
        "/a\u009f",
    ],
)
def test_invalid_paths(path: str | None) -> None:
    with pytest.raises(InvalidPath):
        validate_path(path)


def test_split() -> None:
    assert split("/a") == ("/", "a")
    assert split("/a/b/c") == ("/a/b", "c")
