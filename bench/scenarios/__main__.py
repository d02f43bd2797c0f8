"""``python -m bench.scenarios NAME [NAME...] [--servers ...] [--scale small|full]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from bench.limits_rss import raise_fd_limit
from bench.loadgen import parse_server
from bench.scenarios import SCENARIOS, run_scenario
from bench.scenarios.common import SCALES, format_outcomes

DEFAULT_SERVERS = "apache,trizab-txnlog"
# Untimed load before each scenario, seconds (as bench.loadgen --compare gives every server).
SERVER_WARMUP = {"small": 0.0, "full": 4.0}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scenarios",
        description="Workloads that hurt ZooKeeper, against Apache ZooKeeper 3.8 and trizab side by side.",
    )
    parser.add_argument("names", nargs="+", metavar="NAME", help=f"{', '.join(SCENARIOS)} or all")
    parser.add_argument(
        "--servers",
        default=DEFAULT_SERVERS,
        help="comma list, as bench.loadgen: apache, apache-3, trizab-<storage>, trizab-3-<storage> "
        "(the first is the reference of the ratios; session-storm always runs 3 members)",
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--server-warmup", type=float, default=None, help="untimed seconds of load first")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.names == ["all"] else args.names
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)} or all")
    scale = SCALES[args.scale]
    raise_fd_limit(max(scale.fanout_sessions, scale.storm_sessions) + 1000)  # per process
    warmup = SERVER_WARMUP[args.scale] if args.server_warmup is None else args.server_warmup
    targets = [t.strip() for t in args.servers.split(",") if t.strip()]
    for name in targets:
        try:
            parse_server(name)
        except ValueError as exc:
            parser.error(f"{exc}; servers are apache, apache-N, trizab-<storage>, trizab-N-<storage>")
    failed = False
    for name in names:
        scenario = SCENARIOS[name]
        outcomes = run_scenario(
            scenario, targets, scale, client_processes=args.client_processes, server_warmup=warmup
        )
        print(format_outcomes(f"{name} ({args.scale}): {scenario.title}", outcomes), flush=True)
        print(flush=True)
        failed = failed or any(o.error for o in outcomes.values())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
