"""``python -m fuzz.live``: mutated frames against a real 3-member ensemble, with a client watching.

Theory of operation
-------------------
A :class:`~testkit.trizab_ensemble.TrizabEnsemble` of three ``trizab serve`` processes runs on
127.0.0.1.  Many concurrent fuzzing connections (``--connections``), each to a random member
and one of its three ports in turn, send a short burst of frames built from valid ones
(the client handshake and requests, quorum packets, the election header and notifications,
as :mod:`fuzz.targets` encodes them) of which most are mutated (:mod:`fuzz.mutate`), then
close, half-close or stall.  Meanwhile a kazoo client does set/get against the ensemble and
times every operation.

The report says what a hostile network did to the ensemble: frames and connections per
port, the kazoo operations done, failed and their worst latency, each member's RSS before,
at peak and after, whether any member died, and how many log lines the rejected connections
cost (per port, and the most lines that any one client connection produced), so a flood of
log lines per bad peer shows up as a number.

Every member is stopped by pid at the end; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import attrs
import trio

from fuzz import targets as tg
from fuzz.mutate import Mutator
from testkit.trizab_ensemble import TrizabEnsemble, TrizabMember
from trizab.runtime import quorum
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import encode

__all__ = ["LiveReport", "run_live"]

PORTS = ("client", "quorum", "election")


@attrs.define
class LiveReport:
    frames: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(PORTS, 0))
    connections: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(PORTS, 0))
    refused: dict[str, int] = attrs.Factory(lambda: dict.fromkeys(PORTS, 0))
    seconds: float = 0.0
    kazoo_ops: int = 0
    kazoo_errors: int = 0
    kazoo_max_latency_s: float = 0.0
    kazoo_p99_latency_s: float = 0.0
    kazoo_error_samples: list[str] = attrs.Factory(list)
    rss_kb_before: dict[int, int] = attrs.Factory(dict)
    rss_kb_peak: dict[int, int] = attrs.Factory(dict)
    rss_kb_after: dict[int, int] = attrs.Factory(dict)
    rss_kb_rounds: list[dict[int, int]] = attrs.Factory(list)  # after each round (see run_live)
    crashed: dict[int, int | None] = attrs.Factory(dict)  # sid -> exit status, for members that died
    log_lines: dict[str, int] = attrs.Factory(dict)  # category -> lines written during the fuzzing
    max_lines_per_client_connection: int = 0
    log_samples: dict[str, str] = attrs.Factory(dict)
    errors_in_logs: list[str] = attrs.Factory(list)  # tracebacks, "internal error", CRITICAL

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def summary(self) -> str:
        lines = [
            f"frames sent: {self.frames} over connections {self.connections} in {self.seconds:.1f} s"
            f" (connections refused: {self.refused})",
            f"kazoo: {self.kazoo_ops} ops, {self.kazoo_errors} errors, max latency "
            f"{self.kazoo_max_latency_s * 1000:.1f} ms, p99 {self.kazoo_p99_latency_s * 1000:.1f} ms",
            f"RSS kB before {self.rss_kb_before}, peak {self.rss_kb_peak}, after {self.rss_kb_after}",
            f"RSS kB after each round: {self.rss_kb_rounds}",
            f"members crashed: {self.crashed or 'none'}",
            f"log lines during fuzzing: {self.log_lines}; most from one client connection: "
            f"{self.max_lines_per_client_connection}",
        ]
        lines += [f"  e.g. [{k}] {v}" for k, v in self.log_samples.items()]
        if self.errors_in_logs:
            lines.append("errors in logs:")
            lines += [f"  {e}" for e in self.errors_in_logs[:20]]
        if self.kazoo_error_samples:
            lines.append(f"kazoo errors, e.g.: {self.kazoo_error_samples[:5]}")
        return "\n".join(lines)


def _rss_kb(pid: int | None) -> int:
    if pid is None:
        return 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class _Frames:
    """The valid frames each port's mutations start from."""

    def __init__(self, ens: TrizabEnsemble) -> None:
        self.connect = [tg._frame(tg._connect_request(ro)) for ro in (False, True, None)]
        self.requests = tg._request_frames()
        pkts = tg._quorum_packets()
        for sid in (1, 2, 3, 4):
            pkts.append(
                r.QuorumPacket(int(T.FOLLOWERINFO), 0x100000000, encode(r.LearnerInfo(sid, 0x10000, 0)), None)
            )
        self.first_quorum = [
            quorum.encode_packet(p) for p in pkts if p.type in (T.FOLLOWERINFO, T.OBSERVERINFO)
        ]
        self.quorum = [quorum.encode_packet(p) for p in pkts]
        self.headers = [
            tg._election_header(m.sid, f"127.0.0.1:{m.election_port}".encode()) for m in ens.members
        ] + [tg._election_header(9, b"127.0.0.1:9")]
        self.notes = [tg._frame(n) for n in tg._notifications()]


