"""Schedules from seeds, and the command line: soak, replay one seed, time failovers.

A seed chooses a schedule's variations (:func:`params_for`) and its faults, so a
failure is reported with the one-line command that replays it (:func:`replay_command`).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Iterable
from typing import Any

from trizab.testing.sim.invariants import LIVENESS_BOUND_MS, InvariantViolation
from trizab.testing.sim.simulation import SimParams, Simulation


def params_for(seed: int, peers: int, election: str, tick_ms: int = 500, reconfig: bool = False) -> SimParams:
    """The per-seed variations: observers, plugin options, log window, timings (and reconfigs)."""
    rng = random.Random(seed ^ 0x5EED)
    options: tuple[tuple[str, str], ...] = ()
    if election == "static":
        options = (("leader", str(rng.randint(1, peers))),)
    elif election == "priority":
        ids = list(range(1, peers + 1))
        rng.shuffle(ids)
        options = (("prefer", ",".join(map(str, ids[: rng.randint(1, peers)]))),)
    return SimParams(
        peers=peers,
        observers=1 if rng.random() < 0.2 else 0,
        election=election,
        election_options=options,
        tick_ms=tick_ms,
        committed_log_size=rng.choice([2, 5, 20, 500]),
        fault_ms=rng.choice([6_000, 10_000, 15_000]),
        write_every_ms=rng.choice([100, 300, 800]),
        fault_every_ms=rng.choice([200, 500, 1_500, 3_000]),
        leader_sends_early=rng.random() < 0.5,
        spares=2 if reconfig else 0,
        reconfig=reconfig,
    )


def replay_command(seed: int, peers: int, election: str, reconfig: bool = False) -> str:
    flag = " --reconfig" if reconfig else ""
    return f"python -m trizab.testing.sim --replay {seed} --peers {peers} --election {election}{flag} --trace"


def run_schedule(
    seed: int, peers: int, election: str, trace: bool = False, reconfig: bool = False
) -> dict[str, int]:
    sim = Simulation(params_for(seed, peers, election, reconfig=reconfig), seed)
    if trace:
        sim.trace = []
    try:
        return sim.run()
    except BaseException:
        if trace and sim.trace is not None:
            print("\n".join(sim.trace[-400:]), file=sys.stderr)
        raise


def soak(
    seeds: Iterable[int],
    peers: int,
    election: str,
    out: Any = sys.stdout,
    stats: dict[str, int] | None = None,
    reconfig: bool = False,
) -> tuple[int, list[int]]:
    """Run many schedules; print each failure with its replay command.  Returns (count, failing seeds).

    ``stats`` (if given) receives totals and the slowest settle time after faults stopped.
    """
    failed: list[int] = []
    count = 0
    for seed in seeds:
        count += 1
        try:
            result = run_schedule(seed, peers, election, reconfig=reconfig)
        except Exception as exc:  # report every kind of failure, keep going
            failed.append(seed)
            print(
                f"FAIL seed={seed} peers={peers} election={election}: {type(exc).__name__}: {exc}", file=out
            )
            print(f"  replay: {replay_command(seed, peers, election, reconfig)}", file=out)
            continue
        if stats is not None:
            for key in ("events", "writes", "committed", "reconfigs", "syncs"):
                stats[key] = stats.get(key, 0) + result[key]
            stats["max_settle_ms"] = max(stats.get("max_settle_ms", 0), result["settle_ms"])
    return count, failed


def measure_failover(
    peers: int,
    trials: int,
    election: str = "fast",
    tick_ms: int = 100,
    first_seed: int = 0,
    how: str = "crash",
) -> list[int]:
    """Simulated ms from losing an established leader to the next established leader.

    tickTime 2000 ms, initLimit 10, syncLimit 5, finalizeWait 200 ms; the peer
    ticks every ``tick_ms``; message delays 1-4 ms, fsync 1-5 ms.  ``how="crash"``
    kills the leader, which closes its connections (as the kernel does for a
    killed process), so the followers notice at once, as with ZooKeeper;
    ``how="isolate"`` partitions it silently, so they notice only after syncLimit.
    """
    out = []
    for seed in range(first_seed, first_seed + trials):
        sim = Simulation(SimParams(peers=peers, election=election, tick_ms=tick_ms), seed)

        def settled(sim: Simulation = sim) -> bool:
            return all(n.peer is not None and n.peer.established for n in sim.nodes.values())

        if not sim.run_until(60_000, stop=settled):
            raise InvariantViolation(f"seed {seed}: no initial leader")
        for _ in range(5):
            sim.write()
        # Kill at a random moment within the next two tickTimes.
        sim.run_until(sim.now + sim.rng.randint(0, 4000))
        leader = next(n.id for n in sim.nodes.values() if n.peer is not None and n.peer.is_leader_established)
        t0 = sim.now
        if how == "crash":
            sim.crash(leader)
        else:
            sim.net.partition([{leader}, set(sim.ids) - {leader}])
        before = len(sim.established_at)

        def elected(sim: Simulation = sim, before: int = before, old: int = leader) -> bool:
            return any(who != old for _, who, _ in sim.established_at[before:])

        if not sim.run_until(t0 + LIVENESS_BOUND_MS, stop=elected):
            raise InvariantViolation(f"seed {seed}: no new leader")
        out.append(next(t for t, who, _ in sim.established_at[before:] if who != leader) - t0)
    return out


def main(argv: list[str] | None = None) -> int:
    # The command describes itself with the first line of the package's docstring.
    from trizab.testing import sim

    ap = argparse.ArgumentParser(
        prog="python -m trizab.testing.sim", description=sim.__doc__.split("\n\n")[0]
    )
    ap.add_argument("--schedules", type=int, default=1000)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--peers", type=int, default=3, choices=(3, 5, 7))
    ap.add_argument("--election", default="fast")
    ap.add_argument("--replay", type=int, default=None, metavar="SEED")
    ap.add_argument("--trace", action="store_true")
    ap.add_argument(
        "--reconfig",
        action="store_true",
        help="schedules that also add voters (new servers), remove voters and the leader, demote voters",
    )
    ap.add_argument(
        "--failover",
        type=int,
        default=0,
        metavar="TRIALS",
        help="measure leader-crash-to-new-leader time instead of running schedules",
    )
    ap.add_argument("--failover-how", choices=("crash", "isolate"), default="crash")
    args = ap.parse_args(argv)
    if args.failover:
        times = sorted(measure_failover(args.peers, args.failover, args.election, how=args.failover_how))
        print(
            f"failover ({args.failover_how}) peers={args.peers} election={args.election} n={len(times)}: "
            f"median {times[len(times) // 2]} ms, worst {times[-1]} ms, best {times[0]} ms"
        )
        return 0
    if args.replay is not None:
        stats = run_schedule(args.replay, args.peers, args.election, trace=args.trace, reconfig=args.reconfig)
        print(f"seed {args.replay}: ok {stats}")
        return 0
    t0 = time.monotonic()
    seeds = range(args.first_seed, args.first_seed + args.schedules)
    stats: dict[str, int] = {}
    count, failed = soak(seeds, args.peers, args.election, stats=stats, reconfig=args.reconfig)
    print(
        f"{count} schedules, {len(failed)} failed, {time.monotonic() - t0:.1f} s"
        f" (peers={args.peers} election={args.election}{' reconfig' if args.reconfig else ''};"
        f" {stats.get('committed', 0)} txns committed, {stats.get('reconfigs', 0)} reconfigs,"
        f" {stats.get('syncs', 0)} syncs confirmed;"
        f" slowest settle after faults stopped: {stats.get('max_settle_ms', 0)} ms,"
        f" bound {LIVENESS_BOUND_MS} ms)"
    )
    return 1 if failed else 0
