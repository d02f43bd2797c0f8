"""Many raw-protocol sessions in a few processes: the client side of ``bench.scenarios``.

Theory of operation: a scenario needs thousands of sessions (10,000 watchers, a 10,000-session
reconnect storm), and kazoo costs a thread per client and tops out near 7,000 requests a second,
so the client would decide the result. As in ``bench/loadgen.py`` and ``bench/limits_rss.py``
the sessions here are plain non-blocking sockets on one selector per process, frames built once
with the project's Jute codec: sessions are opened with ``limits_rss.open_sessions`` (bounded
concurrent handshakes, retries), then a :class:`Pump` sends requests and hands every reply
and watch notification to the scenario's callbacks, stamped with the time its socket was read.

Replies on one connection come back in request order (the protocol guarantees it), so each
session keeps a FIFO of (xid, send time) and a reply's latency needs no lookup.

:func:`fork_workers` runs a scenario's client side in several forked processes (the machine's
second core) with one barrier: every worker sets up (sessions, watches), reports ready, and
waits; the parent then releases them, triggers the event being measured (a setData, a leader
kill) and publishes its CLOCK_MONOTONIC time, which every process shares, so arrival times
from all workers compare against one start. Each worker reports the CPU time it used after the
barrier, so a scenario can say how much of a core the client side needed.
"""

from __future__ import annotations

import multiprocessing as mp
import selectors
import socket
import struct
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from bench.limits_rss import Client, _frames, open_sessions
from bench.loadgen import _recv_frame, connect, frame
from trizab.wire import records as r
from trizab.wire.codes import OpCode

Address = tuple[str, int]
_REPLY = struct.Struct(">iqi")  # ReplyHeader: xid, zxid, err
NOTIFICATION_XID = -1
OPEN_ACL = [r.ACL(perms=31, id=r.Id(scheme="world", id="anyone"))]

ReplyHandler = Callable[["Session", int, bytes, float, float], None]  # session, err, payload, now, sent
EventHandler = Callable[["Session", bytes, float], None]  # session, payload, now


@attrs.define(eq=False)
class Session(Client):
    """One raw session: ``Client``'s id, password and socket, plus its requests in flight."""

    index: int = 0
    xid: int = 0
    sent: deque[tuple[int, float]] = attrs.Factory(deque)


def spread(addresses: Sequence[Address]) -> Callable[[Client], Address]:
    """Each session's server for each attempt: sessions spread over the members, and a session
    whose connection failed tries the next member (as ZooKeeper clients walk their host list)."""

    def where(client: Client) -> Address:
        index = client.index if isinstance(client, Session) else 0
        return addresses[(index + client.attempts) % len(addresses)]

    return where


def open_many(addresses: Sequence[Address], count: int, *, first_index: int = 0) -> list[Session]:
    """``count`` new sessions spread over ``addresses``, at most 500 handshakes at a time."""
    sessions = [Session(index=first_index + i) for i in range(count)]
    open_sessions(spread(addresses), sessions, concurrency=500)
    return sessions


def body_frame(session: Session, opcode: int, body: object | None) -> bytes:
    """The next request of ``session`` (its xid counted, its send time recorded by the caller)."""
    session.xid += 1
    return request_frame(session.xid, opcode, body)


def request_frame(xid: int, opcode: int, body: object | None = None) -> bytes:
    header = r.RequestHeader(xid=xid, type=opcode)
    return frame(header) if body is None else frame(header, body)


def read_reply(sock: socket.socket, allowed: Sequence[int] = (0,)) -> bytes:
    """The next reply on a blocking socket (notifications skipped); an error not in ``allowed`` raises."""
    while True:
        payload = _recv_frame(sock)
        xid, _zxid, err = _REPLY.unpack_from(payload)
        if xid < 0:
            continue
        if err not in allowed:
            raise RuntimeError(f"request {xid} failed with error {err}")
        return payload


def create_everywhere(addresses: Sequence[Address], paths: Sequence[str], data: bytes = b"") -> None:
    """Create ``paths`` (pipelined, NodeExists is fine) through the first member, then ``sync`` every
    other member, so a session on any member finds them (as ``loadgen.prepare`` does)."""
    sock = connect(*addresses[0])
    try:
        frames = [
            request_frame(xid, OpCode.CREATE, r.CreateRequest(path, data, OPEN_ACL, 0))
            for xid, path in enumerate(paths, start=1)
        ]
        send_all(sock, b"".join(frames))
        for _ in frames:
            read_reply(sock, allowed=(0, -110))
    finally:
        sock.close()
    for address in addresses[1:]:
        sock = connect(*address)
        try:
            sock.sendall(request_frame(1, OpCode.SYNC, r.SyncRequest(paths[0])))
            read_reply(sock)
        finally:
            sock.close()


