"""``python -m fuzz --target NAME --runs N``: fuzz trizab's decoders (see fuzz/targets.py).

Each target runs in its own process (libFuzzer owns the process it fuzzes), ``--jobs`` at
a time; the runner prints, per target, the inputs run, the distinct crashes (exceptions
other than the target's documented error type, and broken invariants), the slow inputs,
and where their inputs were saved.  Exit status 1 if anything was found.

Examples::

    python -m fuzz --target quorum --runs 200000
    python -m fuzz --target all --runs 150000 --jobs 2
    python -m fuzz --target config --runs 10000 --engine random   # without atheris
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fuzz.targets import TARGETS


def _default_engine() -> str:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return "random"
    return "atheris"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", required=True, help=f"one of {', '.join(TARGETS)}, or all")
    ap.add_argument("--runs", type=int, default=100_000, help="inputs per target")
    ap.add_argument("--jobs", type=int, default=1, help="targets fuzzed at once")
    ap.add_argument("--engine", choices=("atheris", "random"), default=None)
    ap.add_argument("--workdir", type=Path, default=None, help="corpora, crashes, stats (default: temp)")
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--slow", type=float, default=1.0, help="seconds after which one input counts as a hang")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    names = list(TARGETS) if args.target == "all" else args.target.split(",")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    engine = args.engine or _default_engine()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="trizab-fuzz-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"engine {engine}, {args.runs} inputs per target, results in {workdir}", flush=True)

    pending = list(names)
    running: dict[str, tuple[subprocess.Popen[bytes], float]] = {}
    results: dict[str, dict[str, object]] = {}
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            name = pending.pop(0)
            cmd = [
                sys.executable,
                "-m",
                "fuzz.worker",
                f"--target={name}",
                f"--runs={args.runs}",
                f"--stats={workdir / f'{name}.stats.json'}",
                f"--corpus={workdir / 'corpus' / name}",
                f"--crashes={workdir / 'crashes'}",
                f"--engine={engine}",
                f"--max-len={args.max_len}",
                f"--slow={args.slow}",
                f"--seed={args.seed}",
            ]
            log = (workdir / f"{name}.log").open("wb")
            running[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), time.monotonic())
        time.sleep(0.2)
        for name, (proc, started) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            stats_path = workdir / f"{name}.stats.json"
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {"runs": 0}
            stats["exit"] = proc.returncode
            stats["seconds"] = round(time.monotonic() - started, 1)
            results[name] = stats
            _report(name, stats, workdir)

    total = sum(int(s.get("runs", 0)) for s in results.values())  # type: ignore[call-overload]
    bad = [n for n, s in results.items() if s.get("crashes") or s.get("slow") or s.get("exit")]
    print(f"total: {total} inputs over {len(results)} target(s); findings in: {', '.join(bad) or 'none'}")
    return 1 if bad else 0


def _report(name: str, stats: dict[str, object], workdir: Path) -> None:
    runs = int(stats.get("runs", 0))  # type: ignore[call-overload]
    seconds = float(stats["seconds"])  # type: ignore[arg-type]
    crashes: dict[str, dict[str, object]] = stats.get("crashes") or {}  # type: ignore[assignment]
    slow: list[dict[str, object]] = stats.get("slow") or []  # type: ignore[assignment]
    rate = runs / seconds if seconds else 0.0
    print(
        f"{name:11s} {runs:>9,} inputs  {seconds:7.1f} s ({rate:,.0f}/s)  crashes: {len(crashes)}  "
        f"slow: {len(slow)}  slowest input: {stats.get('max_input_seconds', '?')} s  exit: {stats['exit']}",
        flush=True,
    )
    for key, c in crashes.items():
        print(f"    CRASH {key} x{c['count']}: {c['message']}\n          input: {c['input']}")
    for s in slow:
        print(f"    SLOW {s['seconds']} s, {s['length']} bytes: {s['input']}")
    if stats["exit"] not in (0, None):
        print(f"    the fuzzing process exited with {stats['exit']}: see {workdir / f'{name}.log'}")
    if os.environ.get("FUZZ_VERBOSE") and stats["exit"]:
        print((workdir / f"{name}.log").read_text(errors="replace")[-3000:])


if __name__ == "__main__":
    sys.exit(main())
