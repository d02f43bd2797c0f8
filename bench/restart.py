"""Restart time with a big data tree: trizab (txnlog) against Apache ZooKeeper 3.8, same znodes.

Theory of operation: both servers end up with the same data on disk, a snapshot holding
``--nodes`` znodes (default 1,000,000 leaves under 1,000 parents, ``--data-size`` bytes each)
plus ``--log`` (default 100,000) setData records in the transaction log after it, and are then
restarted and timed from process start to the first successful getData reply (a fresh session
connecting, then reading a leaf).

* Apache ZooKeeper has no bulk loader, so its znodes are created over the wire (pipelined raw
  create frames, see ``bench.loadgen``).  ZooKeeper writes a snapshot of everything it loaded
  whenever it starts (``ZooKeeperServer.loadData`` → ``takeSnapshot``), so one restart after the
  creates leaves exactly "snapshot of the tree"; then the setData records are written over the
  wire with ``snapCount`` set high enough that no other snapshot is taken, and the server stops.
* trizab: the same creates are applied in-process to a ``DataTree`` and saved as the snapshot
  through the txnlog engine itself (the bytes a running server would write), a bulk load that
  takes seconds instead of minutes; then the server starts on that directory (timed too: the
  snapshot alone), the setData records go over the wire like ZooKeeper's, and it stops.

Both timed restarts include everything the server does before it answers: JVM or interpreter
start-up, reading and checking the snapshot, replaying the log (and, for ZooKeeper, writing its
start-up snapshot).  ``python -m bench.restart`` from the repository root; ``--nodes 100000`` for a
quick run.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.loadgen import OPEN_ACL, connect, frame
from testkit import apache_zk
from testkit.process import TrizabProcess
from trizab.tree.datatree import DataTree
from trizab.tree.snapshot import serialize_snapshot
from trizab.wire import records as r
from trizab.wire.codes import OpCode

FANOUT = 1000
ROOT = "/restart"
WINDOW = 2000  # requests in flight while loading over the wire
_LEN = struct.Struct(">i")
_REPLY = struct.Struct(">iqi")
NO_AUTOMATIC_SNAPSHOTS = "snapCount=100000000"
# ZooKeeper's administrator guide sizes the heap by load testing, well below what would swap.
# This load test (1,001,001 znodes of 32 bytes + 100,000 setData) leaves 349 MB of live heap
# after a full collection (``live_heap_mb``); 1 GB is about three times that, and zkEnv.sh's
# default (1000m) too.
DEFAULT_ZK_HEAP = "1g"


def paths(nodes: int) -> Iterator[str]:
    """The parents, then the leaves, in creation order (parents first)."""
    parents = max(1, (nodes + FANOUT - 1) // FANOUT)
    yield ROOT
    for p in range(parents):
        yield f"{ROOT}/p{p:04d}"
    for i in range(nodes):
        yield f"{ROOT}/p{i // FANOUT:04d}/n{i % FANOUT:04d}"


def leaf(i: int) -> str:
    return f"{ROOT}/p{i // FANOUT:04d}/n{i % FANOUT:04d}"


def pipeline(sock: socket.socket, frames: Iterator[bytes], *, window: int = WINDOW) -> int:
    """Send every frame keeping `window` in flight; return how many replies had an error."""
    sock.setblocking(True)
    buf = bytearray()
    inflight = 0
    errors = 0
    exhausted = False
    while True:
        if not exhausted and inflight < window:
            out = bytearray()
            while inflight < window:
                f = next(frames, None)
                if f is None:
                    exhausted = True
                    break
                out += f
                inflight += 1
            if out:
                sock.sendall(out)
        if inflight == 0:
            return errors
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        buf += chunk
        pos = 0
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if len(buf) - pos - 4 < n:
                break
            xid, _zxid, err = _REPLY.unpack_from(buf, pos + 4)
            pos += 4 + n
            if xid == -1:
                continue
            inflight -= 1
            errors += err != 0
        del buf[:pos]


def create_frames(nodes: int, data: bytes) -> Iterator[bytes]:
    for xid, path in enumerate(paths(nodes), start=1):
        yield frame(r.RequestHeader(xid, OpCode.CREATE), r.CreateRequest(path, data, OPEN_ACL, 0))


def set_frames(nodes: int, count: int, data: bytes) -> Iterator[bytes]:
    step = max(1, nodes // max(1, count))
    for k in range(count):
        path = leaf((k * step) % nodes)
        yield frame(r.RequestHeader(k + 1, OpCode.SET_DATA), r.SetDataRequest(path, data, -1))


def over_the_wire(port: int, frames: Iterator[bytes], what: str) -> None:
    sock = connect("127.0.0.1", port)
    sock.settimeout(600)
    started = time.monotonic()
    try:
        errors = pipeline(sock, frames)
    finally:
        sock.close()
    print(f"[restart]   {what}: {time.monotonic() - started:.1f} s, {errors} errors", file=sys.stderr)
    if errors:
        raise RuntimeError(f"{what}: {errors} requests failed")


def first_read(port: int, path: str, deadline: float) -> None:
    """Poll until a new session reads `path` successfully (connection refused/closed: retry)."""
    while True:
        try:
            sock = connect("127.0.0.1", port)
            try:
                sock.settimeout(max(1.0, deadline - time.monotonic()))
                sock.sendall(frame(r.RequestHeader(1, OpCode.GET_DATA), r.GetDataRequest(path, False)))
                while True:
                    (n,) = _LEN.unpack(_exactly(sock, 4))
                    body = _exactly(sock, n)
                    xid, _zxid, err = _REPLY.unpack_from(body)
                    if xid == 1:
                        if err:
                            raise RuntimeError(f"getData {path} failed with {err}")
                        return
            finally:
                sock.close()
        except (OSError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- trizab --------------------------------------------------------------------------------------


def bulk_load_trizab(data_dir: Path, nodes: int, data: bytes) -> None:
    """Apply the creates to a DataTree in-process and save its snapshot through the txnlog engine."""
    from trizab.plugins.storage.txnlog import TxnLogStoragePlugin

    started = time.monotonic()
    tree = DataTree()
    acl = list(OPEN_ACL)
    t = int(time.time() * 1000)
    for zxid, path in enumerate(paths(nodes), start=1):
        parent = tree.nodes[path[: path.rfind("/")] or "/"]
        body = r.CreateTxn(path, data, acl, False, parent.cversion + 1)
        # Timestamps as a server creating 30,000 znodes a second would give them (one per
        # millisecond would overstate what nodes can share, one for all would understate).
        header = r.TxnHeader(0, zxid, zxid, t + zxid // 30, int(OpCode.CREATE))
        tree.process_txn(header, body)
    snap = serialize_snapshot(tree)
    storage = TxnLogStoragePlugin(data_dir=data_dir, data_log_dir=None, force_sync=True)
    storage.open()
    storage.save_snapshot(tree.last_processed_zxid, snap)
    storage.close()
    print(
        f"[restart]   bulk load: {len(tree.nodes):,} znodes, snapshot {len(snap) / 1e6:.0f} MB,"
        f" {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


def timed_start_trizab(server: TrizabProcess, probe: str) -> float:
    started = time.monotonic()
    server.start(timeout=600)
    first_read(server.port or 0, probe, started + 600)
    return time.monotonic() - started


def live_trizab(workdir: Path, nodes: int, data: bytes) -> float:
    """RSS (MB) of a fresh server after the same creates as ZooKeeper's, over the wire."""
    server = TrizabProcess(
        workdir / "live", storage="txnlog", extra_config=[NO_AUTOMATIC_SNAPSHOTS], log_level="WARNING"
    )
    server.start(timeout=60)
    try:
        over_the_wire(server.port or 0, create_frames(nodes, data), f"{nodes:,} creates")
        return _settled_rss_mb(server.pid)
    finally:
        server.stop(timeout=120)
        shutil.rmtree(workdir / "live", ignore_errors=True)


