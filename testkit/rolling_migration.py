"""The rolling-migration harness: an ensemble under load, members switched in phases, one verdict.

Theory of operation
-------------------
:func:`run` starts a :class:`~testkit.rolling_ensemble.RollingEnsemble` with the programs in
``start`` (one per member), starts :class:`~testkit.migration_load.MigrationLoad`, then runs the
phases in order.  A phase is a target program and a manner:

* ``"rolling"``: one member at a time, the leader of the moment last, and after every step all
  members must be one ensemble again (:meth:`RollingEnsemble.wait_one_ensemble`);
* ``"all"``: every member stopped, then every member started with the other program on the
  same files (a full-stop switch: it proves that the data directories carry over in an
  ensemble, whatever the quorum protocol does).

Then the load stops and the verdict is taken: members on one zxid, and every problem
:meth:`MigrationLoad.problems` finds.  A step that does not come back to one ensemble ends the
run there, with that step's problems as the verdict; nothing raises out of :func:`run` except
a failure to start the first ensemble.  :class:`Report` says what happened in each step (the
seconds until one ensemble, the longest gap between acknowledged writes) and what broke.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import attrs
from kazoo.client import KazooClient

from testkit.migration_load import MigrationLoad
from testkit.rolling_ensemble import HOST, Kind, RollingEnsemble, StepResult, roll

__all__ = ["Phase", "Report", "run"]

Manner = Literal["rolling", "all", "reconfig"]
SUPER_USER, SUPER_PASSWORD = "super", "migration"
_SUPER_DIGEST = base64.b64encode(hashlib.sha1(f"{SUPER_USER}:{SUPER_PASSWORD}".encode()).digest()).decode()
# What a reconfig phase needs in every zoo.cfg (both programs read both lines): reconfig is for
# the super user only.
RECONFIG_CONFIG = (
    "reconfigEnabled=true",
    f"DigestAuthenticationProvider.superDigest={SUPER_USER}:{_SUPER_DIGEST}",
)


@attrs.frozen
class Phase:
    """Switch every member to ``to`` (``rolling`` or ``all`` at once), or, with ``reconfig``,
    remove a follower from the ensemble by ``reconfig`` and add it back (``to`` is unused)."""

    to: Kind
    manner: Manner = "rolling"
    count: int | None = None  # rolling: switch only this many members (a migration half done)


@attrs.define
class Report:
    steps: list[StepResult] = attrs.Factory(list)
    problems: list[str] = attrs.Factory(list)
    acked_writes: int = 0
    attempted_writes: int = 0
    acked_sequential: int = 0
    failed_requests: int = 0

    def summary(self) -> str:
        lines = [repr(step) for step in self.steps]
        lines.append(
            f"{self.acked_writes} writes acknowledged of {self.attempted_writes} attempted, "
            f"{self.acked_sequential} sequential creates, {self.failed_requests} failed requests"
        )
        lines += [f"PROBLEM: {p}" for p in self.problems] or ["no problems"]
        return "\n".join(lines)


def run(
    workdir: Path,
    start: Sequence[Kind],
    phases: Sequence[Phase],
    *,
    observers: int = 0,
    step_timeout: float = 45.0,
    settle_s: float = 1.5,
) -> Report:
    """See the module docstring; ``start`` names the program of every member, voters first."""
    report = Report()
    extra = RECONFIG_CONFIG if any(p.manner == "reconfig" for p in phases) else ()
    voters = len(start) - observers
    with RollingEnsemble(voters, observers=observers, workdir=workdir, extra_config=extra) as ens:
        ens.start(start, timeout=60)
        load = MigrationLoad(ens.address)
        try:
            load.start()
            time.sleep(settle_s)
            for phase in phases:
                try:
                    report.steps += _run_phase(ens, phase, step_timeout)
                except AssertionError as e:
                    report.problems.append(f"switching to {phase.to} ({phase.manner}): {e}")
                    break
                time.sleep(settle_s)
            load.stop()
            for step in report.steps:
                step.write_gap = load.longest_gap(step.began, step.ended + settle_s)
            if not report.problems:
                report.problems += ens.wait_same_zxid(30)
                report.problems += load.problems([s.address for s in ens.slots])
            report.acked_writes = len(load.acked_writes)
            report.attempted_writes = load.attempted_writes
            report.acked_sequential = len(load.acked_sequential)
            report.failed_requests = len(load.errors)
        finally:
            load.close()
    return report


def _run_phase(ens: RollingEnsemble, phase: Phase, timeout: float) -> list[StepResult]:
    if phase.manner == "rolling":
        return roll(ens, phase.to, timeout=timeout, count=phase.count)
    if phase.manner == "reconfig":
        return [_reconfig_round_trip(ens, timeout)]
    else:
        began = time.monotonic()
        was = ens[1].kind
        ens.stop()
        for slot in ens.slots:
            slot.start(phase.to)
        ens.wait_one_ensemble(timeout)
        step = StepResult(0, was, phase.to, time.monotonic() - began, was_leader=False)
        step.began, step.ended = began, time.monotonic()
        return [step]


def _reconfig_round_trip(ens: RollingEnsemble, timeout: float) -> StepResult:
    """``reconfig`` a follower out of the ensemble, then back in (incremental, by the super user).

    While it is out, the others must be one ensemble without it; afterwards, all of them again.
    """
    leader = ens.leader()
    if leader is None:
        modes = {s.sid: s.mode() for s in ens.slots}
        raise AssertionError(f"no single leader before the reconfig (modes {modes})")
    member = next(s for s in ens.voters if s.sid != leader.sid)
    began = time.monotonic()
    line = next(line for line in ens.server_lines if line.startswith(f"server.{member.sid}="))
    client = KazooClient(hosts=leader.address, auth_data=[("digest", f"{SUPER_USER}:{SUPER_PASSWORD}")])
    client.start(timeout=30)
    try:
        client.reconfig(joining=None, leaving=str(member.sid), new_members=None)
        kind = member.kind
        member.stop()  # out of the configuration: as an operator would, stop it ...
        ens.wait_one_ensemble(timeout)
        assert kind is not None
        member.start(kind)  # ... and start it again before it joins
        client.reconfig(joining=f"{line};{HOST}:{member.client_port}", leaving=None, new_members=None)
    finally:
        client.stop()
        client.close()
    ens.wait_one_ensemble(timeout)
    step = StepResult(member.sid, member.kind, member.kind or "zookeeper", time.monotonic() - began, False)
    step.began, step.ended = began, time.monotonic()
    return step
