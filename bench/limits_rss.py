"""Server memory under many clients: trizab against Apache ZooKeeper 3.8, in the same run.

Theory of operation: for each server in turn (a fresh ``trizab serve`` with its default durable
engine, then a standalone Apache ZooKeeper 3.8 with a fixed ``-Xmx``), one process of raw-frame
clients (non-blocking sockets on one selector, frames built with the project's Jute codec, as in
``bench/loadgen.py``; 10,000 kazoo clients would be 10,000 threads) drives four phases and reads
the server's resident set size (``VmRSS`` from ``/proc``, the server process plus any child
processes, such as trizab's fsync helpers) after each:

1. **idle**: the server just started;
2. **sessions**: N sessions connected (default 10,000), opened at most ``--concurrency`` at a time;
3. **reconnect storm**: every client drops its connection at once and immediately reconnects
   with its session id and password (what the clients of a failed server do on a survivor);
   a sampler thread reads the RSS every 10 ms, and the peak is reported, with the time until
   every session was back (a connection the server closed, e.g. throttled, is retried after
   50 ms);
4. **watches**: W watches per session (default 100, so 1,000,000), ``exists`` watches on 1,000
   znodes, each node watched by N*W/1,000 sessions, checked with the ``wchs`` four-letter word.

The sessions ask for a 10-minute timeout (both servers are configured to allow it), so no
pings are needed while the clients are busy elsewhere.  The fd limit is raised to its hard
limit; the client process needs N descriptors, and so does the server.
"""

from __future__ import annotations

import argparse
import gc
import re
import resource
import selectors
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import attrs

from bench.loadgen import _children, _recv_frame, frame
from testkit import apache_zk
from testkit.process import TrizabProcess, four_letter_word
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

SESSION_TIMEOUT_MS = 600_000
NODES = 1000
ROOT = "/limits-rss"
DEFAULT_XMX = "1000m"  # zkEnv.sh's default ZK_SERVER_HEAP (1000 MB)
_LEN = struct.Struct(">i")
_REPLY = struct.Struct(">iqi")
OPEN_ACL = [r.ACL(perms=31, id=r.Id(scheme="world", id="anyone"))]


