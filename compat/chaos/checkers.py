"""The properties a fault-injection history must have, each checked by a pure function.

Theory of operation
-------------------
Every checker takes the whole record of a run: the ops (:class:`~compat.chaos.history.Op`), the
session events, the final state of every member and each client's end state, and returns a
:class:`Verdict`: ``ok`` True (held), False (violated: ``count`` violations, described in
``detail``) or None (could not decide, e.g. the linearizability search ran out of budget or the
members disagree on the state a check needs).

What is checked, and the ZooKeeper guarantee behind it:

* :func:`linearizable_registers`: writes are linearizable (ZAB's total order of transactions), and
  so are reads because the harness issues ``sync`` before each ``getData``.  Each register key is a
  versioned register; every write, cas and read on it, plus the final state the members agree on,
  must fit one order consistent with real time (:mod:`compat.chaos.wgl`).  A stale read, a lost
  acknowledged write, a cas that succeeded against the wrong version all show up here.
* :func:`acknowledged_writes_present`: the blunt version of the above, independent of timing: a
  write the server acknowledged with version v must not end up on a node whose version is below v;
  an acknowledged sequential create must still exist.
* :func:`unique_sequence_numbers`: a parent's sequence counter never hands out a number twice.
* :func:`session_order`: a session's requests are applied in order (FIFO client order), and a client
  never sees the state go backwards, not even when it reconnects (the server refuses a client whose
  last seen zxid is ahead of it).
* :func:`converged`: once healed, every member holds the same data.
* :func:`session_safety`: an expired session can do nothing more, its ephemerals go away, and a
  live session's ephemeral stays.

"Agreed" final state: checks that compare ops against the final state use the value of a register
only where every member reports the same one (:func:`converged` reports the others); a sequential
or ephemeral node counts as present when every member has it, and as left over when any member has.
The harness must read the final state after every session it abandoned has had time to expire.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

import attrs

from compat.chaos import wgl
from compat.chaos.history import ClientEnd, FinalState, Op, SessionEvent

__all__ = [
    "INITIAL_REGISTER",
    "Verdict",
    "acknowledged_writes_present",
    "check_all",
    "converged",
    "linearizable_registers",
    "register_history",
    "register_model",
    "session_order",
    "session_safety",
    "unique_sequence_numbers",
]

# The harness creates every register with empty data before the run; a fresh node has version 0.
INITIAL_REGISTER: tuple[bytes, int] = (b"", 0)

# The index of the read register_history makes up for an agreed final register.
_FINAL = -1

# Violations listed in a detail, at most: the count says how many there are in all.
_SHOWN = 10

Register = tuple[bytes, int]  # (data, version): the state of the register model


@attrs.frozen
class Verdict:
    """One checker's finding: ``ok`` None means it could not decide; ``count`` violations found."""

    name: str
    ok: bool | None
    detail: str
    count: int


def _verdict(name: str, problems: Sequence[str], undecided: str = "", passed: str = "") -> Verdict:
    if problems:
        shown = list(problems[:_SHOWN])
        if len(problems) > _SHOWN:
            shown.append(f"... and {len(problems) - _SHOWN} more")
        return Verdict(name, False, "\n".join(shown), len(problems))
    if undecided:
        return Verdict(name, None, undecided, 0)
    return Verdict(name, True, passed, 0)


# ---------------------------------------------------------------------------
# the agreed final state


@attrs.frozen
class _Agreed:
    registers: dict[str, tuple[bytes, int, int] | None]  # keys every member reports identically
    disputed: frozenset[str]  # keys the members disagree on (or some did not report)
    seq_everywhere: frozenset[str]
    seq_anywhere: frozenset[str]
    eph_everywhere: frozenset[tuple[str, int]]
    eph_anywhere: frozenset[tuple[str, int]]


def _normal(reg: tuple[bytes, int, int] | None) -> tuple[bytes, int, int] | None:
    # A harness may hand over lists, which would neither hash nor compare equal to tuples.
    return None if reg is None else (reg[0], reg[1], reg[2])


