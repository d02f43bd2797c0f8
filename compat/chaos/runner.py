"""One fault-injection run: an ensemble, a workload, a seeded fault schedule, and the verdicts.

Theory of operation
-------------------
:func:`run` does, in order (inside a private network namespace, see :mod:`compat.chaos.netns`):

1. installs the :class:`~compat.chaos.firewall.Firewall` (before any member starts, so every
   connection gets its opener's mark) and starts the ensemble, each member under a group id
   of its own;
2. creates the registers and parents (:func:`compat.chaos.workload.prepare`) and starts the
   :class:`~compat.chaos.workload.Workload`, client *i* pinned to member ``i % n + 1``;
3. plays the :func:`~compat.chaos.nemesis.plan` for the seed: each fault applied, held, healed;
4. heals everything, restarts what is down, lets the workload run ``RECOVERY_S`` more, waits
   until every client has been connected with its ephemeral node for ``SETTLED_S`` in a row (a
   client whose session expired opens a new one and creates its node), then stops issuing ops;
5. reads every member's state through a client pinned to that member, until they agree or a
   deadline passes (:class:`~compat.chaos.history.FinalState`), and each client's session;
6. runs the checkers (:func:`compat.chaos.checkers.check_all`) and returns one summary dict:
   system, seed, faults by kind, op counts, each checker's verdict, acknowledged writes lost,
   session violations and availability (the fraction of the run's seconds in which some
   write was acknowledged).

The history, the nemesis log and the members' logs are written to the run's folder; the caller
(:mod:`compat.chaos.__main__`) keeps that folder when a checker fails.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from kazoo.client import KazooClient

from compat.chaos.checkers import Verdict, check_all
from compat.chaos.firewall import Firewall
from compat.chaos.history import FinalState, MemberState, write_history
from compat.chaos.nemesis import FAULT_KINDS, Fault, Nemesis, member_ports, plan
from compat.chaos.workload import EPH_PARENT, SEQ_PARENT, Workload, prepare, register_keys
from testkit.apache_zk import ApacheEnsemble
from testkit.trizab_ensemble import TrizabEnsemble

__all__ = ["SYSTEMS", "RunConfig", "run"]

log = logging.getLogger("compat.chaos")

SYSTEMS = ("trizab", "zookeeper")
GID_BASE = 61000  # member N runs with group id GID_BASE + N (the firewall tells members apart by it)
WRITE_KINDS = frozenset({"write", "cas", "seq_create"})
RECOVERY_S = 5.0  # ops after the last heal, before the clients settle
SETTLED_S = 3.0  # every client connected with its ephemeral for this long before the final read


@attrs.frozen
class RunConfig:
    system: str = attrs.field(validator=attrs.validators.in_(SYSTEMS))
    seed: int
    duration: float = 60.0
    members: int = 3
    clients: int = 5
    faults: tuple[str, ...] = FAULT_KINDS
    registers: int = 3
    session_timeout: float = 6.0
    tick_time: int = 2000
    init_limit: int = 5
    sync_limit: int = 2

    def command(self) -> str:
        """The command line that replays this run (same seed, same schedule)."""
        return (
            f"python -m compat.chaos --system {self.system} --seed {self.seed} --duration {self.duration:g}"
            f" --members {self.members} --clients {self.clients} --faults {','.join(self.faults)}"
        )


def _ensemble(config: RunConfig, workdir: Path) -> Any:
    gids = {sid: GID_BASE + sid for sid in range(1, config.members + 1)}
    common: dict[str, Any] = {
        "tick_time": config.tick_time,
        "init_limit": config.init_limit,
        "sync_limit": config.sync_limit,
        "workdir": workdir / "ensemble",
        "start_timeout": 90.0,
        "gids": gids,
    }
    if config.system == "trizab":
        return TrizabEnsemble(config.members, **common)
    return ApacheEnsemble(config.members, **common)


def srvr_zxid(member: Any) -> int | None:
    try:
        text = member.four_letter_word("srvr", timeout=2.0)
    except OSError:
        return None
    match = re.search(r"Zxid: (0x[0-9a-fA-F]+)", text)
    return int(match.group(1), 16) if match else None


def _read_member(zk: KazooClient, keys: Sequence[str]) -> tuple[Any, ...]:
    zk.sync("/")
    registers: dict[str, tuple[bytes, int, int] | None] = {}
    for key in keys:
        got = zk.exists(key)
        if got is None:
            registers[key] = None
        else:
            data, stat = zk.get(key)
            registers[key] = (data, stat.version, stat.mzxid)
    seq = sorted(f"{SEQ_PARENT}/{c}" for c in zk.get_children(SEQ_PARENT))
    ephemerals: dict[str, int] = {}
    for child in zk.get_children(EPH_PARENT):
        stat = zk.exists(f"{EPH_PARENT}/{child}")
        if stat is not None:
            ephemerals[f"{EPH_PARENT}/{child}"] = stat.ephemeralOwner
    return registers, seq, ephemerals


def read_final_state(ensemble: Any, keys: Sequence[str], *, settle: float = 30.0) -> FinalState:
    """Every member's state, read from that member alone, once they agree (or ``settle`` passed)."""
    readers: dict[int, KazooClient] = {}
    try:
        for sid, m in enumerate(ensemble, start=1):
            zk = KazooClient(hosts=m.address, timeout=10.0)
            zk.start(timeout=30.0)
            readers[sid] = zk
        deadline = time.monotonic() + settle
        while True:
            views = {sid: _read_member(zk, keys) for sid, zk in readers.items()}
            zxids = {sid: srvr_zxid(m) for sid, m in enumerate(ensemble, start=1)}
            agreed = len({json.dumps(repr(v)) for v in views.values()}) == 1 and len(set(zxids.values())) == 1
            if agreed or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return FinalState(
            {
                sid: MemberState(zxids[sid], registers, seq, ephemerals)
                for sid, (registers, seq, ephemerals) in views.items()
            }
        )
    finally:
        for zk in readers.values():
            try:
                zk.stop()
            finally:
                zk.close()