def send_all(sock: socket.socket, data: bytes) -> None:
    """Write ``data`` on a non-blocking socket, blocking only if the kernel buffer is full."""
    try:
        sent = sock.send(data)
    except BlockingIOError:
        sent = 0
    if sent < len(data):
        sock.setblocking(True)
        try:
            sock.sendall(memoryview(data)[sent:])
        finally:
            sock.setblocking(False)


class Pump:
    """One selector over sessions' sockets; replies and notifications go to callbacks."""

    def __init__(self, sessions: Sequence[Session]) -> None:
        self.selector = selectors.DefaultSelector()
        self.sessions = list(sessions)
        for session in self.sessions:
            assert session.sock is not None, "open the sessions first"
            session.sock.setblocking(False)
            self.selector.register(session.sock, selectors.EVENT_READ, session)

    def send(self, session: Session, opcode: int, body: object | None = None) -> None:
        data = body_frame(session, opcode, body)
        session.sent.append((session.xid, time.monotonic()))
        assert session.sock is not None
        send_all(session.sock, data)

    def run(
        self,
        done: Callable[[], bool],
        timeout: float,
        *,
        on_reply: ReplyHandler | None = None,
        on_event: EventHandler | None = None,
        what: str = "the scenario",
    ) -> None:
        """Read until ``done()``; a reply's handler gets its error code, payload, arrival and send time."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not finish within {timeout:.0f} s")
            for key, _mask in self.selector.select(0.2):
                session = key.data
                data = session.sock.recv(1 << 20)
                now = time.monotonic()
                if not data:
                    raise ConnectionError(f"the server closed session {session.index}'s connection")
                session.buf += data
                for payload in _frames(session.buf):
                    xid, _zxid, err = _REPLY.unpack_from(payload)
                    if xid == NOTIFICATION_XID:
                        if on_event is not None:
                            on_event(session, payload, now)
                        continue
                    if xid < 0:
                        continue  # a ping's reply (-2), an auth reply (-4)
                    sent_xid, sent_at = session.sent.popleft()
                    if sent_xid != xid:
                        raise RuntimeError(f"reply to xid {xid} where {sent_xid} was next")
                    if on_reply is not None:
                        on_reply(session, err, payload, now, sent_at)

    def close(self) -> None:
        self.selector.close()
        for session in self.sessions:
            if session.sock is not None:
                session.sock.close()
                session.sock = None


class Barrier:
    """A worker's side of :func:`fork_workers`: report ready, wait for the go, read the start time."""

    def __init__(self, ready: Any, go: Any, start_at: Any) -> None:
        self._ready, self._go, self._start_at = ready, go, start_at

    def wait(self) -> None:
        """Set-up done: tell the parent, and return once every worker is released."""
        self._ready.put("ok")
        self._go.wait()

    def start_time(self, timeout: float = 60.0) -> float:
        """The parent's trigger time (CLOCK_MONOTONIC); waits until it is published."""
        deadline = time.monotonic() + timeout
        while self._start_at.value == 0.0:
            if time.monotonic() > deadline:
                raise TimeoutError("the parent never triggered")
            time.sleep(0.0005)
        return float(self._start_at.value)


def _worker_main(target: Callable[[Any, Barrier], Any], spec: Any, barrier: Barrier, results: Any) -> None:
    try:
        results.put(("ok", target(spec, barrier)))
    except BaseException:
        barrier._ready.put(f"worker failed:\n{traceback.format_exc()}")
        results.put(("error", traceback.format_exc()))


def fork_workers(
    target: Callable[[Any, Barrier], Any],
    specs: Sequence[Any],
    trigger: Callable[[], float],
    *,
    timeout: float,
) -> tuple[list[Any], float]:
    """Run ``target(spec, barrier)`` in one forked process per spec; returns their results and
    the trigger's time. Workers call ``barrier.wait()`` once set up; then ``trigger()`` runs here
    (50 ms after the release, so every worker is already reading its sockets)."""
    ctx = mp.get_context("fork")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [
        ctx.Process(
            target=_worker_main, args=(target, spec, Barrier(ready, go, start_at), results), daemon=True
        )
        for spec in specs
    ]
    for proc in procs:
        proc.start()
    try:
        for _ in procs:
            message = ready.get(timeout=timeout)
            if message != "ok":
                raise RuntimeError(message)
        go.set()
        time.sleep(0.05)
        t0 = trigger()
        start_at.value = t0
        gathered = []
        for _ in procs:
            status, value = results.get(timeout=timeout)
            if status != "ok":
                raise RuntimeError(f"worker failed:\n{value}")
            gathered.append(value)
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
    return gathered, t0


def split(total: int, parts: int) -> list[int]:
    """``total`` items over ``parts`` workers, as evenly as possible (no empty worker)."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]
