"""``python -m compat.chaos``: seeded fault-injection runs against trizab and Apache ZooKeeper.

Each run prints one line of JSON (see :func:`compat.chaos.runner.run`); a table over all runs
follows.  ``--system both`` runs every seed against trizab and then against Apache ZooKeeper
with the same fault schedule, so a finding reads "trizab vs ZooKeeper on the same seed".  A run
whose checkers find a violation keeps its folder (history, nemesis log, members' logs and the
command that replays it); the others are removed unless ``--keep``.

The command re-executes itself in a private network namespace (``unshare --net``), where its
firewall rules live and die; it needs root, ``unshare``, ``ip`` and ``iptables``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from compat.chaos.nemesis import FAULT_KINDS
from compat.chaos.netns import NetnsUnavailable, reexec_in_private_netns
from compat.chaos.runner import SYSTEMS, RunConfig, run


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m compat.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--system", choices=(*SYSTEMS, "both"), default="trizab")
    p.add_argument("--seed", type=int, default=1, help="first seed")
    p.add_argument("--runs", type=int, default=1, help="how many seeds, from --seed on")
    p.add_argument("--duration", type=float, default=60.0, help="seconds of faults per run")
    p.add_argument("--members", type=int, default=3, choices=(3, 5))
    p.add_argument("--clients", type=int, default=5)
    p.add_argument("--faults", default=",".join(FAULT_KINDS), help="comma-separated fault kinds")
    p.add_argument("--session-timeout", type=float, default=6.0)
    p.add_argument("--out", type=Path, default=Path("chaos-runs"), help="folder for the runs' records")
    p.add_argument("--keep", action="store_true", help="keep every run's folder, not only failing ones")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    kinds = tuple(k for k in args.faults.split(",") if k)
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown or not kinds:
        p.error(f"unknown fault kinds {unknown}; choose from {', '.join(FAULT_KINDS)}")
    args.kinds = kinds
    return args


def _table(summaries: list[dict[str, Any]]) -> str:
    names = sorted({name for s in summaries for name in s["checkers"]})
    head = ["system", "seed", "faults", "ok/fail/unknown", *names, "lost", "sess.viol", "avail"]
    rows = [head]
    for s in summaries:
        faults = " ".join(f"{k}:{v}" for k, v in sorted(s["faults"].items()))
        ops = s["ops"]
        verdicts = []
        for name in names:
            v = s["checkers"].get(name)
            verdicts.append(
                "-" if v is None else {True: "ok", False: f"FAIL({v['count']})", None: "?"}[v["ok"]]
            )
        rows.append(
            [
                s["system"],
                str(s["seed"]),
                faults,
                f"{ops['ok']}/{ops['fail']}/{ops['unknown']}",
                *verdicts,
                str(s["lost_writes"]),
                str(s["session_violations"]),
                f"{s['availability']:.2f}",
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        reexec_in_private_netns()
    except NetnsUnavailable as exc:
        print(f"compat.chaos: cannot isolate the run's network: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    systems = SYSTEMS if args.system == "both" else (args.system,)
    summaries: list[dict[str, Any]] = []
    for seed in range(args.seed, args.seed + args.runs):
        for system in systems:
            config = RunConfig(
                system=system,
                seed=seed,
                duration=args.duration,
                members=args.members,
                clients=args.clients,
                faults=args.kinds,
                session_timeout=args.session_timeout,
            )
            workdir = args.out / f"{system}-seed{seed}-{int(time.time())}"
            try:
                summary = run(config, workdir)
            except Exception as exc:  # a run that could not finish is a result too
                logging.exception("run %s seed %d did not finish", system, seed)
                summary = {"system": system, "seed": seed, "error": repr(exc), "valid": False}
            summary["folder"] = str(workdir)
            if summary.get("valid") and not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
                summary["folder"] = None
            print(json.dumps(summary), flush=True)
            summaries.append(summary)
    finished = [s for s in summaries if "error" not in s]
    if finished:
        print(_table(finished), flush=True)
    return 0 if all(s.get("valid") for s in summaries) else 1


if __name__ == "__main__":
    sys.exit(main())
