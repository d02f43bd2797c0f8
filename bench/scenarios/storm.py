"""Session storm: every session of a 3-member ensemble reconnects at once after a leader fail-over.

N sessions are opened, spread over the members, with a 10-minute timeout (so none expires while
the ensemble elects). The leader is then killed with SIGKILL. Both servers then drop every client
connection (the leader's die with it; a follower closes its clients when it loses the leader,
and turns clients away until a new leader is established), so every session reconnects at once.

Each session does what ZooKeeper's Java client does (``ClientCnxn.SendThread.startConnect``):
when its connection closes, it waits a random 0-1,000 ms and connects to the next member in its
list, resuming its session (id and password in the ConnectRequest); a connection that is
refused or closed before the handshake completes is retried the same way, on the next member.
The random wait is the Java client's; without it 10,000 SYNs in the same millisecond overflow
the listen backlog and the storm measures the kernel's SYN retransmission timer (1 s, then 3 s). Once
the handshake succeeds the session sends its first request (``exists`` on ``/storm``) and is
"back" when it is answered. Figures: the time from the kill until the first session was back (the
election and the new epoch under the storm), until every session was back, the
p50/p99 of each session's time back, and the p99 latency of that first request (from sending
it to its reply). Counts: sessions back, connection attempts, sessions the servers expired
(must be 0) and sessions whose connection was never closed (none expected).
"""

from __future__ import annotations

import heapq
import itertools
import random
import selectors
import socket
import struct
import time

import attrs

from bench.limits_rss import _connect_request, _frames
from bench.rawclient import (
    Address,
    Barrier,
    Session,
    create_everywhere,
    fork_workers,
    open_many,
    request_frame,
    split,
)
from bench.scenarios.common import Figure, Outcome, Scale, latency_figures
from bench.scenarios.servers import Running
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

STORM = "/storm"
ENSEMBLE_SIZE = 3
_REPLY = struct.Struct(">iqi")
_PROBE_XID = 1
RECONNECT_DELAY_S = 1.0  # ClientCnxn waits ThreadLocalRandom.nextLong(1000) ms before reconnecting


@attrs.frozen
class StormSpec:
    addresses: tuple[Address, ...]
    first_index: int
    sessions: int
    seed: int
    timeout: float


@attrs.define(eq=False)
class _State:
    session: Session
    phase: str = "up"  # up -> (wait -> connecting -> handshake)+ -> probing -> done
    retry_at: float = 0.0
    probe_sent: float = 0.0
    back_at: float = 0.0
    first_request: float = 0.0
    expired: bool = False