def _agreed(final: FinalState) -> _Agreed:
    members = list(final.members.values())
    keys = set().union(*(m.registers for m in members))
    registers: dict[str, tuple[bytes, int, int] | None] = {}
    disputed: set[str] = set()
    for key in keys:
        if any(key not in m.registers for m in members):
            disputed.add(key)  # a member that did not report it cannot be said to agree
            continue
        values = {_normal(m.registers[key]) for m in members}
        if len(values) == 1:
            registers[key] = values.pop()
        else:
            disputed.add(key)
    seqs = [frozenset(m.seq_children) for m in members]
    ephs = [frozenset(m.ephemerals.items()) for m in members]
    return _Agreed(
        registers=registers,
        disputed=frozenset(disputed),
        seq_everywhere=frozenset.intersection(*seqs),
        seq_anywhere=frozenset.union(*seqs),
        eph_everywhere=frozenset.intersection(*ephs),
        eph_anywhere=frozenset.union(*ephs),
    )


def _has_members(final: FinalState | None) -> bool:
    return final is not None and bool(final.members)


# ---------------------------------------------------------------------------
# linearizability of the registers


def _describe_register(state: Register) -> str:
    data, version = state
    return f"({data[:24]!r}{'...' if len(data) > 24 else ''}, v{version})"


def register_model(
    initial: Register = INITIAL_REGISTER, produced: Iterable[int] = (), ceiling: int | None = None
) -> wgl.Model[Register, Op]:
    """The versioned register: state (data, version), ops write, cas and read as recorded.

    ``produced``: the versions ok writes and cas reported.  Each setData makes exactly one version
    (the registers are never deleted, so versions never repeat), so a write of unknown outcome
    cannot have made one of those: it can only fill a gap.  ``ceiling``: the version the register
    ends at, if known; versions only grow, so no state may go beyond it.  Both only prune states
    from which no linearization exists, and without them every pending unknown write would be
    tried at every step, which is exponential in their number.
    """
    taken = frozenset(produced)

    def step(state: Register, op: Op) -> tuple[bool, Register]:
        version = state[1]
        if op.kind == "read":
            return (op.read_value, op.version) == state, state
        if op.kind == "cas":
            if op.outcome == "fail":
                # BadVersionError: the version was not the expected one when the cas took effect.
                return version != op.expected_version, state
            if version != op.expected_version:
                # An ok cas must have matched; an unknown one that did not match had no effect,
                # which the search covers by leaving it out.
                return False, state
        # A write, or a matching cas, taking effect.  ZooKeeper bumps the version by one per setData
        # and reports the new one, which pins down where an ok write sits among the others.
        if op.outcome == "ok":
            if op.version is not None and op.version != version + 1:
                return False, state
        elif version + 1 in taken or (ceiling is not None and version + 1 > ceiling):
            return False, state
        return True, (op.value if op.value is not None else b"", version + 1)

    def unknown_possible(state: Register) -> bool:
        version = state[1] + 1
        return version not in taken and (ceiling is None or version <= ceiling)

    return wgl.Model(
        init=initial,
        step=step,
        describe_op=_describe,
        describe_state=_describe_register,
        unknown_possible=unknown_possible,
    )


def register_history(ops: Iterable[Op], final: FinalState | None = None) -> list[wgl.Operation[Op]]:
    """The ops the register model judges, as WGL operations, plus one read per agreed final register.

    Dropped: unknown reads (they constrain nothing), failed writes and failed cas other than
    ``BadVersionError`` (no effect, and a ``NoNodeError`` on a register says nothing about its
    value), and kinds that are not registers.  Unknown writes and cas become optional.
    """
    ops = list(ops)
    history: list[wgl.Operation[Op]] = []
    for op in ops:
        if op.kind not in ("write", "cas", "read"):
            continue
        if op.outcome == "unknown":
            if op.kind != "read":
                history.append(wgl.Operation(op, op.call, None))
            continue
        if op.outcome == "fail" and not (op.kind == "cas" and op.error == "BadVersionError"):
            continue
        # A definite outcome without a return time still happened after its call.
        history.append(wgl.Operation(op, op.call, math.inf if op.ret is None else op.ret))
    if _has_members(final):
        assert final is not None
        # The final state is read after everything: later than every time in the history.
        times = [t for op in ops for t in (op.call, op.ret) if t is not None and math.isfinite(t)]
        end = max(times, default=0.0) + 1.0
        for key, reg in sorted(_agreed(final).registers.items()):
            if reg is None:
                continue  # no register there; acknowledged_writes_present reports lost writes
            data, version, mzxid = reg
            read = Op(
                index=_FINAL,
                process=-1,
                member=-1,
                session=None,
                kind="read",
                key=key,
                value=None,
                expected_version=None,
                call=end,
                ret=end,
                outcome="ok",
                read_value=data,
                version=version,
                mzxid=mzxid,
            )
            history.append(wgl.Operation(read, end, end))
    return history


