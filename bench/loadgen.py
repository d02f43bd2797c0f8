"""Raw-frame ZooKeeper load generator: ops/s and p50/p99 latency at a fixed number of outstanding requests.

Theory of operation: kazoo cannot measure a server (one Python client tops out near 7,000 ops/s
whatever the server), so this generator speaks the wire protocol directly. Frames are built once
with the project's Jute codec (ConnectRequest, RequestHeader + GetDataRequest/SetDataRequest); for
each request only the xid is patched in place. Several processes (multiprocessing) each open
several connections, and each connection keeps exactly K requests in flight: every reply releases
one new request, so the total number outstanding stays at processes x connections x K.

Replies on one connection arrive in request order (the protocol guarantees it), so the send times
of a connection's in-flight requests form a FIFO and latency needs no xid lookup. All processes
share CLOCK_MONOTONIC: the parent announces one start time, each worker loads the server for a
warm-up then a measured window, and counts only replies that arrive inside the window. Throughput
is replies in the window / window length; latencies are those replies' round trips.

With `--pid` (or in `--compare`, where the driver starts the servers) the server's CPU time
(utime + stime from /proc/<pid>/stat, all threads, plus those of its child processes) is read at
both ends of the window and divided by the operations completed in it.

`python -m bench.loadgen --compare` starts Apache ZooKeeper 3.8 standalone (forceSync on, its
default) and trizab (`trizab serve`, storage txnlog then memory) one after the other on free
loopback ports, runs the same loads against each, and prints one side-by-side table.

With `--tls` every connection is TLS with a client certificate, to each server's secure client
port (`secureClientPort`, ZooKeeper's defaults: TLSv1.2, `ssl.clientAuth=need`, so each session is
also authenticated as x509); the certificates are made for the run (`testkit.tls`). A TLS socket is
read until OpenSSL holds no more decrypted bytes (`pending()`), since the selector only sees the
socket.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import selectors
import shutil
import socket
import ssl
import struct
import sys
import tempfile
import time
from array import array
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from testkit import apache_zk
from testkit.tls import TlsFiles, make_tls_files
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

ROOT = "/bench-loadgen"
SESSION_TIMEOUT_MS = 30_000
OPEN_ACL = [r.ACL(perms=31, id=r.Id(scheme="world", id="anyone"))]
LOADS = (1, 16, 256)
OPS = ("getData", "setData")
_LEN = struct.Struct(">i")
# Set by --tls before any worker is forked: every connection is then TLS with these certificates.
_TLS: TlsFiles | None = None
_TLS_CONTEXT: ssl.SSLContext | None = None
_REPLY = struct.Struct(">iqi")  # ReplyHeader: xid, zxid, err


def frame(*records: object) -> bytes:
    out = bytearray()
    jute.encode_into(out, *records)
    return _LEN.pack(len(out)) + bytes(out)


def _recv_frame(sock: socket.socket) -> bytes:
    def exactly(n: int) -> bytes:
        # Into one buffer of the frame's size: appending chunk by chunk to a bytes object
        # copied everything read so far at each chunk (quadratic in a big reply, such as
        # the large-directory scenario's 0.9 MB getChildren).
        data = bytearray(n)
        view = memoryview(data)
        got = 0
        while got < n:
            received = sock.recv_into(view[got:])
            if not received:
                raise ConnectionError("server closed the connection")
            got += received
        return bytes(data)

    (length,) = _LEN.unpack(exactly(4))
    return exactly(length)


def connect(host: str, port: int) -> socket.socket:
    """Open a session (blocking handshake) and return its socket."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if _TLS is not None:
        global _TLS_CONTEXT
        if _TLS_CONTEXT is None:
            _TLS_CONTEXT = _TLS.client_context()
        sock = _TLS_CONTEXT.wrap_socket(sock)
    request = r.ConnectRequest(
        protocol_version=0,
        last_zxid_seen=0,
        time_out=SESSION_TIMEOUT_MS,
        session_id=0,
        passwd=bytes(16),
        read_only=False,
    )
    sock.sendall(frame(request))
    response = jute.decode(r.ConnectResponse, _recv_frame(sock))
    if response.time_out <= 0:
        raise ConnectionError("session refused")
    return sock