def _storm_worker(spec: StormSpec, barrier: Barrier) -> dict[str, object]:
    sessions = open_many(spec.addresses, spec.sessions, first_index=spec.first_index)
    rng = random.Random(spec.seed)
    sel = selectors.DefaultSelector()
    states = [_State(s) for s in sessions]
    for st in states:
        assert st.session.sock is not None
        st.session.sock.setblocking(False)
        sel.register(st.session.sock, selectors.EVENT_READ, st)
    barrier.wait()
    cpu0, wall0 = time.process_time(), time.monotonic()
    waiting: list[tuple[float, int, _State]] = []  # a heap by retry time
    order = itertools.count()
    left = len(states)
    attempts = 0
    deadline = wall0 + spec.timeout
    probe = request_frame(_PROBE_XID, OpCode.EXISTS, r.ExistsRequest(STORM, False))

    def lost(st: _State, now: float) -> None:
        s = st.session
        if s.sock is not None:
            sel.unregister(s.sock)
            s.sock.close()
            s.sock = None
        s.buf.clear()
        st.phase = "wait"
        st.retry_at = now + RECONNECT_DELAY_S * rng.random()
        heapq.heappush(waiting, (st.retry_at, next(order), st))

    def done(st: _State, now: float, *, expired: bool = False) -> None:
        nonlocal left
        st.phase = "done"
        st.back_at = now
        st.expired = expired
        left -= 1
        s = st.session
        if s.sock is not None:
            sel.unregister(s.sock)
            s.sock.close()
            s.sock = None

    while left and time.monotonic() < deadline:
        now = time.monotonic()
        while waiting and waiting[0][0] <= now:
            st = heapq.heappop(waiting)[2]
            s = st.session
            s.attempts += 1
            attempts += 1
            address = spec.addresses[(s.index + s.attempts) % len(spec.addresses)]
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(address)
            s.sock = sock
            st.phase = "connecting"
            sel.register(sock, selectors.EVENT_WRITE, st)
        for key, _mask in sel.select(0.01):
            st = key.data
            s = st.session
            sock = s.sock
            now = time.monotonic()
            if st.phase == "connecting":
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    lost(st, now)
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sock.send(_connect_request(s))
                st.phase = "handshake"
                sel.modify(sock, selectors.EVENT_READ, st)
                continue
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                lost(st, now)  # the fail-over closed it, or a member turned the session away
                continue
            s.buf += data
            for payload in _frames(s.buf):
                if st.phase == "handshake":
                    response = jute.decode(r.ConnectResponse, payload)
                    if response.time_out <= 0:
                        done(st, now, expired=True)
                        break
                    st.phase = "probing"
                    st.probe_sent = time.monotonic()
                    sock.send(probe)
                elif st.phase == "probing":
                    xid, _zxid, err = _REPLY.unpack_from(payload)
                    if xid != _PROBE_XID:
                        continue
                    if err:
                        lost(st, now)
                        break
                    st.first_request = now - st.probe_sent
                    done(st, now)
                    break
                # phase "up": nothing is expected on the old connection (no watches, no requests).
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    sel.close()
    back = [st for st in states if st.phase == "done" and not st.expired]
    for st in states:
        if st.session.sock is not None:
            st.session.sock.close()
    return {
        "back_at": [st.back_at for st in back],
        "first_request": [st.first_request for st in back],
        "attempts": attempts,
        "expired": sum(st.expired for st in states),
        "kept": sum(st.phase == "up" for st in states),
        "cpu": cpu,
        "wall": wall,
    }


def run_storm(running: Running, scale: Scale, client_processes: int) -> Outcome:
    addresses = tuple(running.addresses)
    create_everywhere(addresses, [STORM], b"x")  # every member has /storm before the first probe
    sessions = scale.storm_sessions
    timeout = 60.0 + sessions / 200
    specs = []
    first = 0
    for i, count in enumerate(split(sessions, client_processes)):
        specs.append(StormSpec(addresses, first, count, seed=i, timeout=timeout))
        first += count

    def trigger() -> float:
        t0 = time.monotonic()
        running.kill_leader()
        return t0

    results, t0 = fork_workers(_storm_worker, specs, trigger, timeout=timeout + 60)
    back = sorted(b - t0 for res in results for b in res["back_at"])  # type: ignore[union-attr]
    first_requests = [f for res in results for f in res["first_request"]]  # type: ignore[union-attr]
    expired = sum(int(res["expired"]) for res in results)  # type: ignore[call-overload]
    kept = sum(int(res["kept"]) for res in results)  # type: ignore[call-overload]
    outcome = Outcome(
        running.name,
        figures=[
            # The first session back: how long the election and the new epoch took under the storm.
            Figure("first session back", back[0] if back else float("nan"), "s", True),
            Figure("all back and served after", back[-1] if back else float("nan"), "s", True),
            *latency_figures("session back", back, unit="s")[:2],
            *latency_figures("first request", first_requests)[:2],
        ],
        counts={
            "sessions": sessions,
            "sessions back": len(back),
            "connection attempts": sum(int(res["attempts"]) for res in results),  # type: ignore[call-overload]
            "expired": expired,
            "never disconnected": kept,
        },
        client_cpu_s=sum(float(res["cpu"]) for res in results),  # type: ignore[arg-type]
        client_wall_s=max(float(res["wall"]) for res in results),  # type: ignore[arg-type]
        client_processes=len(specs),
        samples={"session back after kill (s)": back},
    )
    if len(back) != sessions:
        outcome.error = (
            f"{len(back):,} of {sessions:,} sessions back ({expired} expired, {kept} never dropped)"
        )
    return outcome
