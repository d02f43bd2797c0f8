"""Hypothesis-generated operation sequences give the same normalized replies on trizab and ZooKeeper.

Run more on demand: ``TRIZAB_DIFF_EXAMPLES=2000 pytest tests/differential -k sequences``;
``TRIZAB_DIFF_SEED=<n>`` explores other sequences than CI's derandomized ones.
"""

from __future__ import annotations

import pytest

from compat.differential.driver import Stats, make_check, settings_from_env
from compat.differential.runner import Executor

pytestmark = pytest.mark.apache


def test_sequences_agree_with_zookeeper(
    apache_address: tuple[str, int], trizab_address: tuple[str, int]
) -> None:
    expected, actual = Executor(apache_address), Executor(trizab_address)
    stats = Stats()
    try:
        expected.reset()
        actual.reset()
        make_check(expected, actual, settings_from_env(), stats)()
    finally:
        expected.close()
        actual.close()
    print(f"differential: {stats.examples} sequences, {stats.ops} operations, {stats.seconds:.1f} s")
    assert stats.examples > 0


def test_tester_is_deterministic_against_a_second_zookeeper() -> None:
    # Two Apache ZooKeepers must agree on every generated sequence; otherwise a difference reported
    # against trizab could come from the tester (timing, normalization) rather than the server.
    # Both are fresh (the shared one has a history, e.g. the root's cversion).
    from compat.differential.driver import DiffSettings
    from compat.differential.servers import apache_server

    cfg = settings_from_env()
    with apache_server() as first, apache_server() as second:
        expected, actual = Executor(first), Executor(second)
        stats = Stats()
        try:
            expected.reset()
            actual.reset()
            make_check(
                expected,
                actual,
                DiffSettings(examples=min(60, cfg.examples), max_ops=cfg.max_ops, seed=cfg.seed),
                stats,
                ("zookeeper-1", "zookeeper-2"),
            )()
        finally:
            expected.close()
            actual.close()
    assert stats.examples > 0