def _describe(op: Op) -> str:
    if op.index == _FINAL:
        return f"final state {op.key} = {op.read_value!r} v{op.version}"
    return op.describe()


def _version_evidence(part: Sequence[wgl.Operation[Op]], initial: Register) -> list[str]:
    """Violations of one register's history that need no search, only the version numbers.

    Versions only grow, by one per setData, and each is made by one setData, so: an op invoked after
    another returned reports at least its version (a write: more); two acknowledged writes never
    report the same version; a read of version v returns what the write that made v wrote.  Each is
    implied by linearizability, so what these find is a definite violation, even where the search
    gives up (a history with many writes of unknown outcome before the bad read can exhaust it).
    """
    problems: list[str] = []
    # (call, return, version, op) of every op that reported a version.
    known = [
        (o.call, o.ret, o.op.version, o.op)
        for o in part
        if o.ret is not None and o.op.outcome == "ok" and o.op.version is not None
    ]
    made: dict[int, list[Op]] = defaultdict(list)
    for _, _, version, op in known:
        if op.kind != "read":
            made[version].append(op)
    for version, writers in sorted(made.items()):
        if len(writers) > 1:
            problems.append(f"version {version} made twice: " + "; ".join(_describe(w) for w in writers))
    for _, _, version, op in known:
        if op.kind != "read":
            continue
        if version == initial[1]:
            expected: bytes | None = initial[0]
        elif len(made.get(version, ())) == 1:
            expected = made[version][0].value
        else:
            continue  # made by a write of unknown outcome, or disputed above
        if op.read_value != expected:
            problems.append(
                f"read {op.read_value!r} at v{version}, which holds {expected!r}: {_describe(op)}"
            )
    # Real-time order, with the same tie rule as the search: A precedes B when A returned strictly
    # before B was invoked.
    done: list[tuple[float, int, int, Op]] = []  # heap of (return, index, version, op)
    best: tuple[int, Op] | None = None  # the highest version among ops that returned so far
    for call, ret, version, op in sorted(known, key=lambda k: (k[0], k[3].index)):
        while done and done[0][0] < call:
            _, _, prior_version, prior = heapq.heappop(done)
            if best is None or prior_version > best[0]:
                best = (prior_version, prior)
        if best is not None and (version < best[0] or (op.kind != "read" and version == best[0])):
            problems.append(
                f"v{version} after v{best[0]}: {_describe(op)} was invoked after "
                f"{_describe(best[1])} returned"
            )
        heapq.heappush(done, (ret, op.index, version, op))
    return problems


