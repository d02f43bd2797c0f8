"""The rolling-migration verdict fails for each broken promise, and says which (no processes)."""

from __future__ import annotations

from testkit.migration_load import ROOT, MigrationLoad


def _load_with_history() -> MigrationLoad:
    load = MigrationLoad("127.0.0.1:1")
    load.acked_writes = [(1.0, 1), (2.0, 2), (2.5, 4)]
    load.attempted_values = [1, 2, 3, 4, 5]
    load.acked_values = [1, 2, 4]
    load.acked_sequential = [f"{ROOT}/seq/s-0000000000", f"{ROOT}/seq/s-0000000001"]
    return load


def _tree(**changes: bytes | None) -> dict[str, bytes]:
    tree = {
        f"{ROOT}/w/0000001": b"1",
        f"{ROOT}/w/0000002": b"2",
        f"{ROOT}/w/0000003": b"3",  # attempted, reply lost: may be there
        f"{ROOT}/w/0000004": b"4",
        f"{ROOT}/value": b"5",  # a later attempted set than the last acknowledged one: fine
        f"{ROOT}/seq/s-0000000000": b"",
        f"{ROOT}/seq/s-0000000001": b"",
    }
    for name, data in changes.items():
        path = f"{ROOT}/{name.replace('__', '/')}"
        if data is None:
            tree.pop(path)
        else:
            tree[path] = data
    return tree


def test_a_good_history_has_no_problems() -> None:
    assert _load_with_history()._tree_problems({"a": _tree(), "b": _tree()}) == []


def test_each_broken_promise_is_named() -> None:
    load = _load_with_history()
    assert load._tree_problems({"a": _tree(w__0000004=None)}) == [
        "1 acknowledged writes lost or wrong, first [4]"
    ]
    assert load._tree_problems({"a": _tree(w__0000002=b"x")}) == [
        "1 acknowledged writes lost or wrong, first [2]"
    ]
    assert load._tree_problems({"a": _tree(value=b"2")}) == [
        "/mig/value is b'2': older than the last acknowledged set (4)"
    ]
    tree = _tree()
    del tree[f"{ROOT}/seq/s-0000000001"]
    assert load._tree_problems({"a": tree}) == [
        f"1 acknowledged sequential nodes missing, first ['{ROOT}/seq/s-0000000001']"
    ]
    load.acked_sequential.append(f"{ROOT}/seq/s-0000000001")
    assert load._tree_problems({"a": _tree()}) == ["1 sequence numbers handed out twice"]


def test_members_that_differ_are_named_with_the_paths() -> None:
    problems = _load_with_history()._tree_problems({"a": _tree(), "b": _tree(w__0000003=None, extra=b"")})
    assert problems == [
        f"members a and b differ: only on the first ['{ROOT}/w/0000003'], only on the second "
        f"['{ROOT}/extra'], different data []"
    ]


def test_an_undelivered_watch_is_named() -> None:
    load = _load_with_history()
    load.acked_watched = 20
    load.seen_watched = [b"-1", b"10"]
    assert load._watch_problems(timeout=0.0) == [
        "the watch never delivered the last acknowledged value b'20' (last seen [b'-1', b'10'])"
    ]
    load.seen_watched.append(b"20")
    assert load._watch_problems(timeout=0.0) == []


def test_gaps_between_acknowledged_writes() -> None:
    load = _load_with_history()
    assert load.longest_gap(0.0, 3.0) == 1.0
    assert load.longest_gap(2.6, 10.0) == 7.4
