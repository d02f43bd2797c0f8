"""CPU per request of trizab's request pipeline without sockets or disk waits.

Theory of operation
-------------------
The load generator's figures move with whatever else the machine runs; this
script measures the part that is ours alone.  It feeds pre-built request frames
for ``--clients`` connections through the same objects the server uses per
request (the frontend's :class:`ClientConnection`, the :class:`ServerCore`, the
``txnlog`` engine's record encoding into its append buffer, the reply
encoding), in batches of ``--batch`` requests, then commits each batch as the
storage worker would.  Nothing is written to disk and no socket is touched, so
the figure is the CPU a request costs the event loop thread, minus the system
calls.  Run it before and after a change to the hot path::

    python -m bench.pipeline --op setData --requests 200000

``--op create`` makes every request a new child of one znode, so the directory grows to
``--requests`` children; the CPU per request by tenth of the run shows whether a create costs
more as the directory grows.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import pstats
import tempfile
import time
from pathlib import Path

from trizab.frontend.connection import (
    NEED_DATA,
    ClientConnection,
    ConnectReceived,
    RequestReceived,
    encode_output,
)
from trizab.plugins.storage.txnlog import TxnLogStoragePlugin

from trizab.runtime.tuning import tune_process
from trizab.server.core import CoreConfig, ServerCore
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import encode

T0 = 1_700_000_000_000


def frame(*records: object) -> bytes:
    body = b"".join(encode(rec) for rec in records)  # type: ignore[arg-type]
    return len(body).to_bytes(4, "big") + body


def run(op: str, requests: int, clients: int, batch: int, data_size: int, profile: bool) -> None:
    tune_process(replicated=False)  # the collector settings `trizab serve` runs a standalone server with
    core = ServerCore(CoreConfig(), now_ms=T0)
    with tempfile.TemporaryDirectory() as tmp:
        storage = TxnLogStoragePlugin(data_dir=Path(tmp), force_sync=False, syncer="inline")
        storage.open()
        conns: list[ClientConnection] = []
        outbufs: list[bytearray] = []
        for cid in range(clients):
            conn = ClientConnection()
            conn.receive_data(frame(r.ConnectRequest(0, 0, 30_000, 0, b"\0" * 16, False)))
            ev = conn.next_event()
            assert isinstance(ev, ConnectReceived)
            core.connect(cid, ev.request, has_read_only_flag=False, client_addr="127.0.0.1", now_ms=T0)
            conns.append(conn)
            outbufs.append(bytearray())
        path = "/bench"
        create = r.CreateRequest(path, b"x", [r.ACL(31, r.Id("world", "anyone"))], 0)
        core.receive(0, 1, OpCode.CREATE, encode(create), T0)
        rd = core.ready()
        storage.append(rd.to_log)
        core.committed(rd.to_log, T0)
        core.ready()
        data = b"x" * data_size
        per_client = batch // clients or 1
        rounds = max(1, requests // (per_client * clients))
        if op == "create":
            # Every request a new child of /bench: the directory grows to --requests children.
            names = iter(range(rounds * per_client * clients))
            acl = [r.ACL(31, r.Id("world", "anyone"))]
            chunks_by_round = [
                [
                    b"".join(
                        _req(
                            10 + i,
                            OpCode.CREATE,
                            encode(r.CreateRequest(f"{path}/{next(names):07d}", data, acl, 0)),
                        )
                        for i in range(per_client)
                    )
                    for _ in range(clients)
                ]
                for _ in range(rounds)
            ]
        else:
            if op == "setData":
                opcode, body = OpCode.SET_DATA, encode(r.SetDataRequest(path, data, -1))
            else:
                opcode, body = OpCode.GET_DATA, encode(r.GetDataRequest(path, False))
            chunks = [b"".join(_req(10 + i, opcode, body) for i in range(per_client)) for _ in range(clients)]
            chunks_by_round = [chunks] * rounds
        # CPU time at the end of each tenth of the rounds: does a request cost more as the run goes
        # on (for create: as the directory grows)?
        tenth = -(-rounds // 10)  # rounds per tenth, rounded up: ten marks at most
        cpu_marks: list[tuple[int, float]] = []  # (rounds done, CPU time)

        def work() -> None:
            for round_no, chunks in enumerate(chunks_by_round):
                if round_no % tenth == 0:
                    cpu_marks.append((round_no, time.process_time()))
                for cid, conn in enumerate(conns):
                    conn.receive_data(chunks[cid])
                    events: list[object] = []
                    conn.next_requests(events)
                    for ev in events:
                        assert isinstance(ev, RequestReceived)
                        core.receive(cid, ev.xid, ev.opcode, ev.payload, T0)
                    while True:
                        ev = conn.next_event()
                        if ev is NEED_DATA:
                            break
                        assert isinstance(ev, RequestReceived)
                        core.receive(cid, ev.xid, ev.opcode, ev.payload, T0)
                rd = core.ready()
                for cid, out in rd.outputs:
                    encode_output(outbufs[cid], out)
                if rd.to_log:
                    storage.append(rd.to_log)
                    storage._buf.clear()  # the engine's encoding is measured, not its write
                    core.committed(rd.to_log, T0)
                    rd = core.ready()
                    for cid, out in rd.outputs:
                        encode_output(outbufs[cid], out)
                for out in outbufs:
                    out.clear()
            cpu_marks.append((rounds, time.process_time()))

        started = time.perf_counter()
        cpu_started = time.process_time()
        if profile:
            prof = cProfile.Profile()
            prof.runcall(work)
            pstats.Stats(prof).sort_stats("tottime").print_stats(25)
        else:
            work()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        done = rounds * per_client * clients
        print(
            f"{op}: {done} requests, batch {per_client * clients}: {elapsed / done * 1e6:.2f} us/request"
            f" wall, {cpu / done * 1e6:.2f} us/request CPU"
        )
        per_round = per_client * clients
        steps = [(c1 - c0) / ((r1 - r0) * per_round) for (r0, c0), (r1, c1) in itertools.pairwise(cpu_marks)]
        print("CPU per request by tenth of the run: " + ", ".join(f"{d * 1e6:.1f}" for d in steps) + " us")
        storage.close()


def _req(xid: int, opcode: int, body: bytes) -> bytes:
    payload = encode(r.RequestHeader(xid, opcode)) + body
    return len(payload).to_bytes(4, "big") + payload


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--op", choices=["setData", "getData", "create"], default="setData")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=256, help="requests per round, over all clients")
    parser.add_argument("--data-size", type=int, default=100)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    run(args.op, args.requests, args.clients, args.batch, args.data_size, args.profile)


if __name__ == "__main__":
    main()
