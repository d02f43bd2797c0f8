"""The normalizer forgives only what may legitimately differ (no servers needed)."""

from __future__ import annotations

import time

from compat.differential.normalize import normalize
from compat.differential.ops import Sid, StatV, T, Z
from compat.differential.runner import compare

NOW = int(time.time() * 1000)


def stat(czxid: int, mzxid: int, ctime: int, mtime: int, owner: int = 0, pzxid: int | None = None) -> StatV:
    return StatV(Z(czxid), Z(mzxid), T(ctime), T(mtime), 0, 0, 0, Sid(owner), 0, 0, Z(pzxid or czxid))


def transcript(
    *entries: object, sessions: dict[int, str] | None = None
) -> tuple[list[object], dict[int, str]]:
    return list(entries), sessions or {}


def test_zxid_offsets_and_clocks_are_forgiven() -> None:
    a = transcript(("reply", Z(10), stat(10, 12, NOW, NOW + 5)), ("reply", Z(12), None))
    b = transcript(("reply", Z(500), stat(500, 900, NOW + 77, NOW + 99)), ("reply", Z(900), None))
    assert compare(a, b) is None


def test_zxid_relations_are_kept() -> None:
    # Same values on one side, different on the other: the "same transaction" relation differs.
    a = transcript(("reply", Z(10), stat(10, 10, NOW, NOW)))
    b = transcript(("reply", Z(10), stat(10, 11, NOW, NOW)))
    assert compare(a, b) is not None
    # Order: a later zxid must stay later.
    a = transcript(("reply", Z(10), None), ("reply", Z(11), None))
    b = transcript(("reply", Z(11), None), ("reply", Z(10), None))
    assert compare(a, b) is not None


def test_implausible_or_inconsistent_times_are_differences() -> None:
    good = transcript(("r", stat(5, 5, NOW, NOW)))
    seconds = transcript(("r", stat(5, 5, NOW // 1000, NOW // 1000)))
    assert compare(good, seconds) is not None
    inconsistent = transcript(("r", stat(5, 5, NOW, NOW + 1)))
    assert compare(good, inconsistent) is not None


def test_session_ids_map_to_labels() -> None:
    a = transcript(("r", stat(1, 1, NOW, NOW, owner=111)), sessions={111: "s0.0", 222: "s1.0"})
    b = transcript(("r", stat(1, 1, NOW, NOW, owner=999)), sessions={999: "s0.0", 888: "s1.0"})
    assert compare(a, b) is None
    c = transcript(("r", stat(1, 1, NOW, NOW, owner=888)), sessions={999: "s0.0", 888: "s1.0"})
    assert compare(a, c) is not None


def test_children_compare_as_sorted_multisets_only() -> None:
    a = transcript(("r", ("children", "a", "b")))
    assert compare(a, transcript(("r", ("children", "b", "a")))) is None
    assert compare(a, transcript(("r", ("children", "a", "a", "b")))) is not None
    # Event order is significant unless the runner marked the step unordered (closeSession).
    ev1, ev2 = ("event", Z(-1), 0, 2, 3, "/x"), ("event", Z(-1), 0, 2, 3, "/y")
    assert compare(transcript(("events", [ev1, ev2])), transcript(("events", [ev2, ev1]))) is not None
    assert compare(transcript(("unordered", ev1, ev2)), transcript(("unordered", ev2, ev1))) is None


def test_java_transcripts_forgive_where_connection_events_land_but_not_which_come() -> None:
    from compat.javaclient.transcript import normalize as java_normalize

    event = ["", "WATCHER::", "", "WatchedEvent state:SyncConnected type:None path:null"]
    early = "\n".join(["Welcome", *event, "Created /jc", "Created /jc/a"])
    late = "\n".join(["Welcome", "Created /jc", *event, "Created /jc/a"])
    assert java_normalize(early) == java_normalize(late)
    assert java_normalize(early)[-1] == event[-1]
    closed = late + "\n" + "\n".join([*event[:3], "WatchedEvent state:Closed type:None path:null"])
    assert java_normalize(closed) != java_normalize(late)  # another event is a difference
    # A blank line of the commands' own output is kept.
    assert java_normalize("a\n\nb") == ["a", "", "b"]


def test_configuration_texts_compare_without_their_ports() -> None:
    """Two ensembles' /zookeeper/config differ in the ports they were given, not in members."""
    one = (
        b"server.1=127.0.0.1:47463:60697:participant\n"
        b"server.2=127.0.0.1:43771:41231:observer;0.0.0.0:2181\nversion=0"
    )
    two = (
        b"server.1=127.0.0.1:1111:2222:participant\n"
        b"server.2=127.0.0.1:3333:4444:observer;0.0.0.0:5555\nversion=0"
    )
    assert normalize([one], {}) == normalize([two], {})
    other_role = two.replace(b"observer", b"participant")
    assert normalize([one], {}) != normalize([other_role], {})
    assert normalize([b"hello:1234"], {}) == [b"hello:1234"]  # other data is left alone


def test_the_config_nodes_install_time_is_per_member() -> None:
    """/zookeeper/config's mtime (mzxid 0, or a NEWLEADER zxid with counter 0) is each member's
    own install time: two members' differ, and only a missing or implausible one is a difference."""
    for version in (0, 0x100000000):
        two_members = transcript(("r", stat(0, version, 0, NOW)), ("r", stat(0, version, 0, NOW + 700)))
        others = transcript(("r", stat(0, version, 0, NOW + 3)), ("r", stat(0, version, 0, NOW + 9)))
        assert compare(two_members, others) is None
        never = transcript(("r", stat(0, version, 0, 0)), ("r", stat(0, version, 0, NOW)))
        assert compare(two_members, never) is not None
        seconds = transcript(("r", stat(0, version, 0, NOW // 1000)), ("r", stat(0, version, 0, NOW)))
        assert compare(two_members, seconds) is not None
    # A transaction's time (counter > 0) is still one time per zxid.
    txn = transcript(("r", stat(5, 0x100000001, NOW, NOW)), ("r", stat(5, 0x100000001, NOW, NOW + 1)))
    same = transcript(("r", stat(5, 0x100000001, NOW, NOW)), ("r", stat(5, 0x100000001, NOW, NOW)))
    assert compare(txn, same) is not None
