"""Operation sequences against a mixed ensemble (clients on trizab and on ZooKeeper members) and
against a pure Apache ZooKeeper 3.8 ensemble, reply by reply.

Session ``k`` of every sequence is on member ``k mod 3`` (see :class:`compat.differential.runner.
Executor`), so a sequence's sessions sit on different members and their writes, reads and
watches cross members.  The ZooKeeper-against-ZooKeeper run proves that this mode does not
depend on timing.

A trizab-majority ensemble (one ZooKeeper and two trizab members, trizab leading) is compared
with the generator's ensemble mode (``strategies.ENSEMBLE_EXCLUDED``): some generated requests
are malformed on purpose (truncated bodies, opcodes a follower forwards without reading them,
write multis with read members), and a ZooKeeper 3.8 ensemble mishandles them when a follower
forwards them (the leader fails them in PrepRequestProcessor after taking a zxid, followers log
"Got zxid ... expected ..." and a digest mismatch, and later requests on that follower go
unanswered for seconds), so the *reference* side times out where trizab answers.  The other
comparisons keep them: there the reference happens to get through the same sequences.
"""

from __future__ import annotations

import pytest

from compat.differential.driver import DiffSettings, Stats, make_check, settings_from_env
from compat.differential.runner import Executor
from compat.differential.servers import ensemble
from compat.differential.strategies import ENSEMBLE_EXCLUDED
from testkit import apache_zk

pytestmark = [pytest.mark.apache, pytest.mark.slow, pytest.mark.timeout(300)]

ZK, TZ = "zookeeper", "trizab"
EXAMPLES = 40


def _compare(
    expected_kinds: tuple[str, ...],
    actual_kinds: tuple[str, ...],
    names: tuple[str, str],
    exclude: frozenset[str] = frozenset(),
) -> None:
    apache_zk.require_available()
    cfg = settings_from_env()
    settings = DiffSettings(
        examples=min(EXAMPLES, cfg.examples), max_ops=cfg.max_ops, seed=cfg.seed, exclude=exclude
    )
    with ensemble(expected_kinds) as first, ensemble(actual_kinds) as second:
        expected, actual = Executor(first), Executor(second)
        stats = Stats()
        try:
            expected.reset()
            actual.reset()
            make_check(expected, actual, settings, stats, names)()
        finally:
            expected.close()
            actual.close()
    print(f"differential: {stats.examples} sequences, {stats.ops} operations, {stats.seconds:.1f} s")
    assert stats.examples > 0


def test_ensemble_mode_is_deterministic_against_a_second_zookeeper_ensemble() -> None:
    _compare((ZK,) * 3, (ZK,) * 3, ("zookeeper-ensemble-1", "zookeeper-ensemble-2"))


def test_mixed_ensemble_agrees_with_a_zookeeper_ensemble() -> None:
    _compare((ZK,) * 3, (ZK, ZK, TZ), ("zookeeper-ensemble", "mixed-ensemble"))


def test_trizab_majority_ensemble_agrees_with_a_zookeeper_ensemble() -> None:
    # Member 3 (trizab) leads both trizab-majority ensembles' elections on empty data; the
    # ZooKeeper member 1 forwards its sessions' writes to it.
    _compare((ZK,) * 3, (ZK, TZ, TZ), ("zookeeper-ensemble", "trizab-majority-ensemble"), ENSEMBLE_EXCLUDED)