def prepare_trizab(workdir: Path, nodes: int, log: int, data: bytes, live: bool) -> dict[str, float]:
    """The data directory to restart from, kept in ``workdir/"pristine"``; returns what was measured."""
    out = {"rss_live_mb": live_trizab(workdir, nodes, data)} if live else {}
    server = TrizabProcess(
        workdir / "prepare", storage="txnlog", extra_config=[NO_AUTOMATIC_SNAPSHOTS], log_level="WARNING"
    )
    server.write_config()
    bulk_load_trizab(server.data_dir, nodes, data)
    probe = leaf(nodes - 1)
    out["start_snapshot_only_s"] = timed_start_trizab(server, probe)
    print(f"[restart]   trizab start, snapshot only: {out['start_snapshot_only_s']:.2f} s", file=sys.stderr)
    over_the_wire(server.port or 0, set_frames(nodes, log, data[::-1] or b"y"), f"{log:,} setData")
    server.stop(timeout=120)
    out["disk_mb"] = du(server.data_dir) / 1e6
    shutil.copytree(server.data_dir, workdir / "pristine")
    shutil.rmtree(workdir / "prepare", ignore_errors=True)
    return out


def restart_trizab(workdir: Path, nodes: int) -> tuple[float, float]:
    """One timed restart from a copy of the prepared data: (seconds to first read, RSS MB)."""
    server = TrizabProcess(
        workdir / "run", storage="txnlog", extra_config=[NO_AUTOMATIC_SNAPSHOTS], log_level="WARNING"
    )
    server.write_config()
    shutil.rmtree(server.data_dir, ignore_errors=True)
    shutil.copytree(workdir / "pristine", server.data_dir)
    try:
        seconds = timed_start_trizab(server, leaf(nodes - 1))
        return seconds, _settled_rss_mb(server.pid)
    finally:
        server.stop(timeout=120)
        shutil.rmtree(workdir / "run", ignore_errors=True)


