"""Watch fan-out: many sessions watching one znode, and a recursive persistent watch.

**watch-fanout**: N sessions (spread over the client processes) each set a data watch on
``/fanout`` (``getData`` with ``watch=true``); once every watch is acknowledged, one more
session sends one ``setData``. Figures: the time from that send to each session's
NodeDataChanged notification (p50, p99, max: the max is the time until every notification
arrived), and the setData's own round trip. ZooKeeper's ``WatchManager`` fires the watches and
every connection's thread writes its notification; trizab does it from one event loop.

**recursive-watch**: W sessions each add a persistent recursive watch on ``/recursive``
(``addWatch``, mode PERSISTENT_RECURSIVE), then one session pipelines C writes under it (C/2
creates of children, then a setData of each), so W x C notifications are triggered. Figures:
the time until every notification arrived, notifications per second over it, and each
notification's arrival after the first write was sent (p50 / p99).

Each session counts its notifications; the counts are part of the outcome, and both scenarios
fail if one is missing.
"""

from __future__ import annotations

import time

import attrs

from bench.loadgen import connect
from bench.rawclient import (
    OPEN_ACL,
    Address,
    Barrier,
    Pump,
    Session,
    create_everywhere,
    fork_workers,
    open_many,
    read_reply,
    request_frame,
    send_all,
    split,
)
from bench.scenarios.common import Figure, Outcome, Scale, latency_figures
from bench.scenarios.servers import Running
from trizab.wire import records as r
from trizab.wire.codes import OpCode

FANOUT = "/fanout"
RECURSIVE = "/recursive"
PERSISTENT_RECURSIVE = 1  # AddWatchMode.PERSISTENT_RECURSIVE


@attrs.frozen
class WatchSpec:
    addresses: tuple[Address, ...]
    first_index: int
    sessions: int
    recursive: bool
    per_session: int  # notifications each session waits for
    timeout: float


def _watcher(spec: WatchSpec, barrier: Barrier) -> dict[str, object]:
    """Open the sessions, set their watches, then record each notification's arrival time."""
    sessions = open_many(spec.addresses, spec.sessions, first_index=spec.first_index)
    pump = Pump(sessions)
    acked = 0

    def on_ack(_s: Session, err: int, _payload: bytes, _now: float, _sent: float) -> None:
        nonlocal acked
        if err:
            raise RuntimeError(f"setting a watch failed with error {err}")
        acked += 1

    for session in sessions:
        if spec.recursive:
            pump.send(session, OpCode.ADD_WATCH, r.AddWatchRequest(RECURSIVE, PERSISTENT_RECURSIVE))
        else:
            pump.send(session, OpCode.GET_DATA, r.GetDataRequest(FANOUT, True))
    pump.run(lambda: acked == len(sessions), spec.timeout, on_reply=on_ack, what="setting the watches")
    arrivals: list[float] = []
    expected = spec.sessions * spec.per_session
    barrier.wait()
    cpu0, wall0 = time.process_time(), time.monotonic()

    def on_event(_s: Session, _payload: bytes, now: float) -> None:
        arrivals.append(now)

    try:
        pump.run(lambda: len(arrivals) >= expected, spec.timeout, on_event=on_event, what="the notifications")
    except TimeoutError:
        pass  # the parent compares the count with what it expected
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    pump.close()
    return {"arrivals": arrivals, "cpu": cpu, "wall": wall}


def run_fanout(running: Running, scale: Scale, client_processes: int) -> Outcome:
    return _run(running, scale.fanout_sessions, 1, client_processes, recursive=False)


def run_recursive(running: Running, scale: Scale, client_processes: int) -> Outcome:
    return _run(running, scale.recursive_watchers, scale.recursive_changes, client_processes, recursive=True)


def _run(running: Running, sessions: int, per_session: int, processes: int, *, recursive: bool) -> Outcome:
    addresses = tuple(running.addresses)
    root = RECURSIVE if recursive else FANOUT
    create_everywhere(addresses, [root], b"x" * 10)
    timeout = 60.0 + sessions * per_session / 2000
    specs = []
    first = 0
    for count in split(sessions, processes):
        specs.append(WatchSpec(addresses, first, count, recursive, per_session, timeout))
        first += count
    writer = connect(*addresses[0])
    if recursive:
        half = per_session // 2
        writes = [
            request_frame(1 + i, OpCode.CREATE, r.CreateRequest(f"{root}/c{i}", b"v", OPEN_ACL, 0))
            for i in range(half)
        ] + [
            request_frame(1 + half + i, OpCode.SET_DATA, r.SetDataRequest(f"{root}/c{i}", b"w", -1))
            for i in range(per_session - half)
        ]
    else:
        writes = [request_frame(1, OpCode.SET_DATA, r.SetDataRequest(root, b"changed", -1))]
    batch = b"".join(writes)
    reply_at: list[float] = []

    def trigger() -> float:
        # The workers stamp arrivals themselves; the writer's replies are read here, as they come.
        t0 = time.monotonic()
        send_all(writer, batch)
        for _ in writes:
            read_reply(writer)
            reply_at.append(time.monotonic())
        return t0

    try:
        results, t0 = fork_workers(_watcher, specs, trigger, timeout=timeout + 30)
    finally:
        writer.close()
    arrivals = sorted(a for res in results for a in res["arrivals"])  # type: ignore[union-attr]
    since = [a - t0 for a in arrivals]
    expected = sessions * per_session
    outcome = Outcome(
        running.name,
        counts={"sessions": sessions, "notifications": len(arrivals), "notifications expected": expected},
        client_cpu_s=sum(float(res["cpu"]) for res in results),  # type: ignore[arg-type]
        client_wall_s=max(float(res["wall"]) for res in results),  # type: ignore[arg-type]
        client_processes=len(specs),
        samples={"notification arrival (ms)": [s * 1000 for s in since]},
    )
    if recursive:
        total = since[-1] if since else float("nan")
        outcome.figures = [
            Figure("all notified after", total, "s", True),
            Figure(
                "notifications/s", len(since) / total if since and total > 0 else float("nan"), "/s", False
            ),
            *latency_figures("notification", since)[:2],
        ]
    else:
        outcome.figures = [
            *latency_figures("notification", since),
            Figure("setData reply", (reply_at[0] - t0) * 1000 if reply_at else float("nan"), "ms", True),
        ]
    if len(arrivals) != expected:
        outcome.error = f"{len(arrivals):,} of {expected:,} notifications arrived"
    return outcome
