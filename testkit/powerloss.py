"""Power-loss crash points: a real ``trizab serve`` on a LossyFS, killed and "unplugged".

Theory of operation
-------------------
One server process keeps its dataDir on a :class:`~testkit.lossyfs.LossyMount`,
with a small ``snapCount``, purging after every snapshot and (txnlog) a small
log preallocation, so snapshots, log rolls and purges run all the time.  One
kazoo session writes through a pipeline of up to ``window`` outstanding requests
(create, setData and delete with versions, and multi of those on distinct
paths), drawn by a seeded generator from a model that assumes every issued
write succeeds, over a fixed set of paths under ``/pl``.

At each crash point (seeded: after a number of acknowledged writes, or at a
random moment of the server's start-up, recovery included) the server is killed
with SIGKILL, the filesystem drops everything that was not made durable
(``crash``), and the server is started again on the same directory.  It must
start.  A ZooKeeper session's writes apply in the order sent, so the recovered
tree must equal the model after some prefix of the issued writes that includes
every acknowledged one: writes 1..j with ``acked <= j <= issued`` (the children
of ``/pl`` and the data and version of each).  Anything else is a failure;
``lost`` counts the paths whose acknowledged state is gone (differs from the
state after the last acknowledged write although no write in flight touched
them).  The next round continues from the recovered state.

``python -m testkit.powerloss --engine txnlog --points 300 --seed 1`` runs the
long form and prints the figures; ``tests/durability/test_power_loss.py`` runs a
short one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testkit.lossyfs import LossyMount
from testkit.process import ServerStartError, TrizabProcess

__all__ = ["ENGINES", "MAIN_ENGINES", "Figures", "run_power_loss"]

ROOT = "/pl"
State = dict[str, tuple[bytes, int]]  # child name -> (data, version)

# Per engine: lines for zoo.cfg that make snapshots, segment rolls and purges frequent
# ("{mount}" is the filesystem's mount point).  txnlog-logdir keeps the log in a dataLogDir
# of its own, so snapshots and log segments are created, renamed and purged in two directories.
ENGINES: dict[str, list[str]] = {
    "txnlog": ["storage=txnlog", "storage.prealloc=8192"],
    "txnlog-logdir": ["storage=txnlog", "storage.prealloc=8192", "dataLogDir={mount}/datalog"],
    "sqlite": ["storage=sqlite"],
}
# What the CI test and the default long run cover: the two durable engines as configured by default.
MAIN_ENGINES = ("txnlog", "sqlite")
COMMON = ["snapCount=30", "autopurge.snapRetainCount=2", "autopurge.purgeInterval=1"]


class _Server(TrizabProcess):
    """A TrizabProcess whose dataDir is elsewhere (on the mount) than its config and log."""

    def __init__(self, workdir: Path, data_dir: Path, **kwargs: Any) -> None:
        super().__init__(workdir, **kwargs)
        self._data = data_dir

    @property
    def data_dir(self) -> Path:
        return self._data


# -- the write model ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One primitive write: ``kind`` is create, set or delete; ``version`` as the server checks it."""

    kind: str
    name: str
    data: bytes = field(default=b"", repr=False)
    version: int = -1


@dataclass(frozen=True)
class Write:
    """A request: one step, or several (on distinct paths) in a multi."""

    steps: tuple[Step, ...]

    @property
    def multi(self) -> bool:
        return len(self.steps) > 1


def apply(state: State, write: Write) -> None:
    for step in write.steps:
        if step.kind == "create":
            state[step.name] = (step.data, 0)
        elif step.kind == "set":
            state[step.name] = (step.data, state[step.name][1] + 1)
        else:
            del state[step.name]


class Generator:
    """Writes that all succeed if applied in order from ``state`` (seeded)."""

    def __init__(self, rng: random.Random, names: int = 48) -> None:
        self.rng = rng
        self.names = [f"k{i:03d}" for i in range(names)]
        self.state: State = {}

    def _data(self) -> bytes:
        rng = self.rng
        size = rng.choice((0, 8, 64, 300, 1500)) if rng.random() < 0.95 else rng.randrange(4000, 20000)
        return rng.randbytes(size)

    def _step(self, avoid: set[str]) -> Step | None:
        rng = self.rng
        free = [n for n in self.names if n not in self.state and n not in avoid]
        used = [n for n in self.state if n not in avoid]
        roll = rng.random()
        if free and (roll < 0.35 or not used):
            return Step("create", rng.choice(free), self._data())
        if not used:
            return None
        name = rng.choice(used)
        if roll < 0.85:
            return Step("set", name, self._data(), self.state[name][1])
        return Step("delete", name, version=self.state[name][1])

    def next(self) -> Write:
        count = 1 if self.rng.random() < 0.8 else self.rng.randrange(2, 5)
        steps: list[Step] = []
        avoid: set[str] = set()
        for _ in range(count):
            step = self._step(avoid)
            if step is None:
                break
            steps.append(step)
            avoid.add(step.name)
        write = Write(tuple(steps))
        apply(self.state, write)
        return write


