"""Workloads that hurt ZooKeeper, run against Apache ZooKeeper 3.8 and trizab in one command.

Theory of operation: each scenario (``SCENARIOS``) is a function of a started server and a
:class:`~bench.scenarios.common.Scale` returning an :class:`~bench.scenarios.common.Outcome`.
:func:`run_scenario` starts every server named in ``--servers`` in turn through
``bench.scenarios.servers.serve`` (the project's launchers), gives it the same untimed warm-up
(the JVM's JIT needs a few seconds of load before ZooKeeper reaches its speed; trizab gets the
same), runs the scenario, stops it, and returns the outcomes in server order, so the figures
printed side by side come from one run. A server that fails is reported in the table, not
raised, so the other column still prints.

The client side is raw-protocol sessions (``bench.rawclient``) in ``--client-processes``
processes; every outcome says how much CPU they used in the measured phase, so a reader can
check the client was not the bottleneck.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import attrs

from bench.loadgen import run_load
from bench.scenarios.bigdir import run_bigdir
from bench.scenarios.bigvalue import JUTE_MAXBUFFER, ZOOKEEPER_HEAP_FOR_VALUES, run_bigvalue
from bench.scenarios.common import Outcome, Scale
from bench.scenarios.fanout import run_fanout, run_recursive
from bench.scenarios.mixed import run_mixed
from bench.scenarios.servers import ZOOKEEPER_HEAP, Running, display_name, serve
from bench.scenarios.storm import ENSEMBLE_SIZE, run_storm


@attrs.frozen
class Scenario:
    name: str
    title: str
    run: Callable[[Running, Scale, int], Outcome]
    ensemble_size: int | None = None  # members the scenario needs, whatever --servers says
    jute_maxbuffer: int | None = None
    zookeeper_heap: str = ZOOKEEPER_HEAP


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("watch-fanout", "watch fan-out: one setData, every watching session notified", run_fanout),
        Scenario(
            "recursive-watch", "persistent recursive watch: writes under the watched znode", run_recursive
        ),
        Scenario(
            "session-storm",
            "session storm: every session reconnects after the leader is killed",
            run_storm,
            ensemble_size=ENSEMBLE_SIZE,
        ),
        Scenario("large-directory", "large directory: create the children, then getChildren", run_bigdir),
        Scenario(
            "large-values",
            "large values: setData/getData of 1 MiB",
            run_bigvalue,
            jute_maxbuffer=JUTE_MAXBUFFER,
            zookeeper_heap=ZOOKEEPER_HEAP_FOR_VALUES,
        ),
        Scenario("mixed", "mixed load: 90% reads, 9% writes, 1% ephemeral create/delete", run_mixed),
    )
}


def log(line: str) -> None:
    print(f"[scenarios] {line}", file=sys.stderr, flush=True)


def run_scenario(
    scenario: Scenario,
    targets: Sequence[str],
    scale: Scale,
    *,
    client_processes: int = 2,
    server_warmup: float = 0.0,
) -> dict[str, Outcome]:
    """``scenario`` against each server in turn; one outcome per server, in ``targets`` order."""
    outcomes: dict[str, Outcome] = {}
    for target in targets:
        name = display_name(target, scenario.ensemble_size)
        started = time.monotonic()
        try:
            with serve(
                target,
                size=scenario.ensemble_size,
                jute_maxbuffer=scenario.jute_maxbuffer,
                zookeeper_heap=scenario.zookeeper_heap,
            ) as running:
                if server_warmup > 0:
                    for op in ("getData", "setData"):
                        run_load(running.addresses, op, 64, warmup=0.0, duration=server_warmup / 2)
                outcomes[name] = scenario.run(running, scale, client_processes)
        except Exception as exc:
            outcomes[name] = Outcome(name, error=f"{type(exc).__name__}: {exc}"[:400])
        log(f"{scenario.name} on {name}: {time.monotonic() - started:.1f} s")
    return outcomes
