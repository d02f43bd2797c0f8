"""Differential testing of trizab against Apache ZooKeeper 3.8, reply by reply.

``run(target_trizab, examples)`` is what ``python -m compat`` calls for its table: it starts the
servers, compares the handshake, the four-letter words and ``examples`` generated operation
sequences, and returns a :class:`SuiteResult`.  With ``target_trizab=False`` the "actual" server is
a second Apache ZooKeeper, which checks that the tester itself is deterministic.
"""

from __future__ import annotations

import contextlib

from compat.differential.result import SuiteResult

__all__ = ["SuiteResult", "run"]


def run(target_trizab: bool = True, examples: int | None = None) -> SuiteResult:
    from compat.differential.driver import Stats, make_check, settings_from_env
    from compat.differential.fourlw import compare_handshakes, compare_words
    from compat.differential.runner import Executor
    from compat.differential.servers import apache_server, trizab_server

    cfg = settings_from_env()
    if examples is not None:
        cfg = type(cfg)(examples=examples, max_ops=cfg.max_ops, seed=cfg.seed)
    passed = failed = 0
    details: list[str] = []
    with contextlib.ExitStack() as stack:
        expected_addr = stack.enter_context(apache_server())
        actual_addr = stack.enter_context(trizab_server() if target_trizab else apache_server())
        hs = compare_handshakes(expected_addr, actual_addr)
        words, notes = compare_words(expected_addr, actual_addr)
        for name, diffs in (("handshake", hs), ("four-letter words", words)):
            if diffs:
                failed += 1
                details.append(f"{name}:\n" + "\n".join(diffs))
            else:
                passed += 1
        details.extend(notes)
        expected, actual = Executor(expected_addr), Executor(actual_addr)
        stats = Stats()
        try:
            expected.reset()
            actual.reset()
            make_check(expected, actual, cfg, stats)()
            passed += 1
        except AssertionError as exc:
            failed += 1
            notes = "\n".join(getattr(exc, "__notes__", []))  # hypothesis puts the sequence here
            details.append(f"operation sequences: {exc}\n{notes}")
        finally:
            expected.close()
            actual.close()
        details.append(f"{stats.examples} sequences, {stats.ops} operations, {stats.seconds:.1f} s")
    return SuiteResult(passed=passed, failed=failed, details="\n".join(details))