# -- the client --------------------------------------------------------------------------


def _expected_result(write: Write, state_before: State) -> Callable[[Any], str | None]:
    """A check of the server's answer (None: as the model says)."""

    def check(result: Any) -> str | None:
        if write.multi:
            if not isinstance(result, list) or len(result) != len(write.steps):
                return f"multi answered {result!r}"
            for step, item in zip(write.steps, result, strict=True):
                if isinstance(item, BaseException):
                    return f"multi step {step.kind} {step.name}: {item!r}"
            return None
        step = write.steps[0]
        if step.kind == "set":
            want = state_before[step.name][1] + 1
            if getattr(result, "version", None) != want:
                got = getattr(result, "version", result)
                return f"setData {step.name} answered version {got}, not {want}"
        return None

    return check


class Pipeline:
    """Issues writes on one kazoo session with up to ``window`` outstanding; records answers."""

    def __init__(self, zk: Any, window: int) -> None:
        self.zk = zk
        self.sem = threading.Semaphore(window)
        self.lock = threading.Lock()
        self.acked: set[int] = set()
        self.failed: set[int] = set()
        self.anomalies: list[str] = []

    def send(self, index: int, write: Write, state_before: State) -> None:
        zk = self.zk
        check = _expected_result(write, state_before)
        if write.multi:
            txn = zk.transaction()
            for step in write.steps:
                path = f"{ROOT}/{step.name}"
                if step.kind == "create":
                    txn.create(path, step.data)
                elif step.kind == "set":
                    txn.set_data(path, step.data, version=step.version)
                else:
                    txn.delete(path, version=step.version)
            result = txn.commit_async()
        else:
            step = write.steps[0]
            path = f"{ROOT}/{step.name}"
            if step.kind == "create":
                result = zk.create_async(path, step.data)
            elif step.kind == "set":
                result = zk.set_async(path, step.data, version=step.version)
            else:
                result = zk.delete_async(path, version=step.version)

        def done(answer: Any) -> None:
            from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, SessionExpiredError

            try:
                value = answer.get_nowait()
            except (ConnectionLoss, ConnectionClosedError, SessionExpiredError):
                with self.lock:
                    self.failed.add(index)
            except Exception as exc:  # an answer the model does not allow
                with self.lock:
                    self.failed.add(index)
                    self.anomalies.append(f"write {index} {write}: {exc!r}")
            else:
                problem = check(value)
                with self.lock:
                    self.acked.add(index)
                    if problem:
                        self.anomalies.append(f"write {index}: {problem}")
            finally:
                self.sem.release()

        result.rawlink(done)


def _client(address: str) -> Any:
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    zk = KazooClient(
        hosts=address,
        timeout=10.0,
        connection_retry=KazooRetry(max_tries=0),
        command_retry=KazooRetry(max_tries=0),
    )
    zk.start(timeout=15)
    return zk


def _close(zk: Any) -> None:
    with contextlib.suppress(Exception):
        zk.stop()
    with contextlib.suppress(Exception):
        zk.close()


ROOT_MISSING = "(no " + ROOT + ")"


