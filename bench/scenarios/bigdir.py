"""Large directories: create N children of one znode, then list them.

Four sessions pipeline ``create`` requests for ``/bigdir/NNNNN`` (64 in flight each) until all
N children exist. Figures: creates per second over the whole run and each create's latency
(p50 / p99). Then one session calls ``getChildren`` on ``/bigdir`` a few times in a row.
Figures: its latency (p50 / max), and every listing must hold exactly N children. Names are
five digits, so 100,000 of them (a 0.9 MB reply) fit under the default ``jute.maxbuffer``.

Where Linux's schedstat can be read: the server's CPU time (every thread) per create and per
listing, and in the counts how long the server ran on a CPU during the creates and how long
it waited, runnable, for one: on a shared machine that wait, not the server's work, often sets
the create rate (see bench/README.md, "large-directory").
"""

from __future__ import annotations

import time

from bench.loadgen import connect
from bench.rawclient import OPEN_ACL, Pump, Session, create_everywhere, open_many, read_reply, request_frame
from bench.scenarios.common import Figure, Outcome, Scale, latency_figures, scheduler_times
from bench.scenarios.servers import Running
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

BIGDIR = "/bigdir"
CONNECTIONS = 4
IN_FLIGHT = 64  # creates outstanding per connection


def run_bigdir(running: Running, scale: Scale, client_processes: int) -> Outcome:
    address = running.addresses[0]
    total = scale.bigdir_children
    create_everywhere([address], [BIGDIR])
    sessions = open_many([address], CONNECTIONS)
    pump = Pump(sessions)
    issued = 0
    latencies: list[float] = []
    errors = 0

    def issue(session: Session) -> None:
        nonlocal issued
        pump.send(session, OpCode.CREATE, r.CreateRequest(f"{BIGDIR}/{issued:05d}", b"", OPEN_ACL, 0))
        issued += 1

    def on_reply(session: Session, err: int, _payload: bytes, now: float, sent: float) -> None:
        nonlocal errors
        latencies.append(now - sent)
        errors += err != 0
        if issued < total:
            issue(session)

    cpu0, started = time.process_time(), time.monotonic()
    sched0 = scheduler_times(running.pids)
    for session in sessions:
        for _ in range(IN_FLIGHT):
            if issued < total:
                issue(session)
    pump.run(lambda: len(latencies) == total, 60 + total / 500, on_reply=on_reply, what="the creates")
    elapsed = time.monotonic() - started
    sched1 = scheduler_times(running.pids)
    pump.close()
    listing: list[float] = []
    sizes: list[int] = []
    sock = connect(*address)
    sched2 = scheduler_times(running.pids)
    try:
        for xid in range(1, scale.bigdir_listings + 1):
            sent = time.monotonic()
            sock.sendall(request_frame(xid, OpCode.GET_CHILDREN, r.GetChildrenRequest(BIGDIR, False)))
            payload = read_reply(sock)
            listing.append(time.monotonic() - sent)
            sizes.append(len(jute.decode(r.GetChildrenResponse, payload, 16).children))
    finally:
        sock.close()
    sched3 = scheduler_times(running.pids)
    cpu = time.process_time() - cpu0
    outcome = Outcome(
        running.name,
        figures=[
            Figure("creates/s", total / elapsed, "/s", False),
            *latency_figures("create", latencies)[:2],
            Figure("getChildren p50", sorted(listing)[len(listing) // 2] * 1000, "ms", True),
            Figure("getChildren max", max(listing) * 1000, "ms", True),
        ],
        counts={
            "children created": total - errors,
            "create errors": errors,
            "listings": len(sizes),
            "children in every listing": min(sizes) if sizes and min(sizes) == max(sizes) else -1,
        },
        client_cpu_s=cpu,
        client_wall_s=time.monotonic() - started,
    )
    if sched0 is not None and sched1 is not None and sched2 is not None and sched3 is not None:
        # The server's own work, whatever share of the machine it got: comparable between
        # servers when the rates above are set by the machine's other load.
        outcome.figures += [
            Figure("server CPU per create", 1e6 * (sched1[0] - sched0[0]) / total, "us", True),
            Figure("server CPU per getChildren", 1e3 * (sched3[0] - sched2[0]) / len(listing), "ms", True),
        ]
        outcome.counts["server ms on a CPU during the creates"] = round(1000 * (sched1[0] - sched0[0]))
        outcome.counts["server ms waiting for a CPU during them"] = round(1000 * (sched1[1] - sched0[1]))
    if errors or any(size != total for size in sizes):
        outcome.error = f"{errors} creates failed; listings held {sorted(set(sizes))} children, not {total}"
    return outcome