# --- Apache ZooKeeper ----------------------------------------------------------------------------


def timed_start_zk(zk: apache_zk.ApacheZooKeeper, probe: str) -> float:
    # start() returns once the four-letter words answer (polled every 0.1 s); then the read.
    started = time.monotonic()
    zk.start()
    first_read(zk.client_port, probe, started + 600)
    return time.monotonic() - started


def _zookeeper(workdir: Path, heap: str) -> apache_zk.ApacheZooKeeper:
    return apache_zk.ApacheZooKeeper(
        workdir=workdir,
        extra_config=[NO_AUTOMATIC_SNAPSHOTS],
        jvm_args=[f"-Xmx{heap}", f"-Xms{heap}"],
        start_timeout=600,
    )


def prepare_zk(workdir: Path, nodes: int, log: int, data: bytes, heap: str, live: bool) -> dict[str, float]:
    """The data directory to restart from, kept in ``workdir/"pristine"``; returns what was measured."""
    zk = _zookeeper(workdir / "prepare", heap)
    probe = leaf(nodes - 1)
    zk.start()
    try:
        over_the_wire(zk.client_port, create_frames(nodes, data), f"{nodes:,} creates")
        out = {"rss_live_mb": _settled_rss_mb(zk.pid)} if live else {}
        # After the RSS: the forced full collection would shrink what the JVM holds.
        out["live_heap_mb"] = _java_live_heap_mb(zk.pid)
        zk.stop(grace=120)
        # ZooKeeper snapshots what it loaded at start-up: from here on the tree is in one snapshot.
        out["start_log_only_s"] = timed_start_zk(zk, probe)
        print(f"[restart]   zookeeper start, log only: {out['start_log_only_s']:.2f} s", file=sys.stderr)
        over_the_wire(zk.client_port, set_frames(nodes, log, data[::-1] or b"y"), f"{log:,} setData")
        zk.stop(grace=120)
        snaps = sorted((zk.data_dir / "version-2").glob("snapshot.*"))
        out["disk_mb"] = du(zk.data_dir) / 1e6
        out["snapshots_before_restart"] = len(snaps)
        # Every restart writes a snapshot: each timed one starts from a copy of this directory.
        shutil.copytree(zk.data_dir, workdir / "pristine")
    finally:
        zk.stop(grace=120)
    shutil.rmtree(workdir / "prepare", ignore_errors=True)
    return out


def restart_zk(workdir: Path, nodes: int, heap: str) -> tuple[float, float]:
    """One timed restart from a copy of the prepared data: (seconds to first read, RSS MB)."""
    zk = _zookeeper(workdir / "run", heap)
    zk.data_dir.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(workdir / "pristine", zk.data_dir)
    try:
        seconds = timed_start_zk(zk, leaf(nodes - 1))
        return seconds, _settled_rss_mb(zk.pid)
    finally:
        zk.stop(grace=120)
        shutil.rmtree(workdir / "run", ignore_errors=True)


def _settled_rss_mb(pid: int | None, seconds: float = 3.0) -> float:
    """RSS a few seconds after the work stopped (a collector or a flush may still be running)."""
    time.sleep(seconds)
    return _rss_mb(pid)