def read_state(zk: Any) -> State:
    """The children of ROOT with their data and versions (a marker entry if ROOT is gone)."""
    from kazoo.exceptions import NoNodeError

    state: State = {}
    try:
        names = zk.get_children(ROOT)
    except NoNodeError:
        zk.create(ROOT, b"")  # so that the run can go on after reporting the loss
        return {ROOT_MISSING: (b"", -1)}
    for name in names:
        data, stat = zk.get(f"{ROOT}/{name}")
        state[name] = (data, stat.version)
    return state


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Figures:
    """What a run found; ``ok`` when nothing was lost and the server always started."""

    engine: str
    crash_points: int = 0
    startup_crashes: int = 0  # crash points that fell inside start-up / recovery
    torn_crashes: int = 0  # power cuts that let a random part of the unsynced pages through
    acked_writes: int = 0  # acknowledged writes, each checked after the crash that followed it
    in_flight_applied: int = 0  # unacknowledged writes found applied after the crash (allowed)
    in_flight_dropped: int = 0  # unacknowledged writes found not applied (allowed)
    lost: int = 0  # paths whose acknowledged state was gone
    inconsistent: int = 0  # crash points whose recovered tree matched no allowed prefix
    start_failures: int = 0
    anomalies: list[str] = field(default_factory=list)
    snapshots: int = 0  # snapshots the server logged writing
    log_segments: int = 0  # txnlog: distinct log segment names seen in the data directory
    # txnlog: snapshot and log files seen after one crash point and gone after the next (purged,
    # or their creation was undone by the crash)
    files_removed: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.inconsistent == 0 and self.start_failures == 0 and not self.anomalies

    def summary(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["anomalies"] = self.anomalies[:20]
        out["ok"] = self.ok
        return out


def _match(recovered: State, base: State, writes: Sequence[Write], acked: int) -> int | None:
    """The j (acked <= j <= len(writes)) with base + writes[:j] == recovered, if any."""
    state = dict(base)
    for j in range(len(writes) + 1):
        if j > 0:
            apply(state, writes[j - 1])
        if j >= acked and state == recovered:
            return j
    return None


def _lost_paths(recovered: State, base: State, writes: Sequence[Write], acked: int) -> list[str]:
    state = dict(base)
    for write in writes[:acked]:
        apply(state, write)
    in_flight = {step.name for write in writes[acked:] for step in write.steps}
    return sorted(
        name
        for name in set(state) | set(recovered)
        if name not in in_flight and state.get(name) != recovered.get(name)
    )


def run_power_loss(
    engine: str,
    points: int,
    seed: int,
    workdir: Path,
    *,
    window: int = 8,
    lossy: bool = True,
    force_sync: bool = True,
    max_acks: int = 120,
    startup_fraction: float = 0.1,
    torn: float = 0.0,
    stop_on_failure: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Figures:
    """Run ``points`` crash points on one server; see the module docstring."""
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    rng = random.Random(f"{engine}-{seed}")
    figures = Figures(engine)
    started = time.monotonic()
    extra = [*ENGINES[engine], *COMMON]
    if not force_sync:
        extra.append("forceSync=no")
    with LossyMount(workdir / "fs", lossy=lossy) as fs:
        # The server creates its dataDir (not synced); making its entry durable is the engine's job.
        extra = [line.format(mount=fs.mountpoint) for line in extra]
        server = _Server(workdir / "server", fs.mountpoint / "data", extra_config=extra)
        try:
            server.start()
            zk = _client(server.address)
            try:
                zk.create(ROOT, b"")
            finally:
                _close(zk)
            gen = Generator(rng)
            seen: set[str] = set()
            for point in range(points):
                outcome = _crash_point(
                    server, fs, gen, rng, figures, window, max_acks, startup_fraction, torn
                )
                _observe_files([server.data_dir, fs.mountpoint / "datalog"], seen, figures)
                figures.crash_points += 1
                if progress is not None and (point + 1) % 25 == 0:
                    progress(f"{engine}: {point + 1}/{points} crash points, {json.dumps(outcome)}")
                if not figures.ok and stop_on_failure:
                    break
        finally:
            server.kill()
    figures.snapshots = server.log_path.read_text(errors="replace").count("snapshot at 0x")
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


def _observe_files(directories: list[Path], seen: set[str], figures: Figures) -> None:
    """Count the log segments and the removed files of txnlog's data directories."""
    now = {
        name
        for directory in directories
        if (directory / "version-2").is_dir()
        for name in os.listdir(directory / "version-2")
        if name.startswith(("log.", "snapshot."))
    }
    figures.files_removed += len(seen - now)
    figures.log_segments += sum(1 for name in now - seen if name.startswith("log."))
    seen.clear()
    seen.update(now)


def _crash_point(
    server: _Server,
    fs: LossyMount,
    gen: Generator,
    rng: random.Random,
    figures: Figures,
    window: int,
    max_acks: int,
    startup_fraction: float,
    torn: float,
) -> dict[str, Any]:
    def power_cut() -> None:
        if rng.random() < torn:
            figures.torn_crashes += 1
            fs.crash(torn_seed=rng.randrange(1 << 31))
        else:
            fs.crash()

    base = dict(gen.state)
    writes: list[Write] = []
    acked = 0
    if rng.random() < startup_fraction:
        # Crash inside start-up: recovery, its truncations and first writes included.
        figures.startup_crashes += 1
        server.kill()
        power_cut()
        try:
            server.start(timeout=rng.uniform(0.05, 1.5))
        except ServerStartError as exc:
            if "was not ready within" not in str(exc):  # TrizabProcess.wait_ready's timeout
                figures.start_failures += 1
                figures.anomalies.append(f"start-up failed: {exc}")
                return {"start": "failed"}
            power_cut()  # killed inside start-up (start() kills on its timeout)
    else:
        zk = _client(server.address)
        pipe = Pipeline(zk, window)
        target = rng.randrange(0, max_acks)
        try:
            while True:
                with pipe.lock:
                    done = len(pipe.acked)
                    stop = done >= target or pipe.failed
                if stop:
                    break
                if not pipe.sem.acquire(timeout=0.2):
                    continue
                state_before = dict(gen.state)
                write = gen.next()
                writes.append(write)
                pipe.send(len(writes), write, state_before)
            time.sleep(rng.choice((0.0, 0.0005, 0.002, 0.01)))
            server.kill()
        finally:
            _close(zk)
        # Answers read after the kill were sent before it: they count as acknowledged.
        with pipe.lock:
            acked_set = set(pipe.acked)
        acked = max(acked_set) if acked_set else 0
        figures.anomalies.extend(pipe.anomalies)
        figures.acked_writes += len(acked_set)
        power_cut()
    try:
        if not server.running:
            server.start()
    except ServerStartError as exc:
        figures.start_failures += 1
        figures.anomalies.append(f"restart failed: {exc}")
        return {"start": "failed"}
    zk = _client(server.address)
    try:
        recovered = read_state(zk)
    finally:
        _close(zk)
    j = _match(recovered, base, writes, acked)
    if j is None:
        figures.inconsistent += 1
        lost = _lost_paths(recovered, base, writes, acked)
        figures.lost += len(lost)
        figures.anomalies.append(
            f"crash point {figures.crash_points}: recovered tree matches no prefix of the "
            f"{len(writes)} issued writes with >= {acked} (acknowledged); lost paths {lost[:10]}"
        )
        recovered.pop(ROOT_MISSING, None)
        gen.state = recovered
        return {"acked": acked, "issued": len(writes), "match": None}
    figures.in_flight_applied += j - acked
    figures.in_flight_dropped += len(writes) - j
    gen.state = recovered
    return {"acked": acked, "issued": len(writes), "match": j}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testkit.powerloss", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--engine", choices=[*ENGINES, "main", "all"], default="main", help="main: txnlog and sqlite"
    )
    parser.add_argument("--points", type=int, default=300, help="crash points per engine")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--window", type=int, default=8, help="outstanding writes")
    parser.add_argument("--max-acks", type=int, default=120, help="most acknowledged writes between crashes")
    parser.add_argument("--workdir", type=Path, help="keep files here (default: a temporary directory)")
    parser.add_argument("--no-loss", action="store_true", help="the filesystem keeps everything (control)")
    parser.add_argument(
        "--force-sync-off", action="store_true", help="forceSync=no: the run must report losses (control)"
    )
    parser.add_argument(
        "--torn", type=float, default=0.0, help="fraction of power cuts that keep random unsynced pages"
    )
    parser.add_argument("--keep-going", action="store_true", help="do not stop at the first failure")
    args = parser.parse_args(argv)
    engines = (
        list(MAIN_ENGINES)
        if args.engine == "main"
        else list(ENGINES)
        if args.engine == "all"
        else [args.engine]
    )
    all_ok = True
    with contextlib.ExitStack() as stack:
        root = args.workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="powerloss-")))
        for engine in engines:
            figures = run_power_loss(
                engine,
                args.points,
                args.seed,
                root / engine,
                window=args.window,
                lossy=not args.no_loss,
                force_sync=not args.force_sync_off,
                max_acks=args.max_acks,
                torn=args.torn,
                stop_on_failure=not args.keep_going,
                progress=lambda line: print(line, file=sys.stderr, flush=True),
            )
            print(json.dumps(figures.summary(), indent=None), flush=True)
            all_ok = all_ok and figures.ok
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
