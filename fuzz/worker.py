"""One fuzzing process for one target (started by ``python -m fuzz``; see there).

With atheris the trizab modules are imported instrumented, so libFuzzer is guided by
Python line coverage.  Without atheris, inputs are random mutations of the seeds and of
inputs seen so far (:mod:`fuzz.mutate`), which finds less but needs nothing installed.

A crash does not stop the run: its input and traceback are saved under the crash
directory once per distinct (exception type, innermost trizab line), and fuzzing goes on,
so one run reports every distinct bug it meets.  An input that takes longer than
``--slow`` seconds is saved as a hang.  Statistics go to a JSON file that the runner reads.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for fr in reversed(frames):
        if "/trizab/" in fr.filename or "/frontend/" in fr.filename or "/fuzz/" in fr.filename:
            return f"{Path(fr.filename).name}:{fr.lineno}"
    return f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"


class Stats:
    def __init__(self, target: str, path: Path, crashes: Path, runs: int, slow_s: float) -> None:
        self.target = target
        self.path = path
        self.crash_dir = crashes
        self.limit = runs
        self.slow_s = slow_s
        self.runs = 0
        self.crashes: dict[str, dict[str, Any]] = {}
        self.slow: list[dict[str, Any]] = []
        self.max_s = 0.0
        self.started = time.monotonic()

    def save_input(self, kind: str, data: bytes, text: str) -> str:
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        name = f"{self.target}-{kind}-{hashlib.sha1(data).hexdigest()[:12]}"
        (self.crash_dir / name).write_bytes(data)
        (self.crash_dir / f"{name}.txt").write_text(text)
        return str(self.crash_dir / name)

    def crash(self, data: bytes, exc: BaseException) -> None:
        key = f"{type(exc).__name__} at {_where(exc)}"
        entry = self.crashes.get(key)
        if entry is None:
            text = "".join(traceback.format_exception(exc))
            path = self.save_input("crash", data, text)
            self.crashes[key] = {"count": 1, "input": path, "message": str(exc)[:300]}
            self.write()
        else:
            entry["count"] += 1

    def hang(self, data: bytes, seconds: float) -> None:
        if len(self.slow) < 20:
            path = self.save_input("slow", data, f"{seconds:.3f} s for {len(data)} bytes\n")
            self.slow.append({"seconds": round(seconds, 3), "input": path, "length": len(data)})
            self.write()

    def write(self) -> None:
        self.path.write_text(
            json.dumps(
                {
                    "target": self.target,
                    "runs": self.runs,
                    "crashes": self.crashes,
                    "slow": self.slow,
                    "max_input_seconds": round(self.max_s, 4),
                    "elapsed": round(time.monotonic() - self.started, 1),
                },
                indent=1,
            )
        )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m fuzz.worker")
    ap.add_argument("--target", required=True)
    ap.add_argument("--runs", type=int, required=True)
    ap.add_argument("--stats", type=Path, required=True)
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--crashes", type=Path, required=True)
    ap.add_argument("--engine", choices=("atheris", "random"), default="atheris")
    ap.add_argument("--max-len", type=int, default=4096)
    ap.add_argument("--slow", type=float, default=1.0, help="an input slower than this is a hang")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the config parser warns about unknown keys

    if args.engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["trizab", "fuzz.targets"]):
            from fuzz.targets import TARGETS
    else:
        from fuzz.targets import TARGETS

    target = TARGETS[args.target]
    stats = Stats(target.name, args.stats, args.crashes, args.runs, args.slow)
    args.corpus.mkdir(parents=True, exist_ok=True)
    seeds = target.seeds()
    for seed in seeds:
        (args.corpus / f"seed-{hashlib.sha1(seed).hexdigest()[:12]}").write_bytes(seed)
    check = target.check
    perf = time.perf_counter

    def one(data: bytes) -> None:
        stats.runs += 1
        t0 = perf()
        try:
            check(data)
        except target.documented:
            pass
        except Exception as exc:
            stats.crash(data, exc)
        dt = perf() - t0
        if dt > stats.max_s:
            stats.max_s = dt
            if dt > stats.slow_s:
                stats.hang(data, dt)
        if stats.runs % 20_000 == 0:
            stats.write()
        if stats.runs >= stats.limit:
            stats.write()
            sys.stdout.flush()
            os._exit(0)

    if args.engine == "atheris":
        import atheris

        atheris.Setup(
            [
                sys.argv[0],
                f"-runs={args.runs + 1000}",
                f"-max_len={args.max_len}",
                "-timeout=30",
                "-rss_limit_mb=2048",
                f"-seed={args.seed or 1}",
                f"-artifact_prefix={args.crashes}/{target.name}-libfuzzer-",
                str(args.corpus),
            ],
            one,
        )
        args.crashes.mkdir(parents=True, exist_ok=True)
        atheris.Fuzz()
    else:
        from fuzz.mutate import Mutator

        rng = random.Random(args.seed)
        pool = list(seeds)
        mutator = Mutator(rng, pool)
        while True:
            data = mutator.mutate(rng.choice(pool))[: args.max_len]
            one(data)
            if len(pool) < 5000 and rng.random() < 0.01:
                pool.append(data)


if __name__ == "__main__":
    main()