def own_rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` alone, in KiB (0 for a process that is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except FileNotFoundError:
        pass
    return 0


def rss_kib(pid: int) -> int:
    """VmRSS of ``pid`` and its live descendants, in KiB."""
    return own_rss_kib(pid) + sum(rss_kib(child) for child in _children(pid))


def rss_text(pid: int) -> tuple[int, str]:
    """The tree's RSS, and a note of the children's share when there are any."""
    total, own = rss_kib(pid), own_rss_kib(pid)
    return (
        total,
        "" if total == own else f" (server {own / 1024:.0f} MiB + helpers {(total - own) / 1024:.0f})",
    )


class PeakSampler:
    """Reads a process tree's RSS every ``interval`` seconds in a thread; ``peak`` is the largest."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_kib(self.pid))
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_kib(self.pid))


@attrs.define(eq=False)
class Client:
    """One raw-frame session."""

    session_id: int = 0
    passwd: bytes = bytes(16)
    sock: socket.socket | None = None
    buf: bytearray = attrs.Factory(bytearray)
    replies: int = 0
    attempts: int = 0


def _connect_request(c: Client) -> bytes:
    return frame(r.ConnectRequest(0, 0, SESSION_TIMEOUT_MS, c.session_id, c.passwd, False))


def _frames(buf: bytearray) -> Iterator[bytes]:
    while len(buf) >= 4:
        (n,) = _LEN.unpack_from(buf)
        if len(buf) < 4 + n:
            return
        payload = bytes(buf[4 : 4 + n])
        del buf[: 4 + n]
        yield payload


def open_sessions(
    address: tuple[str, int] | Callable[[Client], tuple[str, int]],
    clients: Sequence[Client],
    concurrency: int,
    timeout: float = 300.0,
) -> int:
    """(Re)open every client's session, ``concurrency`` handshakes at a time; returns the retries.

    ``address`` is one server, or a function giving each client its server for each attempt (an
    ensemble's clients spread over the members). A client with a session id reconnects to it (its
    ConnectRequest carries id and password). A connection that fails or that the server closes
    before answering is retried after 50 ms.
    """
    where = address if callable(address) else (lambda _client: address)
    sel = selectors.DefaultSelector()
    waiting: deque[Client] = deque(clients)
    retry: deque[tuple[float, Client]] = deque()
    active = 0
    retries = 0
    deadline = time.monotonic() + timeout

    def failed(c: Client) -> None:
        nonlocal active, retries
        assert c.sock is not None
        sel.unregister(c.sock)
        c.sock.close()
        c.sock = None
        c.buf.clear()
        active -= 1
        retries += 1
        retry.append((time.monotonic() + 0.05, c))

    try:
        while waiting or retry or active:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{active + len(waiting) + len(retry)} sessions not open after {timeout} s"
                )
            now = time.monotonic()
            while retry and retry[0][0] <= now:
                waiting.append(retry.popleft()[1])
            while waiting and active < concurrency:
                c = waiting.popleft()
                c.attempts += 1
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex(where(c))
                c.sock = s
                sel.register(s, selectors.EVENT_WRITE, c)
                active += 1
            for key, _mask in sel.select(0.05):
                c = key.data
                s = c.sock
                assert s is not None
                if key.events == selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        failed(c)
                        continue
                    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    s.send(_connect_request(c))  # 49 bytes into an empty buffer
                    sel.modify(s, selectors.EVENT_READ, c)
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    failed(c)
                    continue
                c.buf += data
                for payload in _frames(c.buf):
                    resp = jute.decode(r.ConnectResponse, payload)
                    if resp.time_out <= 0:
                        raise RuntimeError(f"session 0x{c.session_id:x} expired during the run")
                    c.session_id, c.passwd = resp.session_id, resp.passwd
                    sel.unregister(s)
                    active -= 1
                    break
    finally:
        sel.close()
    return retries


def drop_all(clients: Sequence[Client]) -> None:
    """Every client loses its connection at once (RST, as when a server dies under it)."""
    linger = struct.pack("ii", 1, 0)
    for c in clients:
        if c.sock is not None:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
            c.sock.close()
            c.sock = None
            c.buf.clear()


def call(sock: socket.socket, xid: int, opcode: int, body: object) -> int:
    sock.sendall(frame(r.RequestHeader(xid=xid, type=opcode), body))
    while True:
        rxid, _zxid, err = _REPLY.unpack_from(_recv_frame(sock))
        if rxid == xid:
            return err


def create_nodes(clients: Sequence[Client]) -> None:
    sock = clients[0].sock
    assert sock is not None
    sock.setblocking(True)
    call(sock, 1, OpCode.CREATE, r.CreateRequest(ROOT, b"", OPEN_ACL, 0))
    for i in range(NODES):
        call(sock, 2 + i, OpCode.CREATE, r.CreateRequest(f"{ROOT}/n{i}", b"x", OPEN_ACL, 0))


def set_watches(clients: Sequence[Client], per_session: int, batch: int = 200) -> None:
    """``per_session`` exists-watches per client, ``batch`` clients' requests in flight at once."""
    requests = [
        [
            frame(
                r.RequestHeader(xid=1 + j, type=OpCode.EXISTS),
                r.ExistsRequest(f"{ROOT}/n{(i * per_session + j) % NODES}", True),
            )
            for j in range(per_session)
        ]
        for i in range(min(NODES, len(clients)))
    ]
    for start in range(0, len(clients), batch):
        chunk = clients[start : start + batch]
        sel = selectors.DefaultSelector()
        for i, c in enumerate(chunk):
            assert c.sock is not None
            c.sock.setblocking(True)
            c.sock.sendall(b"".join(requests[(start + i) % len(requests)]))
            c.sock.setblocking(False)
            c.replies = 0
            sel.register(c.sock, selectors.EVENT_READ, c)
        left = len(chunk)
        deadline = time.monotonic() + 120
        while left:
            if time.monotonic() > deadline:
                raise TimeoutError("watches not acknowledged within 120 s")
            for key, _mask in sel.select(1.0):
                c = key.data
                data = c.sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("server closed a watching session")
                c.buf += data
                for payload in _frames(c.buf):
                    rxid, _zxid, err = _REPLY.unpack_from(payload)
                    if rxid > 0:
                        if err:
                            raise RuntimeError(f"exists failed with {err}")
                        c.replies += 1
                if c.replies == per_session:
                    sel.unregister(c.sock)
                    left -= 1
        sel.close()


def total_watches(port: int) -> int:
    text = four_letter_word("127.0.0.1", port, "wchs", timeout=60.0)
    m = re.search(r"Total watches:\s*(\d+)", text)
    if m is None:
        raise RuntimeError(f"wchs answered {text!r}")
    return int(m.group(1))


@attrs.define
class Result:
    server: str
    idle_kib: int = 0
    sessions_kib: int = 0
    storm_peak_kib: int = 0
    storm_s: float = 0.0
    storm_retries: int = 0
    watches_kib: int = 0
    watches: int = 0


def settle_rss(pid: int, log: Callable[[str], None], what: str, seconds: float = 3.0) -> int:
    time.sleep(seconds)
    total, note = rss_text(pid)
    log(f"{what}: {total / 1024:.0f} MiB{note}")
    return total


def measure(
    name: str,
    port: int,
    pid: int,
    sessions: int,
    watches_per_session: int,
    concurrency: int,
    log: Callable[[str], None],
) -> Result:
    res = Result(name, idle_kib=settle_rss(pid, log, f"{name}: idle", 1.0))
    address = ("127.0.0.1", port)
    clients = [Client() for _ in range(sessions)]
    started = time.monotonic()
    open_sessions(address, clients, concurrency)
    log(f"{name}: {sessions} sessions open in {time.monotonic() - started:.1f} s")
    res.sessions_kib = settle_rss(pid, log, f"{name}: with {sessions} sessions")
    with PeakSampler(pid) as peak:
        drop_all(clients)
        started = time.monotonic()
        res.storm_retries = open_sessions(address, clients, concurrency=sessions)
        res.storm_s = time.monotonic() - started
        time.sleep(1.0)
    res.storm_peak_kib = peak.peak
    log(
        f"{name}: reconnect storm of {sessions}: all back in {res.storm_s:.1f} s "
        f"({res.storm_retries} retries), peak {res.storm_peak_kib / 1024:.0f} MiB"
    )
    create_nodes(clients)
    set_watches(clients, watches_per_session)
    res.watches = total_watches(port)
    res.watches_kib = settle_rss(pid, log, f"{name}: with {res.watches} watches")
    drop_all(clients)
    return res


@contextmanager
def trizab_server(workdir: Path, throttle: Sequence[str]) -> Iterator[tuple[int, int]]:
    server = TrizabProcess(
        workdir / "trizab",
        log_level="WARNING",
        extra_config=[
            "maxClientCnxns=0",
            f"maxSessionTimeout={SESSION_TIMEOUT_MS}",
            "4lw.commands.whitelist=*",
            *throttle,
        ],
    )
    server.start()
    try:
        assert server.pid is not None and server.port is not None
        yield server.port, server.pid
    finally:
        server.stop()


@contextmanager
def zookeeper_server(
    workdir: Path, xmx: str, backlog: int, throttle: Sequence[str]
) -> Iterator[tuple[int, int]]:
    zk = apache_zk.ApacheZooKeeper(
        workdir=workdir / "zookeeper",
        jvm_args=[f"-Xmx{xmx}"],
        extra_config=[
            f"maxSessionTimeout={SESSION_TIMEOUT_MS}",
            "4lw.commands.whitelist=*",
            *([f"clientPortListenBacklog={backlog}"] if backlog > 0 else []),
            *throttle,
        ],
        start_timeout=60.0,
    )
    zk.start()
    try:
        assert zk.process is not None
        yield zk.client_port, zk.process.pid
    finally:
        zk.stop()


def somaxconn() -> int:
    try:
        return int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return 4096


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise SystemExit(f"the open-files limit is {hard}; {needed} are needed (ulimit -Hn)")


def mib(kib: int) -> str:
    return f"{kib / 1024:,.0f} MiB"


def report(results: Sequence[Result], sessions: int, watches: int, xmx: str, backlog: int) -> str:
    names = [res.server for res in results]
    rows = [
        ("idle", [mib(res.idle_kib) for res in results]),
        (f"{sessions:,} sessions", [mib(res.sessions_kib) for res in results]),
        (f"{watches:,} watches", [f"{mib(res.watches_kib)} ({res.watches:,})" for res in results]),
        (f"storm of {sessions:,}, peak", [mib(res.storm_peak_kib) for res in results]),
        ("storm, all back after", [f"{res.storm_s:.1f} s ({res.storm_retries} retries)" for res in results]),
    ]
    width = max(len(label) for label, _ in rows)
    out = [f"{'RSS':<{width}}  " + "  ".join(f"{n:>24}" for n in names)]
    out += [f"{label:<{width}}  " + "  ".join(f"{v:>24}" for v in values) for label, values in rows]
    out.append(
        f"(ZooKeeper 3.8 standalone, -Xmx{xmx}, clientPortListenBacklog {backlog or 'default'}; "
        "RSS includes child processes)"
    )
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.limits_rss", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--watches-per-session", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=500, help="handshakes in flight when opening")
    parser.add_argument("--xmx", default=DEFAULT_XMX, help="ZooKeeper's -Xmx (default: zkEnv.sh's 1000m)")
    parser.add_argument(
        "--zk-backlog",
        type=int,
        default=somaxconn(),
        help="ZooKeeper's clientPortListenBacklog (default: net.core.somaxconn, the backlog trizab gets; "
        "0: ZooKeeper's own default, 50 on Linux)",
    )
    parser.add_argument(
        "--throttle",
        metavar="TOKENS:FILL_MS:FILL_COUNT",
        help="connection throttle for both servers (connection_throttle_tokens, _fill_time, _fill_count)",
    )
    parser.add_argument("--servers", default="trizab,zookeeper")
    args = parser.parse_args(argv)
    raise_fd_limit(args.sessions + 100)
    throttle: list[str] = []
    if args.throttle:
        tokens, fill_ms, fill_count = (int(v) for v in args.throttle.split(":"))
        # The spelling both servers take from zoo.cfg (see README.md, "Limits").
        throttle = [
            f"connection_throttle_tokens={tokens}",
            f"connection_throttle_fill_time={fill_ms}",
            f"connection_throttle_fill_count={fill_count}",
        ]
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    results: list[Result] = []

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="limits-rss-"))
    try:
        for name in servers:
            starter = (
                trizab_server(workdir, throttle)
                if name == "trizab"
                else zookeeper_server(workdir, args.xmx, args.zk_backlog, throttle)
            )
            with starter as (port, pid):
                results.append(
                    measure(name, port, pid, args.sessions, args.watches_per_session, args.concurrency, log)
                )
            gc.collect()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(results, args.sessions, args.sessions * args.watches_per_session, args.xmx, args.zk_backlog))
    if throttle:
        print("connection throttle on both: " + ", ".join(throttle))
    return 0


if __name__ == "__main__":
    sys.exit(main())