def linearizable_registers(
    ops: Sequence[Op],
    events: Sequence[SessionEvent],
    final: FinalState | None,
    ends: Sequence[ClientEnd],
    *,
    initial: Register = INITIAL_REGISTER,
    max_steps: int | None = 1_000_000,
    timeout: float | None = 60.0,
) -> Verdict:
    """Every register key's writes, cas, reads and agreed final value linearize (count: bad keys).

    ``max_steps`` bounds the search of each key, ``timeout`` the seconds for all keys together.  A
    key whose search runs out of budget is still found bad when its version numbers alone prove it
    (:func:`_version_evidence`).
    """
    name = "linearizable_registers"
    history = register_history(ops, final)
    parts: dict[str, list[wgl.Operation[Op]]] = defaultdict(list)
    for o in history:
        parts[o.op.key].append(o)

    def model(key: str, part: list[wgl.Operation[Op]]) -> wgl.Model[Register, Op]:
        produced = [o.op.version for o in part if o.op.kind != "read" and o.op.outcome == "ok"]
        ceiling = [o.op.version for o in part if o.op.index == _FINAL]
        return register_model(
            initial,
            produced=[v for v in produced if v is not None],
            ceiling=ceiling[0] if ceiling else None,
        )

    result = wgl.check_partitioned(
        model, history, key=lambda op: op.key, max_steps=max_steps, timeout=timeout
    )
    problems: list[str] = []
    undecided: list[str] = []
    for key, part in sorted(parts.items()):
        evidence = _version_evidence(part, initial)
        searched = result.results[key]
        if searched.verdict == "violation":
            problems.append(f"{key}: {searched.explanation}" + "".join(f"\n  {e}" for e in evidence[:3]))
        elif evidence:
            lines = [f"{key}: not linearizable (search: {searched.verdict})", *evidence[:5]]
            if len(evidence) > 5:
                lines.append(f"... and {len(evidence) - 5} more")
            problems.append("\n  ".join(lines))
        elif searched.verdict == "unknown":
            undecided.append(key)
    return _verdict(
        name,
        problems,
        undecided=f"search budget exhausted for {', '.join(undecided)}" if undecided else "",
        passed=f"{len(result.results)} registers, {len(history)} operations, {result.steps} steps",
    )


# ---------------------------------------------------------------------------
# acknowledged writes


def acknowledged_writes_present(
    ops: Sequence[Op], events: Sequence[SessionEvent], final: FinalState | None, ends: Sequence[ClientEnd]
) -> Verdict:
    """No acknowledged write or sequential create is missing from the agreed final state."""
    name = "acknowledged_writes_present"
    if final is None or not final.members:
        return Verdict(name, None, "no final state", 0)
    agreed = _agreed(final)
    problems: list[str] = []
    undecided: set[str] = set()
    for op in ops:
        if op.outcome != "ok":
            continue
        if op.kind in ("write", "cas") and op.version is not None:
            if op.key in agreed.disputed:
                undecided.add(op.key)
                continue
            if op.key not in agreed.registers:
                undecided.add(op.key)  # the harness did not read this register at the end
                continue
            reg = agreed.registers[op.key]
            if reg is None:
                problems.append(f"lost: {op.describe()}; {op.key} is absent at the end")
            elif op.version > reg[1]:
                problems.append(f"lost: {op.describe()}; {op.key} ends at v{reg[1]}")
        elif op.kind == "seq_create" and op.path is not None and op.path not in agreed.seq_everywhere:
            lacking = sorted(sid for sid, m in final.members.items() if op.path not in m.seq_children)
            problems.append(f"lost: {op.describe()}; missing on members {lacking}")
    return _verdict(
        name,
        problems,
        undecided=f"members disagree on {', '.join(sorted(undecided))}" if undecided else "",
    )


# ---------------------------------------------------------------------------
# sequence numbers


def _sequence(path: str) -> tuple[str, int] | None:
    """(parent, number) of a sequential node's path: ZooKeeper appends ``%010d`` of a counter
    kept per parent, so the number is unique per parent whatever prefix each client used."""
    parent, _, name = path.rpartition("/")
    suffix = name[-10:]
    if len(suffix) < 10 or not suffix.lstrip("-").isdigit():
        return None
    return parent, int(suffix)


def _duplicates(paths: Sequence[str], where: str) -> list[str]:
    problems = [f"{where}: {path} {n} times" for path, n in sorted(Counter(paths).items()) if n > 1]
    numbers: dict[tuple[str, int], set[str]] = defaultdict(set)
    for path in paths:
        seq = _sequence(path)
        if seq is not None:
            numbers[seq].add(path)
    problems.extend(
        f"{where}: sequence number {number} under {parent or '/'} given to {sorted(names)}"
        for (parent, number), names in sorted(numbers.items())
        if len(names) > 1
    )
    return problems


def unique_sequence_numbers(
    ops: Sequence[Op], events: Sequence[SessionEvent], final: FinalState | None, ends: Sequence[ClientEnd]
) -> Verdict:
    """No sequential path (or number under one parent) returned twice, nor present twice at the end."""
    created = [op.path for op in ops if op.kind == "seq_create" and op.outcome == "ok" and op.path]
    problems = _duplicates(created, "returned")
    if final is not None:
        for sid, member in sorted(final.members.items()):
            problems.extend(_duplicates(member.seq_children, f"member {sid}"))
    return _verdict("unique_sequence_numbers", problems, passed=f"{len(created)} sequential creates")


