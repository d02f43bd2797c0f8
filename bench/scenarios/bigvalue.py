"""Large values: setData and getData of 1 MiB values, ``jute.maxbuffer`` raised on both servers.

The load generator of ``bench/loadgen.py`` (raw frames, a fixed number of requests in flight)
runs each op at each load of the scale with 1 MiB per znode; both servers get a 4 MiB
``jute.maxbuffer`` (ZooKeeper's default, 1 MiB - 1 byte, refuses such a request). Figures per
op and load: operations per second, MB/s and latency p50 / p99. The client CPU is that of the
load generator's processes, read from ``getrusage`` of the reaped children. ZooKeeper gets a
4 GiB heap here (see ``ZOOKEEPER_HEAP_FOR_VALUES``).
"""

from __future__ import annotations

import queue
import resource
import time

from bench.loadgen import run_load
from bench.scenarios.common import Figure, Outcome, Scale
from bench.scenarios.servers import Running

JUTE_MAXBUFFER = 4 << 20
# ZooKeeper keeps its last 500 committed transactions in memory (ZKDatabase.committedLog, for
# DIFF syncs), standalone too: 500 MiB of 1 MiB setData. With zkEnv.sh's -Xmx1000m its SyncThread
# dies of OutOfMemoryError within seconds of this scenario and the server exits; 4 GiB keeps it up.
ZOOKEEPER_HEAP_FOR_VALUES = "-Xmx4g"


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_bigvalue(running: Running, scale: Scale, client_processes: int) -> Outcome:
    outcome = Outcome(running.name)
    cpu0, wall0 = _children_cpu(), time.monotonic()
    processes = 1
    for op in ("setData", "getData"):
        for load in scale.value_loads:
            try:
                result = run_load(
                    running.addresses,
                    op,
                    load,
                    processes=min(client_processes, load),
                    connections=4,
                    data_size=scale.value_bytes,
                    warmup=min(0.5, scale.value_seconds / 2),
                    duration=scale.value_seconds,
                    pids=running.pids,
                )
            except queue.Empty:
                raise RuntimeError(
                    f"{op} at {load} outstanding: a load-generator process got no answer "
                    "(the server closed its connection or exited; see its log)"
                ) from None
            processes = max(processes, min(client_processes, load))
            label = f"{op} x{load}"
            outcome.figures += [
                Figure(f"{label} ops/s", result.ops_per_s, "/s", False),
                Figure(f"{label} MB/s", result.ops_per_s * scale.value_bytes / 1e6, "MB/s", False),
                Figure(f"{label} p50", result.p50_ms, "ms", True),
                Figure(f"{label} p99", result.p99_ms, "ms", True),
            ]
            done = round(result.ops_per_s * scale.value_seconds)
            outcome.counts[f"{label} completed"] = done
            outcome.counts[f"{label} errors"] = result.errors
            if result.errors or done == 0:
                outcome.error = f"{label}: {done} completed, {result.errors} errors"
    outcome.client_cpu_s = _children_cpu() - cpu0
    outcome.client_wall_s = time.monotonic() - wall0
    outcome.client_processes = processes
    return outcome