def _availability(ops: Sequence[Any], start: float, end: float) -> float:
    seconds = max(1, int(end - start))
    acked = {int(op.ret - start) for op in ops if op.kind in WRITE_KINDS and op.outcome == "ok" and op.ret}
    return sum(1 for s in range(seconds) if s in acked) / seconds


def _play(
    nemesis: Nemesis, schedule: Sequence[Fault], start: float, end: float, stop: threading.Event
) -> None:
    """Apply each fault at its time, hold it, heal it; return at ``end``, not before (the plan
    leaves the run's last seconds quiet: the history shows the ensemble after its last fault)."""
    for fault in schedule:
        if stop.wait(max(0.0, start + fault.at - time.monotonic())) or time.monotonic() >= end:
            return
        try:
            nemesis.apply(fault)
        except Exception:
            log.exception("applying %s failed", fault)
        stop.wait(max(0.0, min(fault.hold, end - time.monotonic())))
        try:
            nemesis.heal(fault)
        except Exception:
            log.exception("healing %s failed", fault)
    stop.wait(max(0.0, end - time.monotonic()))


def _wait_clients_settled(workload: Workload, timeout: float, *, stable: float = 0.0) -> bool:
    """Until every client has been connected, with a session and its ephemeral node, for ``stable``
    seconds in a row (a client of a member that was just resumed may still believe in a connection
    the member is about to drop); False if that did not happen within ``timeout``."""
    deadline = time.monotonic() + timeout
    since: float | None = None
    while time.monotonic() < deadline:
        if all(e.connected and e.ephemeral_path for e in workload.ends()):
            since = time.monotonic() if since is None else since
            if time.monotonic() - since >= stable:
                return True
        else:
            since = None
        time.sleep(0.2)
    return False


