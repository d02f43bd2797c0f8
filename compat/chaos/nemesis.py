"""A seeded schedule of faults, and applying it to a real ensemble.

Theory of operation
-------------------
:func:`plan` turns a seed into a list of :class:`Fault`: one fault at a time, each applied at
``at`` seconds into the run, held for ``hold`` seconds and then healed, with a quiet gap of
``GAP_RANGE_S`` before the next one, so the ensemble gets a chance to recover and the history shows
both the fault and the healing.  The same seed, duration, kinds, size and session timeout always
give the same plan (everything is drawn from one ``random.Random(seed)`` in a fixed order), which is
what makes a failing run replayable.  Faults aimed at "whoever leads" carry no target in the plan:
the leader is only known at the time, so :class:`Nemesis` resolves it when it applies the fault and
logs what it chose.

Most holds are ``HOLD_RANGE_S``.  A pause or a client cut is there to make sessions expire (a
paused server's clients, or a cut-off client's session, must be declared dead by the others), so
it is held for at least the session timeout plus a margin that also covers a leader change: when
the paused member led, the new leader only starts the sessions' clocks once it is established.

Faults:

``kill`` / ``kill_leader``
    SIGKILL (a crash), restarted with its data at heal.
``pause`` / ``pause_leader``
    SIGSTOP: the process keeps its sockets but answers nothing; SIGCONT at heal.
``pause_leader_brief``
    SIGSTOP of the leader for ``BRIEF_PAUSE_S``: long enough for the others to elect a new
    leader (syncLimit ticks, then an election) and commit writes, short enough that clients with
    a long session timeout keep their connection to the paused leader and their requests wait in
    its socket.  On SIGCONT the old leader reads them before it notices it was replaced: the
    fault that makes a sync that is not a quorum operation return stale data.
``isolate_leader``
    The leader cut from every other member, both ways (its clients still reach it).
``partition_majority``
    A minority of ``n // 2`` members (chosen in the plan) cut from the majority.
``cut_link`` / ``one_way``
    One link cut both ways, or only ``target -> peer`` (see :mod:`compat.chaos.firewall`).
``client_cut``
    The member's clients hear nothing and reach nothing (half-open TCP), peers unaffected.
``wipe``
    SIGKILL, then every file in its data directories except what identifies it (``myid``);
    restarted empty at heal, it must rejoin by a snapshot from the leader.  ZooKeeper does not
    promise to survive a lost disk combined with other faults, so faults stay one at a time and a
    heal waits until restarted members serve again.

Every action is appended to :attr:`Nemesis.log` (JSON-ready dicts with wall-clock and monotonic
times) for the harness to write out next to the history.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from compat.chaos.firewall import Firewall, MemberPorts
from testkit.ensemble_base import member_mode

__all__ = [
    "EXPIRY_MARGIN_S",
    "FAULT_KINDS",
    "GAP_RANGE_S",
    "HOLD_RANGE_S",
    "ChaosMember",
    "Fault",
    "Nemesis",
    "expiring_hold_min",
    "leader_sid",
    "member_mode",
    "member_ports",
    "plan",
]

FAULT_KINDS = (
    "kill",
    "kill_leader",
    "pause",
    "pause_leader",
    "pause_leader_brief",
    "isolate_leader",
    "partition_majority",
    "cut_link",
    "one_way",
    "client_cut",
    "wipe",
)
LEADER_KINDS = frozenset({"kill_leader", "pause_leader", "pause_leader_brief", "isolate_leader"})
KILL_KINDS = frozenset({"kill", "kill_leader", "wipe"})  # healed by a restart
PAUSE_KINDS = frozenset({"pause", "pause_leader", "pause_leader_brief"})  # healed by SIGCONT
# Held past the session timeout so that sessions expire.
EXPIRING_KINDS = frozenset({"pause", "pause_leader", "client_cut"})
NETWORK_KINDS = frozenset({"isolate_leader", "partition_majority", "cut_link", "one_way", "client_cut"})

HOLD_RANGE_S = (3.0, 15.0)
# syncLimit * tickTime (4 s in the harness's config) plus an election, and below the read timeout
# (2/3 of the session timeout) of a client whose session timeout is 15 s or more.
BRIEF_PAUSE_S = (5.0, 8.0)
GAP_RANGE_S = (3.0, 8.0)
EXPIRY_MARGIN_S = 5.0
EXPIRY_SPREAD_S = 5.0


def expiring_hold_min(session_timeout_s: float) -> float:
    """The shortest hold of a pause or client cut: sessions must expire before it heals.

    The margin is at least the session timeout itself, which covers a leader change (about
    syncLimit ticks plus an election) before the new leader starts counting.
    """
    return session_timeout_s + max(EXPIRY_MARGIN_S, session_timeout_s)


@dataclass(frozen=True)
class Fault:
    """One planned fault: applied ``at`` seconds into the run and healed ``hold`` seconds later.

    ``target`` is a server id, or None when it is resolved at apply time (the leader) or the fault
    has no single target; ``peers`` are the other members involved (the far end of a link, or the
    minority of a partition).
    """

    at: float
    kind: str
    target: int | None
    peers: tuple[int, ...]
    hold: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["peers"] = list(self.peers)
        return data


def plan(
    seed: int, duration_s: float, kinds: Sequence[str], n_members: int, session_timeout_s: float
) -> list[Fault]:
    """The faults of a run of ``duration_s`` seconds (see the module docstring); deterministic."""
    kinds = tuple(kinds)
    if not kinds:
        raise ValueError("no fault kinds given")
    unknown = sorted(set(kinds) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if n_members < 3:
        raise ValueError(f"{n_members} members: faults need an ensemble of at least 3")
    if session_timeout_s <= 0:
        raise ValueError("session timeout must be positive")
    rng = random.Random(seed)
    sids = list(range(1, n_members + 1))
    expiring = expiring_hold_min(session_timeout_s)
    faults: list[Fault] = []
    now = 0.0
    while True:
        # Always the same draws in the same order, whatever the kind, so that one seed is one plan.
        gap = rng.uniform(*GAP_RANGE_S)
        kind = rng.choice(kinds)
        if kind in EXPIRING_KINDS:
            hold = rng.uniform(expiring, expiring + EXPIRY_SPREAD_S)
        elif kind == "pause_leader_brief":
            hold = rng.uniform(*BRIEF_PAUSE_S)
        else:
            hold = rng.uniform(*HOLD_RANGE_S)
        target: int | None = None
        peers: tuple[int, ...] = ()
        if kind in ("kill", "pause", "client_cut", "wipe"):
            target = rng.choice(sids)
        elif kind in ("cut_link", "one_way"):
            a, b = rng.sample(sids, 2)
            target, peers = a, (b,)
        elif kind == "partition_majority":
            peers = tuple(sorted(rng.sample(sids, n_members // 2)))
        at = round(now + gap, 3)
        hold = round(hold, 3)
        if at + hold > duration_s:
            return faults
        faults.append(Fault(at, kind, target, peers, hold))
        now = at + hold


# -- the members a nemesis acts on ----------------------------------------------------------------


class ChaosMember(Protocol):
    """What both launchers' members offer (trizab's ``TrizabMember``, Apache's ``_Member``)."""

    client_port: int
    gid: int | None

    @property
    def sid(self) -> int: ...

    @property
    def quorum_port(self) -> int: ...

    @property
    def election_port(self) -> int: ...

    @property
    def running(self) -> bool: ...

    def start(self) -> None: ...

    def kill(self) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def wipe_data(self) -> None: ...

    def wait_ready(self, timeout: float) -> None: ...