# ---------------------------------------------------------------------------
# per-process order


def _realtime_violations(
    ops: Sequence[Op], value: str, strict_kinds: frozenset[str], label: str
) -> list[str]:
    """Ops whose ``value`` attribute is below (or, for ``strict_kinds``, not above) the largest one of
    the ops that completed before they were invoked.

    Real-time precedence rather than list order, so that a process issuing overlapping requests does
    not give false alarms; for a process with one request at a time it is just invocation order.
    """
    problems: list[str] = []
    done: list[tuple[float, int, Op]] = []  # heap of completed ops by return time
    best: Op | None = None  # the op with the largest value among those completed before the cursor
    for op in sorted(ops, key=lambda o: (o.call, o.index)):
        while done and done[0][0] <= op.call:
            _, _, prior = heapq.heappop(done)
            if best is None or getattr(prior, value) > getattr(best, value):
                best = prior
        mine = getattr(op, value)
        if best is not None:
            theirs = getattr(best, value)
            if mine < theirs or (op.kind in strict_kinds and mine == theirs):
                problems.append(
                    f"{label}: {op.describe()} has {value} {mine:#x} after {theirs:#x} of {best.describe()}"
                )
        if op.ret is not None:
            heapq.heappush(done, (op.ret, op.index, op))
    return problems


def session_order(
    ops: Sequence[Op], events: Sequence[SessionEvent], final: FinalState | None, ends: Sequence[ClientEnd]
) -> Verdict:
    """Per process: a session's writes get increasing zxids, the client's last seen zxid never goes
    back (not even across reconnects), and neither does the mzxid it reads or writes on one key."""
    by_process: dict[int, list[Op]] = defaultdict(list)
    for op in ops:
        by_process[op.process].append(op)
    problems: list[str] = []
    writes = frozenset({"write", "cas"})
    for process, mine in sorted(by_process.items()):
        ok = [op for op in mine if op.outcome == "ok"]
        # FIFO client order: one session's writes commit in the order they were sent.
        sessions: dict[int | None, list[Op]] = defaultdict(list)
        for op in ok:
            if op.kind in writes and op.mzxid is not None:
                sessions[op.session].append(op)
        for sid, session_writes in sessions.items():
            label = f"p{process} session {'-' if sid is None else hex(sid)} write order"
            problems.extend(_realtime_violations(session_writes, "mzxid", writes, label))
        # A key never looks older to this client: a read sees at least what it saw or wrote before,
        # and its own later write must come after both.
        keys: dict[str, list[Op]] = defaultdict(list)
        for op in ok:
            if op.kind in (*writes, "read") and op.mzxid is not None:
                keys[op.key].append(op)
        for key, key_ops in sorted(keys.items()):
            problems.extend(_realtime_violations(key_ops, "mzxid", writes, f"p{process} {key}"))
        # kazoo keeps last_zxid_seen across reconnects and sends it with the new ConnectRequest;
        # it is sampled after completion, so it is ordered by completion time.  Ops of unknown
        # outcome have no completion time and are left out.
        seen = sorted(
            (op for op in mine if op.client_zxid is not None and op.ret is not None),
            key=lambda o: (o.ret, o.index),
        )
        for before, after in itertools.pairwise(seen):
            assert before.client_zxid is not None and after.client_zxid is not None
            if after.client_zxid < before.client_zxid:
                problems.append(
                    f"p{process} client zxid went back from {before.client_zxid:#x} to "
                    f"{after.client_zxid:#x}: {before.describe()} then {after.describe()}"
                )
    return _verdict("session_order", problems, passed=f"{len(by_process)} processes")


# ---------------------------------------------------------------------------
# convergence