def run(config: RunConfig, workdir: Path) -> dict[str, Any]:
    """One run (see the module docstring); the summary also goes to ``workdir/summary.json``."""
    workdir.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    rng = random.Random(config.seed)
    schedule = plan(config.seed, config.duration, config.faults, config.members, config.session_timeout)
    ensemble = _ensemble(config, workdir)
    firewall = Firewall(member_ports(ensemble))
    firewall.install()
    workload: Workload | None = None
    nemesis = Nemesis(ensemble, firewall, rng)
    try:
        ensemble.start()
        prepare(ensemble.address, config.registers)
        pins = [i % config.members + 1 for i in range(config.clients)]
        addresses = {sid: m.address for sid, m in enumerate(ensemble, start=1)}
        workload = Workload(
            addresses,
            pins,
            seed=config.seed,
            registers=config.registers,
            session_timeout=config.session_timeout,
        )
        workload.start()
        _wait_clients_settled(workload, 30.0)
        start = time.monotonic()
        end = start + config.duration
        stop = threading.Event()
        player = threading.Thread(target=_play, args=(nemesis, schedule, start, end, stop), daemon=True)
        player.start()
        player.join(timeout=config.duration + 120)
        stop.set()
        player.join()
        faults_end = time.monotonic()
        nemesis.heal_all()
        for m in ensemble:
            m.wait_ready(90.0)
        time.sleep(RECOVERY_S)  # the workload goes on: the history shows the recovery too
        _wait_clients_settled(workload, config.session_timeout * 3 + 10, stable=SETTLED_S)
        workload.pause_ops()
        final = read_final_state(ensemble, register_keys(config.registers))
        ends = workload.ends()
        ops, events = list(workload.ops), list(workload.events)
    finally:
        if workload is not None:
            workload.stop()
        try:
            ensemble.stop()
        finally:
            firewall.close()
    _keep_logs(ensemble, workdir)
    write_history(workdir / "history.jsonl", ops, final, events, ends)
    (workdir / "nemesis.jsonl").write_text("".join(json.dumps(e) + "\n" for e in nemesis.log))
    verdicts = check_all(ops, events, final, ends)
    summary = _summary(config, ops, verdicts, nemesis.log, _availability(ops, start, faults_end))
    summary["wall_s"] = round(time.monotonic() - began, 1)  # start-up to verdicts
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _keep_logs(ensemble: Any, workdir: Path) -> None:
    logs = workdir / "logs"
    logs.mkdir(exist_ok=True)
    for sid, m in enumerate(ensemble, start=1):
        path = getattr(m, "log_path", None)
        if path is not None and Path(path).exists():
            shutil.copy(path, logs / f"member{sid}.log")


def _summary(
    config: RunConfig,
    ops: Sequence[Any],
    verdicts: Sequence[Verdict],
    actions: Sequence[dict[str, Any]],
    availability: float,
) -> dict[str, Any]:
    outcomes = Counter(op.outcome for op in ops)
    by_name = {v.name: v for v in verdicts}
    lost = by_name.get("acknowledged_writes_present")
    sessions = by_name.get("session_safety")
    return {
        "system": config.system,
        "seed": config.seed,
        "duration": config.duration,
        "members": config.members,
        "faults": dict(Counter(a["kind"] for a in actions if a.get("action") == "apply")),
        "ops": {"ok": outcomes["ok"], "fail": outcomes["fail"], "unknown": outcomes["unknown"]},
        "checkers": {v.name: {"ok": v.ok, "count": v.count, "detail": v.detail[:500]} for v in verdicts},
        "lost_writes": lost.count if lost is not None else None,
        "session_violations": sessions.count if sessions is not None else None,
        "availability": round(availability, 3),
        "valid": all(v.ok is not False for v in verdicts),
        "replay": config.command(),
    }
