"""Fail-over benchmark: kill -9 the leader, time the first successful write, count lost writes.

Theory of operation
-------------------
For each system (a 3- and a 5-member trizab ensemble and a 3-member Apache
ZooKeeper 3.8 ensemble, started the same way on loopback ports with tickTime
2000) the script:

1. starts one kazoo writer per member (its connect string lists every member
   with that member first, so each member has a writer and every writer can
   fail over); each writer creates ``/failover/w<k>-<n>`` with unique ``n`` in
   a loop and records every *acknowledged* create (a create that raised is not
   acknowledged, even though it may have been applied);
2. ``--kills`` times: waits until every member serves and writes flow, finds
   the leader (``srvr``), kills it with SIGKILL and measures the time from the
   kill to the first acknowledged create *issued after* the kill; restarts the
   killed member.  Every third kill happens shortly after the previous victim
   was restarted, before it has caught up (a kill "while a member is
   restarting");
3. stops the writers, then connects to each member alone, ``sync``s and reads
   ``/failover``: every acknowledged create must be there on every member.

It prints median and max fail-over time and the acknowledged writes lost per
system.  Run: ``python -m bench.failover [--kills 10] [--systems trizab3,trizab5,zk3]``.
This is a benchmark script, not a test.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import threading
import time
from typing import Any

from testkit.ensemble_base import member_mode

RESTART_GAP_S = 0.5  # a kill "while restarting" comes this long after the previous victim's restart
SETTLE_S = 1.0  # writes flowing through a full ensemble before the next kill


class Writer(threading.Thread):
    def __init__(self, k: int, hosts: str) -> None:
        super().__init__(daemon=True)
        from kazoo.client import KazooClient
        from kazoo.retry import KazooRetry

        self.k = k
        self.client = KazooClient(
            hosts=hosts,
            randomize_hosts=False,
            timeout=10.0,
            connection_retry=KazooRetry(max_tries=-1, delay=0.05, backoff=1.5, max_delay=0.5),
        )
        # (issued monotonic, acked monotonic, path)
        self.acked: list[tuple[float, float, str]] = []
        self.errors = 0
        self.running = True

    def run(self) -> None:
        from kazoo.exceptions import KazooException
        from kazoo.handlers.threading import KazooTimeoutError

        c = self.client
        while self.running:
            try:
                c.start(timeout=15)
                break
            except Exception:
                time.sleep(0.1)
        n = 0
        while self.running:
            n += 1
            path = f"/failover/w{self.k}-{n}"
            t0 = time.monotonic()
            try:
                c.create(path, b"x")
            except (KazooException, KazooTimeoutError, OSError):
                self.errors += 1
                time.sleep(0.01)
                continue
            except Exception:
                self.errors += 1
                time.sleep(0.01)
                continue
            self.acked.append((t0, time.monotonic(), path))

    def close(self) -> None:
        self.running = False
        self.join(20)
        with contextlib.suppress(Exception):
            self.client.stop()
            self.client.close()


def wait_all_serving(ensemble: Any, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        modes = [member_mode(m) for m in ensemble]
        if all(m in ("leader", "follower", "observer") for m in modes) and modes.count("leader") == 1:
            return
        time.sleep(0.05)
    raise RuntimeError("ensemble not serving in time")


def first_write_after(writers: list[Writer], t_kill: float, timeout: float = 60.0) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        best = None
        for w in writers:
            for t0, t1, _ in reversed(w.acked[-200:]):
                if t0 >= t_kill and (best is None or t1 < best):
                    best = t1
        if best is not None:
            return best - t_kill
        time.sleep(0.01)
    return None


def verify(ensemble: Any, writers: list[Writer]) -> tuple[int, int]:
    """(acknowledged writes, acknowledged writes missing on some member)."""
    from kazoo.client import KazooClient

    acked = {p.rsplit("/", 1)[1] for w in writers for _, _, p in w.acked}
    missing: set[str] = set()
    for m in ensemble:
        c = KazooClient(hosts=m.address, timeout=10.0)
        c.start(timeout=30)
        try:
            c.sync("/failover")
            have = set(c.get_children("/failover"))
        finally:
            c.stop()
            c.close()
        missing |= acked - have
    return len(acked), len(missing)


def run_system(name: str, ensemble: Any, kills: int, out: list[str]) -> dict[str, Any]:
    from kazoo.client import KazooClient

    ensemble.start()
    try:
        wait_all_serving(ensemble)
        c = KazooClient(hosts=ensemble.address)
        c.start(timeout=30)
        c.ensure_path("/failover")
        c.stop()
        c.close()
        members = list(ensemble)
        writers = []
        for k in range(len(members)):
            order = members[k:] + members[:k]
            writers.append(Writer(k, ",".join(m.address for m in order)))
        for w in writers:
            w.start()
        times: list[float] = []
        victim = None
        for i in range(kills):
            restarting = i % 3 == 2 and victim is not None
            if restarting:
                time.sleep(RESTART_GAP_S)
            else:
                wait_all_serving(ensemble)
                time.sleep(SETTLE_S)
            leader = None
            deadline = time.monotonic() + 60
            while leader is None and time.monotonic() < deadline:
                leader = next((m for m in ensemble if member_mode(m) == "leader"), None)
                if leader is None:
                    time.sleep(0.02)
            if leader is None:
                raise RuntimeError(f"{name}: no leader before kill {i + 1}")
            t_kill = time.monotonic()
            leader.kill()
            dt = first_write_after(writers, t_kill)
            if dt is None:
                raise RuntimeError(f"{name}: no successful write within 60 s after kill {i + 1}")
            times.append(dt)
            note = " (while a member restarts)" if restarting else ""
            out.append(f"  {name} kill {i + 1}: first write after {dt:.3f} s{note}")
            print(out[-1], flush=True)
            leader.start()
            victim = leader
        wait_all_serving(ensemble)
        time.sleep(SETTLE_S)
        for w in writers:
            w.close()
        total, lost = verify(ensemble, writers)
        return {
            "name": name,
            "median": statistics.median(times),
            "max": max(times),
            "acked": total,
            "lost": lost,
        }
    finally:
        ensemble.stop()
        with contextlib.suppress(Exception):
            ensemble.close()


def make(name: str) -> Any:
    if name.startswith("trizab"):
        from testkit.trizab_ensemble import TrizabEnsemble

        return TrizabEnsemble(int(name[6:]), tick_time=2000)
    if name.startswith("zk"):
        from testkit.apache_zk import ApacheEnsemble

        return ApacheEnsemble(int(name[2:]), tick_time=2000, init_limit=10, sync_limit=5)
    raise SystemExit(f"unknown system {name}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--systems", default="trizab3,trizab5,zk3")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    out: list[str] = []
    results = []
    for name in args.systems.split(","):
        print(f"== {name}", flush=True)
        results.append(run_system(name, make(name), args.kills, out))
    print()
    print(f"{'system':<10} {'kills':>5} {'median s':>9} {'max s':>7} {'acked':>8} {'lost':>5}")
    for r in results:
        line = f"{r['name']:<10} {args.kills:>5} {r['median']:>9.3f} {r['max']:>7.3f}"
        print(f"{line} {r['acked']:>8} {r['lost']:>5}")
    return 0 if all(r["lost"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