def call(sock: socket.socket, xid: int, opcode: int, body: object | None) -> int:
    """One synchronous request; returns the reply's err (notifications skipped)."""
    sock.sendall(frame(r.RequestHeader(xid=xid, type=opcode), *([] if body is None else [body])))
    while True:
        reply = _recv_frame(sock)
        rxid, _zxid, err = _REPLY.unpack_from(reply)
        if rxid == xid:
            return err


def node_path(proc: int, conn: int) -> str:
    return f"{ROOT}/n{proc}-{conn}"


def prepare(addresses: Sequence[Address], processes: int, connections: int, data: bytes) -> None:
    """Create the nodes every connection reads and writes (NodeExists is fine).

    With an ensemble, every other member is then sync'ed so that no worker's first request on
    another member can find its node missing.
    """
    sock = connect(*addresses[0])
    try:
        paths = [ROOT] + [node_path(p, c) for p in range(processes) for c in range(connections)]
        for xid, path in enumerate(paths, start=1):
            err = call(sock, xid, OpCode.CREATE, r.CreateRequest(path=path, data=data, acl=OPEN_ACL, flags=0))
            if err not in (0, -110):
                raise RuntimeError(f"create {path} failed with {err}")
        call(sock, len(paths) + 1, OpCode.CLOSE_SESSION, None)
    finally:
        sock.close()
    for address in addresses[1:]:
        sock = connect(*address)
        try:
            err = call(sock, 1, OpCode.SYNC, r.SyncRequest(path=ROOT))
            if err:
                raise RuntimeError(f"sync on {address} failed with {err}")
            call(sock, 2, OpCode.CLOSE_SESSION, None)
        finally:
            sock.close()


def request_template(op: str, path: str, data: bytes) -> bytearray:
    if op == "getData":
        return bytearray(
            frame(r.RequestHeader(xid=0, type=OpCode.GET_DATA), r.GetDataRequest(path=path, watch=False))
        )
    if op == "setData":
        body = r.SetDataRequest(path=path, data=data, version=-1)
        return bytearray(frame(r.RequestHeader(xid=0, type=OpCode.SET_DATA), body))
    raise ValueError(f"unknown op {op!r}")


Address = tuple[str, int]


def parse_addresses(text: str) -> list[Address]:
    """`host:port[,host:port...]` (a connect string without chroot)."""
    out = []
    for item in text.split(","):
        host, _, port = item.strip().rpartition(":")
        out.append((host or "127.0.0.1", int(port)))
    return out


@attrs.frozen
class WorkerSpec:
    index: int
    addresses: tuple[Address, ...]
    op: str
    connections: int
    outstanding: int  # per connection
    data: bytes
    warmup: float
    duration: float


