"""``python -m compat.differential [--survey] [--examples N] [--seed S] [--against-apache]``.

Default: the differential check (stops at the first difference, shrinks it, prints it).
``--survey``: runs every example without stopping or shrinking and prints each distinct kind of
difference once, with how often it occurred and the shortest sequence that showed it.
``--against-apache`` compares two Apache ZooKeeper servers (checks the tester is deterministic).
"""

from __future__ import annotations

import argparse
import contextlib
import pprint
import sys

from compat.differential.driver import DiffSettings, Stats, make_check, settings_from_env, survey
from compat.differential.fourlw import compare_handshakes, compare_words
from compat.differential.runner import Executor
from compat.differential.servers import apache_server, trizab_server


def main(argv: list[str] | None = None) -> int:
    env = settings_from_env()
    parser = argparse.ArgumentParser(prog="python -m compat.differential", description=__doc__.split("\n")[0])
    parser.add_argument("--survey", action="store_true")
    parser.add_argument("--examples", type=int, default=env.examples)
    parser.add_argument("--max-ops", type=int, default=env.max_ops)
    parser.add_argument("--seed", type=int, default=env.seed)
    parser.add_argument("--against-apache", action="store_true")
    args = parser.parse_args(argv)
    cfg = DiffSettings(examples=args.examples, max_ops=args.max_ops, seed=args.seed)
    with contextlib.ExitStack() as stack:
        expected_addr = stack.enter_context(apache_server())
        actual_addr = stack.enter_context(apache_server() if args.against_apache else trizab_server())
        for diff in compare_handshakes(expected_addr, actual_addr):
            print("HANDSHAKE", diff)
        words, notes = compare_words(expected_addr, actual_addr)
        for diff in words + notes:
            print("4LW", diff)
        expected, actual = Executor(expected_addr), Executor(actual_addr)
        expected.reset()
        actual.reset()
        stats = Stats()
        if args.survey:
            found = survey(expected, actual, cfg, stats)
            for d in found:
                print(f"\n[{d.count}x] {d.signature}")
                print("  op:", d.op)
                print("  zookeeper:", pprint.pformat(d.expected, width=140))
                print("  trizab:   ", pprint.pformat(d.actual, width=140))
                print("  sequence:", d.sequence)
            print(f"\n{stats.examples} sequences, {stats.ops} ops, {stats.seconds:.1f} s, {len(found)} kinds")
            return 1 if found else 0
        try:
            make_check(expected, actual, cfg, stats)()
        except AssertionError as exc:
            print(exc)
            print("\n".join(getattr(exc, "__notes__", [])))
            return 1
        finally:
            print(f"{stats.examples} sequences, {stats.ops} ops, {stats.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