def converged(
    ops: Sequence[Op], events: Sequence[SessionEvent], final: FinalState | None, ends: Sequence[ClientEnd]
) -> Verdict:
    """Every member ends with the same last zxid (where all are known), registers, sequential nodes
    and ephemerals (count: differing items)."""
    name = "converged"
    if final is None or not final.members:
        return Verdict(name, None, "no final state", 0)
    members = final.members
    problems: list[str] = []
    zxids = {sid: m.last_zxid for sid, m in members.items()}
    if None not in zxids.values() and len(set(zxids.values())) > 1:
        problems.append(
            "last zxid differs: " + ", ".join(f"{sid}: {z:#x}" for sid, z in sorted(zxids.items()))
        )
    agreed = _agreed(final)
    for key in sorted(agreed.disputed):
        values = {sid: m.registers.get(key, "unread") for sid, m in sorted(members.items())}
        problems.append(f"register {key} differs: {values}")
    for path in sorted(agreed.seq_anywhere - agreed.seq_everywhere):
        having = sorted(sid for sid, m in members.items() if path in m.seq_children)
        problems.append(f"sequential node {path} only on members {having}")
    for path, owner in sorted(agreed.eph_anywhere - agreed.eph_everywhere):
        having = sorted(sid for sid, m in members.items() if m.ephemerals.get(path) == owner)
        problems.append(f"ephemeral {path} of session {owner:#x} only on members {having}")
    return _verdict(name, problems, passed=f"{len(members)} members agree")


# ---------------------------------------------------------------------------
# sessions


def session_safety(
    ops: Sequence[Op], events: Sequence[SessionEvent], final: FinalState | None, ends: Sequence[ClientEnd]
) -> Verdict:
    """(a) No op succeeds on a session invoked after evidence of its expiry; (b) no ephemeral of a
    session that is not live at the end remains; (c) every live session's ephemeral remains."""
    problems: list[str] = []
    # (a) Evidence of expiry: the client saw it (kazoo LOST), or an observer saw the session's
    # ephemeral vanish without the client closing it.  Either way the ensemble had expired it then.
    expired: dict[int, float] = {}
    for event in events:
        if event.kind in ("expired", "ephemeral_gone"):
            expired[event.session] = min(event.time, expired.get(event.session, math.inf))
    for op in ops:
        if op.outcome == "ok" and op.session is not None and op.call > expired.get(op.session, math.inf):
            problems.append(
                f"succeeded on session {op.session:#x} expired at {expired[op.session]:.3f}: {op.describe()}"
            )
    if final is not None and final.members:
        agreed = _agreed(final)
        live = {end.session for end in ends if end.connected and end.session is not None}
        # (b) any member holding it is enough: a client connected there would see it.
        for path, owner in sorted(agreed.eph_anywhere):
            if owner not in live:
                having = sorted(sid for sid, m in final.members.items() if m.ephemerals.get(path) == owner)
                problems.append(f"ephemeral {path} of dead session {owner:#x} remains on members {having}")
        # (c) the session is live, so its ephemeral must be visible on every member.
        for end in sorted(ends, key=lambda e: e.process):
            if end.connected and end.session is not None and end.ephemeral_path is not None:
                if (end.ephemeral_path, end.session) not in agreed.eph_everywhere:
                    lacking = sorted(
                        sid
                        for sid, m in final.members.items()
                        if m.ephemerals.get(end.ephemeral_path) != end.session
                    )
                    problems.append(
                        f"p{end.process}'s live session {end.session:#x} lacks its ephemeral "
                        f"{end.ephemeral_path} on members {lacking}"
                    )
    return _verdict("session_safety", problems, passed=f"{len(expired)} sessions expired")


# ---------------------------------------------------------------------------


def check_all(
    ops: Sequence[Op],
    events: Sequence[SessionEvent],
    final: FinalState | None,
    ends: Sequence[ClientEnd],
    *,
    max_steps: int | None = 1_000_000,
    timeout: float | None = 60.0,
) -> list[Verdict]:
    """Run every checker; ``max_steps`` and ``timeout`` bound the linearizability search."""
    ops = sorted(ops, key=lambda op: op.index)
    history = (ops, events, final, ends)
    return [
        linearizable_registers(*history, max_steps=max_steps, timeout=timeout),
        acknowledged_writes_present(*history),
        unique_sequence_numbers(*history),
        session_order(*history),
        converged(*history),
        session_safety(*history),
    ]