async def _fuzz_connection(
    member: TrizabMember, kind: str, frames: _Frames, rng: random.Random, report: LiveReport
) -> None:
    mut = Mutator(rng)
    k = rng.randint(1, 12)
    if kind == "client":
        port = member.client_port
        first = rng.choice(frames.connect)
        rest = [rng.choice(frames.requests) for _ in range(k)]
    elif kind == "quorum":
        port = member.quorum_port
        first = rng.choice(frames.first_quorum)
        rest = [rng.choice(frames.quorum) for _ in range(k)]
    else:
        port = member.election_port
        first = rng.choice(frames.headers)
        rest = [rng.choice(frames.notes) for _ in range(k)]
    burst = [mut.mutate(first) if rng.random() < 0.4 else first]
    burst += [mut.mutate(f) if rng.random() < 0.7 else f for f in rest]
    payload = b"".join(burst)
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        report.refused[kind] += 1
        return
    report.connections[kind] += 1
    async with stream:
        try:
            style = rng.random()
            if style < 0.2:  # dribble: a few bytes at a time
                step = rng.randint(1, 7)
                for i in range(0, min(len(payload), 200), step):
                    await stream.send_all(payload[i : i + step])
                    await trio.sleep(0.001)
                await stream.send_all(payload[200:])
            else:
                await stream.send_all(payload)
            report.frames[kind] += len(burst)
            if style > 0.9:  # half-open: stay silent for a while, then go
                await stream.send_eof()
                with trio.move_on_after(rng.uniform(0.05, 0.5)):
                    while await stream.receive_some(65536):
                        pass
            elif style > 0.6:  # read whatever the server answers, briefly
                with trio.move_on_after(0.05):
                    while await stream.receive_some(65536):
                        pass
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            report.frames[kind] += len(burst)  # written (or refused mid-way) all the same