def worker(spec: WorkerSpec, ready: mp.Queue, go: mp.Event, start_at: mp.Value, results: mp.Queue) -> None:
    """Run one process's connections until the window closes; report (completed, errors, latencies)."""
    try:
        # Spread connections over the members like clients connected to every member.
        n = len(spec.addresses)
        socks = [
            connect(*spec.addresses[(spec.index * spec.connections + i) % n]) for i in range(spec.connections)
        ]
    except Exception as exc:  # the parent reports it
        ready.put(f"worker {spec.index}: {exc!r}")
        return
    ready.put("ok")
    go.wait()
    t0 = start_at.value
    window_start = t0 + spec.warmup
    window_end = window_start + spec.duration
    sel = selectors.DefaultSelector()
    state = []
    for i, sock in enumerate(socks):
        sock.setblocking(False)
        template = request_template(spec.op, node_path(spec.index, i), spec.data)
        conn = {"sock": sock, "tmpl": template, "xid": 0, "inflight": deque(), "buf": bytearray()}
        state.append(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
    latencies = array("I")  # microseconds
    completed = 0
    errors = 0
    pack_xid = _LEN.pack_into
    unpack_reply = _REPLY.unpack_from
    unpack_len = _LEN.unpack_from

    def send(conn: dict, count: int, now: float) -> None:
        template = conn["tmpl"]
        out = bytearray()
        for _ in range(count):
            conn["xid"] = conn["xid"] % 0x7FFFFFFF + 1
            pack_xid(template, 4, conn["xid"])
            out += template
            conn["inflight"].append(now)
        conn["sock"].sendall(out)

    while time.monotonic() < t0:
        time.sleep(0.001)
    now = time.monotonic()
    for conn in state:
        conn["sock"].setblocking(True)
        send(conn, spec.outstanding, now)
        conn["sock"].setblocking(False)
    sending = True
    while True:
        events = sel.select(timeout=1.0)
        now = time.monotonic()
        if now >= window_end:
            sending = False
        if not events:
            if not sending or now > window_end + 5:
                break
            continue
        for key, _ in events:
            conn = key.data
            try:
                chunk = _receive(conn["sock"])
            except (BlockingIOError, ssl.SSLWantReadError):
                continue
            if not chunk:
                raise ConnectionError(f"worker {spec.index}: server closed the connection")
            buf = conn["buf"]
            buf += chunk
            pos = 0
            replies = 0
            while len(buf) - pos >= 4:
                (length,) = unpack_len(buf, pos)
                if len(buf) - pos - 4 < length:
                    break
                xid, _zxid, err = unpack_reply(buf, pos + 4)
                pos += 4 + length
                if xid == -1:
                    continue  # a notification (none expected: no watches are set)
                sent = conn["inflight"].popleft()
                replies += 1
                if window_start <= now < window_end:
                    completed += 1
                    latencies.append(int((now - sent) * 1e6))
                    if err:
                        errors += 1
            del buf[:pos]
            if replies and sending:
                conn["sock"].setblocking(True)
                send(conn, replies, now)
                conn["sock"].setblocking(False)
        if not sending and all(not c["inflight"] for c in state):
            break
    for sock in socks:
        sock.close()
    results.put((spec.index, completed, errors, latencies.tobytes()))


def _receive(sock: socket.socket) -> bytes:
    """What the socket has now; for TLS, also every record OpenSSL already decrypted."""
    chunk = sock.recv(1 << 20)
    pending = getattr(sock, "pending", None)
    if pending is None or not chunk:
        return chunk
    parts = [chunk]
    while pending():
        parts.append(sock.recv(1 << 20))
    return b"".join(parts)


@attrs.frozen
class Result:
    op: str
    outstanding: int
    ops_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    cpu_us_per_op: float | None


def percentile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return float(sorted_values[index])


def cpu_seconds_all(pids: Sequence[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads) and its live descendants, in seconds.

    Descendants count because a server may do part of its work in helper processes
    (trizab's fsync helper); those that exited during the window are missed, which
    only undercounts a server that keeps restarting helpers.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(child) for child in _children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(c) for c in task.read_text().split())
        except FileNotFoundError:
            continue
    return found


def shape(total: int, processes: int, connections: int) -> tuple[int, int, int]:
    """Split `total` outstanding into processes x connections x per-connection (exactly)."""
    p = max(1, min(processes, total))
    while total % p:
        p -= 1
    c = max(1, min(connections, total // p))
    while (total // p) % c:
        c -= 1
    return p, c, total // (p * c)


def run_load(
    addresses: Sequence[Address],
    op: str,
    total: int,
    *,
    processes: int = 2,
    connections: int = 4,
    data_size: int = 100,
    warmup: float = 0.5,
    duration: float = 2.5,
    pids: Sequence[int] = (),
) -> Result:
    """One load point: `total` requests outstanding across processes and connections.

    `pids`: the server processes (one per member) whose CPU time is charged to the operations.
    """
    p, c, k = shape(total, processes, connections)
    data = b"x" * data_size
    prepare(addresses, p, c, data)
    ctx = mp.get_context("fork")
    ready, results = ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    specs = [WorkerSpec(i, tuple(addresses), op, c, k, data, warmup, duration) for i in range(p)]
    procs = [ctx.Process(target=worker, args=(s, ready, go, start_at, results), daemon=True) for s in specs]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            message = ready.get(timeout=30)
            if message != "ok":
                raise RuntimeError(message)
        t0 = time.monotonic() + 0.05
        start_at.value = t0
        go.set()
        cpu_before = cpu_after = 0.0
        if pids:
            time.sleep(max(0.0, t0 + warmup - time.monotonic()))
            cpu_before = cpu_seconds_all(pids)
            time.sleep(max(0.0, t0 + warmup + duration - time.monotonic()))
            cpu_after = cpu_seconds_all(pids)
        gathered = [results.get(timeout=warmup + duration + 30) for _ in procs]
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
    completed = sum(g[1] for g in gathered)
    errors = sum(g[2] for g in gathered)
    lat = array("I")
    for g in gathered:
        lat.frombytes(g[3])
    ordered = sorted(lat)
    cpu = (cpu_after - cpu_before) * 1e6 / completed if pids and completed else None
    return Result(
        op=op,
        outstanding=total,
        ops_per_s=completed / duration,
        p50_ms=percentile(ordered, 0.50) / 1000,
        p99_ms=percentile(ordered, 0.99) / 1000,
        errors=errors,
        cpu_us_per_op=cpu,
    )


def run_all(
    addresses: Sequence[Address],
    *,
    loads: Sequence[int],
    ops: Sequence[str],
    pids: Sequence[int],
    server_warmup: float = 0.0,
    **kw: object,
) -> list[Result]:
    """Every (op, load) point; first an untimed warm-up of `server_warmup` seconds at the top load."""
    # The JVM needs a few seconds of load before its JIT settles (measured here: setData at 256
    # outstanding goes from ~30,000/s cold to ~50,000/s warm), so every server gets the same
    # untimed warm-up before the measured points.
    if server_warmup > 0:
        warm = {**kw, "warmup": 0.0, "duration": server_warmup / len(ops)}
        for op in ops:
            run_load(addresses, op, max(loads), **warm)  # type: ignore[arg-type]
    results = []
    for op in ops:
        for total in loads:
            results.append(run_load(addresses, op, total, pids=pids, **kw))  # type: ignore[arg-type]
    return results


def format_results(results: Sequence[Result]) -> str:
    lines = [
        f"{'op':<8} {'outst.':>6} {'ops/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/op':>9} {'errors':>6}"
    ]
    for res in results:
        cpu = f"{res.cpu_us_per_op:9.1f}" if res.cpu_us_per_op is not None else f"{'-':>9}"
        lines.append(
            f"{res.op:<8} {res.outstanding:>6} {res.ops_per_s:>9.0f} {res.p50_ms:>8.2f} {res.p99_ms:>8.2f}"
            f" {cpu} {res.errors:>6}"
        )
    return "\n".join(lines)


# --- the --compare driver ------------------------------------------------------------------------


@contextmanager
def trizab_servers(
    storage: str, size: int = 1, replicas: int = 0
) -> Iterator[tuple[list[Address], list[int]]]:
    """`trizab serve` (one, or an ensemble of `size`) on free ports with fresh dataDirs; one
    server with `replicas` read replicas (`readReplicas`) has them all on its one port.

    Yields the members' addresses and pids once every member serves (an ensemble member reports
    `Mode: leader` or `Mode: follower`).
    """
    from testkit.process import TrizabProcess

    workdir = Path(tempfile.mkdtemp(prefix="trizab-bench-"))
    ports = apache_zk.free_ports(3 * size)
    secure_port = apache_zk.free_ports(1)[0] if _TLS is not None else None
    secure_lines = _TLS.server_lines(secure_port) if _TLS is not None and secure_port else []
    if _TLS is not None and size > 1:
        raise ValueError("--tls is for one server (the quorum's TLS is not benchmarked)")
    quorum = (
        [f"server.{i + 1}=127.0.0.1:{ports[3 * i + 1]}:{ports[3 * i + 2]}:participant" for i in range(size)]
        if size > 1
        else []
    )
    servers = []
    try:
        for i in range(size):
            server = TrizabProcess(
                workdir / f"member{i + 1}",
                port=ports[3 * i],
                storage=storage,
                extra_config=["maxClientCnxns=0", "initLimit=5", "syncLimit=2", *quorum]
                if quorum
                else ["maxClientCnxns=0", *secure_lines, *([f"readReplicas={replicas}"] if replicas else [])],
                log_level="WARNING",
            )
            if quorum:
                server.data_dir.mkdir(parents=True, exist_ok=True)
                (server.data_dir / "myid").write_text(f"{i + 1}\n")
            servers.append(server)
            server.start()
        if quorum:
            _wait_modes(s.port for s in servers)
        if secure_port is not None:
            yield [("127.0.0.1", secure_port)], [s.pid for s in servers]  # type: ignore[misc]
        else:
            yield [("127.0.0.1", s.port) for s in servers], [s.pid for s in servers]  # type: ignore[misc]
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _wait_modes(ports: Iterator[int | None], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for port in list(ports):
        assert port is not None
        while True:
            try:
                if any(
                    m in apache_zk.four_letter_word(port, "srvr") for m in ("Mode: leader", "Mode: follower")
                ):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"ensemble member on port {port} not serving within {timeout} s")
            time.sleep(0.1)


def read_replicas_of(target: str) -> tuple[str, int]:
    """`trizab-txnlog-r1` -> (`trizab-txnlog`, 1): a standalone trizab with `readReplicas=1`."""
    name, _, last = target.rpartition("-")
    if name.startswith("trizab") and last[:1] == "r" and last[1:].isdigit():
        return name, int(last[1:])
    return target, 0


def parse_server(target: str) -> tuple[str, int, str]:
    """`apache`, `apache-3`, `trizab-txnlog`, `trizab-3-memory` -> (kind, size, storage)."""
    parts = target.split("-")
    kind = parts[0]
    size = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 1
    storage = parts[-1] if kind == "trizab" and not parts[-1].isdigit() else "txnlog"
    if kind not in ("apache", "trizab"):
        raise ValueError(f"unknown server {target!r}")
    return kind, size, storage


def compare(targets: Sequence[str], *, loads: Sequence[int], ops: Sequence[str], **kw: object) -> int:
    """Start each server in turn, run every load point against it, print one table."""
    columns: dict[str, list[Result] | str] = {}
    for target in targets:
        started = time.monotonic()
        try:
            plain, replicas = read_replicas_of(target)
            kind, size, storage = parse_server(plain)
            if replicas and size > 1:
                raise ValueError("readReplicas (-rN) is for a standalone server")
            if kind == "apache" and size == 1:
                secure = apache_zk.free_ports(1)[0]
                extra = _TLS.server_lines(secure) if _TLS is not None else []
                with apache_zk.ApacheZooKeeper(extra_config=extra) as zk:
                    addresses = [("127.0.0.1", secure if _TLS is not None else zk.client_port)]
                    columns[target] = run_all(addresses, loads=loads, ops=ops, pids=[zk.pid], **kw)  # type: ignore[list-item]
            elif kind == "apache":
                if _TLS is not None:
                    raise ValueError("--tls is for one server (the quorum's TLS is not benchmarked)")
                with apache_zk.ApacheEnsemble(size) as ensemble:
                    addresses = [("127.0.0.1", m.client_port) for m in ensemble]
                    pids = [m.pid for m in ensemble]
                    columns[target] = run_all(addresses, loads=loads, ops=ops, pids=pids, **kw)  # type: ignore[arg-type]
            else:
                with trizab_servers(storage, size, replicas) as (addresses, pids):
                    columns[target] = run_all(addresses, loads=loads, ops=ops, pids=pids, **kw)  # type: ignore[arg-type]
        except Exception as exc:
            columns[target] = f"failed: {exc!r}"[:500]
        print(f"[bench] {target}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print_comparison(columns, loads=loads, ops=ops)
    return 0 if all(isinstance(v, list) for v in columns.values()) else 1


def print_comparison(
    columns: dict[str, list[Result] | str], *, loads: Sequence[int], ops: Sequence[str]
) -> None:
    names = list(columns)
    for name, value in columns.items():
        if isinstance(value, str):
            print(f"{name}: {value}")
    header = f"{'op':<8} {'outst.':>6}" + "".join(f" | {n:^39}" for n in names)
    sub = f"{'':<8} {'':>6}" + "".join(
        f" | {'ops/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'CPU us':>7} {'ratio':>5}" for _ in names
    )
    print(header)
    print(sub)
    base = names[0]
    for op in ops:
        for total in loads:
            line = f"{op:<8} {total:>6}"
            ref = _find(columns.get(base), op, total)
            for name in names:
                res = _find(columns[name], op, total)
                if res is None:
                    line += f" | {'-':>39}"
                    continue
                ratio = (
                    f"x{res.ops_per_s / ref.ops_per_s:.2f}" if ref and ref.ops_per_s and name != base else ""
                )
                cpu = f"{res.cpu_us_per_op:7.1f}" if res.cpu_us_per_op is not None else f"{'-':>7}"
                line += f" | {res.ops_per_s:>9.0f} {res.p50_ms:>7.2f} {res.p99_ms:>7.2f} {cpu} {ratio:>5}"
            print(line)
    print(
        f"(ratio = ops/s relative to {base}; CPU us = server CPU time per operation in the measured window)"
    )


def _find(value: list[Result] | str | None, op: str, total: int) -> Result | None:
    if not isinstance(value, list):
        return None
    return next((res for res in value if res.op == op and res.outstanding == total), None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__.split("\n")[0])
    parser.add_argument("--target", default=None, help="host:port[,host:port...] of running servers")
    parser.add_argument(
        "--pid", type=int, action="append", default=[], help="server pid (repeatable), for CPU/op"
    )
    parser.add_argument("--compare", action="store_true", help="start Apache ZooKeeper and trizab, compare")
    parser.add_argument(
        "--servers",
        default="apache,trizab-txnlog,trizab-memory",
        help="with --compare: comma list of apache, apache-3, trizab-<storage>, trizab-3-<storage>, "
        "trizab-<storage>-r<N> (N read replicas)",
    )
    parser.add_argument("--loads", default=",".join(map(str, LOADS)), help="total outstanding requests")
    parser.add_argument("--ops", default=",".join(OPS))
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4, help="connections per process (at most)")
    parser.add_argument("--data-size", type=int, default=100)
    parser.add_argument(
        "--tls", action="store_true", help="TLS with client certificates, to the servers' secureClientPort"
    )
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--duration", type=float, default=2.5, help="measured seconds per load point")
    parser.add_argument(
        "--server-warmup",
        type=float,
        default=None,
        help="untimed seconds of load first (default 4 with --compare)",
    )
    args = parser.parse_args(argv)
    loads = [int(x) for x in args.loads.split(",")]
    ops = args.ops.split(",")
    kw = dict(
        processes=args.processes,
        connections=args.connections,
        data_size=args.data_size,
        warmup=args.warmup,
        duration=args.duration,
    )
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tls_dir:
        if args.tls:
            global _TLS
            _TLS = make_tls_files(Path(tls_dir))
        return _run(args, parser, loads, ops, kw)


def _run(
    args: argparse.Namespace,
    parser: argparse.ArgumentParser,
    loads: list[int],
    ops: list[str],
    kw: dict[str, object],
) -> int:
    if args.compare:
        warm = 4.0 if args.server_warmup is None else args.server_warmup
        return compare(args.servers.split(","), loads=loads, ops=ops, server_warmup=warm, **kw)
    if not args.target:
        parser.error("give --target host:port or --compare")
    warm = args.server_warmup or 0.0
    addresses = parse_addresses(args.target)
    print(format_results(run_all(addresses, loads=loads, ops=ops, pids=args.pid, server_warmup=warm, **kw)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