def member_ports(members: Iterable[ChaosMember]) -> list[MemberPorts]:
    """The firewall's view of the members (each must have been given a ``gid``)."""
    out = []
    for m in members:
        if m.gid is None:
            raise ValueError(f"member {m.sid} has no group id: start the ensemble with gids=...")
        out.append(MemberPorts(m.sid, m.gid, m.client_port, m.quorum_port, m.election_port))
    return out


def leader_sid(members: Iterable[ChaosMember]) -> int | None:
    """The server id of a member that says it leads, if any (the first one asked)."""
    for m in members:
        if member_mode(m) == "leader":
            return m.sid
    return None


# -- applying faults ----------------------------------------------------------------------------


class Nemesis:
    """Applies and heals :class:`Fault` s on an ensemble; every action goes to :attr:`log`.

    ``rng`` only breaks ties at apply time (a leader-targeted fault when nobody leads), so seed it
    from the run's seed for a replayable run.
    """

    def __init__(
        self,
        ensemble: Iterable[ChaosMember],
        firewall: Firewall | None,
        rng: random.Random,
        *,
        ready_timeout: float = 90.0,
        leader_wait: float = 10.0,
    ) -> None:
        self.members: dict[int, ChaosMember] = {m.sid: m for m in ensemble}
        self.firewall = firewall
        self.rng = rng
        self.ready_timeout = ready_timeout
        self.leader_wait = leader_wait
        self.log: list[dict[str, Any]] = []
        self._t0 = time.monotonic()
        # What apply() did for each fault, so heal() undoes exactly that.
        self._active: dict[Fault, dict[str, Any]] = {}

    # -- public -------------------------------------------------------------------------------

    def leader(self) -> int | None:
        return leader_sid(self.members.values())

    def apply(self, fault: Fault) -> dict[str, Any]:
        """Apply ``fault`` now; return (and log) what was done, with the resolved target."""
        if fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}")
        if fault.kind in NETWORK_KINDS and self.firewall is None:
            raise ValueError(f"{fault.kind} needs a firewall")
        entry = self._entry("apply", fault)
        target = fault.target
        if fault.kind in LEADER_KINDS:
            target = self._wait_leader()
            entry["leader_found"] = target is not None
            if target is None:
                # Nobody leads (an election is still running): hit a random live member instead.
                target = self.rng.choice(sorted(s for s, m in self.members.items() if m.running))
        entry["target"] = target
        entry.update(self._stamp({}))  # the time of the action, after any wait for a leader
        self._active[fault] = entry  # before acting: a failure halfway must still be healed
        with self._recording(entry):
            self._do_apply(fault, target, entry)
        return entry

    def heal(self, fault: Fault) -> dict[str, Any]:
        """Undo ``fault`` (restart, SIGCONT, heal the firewall); wait for restarted members."""
        applied = self._active.pop(fault, None)
        if applied is None:
            entry = self.heal_all()
            entry["note"] = f"{fault.kind} at {fault.at} was never applied: healed everything"
            return entry
        entry = self._entry("heal", fault)
        target = applied["target"]
        entry["target"] = target
        with self._recording(entry):
            if fault.kind in KILL_KINDS:
                self._restart(self.members[target], entry)
            elif fault.kind in PAUSE_KINDS:
                self.members[target].resume()
            else:
                assert self.firewall is not None
                self.firewall.heal()
        return entry

    @contextlib.contextmanager
    def _recording(self, entry: dict[str, Any]) -> Iterator[None]:
        """Log ``entry`` whatever happens inside, with the error if something failed."""
        try:
            yield
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self._record(entry)

    def heal_all(self) -> dict[str, Any]:
        """Undo everything (end of a run, or after an error): SIGCONT all, heal, start the stopped."""
        entry: dict[str, Any] = {"action": "heal_all"}
        errors: list[str] = []
        for m in self.members.values():
            with contextlib.suppress(Exception):
                m.resume()
        if self.firewall is not None and self.firewall.installed:
            try:
                self.firewall.heal()
            except Exception as exc:
                errors.append(f"firewall: {exc}")
        restarted = []
        for sid, m in sorted(self.members.items()):
            if not m.running:
                restarted.append(sid)
                try:
                    m.start()
                except Exception as exc:
                    errors.append(f"start {sid}: {exc}")
        for sid in restarted:
            try:
                self.members[sid].wait_ready(self.ready_timeout)
            except Exception as exc:
                errors.append(f"member {sid} not ready: {_first_line(exc)}")
        entry["restarted"] = restarted
        if errors:
            entry["error"] = "; ".join(errors)
        self._active.clear()
        self._record(self._stamp(entry))
        return entry

    # -- internals ----------------------------------------------------------------------------

    def _do_apply(self, fault: Fault, target: int | None, entry: dict[str, Any]) -> None:
        kind = fault.kind
        fw = self.firewall
        if kind in ("kill", "kill_leader"):
            assert target is not None
            self.members[target].kill()
        elif kind in PAUSE_KINDS:
            assert target is not None
            self.members[target].pause()
        elif kind == "wipe":
            assert target is not None
            member = self.members[target]
            member.kill()
            member.wipe_data()
        else:
            assert fw is not None
            if kind == "isolate_leader":
                assert target is not None
                fw.isolate(target)
            elif kind == "partition_majority":
                fw.partition([set(fault.peers)])
            elif kind == "cut_link":
                assert target is not None
                fw.cut(target, fault.peers[0])
            elif kind == "one_way":
                assert target is not None
                fw.cut(target, fault.peers[0], one_way=True)
            elif kind == "client_cut":
                assert target is not None
                fw.cut_clients(target)
            entry["firewall"] = fw.faults

    def _restart(self, member: ChaosMember, entry: dict[str, Any]) -> None:
        member.start()
        started = time.monotonic()
        try:
            member.wait_ready(self.ready_timeout)
        except Exception as exc:
            entry["ready"] = False
            entry["error"] = f"not ready within {self.ready_timeout} s: {_first_line(exc)}"
            return
        entry["ready"] = True
        entry["ready_after_s"] = round(time.monotonic() - started, 3)

    def _wait_leader(self) -> int | None:
        deadline = time.monotonic() + self.leader_wait
        while True:
            sid = self.leader()
            if sid is not None or time.monotonic() >= deadline:
                return sid
            time.sleep(0.2)

    def _entry(self, action: str, fault: Fault) -> dict[str, Any]:
        return self._stamp(
            {
                "action": action,
                "kind": fault.kind,
                "planned_at": fault.at,
                "planned_target": fault.target,
                "peers": list(fault.peers),
                "hold": fault.hold,
            }
        )

    def _stamp(self, entry: dict[str, Any]) -> dict[str, Any]:
        now = time.monotonic()
        return {"wall": time.time(), "monotonic": now, "elapsed": round(now - self._t0, 3), **entry}

    def _record(self, entry: dict[str, Any]) -> None:
        self.log.append(entry)


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0] if text else type(exc).__name__