async def _fuzz(
    ens: TrizabEnsemble,
    total_frames: int,
    workers: int,
    seed: int,
    report: LiveReport,
    ports: tuple[str, ...] = PORTS,
) -> None:
    frames = _Frames(ens)

    async def worker(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        i = n
        while sum(report.frames.values()) < total_frames:
            kind = ports[i % len(ports)]
            i += 1
            member = rng.choice(ens.members)
            if not member.running:
                await trio.sleep(0.1)
                continue
            await _fuzz_connection(member, kind, frames, rng, report)

    async with trio.open_nursery() as nursery:
        for n in range(workers):
            nursery.start_soon(worker, n)


class _KazooLoad(threading.Thread):
    """set/get in a loop on its own connection, timing each operation."""

    def __init__(self, hosts: str, report: LiveReport) -> None:
        super().__init__(daemon=True)
        from kazoo.client import KazooClient

        self.client = KazooClient(hosts, timeout=10.0)
        self.report = report
        self.latencies: list[float] = []
        self.stop_event = threading.Event()

    def start_client(self) -> None:
        self.client.start(timeout=30)
        self.client.ensure_path("/fuzz-live")

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            value = str(n).encode()
            t0 = time.monotonic()
            try:
                self.client.set("/fuzz-live", value)
                got, _ = self.client.get("/fuzz-live")
                if got != value:
                    raise AssertionError(f"read {got!r} after writing {value!r}")
            except Exception as exc:  # counted and reported: the client must keep working
                self.report.kazoo_errors += 1
                if len(self.report.kazoo_error_samples) < 10:
                    self.report.kazoo_error_samples.append(repr(exc))
                time.sleep(0.05)
                continue
            dt = time.monotonic() - t0
            self.latencies.append(dt)
            self.report.kazoo_ops += 2
            time.sleep(0.002)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(30)
        self.client.stop()
        self.client.close()
        if self.latencies:
            lat = sorted(self.latencies)
            self.report.kazoo_max_latency_s = round(lat[-1], 4)
            self.report.kazoo_p99_latency_s = round(lat[int(0.99 * (len(lat) - 1))], 4)


_CATEGORIES = [
    ("client: closing connection", re.compile(r"closing connection (\S+):")),
    ("client: TLS on plain port", re.compile(r"TLS handshake on a plain-text port from (\S+)")),
    ("client: too many connections", re.compile(r"too many connections from")),
    ("quorum: rejected", re.compile(r"rejecting quorum connection")),
    ("quorum: malformed packet", re.compile(r"malformed quorum packet")),
    ("quorum: protocol error", re.compile(r"protocol error from server")),
    ("quorum: link ended", re.compile(r"quorum link with .* ended|silent for")),
    ("election: rejected", re.compile(r"rejecting election connection")),
    ("election: unknown server", re.compile(r"election connection from (unknown )?server")),
    ("election: closing", re.compile(r"closing election connection")),
]
_ERROR = re.compile(r"Traceback|internal error| ERROR | CRITICAL ")


def _analyse_logs(ens: TrizabEnsemble, offsets: dict[int, int], report: LiveReport) -> None:
    per_conn: collections.Counter[str] = collections.Counter()
    counts: collections.Counter[str] = collections.Counter()
    for m in ens.members:
        with m.log_path.open("rb") as f:
            f.seek(offsets.get(m.sid, 0))
            text = f.read().decode("utf-8", "replace")
        for line in text.splitlines():
            if not line.strip():
                continue
            if _ERROR.search(line) and len(report.errors_in_logs) < 50:
                report.errors_in_logs.append(f"member {m.sid}: {line[:300]}")
            for name, pattern in _CATEGORIES:
                hit = pattern.search(line)
                if hit:
                    counts[name] += 1
                    report.log_samples.setdefault(name, line[:240])
                    if name.startswith("client") and hit.groups() and hit.group(1):
                        per_conn[f"{m.sid}/{hit.group(1)}"] += 1
                    break
            else:
                counts["other"] += 1
                report.log_samples.setdefault("other", line[:240])
    report.log_lines = dict(counts)
    report.max_lines_per_client_connection = max(per_conn.values(), default=0)


def run_live(
    frames: int = 100_000,
    *,
    workers: int = 24,
    seed: int = 1,
    workdir: Path | None = None,
    log: Any = None,
    rounds: int = 1,
    ports: tuple[str, ...] = PORTS,
) -> LiveReport:
    """Start an ensemble, fuzz it with ``frames`` frames, stop it; the report.

    ``rounds``: split the frames into that many rounds and measure RSS after each, so
    whether memory levels off or keeps growing with the frames shows.  ``ports``: which of
    the three ports to fuzz (all by default).
    """
    say = log or (lambda msg: None)
    report = LiveReport()
    # 4lw for readiness only; maxClientCnxns above the fuzzer's concurrency plus the watcher.
    ens = TrizabEnsemble(3, workdir=workdir, extra_config=["maxClientCnxns=200"], start_timeout=60)
    with ens:
        say(f"ensemble up: {ens.address}; leader {getattr(ens.leader(), 'sid', None)}")
        load = _KazooLoad(ens.address, report)
        load.start_client()
        load.start()
        time.sleep(1.0)
        pids = {m.sid: m.pid for m in ens.members}
        report.rss_kb_before = {sid: _rss_kb(pid) for sid, pid in pids.items()}
        report.rss_kb_peak = dict(report.rss_kb_before)
        offsets = {m.sid: m.log_path.stat().st_size for m in ens.members}
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.25):
                for sid, pid in pids.items():
                    report.rss_kb_peak[sid] = max(report.rss_kb_peak[sid], _rss_kb(pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t0 = time.monotonic()

        async def fuzz_until(total: int, round_seed: int) -> None:
            async def progress() -> None:
                while True:
                    await trio.sleep(10)
                    say(f"  {sum(report.frames.values())} frames, {report.kazoo_ops} kazoo ops")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(progress)
                await _fuzz(ens, total, workers, round_seed, report, ports)
                nursery.cancel_scope.cancel()

        for k in range(rounds):
            trio.run(fuzz_until, frames * (k + 1) // rounds, seed * 100 + k)
            time.sleep(2.0)  # let the members settle before measuring
            report.rss_kb_rounds.append({sid: _rss_kb(pid) for sid, pid in pids.items()})
            if rounds > 1:
                sent = sum(report.frames.values())
                say(f"  round {k + 1}: {sent} frames, RSS kB {report.rss_kb_rounds[-1]}")
        report.seconds = round(time.monotonic() - t0 - 2.0 * rounds, 1)
        load.finish()
        done.set()
        sampler.join()
        report.rss_kb_after = {sid: _rss_kb(pid) for sid, pid in pids.items()}
        for m in ens.members:
            if not m.running:
                report.crashed[m.sid] = m.process.returncode if m.process is not None else None
        _analyse_logs(ens, offsets, report)
        if report.crashed:
            for m in ens.members:
                if m.sid in report.crashed:
                    report.errors_in_logs.append(f"member {m.sid} log tail:\n{m.tail(40)}")
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fuzz.live", description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--connections", type=int, default=24, help="fuzzing connections open at once")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", type=Path, default=None, help="keep the members' directories and logs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the report here")
    ap.add_argument("--rounds", type=int, default=1, help="measure RSS after each of this many rounds")
    ap.add_argument(
        "--ports", default=",".join(PORTS), help="comma-separated subset of client,quorum,election"
    )
    args = ap.parse_args(argv)
    report = run_live(
        args.frames,
        workers=args.connections,
        seed=args.seed,
        workdir=args.workdir,
        log=lambda msg: print(msg, flush=True),
        rounds=args.rounds,
        ports=tuple(p for p in args.ports.split(",") if p in PORTS),
    )
    print(report.summary())
    if args.json:
        args.json.write_text(json.dumps(report.as_dict(), indent=1))
    bad = report.crashed or report.errors_in_logs or report.kazoo_errors
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
