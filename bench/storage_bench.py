"""Raw storage-engine benchmark: append + sync throughput, group-commit batches, recovery time.

Usage::

    python bench/storage_bench.py [--engines txnlog,sqlite] [--txns 20000] [--recover 100000]
                                  [--dir DIR] [--no-fsync] [--size 100]

What it measures, per engine (all through the plugin loader, as the server does):

* ``append``: CPU cost of encoding transactions into the engine's buffer (no sync).
* ``batch=B``: append B setData transactions then ``sync()``, repeated: txns/s and
  syncs/s.  B=1 is one fsync per write (the worst case), B=256 is a loaded server.
* ``group``: one thread appends as fast as it can while another calls ``sync()`` in a
  loop (how the runtime drives the engine): txns/s, the batch sizes that group commit
  produced, and the fsync count.
* ``recover``: time for ``open()`` to replay N logged transactions.

The directory defaults to a fresh temporary one on the current working directory's
filesystem (so fsync hits a real disk, not tmpfs); pass ``--dir`` to choose.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from trizab.plugin import load_plugin
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode


def set_data_txns(n: int, size: int, start: int = 1) -> list[Txn]:
    payload = b"v" * size
    return [
        Txn(
            r.TxnHeader(
                client_id=0x1234, cxid=i, zxid=(1 << 32) | i, time=1_700_000_000_000 + i, type=OpCode.SET_DATA
            ),
            r.SetDataTxn(path=f"/bench/node{i % 1000}", data=payload, version=i),
        )
        for i in range(start, start + n)
    ]


def engine(name: str, base: Path, force_sync: bool) -> Any:
    s = load_plugin(
        "trizab.storage", name, {}, data_dir=base / "data", data_log_dir=base / "log", force_sync=force_sync
    )
    s.open()
    return s


def fresh(base: Path) -> Path:
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    return base


def bench_append(name: str, base: Path, txns: list[Txn], force_sync: bool) -> str:
    s = engine(name, fresh(base), force_sync)
    t0 = time.perf_counter()
    for k in range(0, len(txns), 256):
        s.append(txns[k : k + 256])
    dt = time.perf_counter() - t0
    s.close()
    return f"append only      {len(txns) / dt:>10,.0f} txns/s   {dt / len(txns) * 1e6:6.2f} µs/txn (encode)"


def bench_batches(name: str, base: Path, txns: list[Txn], batch: int, force_sync: bool) -> str:
    s = engine(name, fresh(base), force_sync)
    n = min(len(txns), batch * 2000)
    t0 = time.perf_counter()
    for k in range(0, n, batch):
        s.append(txns[k : k + batch])
        s.sync()
    dt = time.perf_counter() - t0
    st = s.statistics()
    s.close()
    return (
        f"batch={batch:<4}       {n / dt:>10,.0f} txns/s   {st['syncs'] / dt:8,.0f} syncs/s   "
        f"fsyncs={st['fsyncs']}"
    )


def bench_group(name: str, base: Path, txns: list[Txn], force_sync: bool, chunk: int) -> str:
    s = engine(name, fresh(base), force_sync)
    done = threading.Event()
    batches: list[int] = []

    def syncer() -> None:
        last = 0
        while True:
            finished = done.is_set()
            s.sync()
            now = s.statistics()["txns"]
            if now > last:
                batches.append(now - last)
                last = now
            if finished:
                return

    t = threading.Thread(target=syncer)
    t0 = time.perf_counter()
    t.start()
    for k in range(0, len(txns), chunk):
        s.append(txns[k : k + chunk])
    done.set()
    t.join()
    dt = time.perf_counter() - t0
    st = s.statistics()
    s.close()
    return (
        f"group(chunk={chunk:<3})  {len(txns) / dt:>10,.0f} txns/s   "
        f"syncs={st['syncs']} fsyncs={st['fsyncs']} batch mean={statistics.fmean(batches):.1f} "
        f"median={statistics.median(batches):.0f} max={max(batches)}"
    )


def bench_recover(name: str, base: Path, n: int, size: int) -> str:
    s = engine(name, fresh(base), False)
    step = 10_000
    for k in range(0, n, step):
        s.append(set_data_txns(min(step, n - k), size, start=k + 1))
        s.sync()
    s.close()
    s = load_plugin(
        "trizab.storage", name, {}, data_dir=base / "data", data_log_dir=base / "log", force_sync=True
    )
    t0 = time.perf_counter()
    rec = s.open()
    dt = time.perf_counter() - t0
    s.close()
    assert len(rec.txns) == n, (len(rec.txns), n)
    return f"recover {n:,} txns  {dt:8.2f} s   ({n / dt:,.0f} txns/s)"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--engines", default="txnlog,sqlite")
    p.add_argument("--txns", type=int, default=20_000)
    p.add_argument("--recover", type=int, default=100_000)
    p.add_argument("--size", type=int, default=100, help="setData payload bytes")
    p.add_argument("--dir", type=Path, default=None)
    p.add_argument("--no-fsync", action="store_true", help="forceSync=no (unsafe; for comparison)")
    args = p.parse_args(argv)
    force_sync = not args.no_fsync
    root = Path(tempfile.mkdtemp(prefix="trizab-bench-", dir=args.dir or Path.cwd()))
    try:
        txns = set_data_txns(args.txns, args.size)
        print(
            f"{args.txns:,} setData txns of {args.size} bytes, "
            f"forceSync={'yes' if force_sync else 'no'}, in {root}"
        )
        for name in args.engines.split(","):
            print(f"== {name}")
            base = root / name
            print("  " + bench_append(name, base, txns, force_sync))
            for batch in (1, 16, 256):
                print("  " + bench_batches(name, base, txns, batch, force_sync))
            for chunk in (1, 16):
                print("  " + bench_group(name, base, txns, force_sync, chunk))
            if args.recover:
                print("  " + bench_recover(name, base, args.recover, args.size))
            sys.stdout.flush()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
