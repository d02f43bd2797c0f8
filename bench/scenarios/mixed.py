"""Mixed realistic load: 90 % reads, 9 % writes, 1 % creates/deletes of ephemerals, many sessions.

S sessions (spread over the client processes) each keep one request in flight, closed loop:
each reply releases that session's next request, drawn from a seeded generator: 90 % ``getData``
and 9 % ``setData`` of one of 1,000 znodes of 100 bytes, 1 % the session's own ephemeral
(``create`` if it has none, else ``delete``). As in ``bench/loadgen.py``, every process counts
only replies inside one shared measured window after a warm-up. Figures: operations per second,
latency p50 / p99 over all operations, and p99 of the reads and of the writes (setData, create,
delete) apart. Counts: operations of each kind in the window; errors must be 0.
"""

from __future__ import annotations

import random
import time

import attrs

from bench.rawclient import (
    OPEN_ACL,
    Address,
    Barrier,
    Pump,
    Session,
    create_everywhere,
    fork_workers,
    open_many,
    split,
)
from bench.scenarios.common import Figure, Outcome, Scale, latency_figures
from bench.scenarios.servers import Running
from trizab.wire import records as r
from trizab.wire.codes import OpCode

MIXED = "/mixed"
NODES = 1000
VALUE = b"v" * 100
EPHEMERAL = 1  # CreateMode.EPHEMERAL
KINDS = ("read", "write", "ephemeral")


@attrs.frozen
class MixedSpec:
    addresses: tuple[Address, ...]
    first_index: int
    sessions: int
    seed: int
    warmup: float
    duration: float


def _mixed_worker(spec: MixedSpec, barrier: Barrier) -> dict[str, object]:
    sessions = open_many(spec.addresses, spec.sessions, first_index=spec.first_index)
    pump = Pump(sessions)
    rng = random.Random(spec.seed)
    has_ephemeral = [False] * len(sessions)
    kind_of: list[str] = [""] * len(sessions)  # the kind of each session's request in flight
    latency: dict[str, list[float]] = {k: [] for k in KINDS}
    counts = {"getData": 0, "setData": 0, "create": 0, "delete": 0}
    errors = 0
    sending = True
    local = {s.index: i for i, s in enumerate(sessions)}

    def issue(session: Session) -> None:
        i = local[session.index]
        draw = rng.random()
        if draw < 0.90:
            kind_of[i] = "getData"
            pump.send(session, OpCode.GET_DATA, r.GetDataRequest(f"{MIXED}/n{rng.randrange(NODES)}", False))
        elif draw < 0.99:
            kind_of[i] = "setData"
            pump.send(
                session, OpCode.SET_DATA, r.SetDataRequest(f"{MIXED}/n{rng.randrange(NODES)}", VALUE, -1)
            )
        elif not has_ephemeral[i]:
            kind_of[i] = "create"
            path = f"{MIXED}/e{session.index}"
            pump.send(session, OpCode.CREATE, r.CreateRequest(path, b"", OPEN_ACL, EPHEMERAL))
            has_ephemeral[i] = True
        else:
            kind_of[i] = "delete"
            pump.send(session, OpCode.DELETE, r.DeleteRequest(f"{MIXED}/e{session.index}", -1))
            has_ephemeral[i] = False

    barrier.wait()
    t0 = barrier.start_time()
    window_start = t0 + spec.warmup
    window_end = window_start + spec.duration
    cpu0, wall0 = time.process_time(), time.monotonic()
    in_flight = len(sessions)

    def on_reply(session: Session, err: int, _payload: bytes, now: float, sent: float) -> None:
        nonlocal errors, sending, in_flight
        kind = kind_of[local[session.index]]
        if window_start <= now < window_end:
            counts[kind] += 1
            bucket = "read" if kind == "getData" else "write" if kind == "setData" else "ephemeral"
            latency[bucket].append(now - sent)
            errors += err != 0
        if now >= window_end:
            sending = False
        if sending:
            issue(session)
        else:
            in_flight -= 1

    for session in sessions:
        issue(session)
    pump.run(
        lambda: in_flight == 0, spec.warmup + spec.duration + 60, on_reply=on_reply, what="the mixed load"
    )
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0
    pump.close()
    return {"latency": latency, "counts": counts, "errors": errors, "cpu": cpu, "wall": wall}


def run_mixed(running: Running, scale: Scale, client_processes: int) -> Outcome:
    addresses = tuple(running.addresses)
    create_everywhere(addresses, [MIXED] + [f"{MIXED}/n{i}" for i in range(NODES)], VALUE)
    specs = []
    first = 0
    for i, count in enumerate(split(scale.mixed_sessions, client_processes)):
        specs.append(MixedSpec(addresses, first, count, i, scale.mixed_warmup, scale.mixed_seconds))
        first += count
    results, _t0 = fork_workers(_mixed_worker, specs, time.monotonic, timeout=120 + scale.mixed_sessions / 50)
    latency: dict[str, list[float]] = {k: [] for k in KINDS}
    counts = {"getData": 0, "setData": 0, "create": 0, "delete": 0}
    errors = 0
    for res in results:
        for k in KINDS:
            latency[k] += res["latency"][k]  # type: ignore[index]
        for k in counts:
            counts[k] += res["counts"][k]  # type: ignore[index]
        errors += int(res["errors"])  # type: ignore[call-overload]
    every = latency["read"] + latency["write"] + latency["ephemeral"]
    writes = latency["write"] + latency["ephemeral"]
    outcome = Outcome(
        running.name,
        figures=[
            Figure("ops/s", len(every) / scale.mixed_seconds, "/s", False),
            *latency_figures("all", every)[:2],
            latency_figures("read", latency["read"])[1],
            latency_figures("write", writes)[1],
        ],
        counts={**counts, "errors": errors, "sessions": scale.mixed_sessions},
        client_cpu_s=sum(float(res["cpu"]) for res in results),  # type: ignore[arg-type]
        client_wall_s=max(float(res["wall"]) for res in results),  # type: ignore[arg-type]
        client_processes=len(specs),
        samples={"mixed latency (ms)": [x * 1000 for x in every]},
    )
    if errors or not every:
        outcome.error = f"{errors} errors, {len(every)} operations in the window"
    return outcome