def _java_live_heap_mb(pid: int | None) -> float:
    """The JVM's heap in use right after a full collection: the data's real footprint.

    ZooKeeper's administrator guide sizes the heap by load testing ("make sure you are well
    below the usage limit that would cause you to swap"); this is the figure such a test gives.
    """
    if pid is None or shutil.which("jcmd") is None:
        return float("nan")
    subprocess.run(["jcmd", str(pid), "GC.run"], capture_output=True, timeout=120, check=False)
    info = subprocess.run(
        ["jcmd", str(pid), "GC.heap_info"], capture_output=True, text=True, timeout=60, check=False
    ).stdout
    m = re.search(r"used (\d+)K", info)
    return int(m.group(1)) / 1024 if m else float("nan")


def _rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.restart", description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1_000_000, help="leaf znodes (plus 1 per 1000 parents)")
    parser.add_argument("--log", type=int, default=100_000, help="setData records after the snapshot")
    parser.add_argument("--data-size", type=int, default=32)
    parser.add_argument("--servers", default="trizab,apache", help="comma list of trizab, apache")
    parser.add_argument(
        "--zk-heap",
        default=DEFAULT_ZK_HEAP,
        help=f"ZooKeeper's JVM heap, -Xmx and -Xms (default {DEFAULT_ZK_HEAP}, see DEFAULT_ZK_HEAP)",
    )
    parser.add_argument(
        "--no-live", dest="live", action="store_false", help="skip the RSS after creating the znodes live"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed restarts of each server, taken in turns (default 3)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directories (prints them)")
    args = parser.parse_args(argv)
    data = bytes((i * 7) % 251 for i in range(args.data_size))
    names = [n.strip() for n in args.servers.split(",") if n.strip()]
    for name in names:
        if name not in ("trizab", "apache"):
            parser.error(f"unknown server {name!r}")
    results: dict[str, dict[str, float] | str] = {}
    load_before = _load_average()
    workdirs = {name: Path(tempfile.mkdtemp(prefix=f"restart-{name}-")) for name in names}
    restarts: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    try:
        for name, workdir in workdirs.items():
            print(f"[restart] {name} in {workdir}", file=sys.stderr, flush=True)
            try:
                if name == "trizab":
                    results[name] = prepare_trizab(workdir, args.nodes, args.log, data, args.live)
                else:
                    results[name] = prepare_zk(workdir, args.nodes, args.log, data, args.zk_heap, args.live)
            except (OSError, RuntimeError, subprocess.SubprocessError, apache_zk.ApacheZooKeeperError) as exc:
                results[name] = f"failed: {exc!r}"[:400]
        # Timed restarts in turns, so a busy spell on the machine hits both servers alike.
        for i in range(args.repeat):
            for name in names:
                if isinstance(results[name], str):
                    continue
                try:
                    if name == "trizab":
                        restarts[name].append(restart_trizab(workdirs[name], args.nodes))
                    else:
                        restarts[name].append(restart_zk(workdirs[name], args.nodes, args.zk_heap))
                except (OSError, RuntimeError, apache_zk.ApacheZooKeeperError) as exc:
                    results[name] = f"failed: {exc!r}"[:400]
                    continue
                seconds, rss = restarts[name][-1]
                print(f"[restart]   {name} restart {i + 1}: {seconds:.2f} s, {rss:.0f} MB", file=sys.stderr)
    finally:
        for workdir in workdirs.values():
            if not args.keep:
                shutil.rmtree(workdir, ignore_errors=True)
    znodes = args.nodes + (args.nodes + FANOUT - 1) // FANOUT + 1
    print(
        f"restart with {znodes:,} znodes ({args.data_size} B each) in a snapshot + {args.log:,} log records"
        f" (ZooKeeper: -Xmx{args.zk_heap} -Xms{args.zk_heap}; load average before / after:"
        f" {load_before} / {_load_average()})"
    )
    for name, res in results.items():
        if isinstance(res, str):
            print(f"  {name:<8} {res}")
            continue
        times = sorted(t for t, _ in restarts[name])
        rss = sorted(m for _, m in restarts[name])
        extra = ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items())
        print(f"  {name:<8} restart to first read: {_spread(times, 's')}")
        print(f"  {'':<8} RSS after restart: {_spread(rss, 'MB')}   ({extra})")
    return 0 if all(isinstance(v, dict) for v in results.values()) else 1


def _spread(values: Sequence[float], unit: str) -> str:
    """Median (min-max) of the runs."""
    if not values:
        return "-"
    mid = values[len(values) // 2]
    return f"{mid:.2f} {unit} ({values[0]:.2f}-{values[-1]:.2f}, {len(values)} runs)"


def _load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
