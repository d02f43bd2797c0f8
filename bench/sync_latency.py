"""Latency of ``sync``: a 3-member trizab ensemble against a 3-member Apache ZooKeeper 3.8 ensemble.

Theory of operation
-------------------
A trizab leader answers a sync only once a quorum has echoed a heartbeat round
started after the sync arrived (ReadIndex, see ``trizab.zab.peer``), so a sync
costs a round trip to the followers on the leader and two on a follower (SYNC to
the leader, its ping round, the answer).  Apache ZooKeeper's leader answers at
once (a follower's sync: one round trip), which is cheaper and unsafe after a
pause (ZOOKEEPER-1675).  This script measures what that costs a client.

For each system it starts the ensemble on loopback ports with a fresh data
directory each (tickTime 2000, default durable storage), finds the leader and a
follower (``srvr``), connects one kazoo client to that member alone and times
``client.sync("/")`` one at a time: ``--warmup`` untimed calls, then ``--calls``
timed ones (the JVM's JIT needs the warm-up).  It prints p50, p99 and mean in
milliseconds per member role.  Nothing else runs against the ensemble.

Run from the repository root: ``python -m bench.sync_latency [--calls 2000]
[--systems trizab,zookeeper]``.  Apache ZooKeeper comes from the Debian package
``zookeeper`` (``testkit.apache_zk``).  A benchmark script, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from trizab.runtime.launcher import member_mode

ROLES = ("follower", "leader")


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def time_syncs(address: str, calls: int, warmup: int) -> list[float]:
    """Seconds per ``sync("/")`` on one kazoo client connected to ``address`` alone."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=address, randomize_hosts=False, timeout=10.0)
    client.start(timeout=30)
    try:
        for _ in range(warmup):
            client.sync("/")
        out = []
        clock = time.perf_counter
        for _ in range(calls):
            t0 = clock()
            client.sync("/")
            out.append(clock() - t0)
        return out
    finally:
        client.stop()
        client.close()


def members_by_role(ensemble: Any, timeout: float = 60.0) -> dict[str, Any]:
    """The leader and one follower of a started ensemble, once every member serves."""
    deadline = time.monotonic() + timeout
    while True:
        modes = {m: member_mode(m.client_port) for m in ensemble}
        if all(modes.values()) and list(modes.values()).count("leader") == 1:
            leader = next(m for m, mode in modes.items() if mode == "leader")
            follower = next(m for m, mode in modes.items() if mode == "follower")
            return {"leader": leader, "follower": follower}
        if time.monotonic() > deadline:
            raise RuntimeError(f"ensemble not serving within {timeout} s: {modes}")
        time.sleep(0.1)


def make_ensemble(system: str, workdir: str) -> Any:
    if system == "trizab":
        from testkit.trizab_ensemble import TrizabEnsemble

        return TrizabEnsemble(3, workdir=workdir, tick_time=2000)
    if system == "zookeeper":
        from testkit.apache_zk import ApacheEnsemble

        return ApacheEnsemble(3, workdir=workdir, tick_time=2000)
    raise ValueError(f"unknown system {system!r} (trizab, zookeeper)")


def measure(system: str, calls: int, warmup: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix=f"sync-bench-{system}-") as workdir:
        ensemble = make_ensemble(system, workdir)
        try:
            ensemble.start()
            members = members_by_role(ensemble)
            for role in ROLES:
                samples = sorted(time_syncs(members[role].address, calls, warmup))
                out[role] = {
                    "p50_ms": 1000 * _percentile(samples, 0.50),
                    "p99_ms": 1000 * _percentile(samples, 0.99),
                    "mean_ms": 1000 * statistics.fmean(samples),
                }
                print(f"[sync_latency] {system} {role}: {out[role]}", file=sys.stderr, flush=True)
        finally:
            ensemble.close()
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sync_latency", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="timed syncs per member (default 2000)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed syncs first (default 500)")
    parser.add_argument("--systems", default="trizab,zookeeper", help="comma-separated: trizab, zookeeper")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    results = {s: measure(s, args.calls, args.warmup) for s in args.systems.split(",") if s}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    names = {"trizab": "trizab, 3 members", "zookeeper": "Apache ZooKeeper 3.8, 3 members"}
    print(f'sync("/") latency, kazoo, one call at a time: {args.calls} calls after {args.warmup} warm-up')
    print(f"  {'system':<32} {'member':<9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for system, by_role in results.items():
        for role in ROLES:
            res = by_role[role]
            print(
                f"  {names.get(system, system):<32} {role:<9}"
                f" {res['p50_ms']:>8.3f} {res['p99_ms']:>8.3f} {res['mean_ms']:>8.3f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
