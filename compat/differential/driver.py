"""Drive hypothesis-generated sequences against two servers and compare every reply.

Theory of operation
-------------------
:func:`make_check` returns a hypothesis-wrapped function that, per example,
runs the sequence against the *expected* server (Apache ZooKeeper) and the
*actual* one (trizab, or a second ZooKeeper to check that the tester itself is
deterministic) and fails with the first normalized difference; hypothesis then
shrinks the sequence and prints it.  Settings come from arguments, which
:func:`settings_from_env` fills from ``TRIZAB_DIFF_EXAMPLES`` (default 300),
``TRIZAB_DIFF_MAX_OPS`` (default 20) and ``TRIZAB_DIFF_SEED`` (unset: derandomized,
so CI runs the same sequences every time).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Callable
from typing import Any

import attrs
from hypothesis import HealthCheck, Phase, given, seed, settings

from compat.differential.normalize import normalize
from compat.differential.runner import Executor, OpSequence, compare, first_difference, step_of
from compat.differential.strategies import sequences

DEFAULT_EXAMPLES = 300
DEFAULT_MAX_OPS = 20


@attrs.frozen
class DiffSettings:
    examples: int = DEFAULT_EXAMPLES
    max_ops: int = DEFAULT_MAX_OPS
    seed: int | None = None
    # Features not to generate besides TRIZAB_DIFF_EXCLUDE's (strategies.ENSEMBLE_EXCLUDED for ensembles).
    exclude: frozenset[str] = frozenset()


def settings_from_env() -> DiffSettings:
    raw_seed = os.environ.get("TRIZAB_DIFF_SEED")
    return DiffSettings(
        examples=int(os.environ.get("TRIZAB_DIFF_EXAMPLES", DEFAULT_EXAMPLES)),
        max_ops=int(os.environ.get("TRIZAB_DIFF_MAX_OPS", DEFAULT_MAX_OPS)),
        seed=int(raw_seed) if raw_seed else None,
    )


@attrs.define
class Stats:
    examples: int = 0
    ops: int = 0
    seconds: float = 0.0


def make_check(
    expected: Executor,
    actual: Executor,
    cfg: DiffSettings,
    stats: Stats | None = None,
    names: tuple[str, str] = ("zookeeper", "trizab"),
) -> Callable[[], None]:
    """A zero-argument callable that runs ``cfg.examples`` sequences and raises on the first difference."""
    counter = itertools.count()
    stats = stats if stats is not None else Stats()

    @settings(
        max_examples=cfg.examples,
        deadline=None,
        derandomize=cfg.seed is None,
        database=None,
        print_blob=False,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(sequences(max_ops=cfg.max_ops, exclude=cfg.exclude))
    def check(seq: OpSequence) -> None:
        start = time.monotonic()
        base = f"/dt{next(counter)}"
        got_expected = expected.run(seq, base)
        got_actual = actual.run(seq, base)
        stats.examples += 1
        stats.ops += len(seq.ops)
        stats.seconds += time.monotonic() - start
        diff = compare(got_expected, got_actual, expected_name=names[0], actual_name=names[1])
        assert diff is None, diff

    wrapped: Any = check if cfg.seed is None else seed(cfg.seed)(check)
    return wrapped  # type: ignore[no-any-return]


@attrs.frozen
class Divergence:
    """One kind of difference found by :func:`survey`, with the first sequence that showed it."""

    signature: str
    op: Any
    expected: Any
    actual: Any
    sequence: OpSequence
    count: int = 1


def _signature(op: Any, x: Any, y: Any) -> str:
    def squash(v: Any) -> str:
        if isinstance(v, tuple) and v and v[0] == "step":
            v = v[3:]  # drop the step index and session label
        text = re.sub(r"/?dt\d+", "{b}", repr(v))
        return re.sub(r"z\d+", "z", text)[:300]

    name = type(op).__name__ + (f"/{op.opcode}" if hasattr(op, "opcode") else "")
    return f"{name}: {squash(x)} != {squash(y)}"


def survey(
    expected: Executor, actual: Executor, cfg: DiffSettings, stats: Stats | None = None
) -> list[Divergence]:
    """Run ``cfg.examples`` sequences without stopping or shrinking; group the first difference of each."""
    counter = itertools.count()
    stats = stats if stats is not None else Stats()
    found: dict[str, Divergence] = {}

    @settings(
        max_examples=cfg.examples,
        deadline=None,
        derandomize=cfg.seed is None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(sequences(max_ops=cfg.max_ops, exclude=cfg.exclude))
    def run(seq: OpSequence) -> None:
        start = time.monotonic()
        base = f"/dt{next(counter)}"
        got_expected = expected.run(seq, base)
        got_actual = actual.run(seq, base)
        stats.examples += 1
        stats.ops += len(seq.ops)
        stats.seconds += time.monotonic() - start
        diff = first_difference(got_expected, got_actual)
        if diff is None:
            return
        index, x, y = diff
        step = step_of(normalize(*got_expected), index)
        op = seq.ops[step] if step is not None else None
        sig = _signature(op, x, y)
        if sig in found:
            found[sig] = attrs.evolve(found[sig], count=found[sig].count + 1)
            if len(seq.ops) < len(found[sig].sequence.ops):
                found[sig] = attrs.evolve(found[sig], sequence=seq)
        else:
            found[sig] = Divergence(sig, op, x, y, seq)

    (run if cfg.seed is None else seed(cfg.seed)(run))()
    return sorted(found.values(), key=lambda d: -d.count)
