"""Linearizability checking: the Wing-Gong search with Lowe's cache, after porcupine's ``checkSingle``.

Theory of operation
-------------------
A history is a set of operations, each with a call time and a return time.  It is linearizable
against a sequential model when each operation can be given one instant between its call and its
return at which it takes effect, such that the model, stepping through them in that order from its
initial state, accepts every one.

The search (Wing & Gong 1993; Lowe 2017; anishathalye/porcupine ``checker.go``):

* Each operation becomes a call entry and a return entry, all sorted by time; at equal times a call
  sorts first, so intervals that merely touch count as concurrent (the generous reading).  The
  entries form a doubly linked list behind a sentinel head.
* Walking from the head, every call entry met before the first return entry belongs to an operation
  that may take effect next: every operation that returned before those calls is already placed.
  The walk tries each in the model.  When the model accepts, the search pushes (entry, state before)
  on a stack, sets the operation's bit in the bitset of linearized operations, unlinks its two
  entries and walks again from the head.
* Reaching a return entry means its operation should have taken effect by now and no candidate
  before it could: the search backtracks, pops the stack, restores the model state, relinks the
  popped operation's entries (they still know their neighbours, as in dancing links) and walks on
  from the candidate after it.  Backtracking with an empty stack proves the history is not
  linearizable.
* The cache holds every (bitset, model state) pair ever reached.  Two orders that placed the same
  operations and left the model in the same state have the same futures, so a pair seen before is
  not explored twice.  This is what keeps the search tractable, and why states must be hashable.

An operation whose outcome is unknown (the client timed out or lost its connection) may have taken
effect at any instant after its call, or never.  It is given ``ret=None``: it has no return entry
(its return is at +infinity, so it never forces a backtrack), and it is optional: the search stops
with success as soon as every operation with a known outcome is placed, whether or not it placed the
unknown ones.  An operation that definitely happened but whose return time is unknown can be given
``ret=math.inf`` instead: required, but unconstrained after its call.

Optional operations live in a list of their own, and at each level the walk tries the required
candidates first and the optional ones (those called before the level's first return) after.  The
order of candidates does not change the verdict, only how soon a linearization is found; but a run
with faults leaves many unknown operations that never took effect, and interleaved with the others
every walk would step over each of them again.  A model can also say, with ``unknown_possible``,
that no unknown operation could take effect in a state (for the versioned register: the next
version was made by an acknowledged write), and the walk then skips them all at once.

The search is exponential in the worst case (many concurrent operations, many unknown writes), so
it runs under a step budget and a deadline; running out of either gives the verdict ``"unknown"``.
On a violation the result carries the longest prefix that could be linearized, the operation whose
return could not be honoured and the candidates that were tried before it; its explanation also
shows the model state the prefix left.
Histories usually split into independent parts (one register per key); :func:`check_partitioned`
checks each part on its own, which is exponentially cheaper than checking their union.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, Literal, TypeVar

import attrs

__all__ = ["Model", "Operation", "PartitionedResult", "Result", "check", "check_partitioned"]

S = TypeVar("S", bound=Hashable)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

VerdictKind = Literal["ok", "violation", "unknown"]

# How many steps pass between two looks at the clock: time.monotonic() is cheap but not free.
_CLOCK_EVERY = 256
_NIL = -1


@attrs.frozen
class Model(Generic[S, T]):
    """A sequential specification: ``step(state, op)`` says whether ``op`` may take effect in
    ``state`` and what state it leaves.  States must be hashable and compare by value."""

    init: S
    step: Callable[[S, T], tuple[bool, S]]
    describe_op: Callable[[T], str] = repr
    describe_state: Callable[[S], str] = repr
    # Optional pruning: False when no operation of unknown outcome could take effect in a state,
    # so the search need not try them one by one.  None: always try them.
    unknown_possible: Callable[[S], bool] | None = None


@attrs.frozen
class Operation(Generic[T]):
    """One operation of a history: ``op`` is what the model's ``step`` receives."""

    op: T
    call: float
    ret: float | None  # None: outcome unknown (optional, may take effect any time after call)

    def __attrs_post_init__(self) -> None:
        if self.ret is not None and self.ret < self.call:
            raise ValueError(f"operation returns ({self.ret}) before its call ({self.call}): {self.op!r}")


@attrs.frozen
class Result(Generic[T]):
    """The verdict on one history (one partition)."""

    verdict: VerdictKind
    steps: int
    # ok: a full linearization (the known operations and the unknown ones that took effect);
    # violation: the longest linearizable prefix found; unknown: empty.
    linearization: tuple[T, ...] = ()
    # violation: the operation whose return could not be honoured after that prefix ...
    blocked: T | None = None
    # ... and the operations that were candidates to go next, none of which the model accepted.
    unplaced: tuple[T, ...] = ()
    explanation: str = ""


@attrs.frozen
class PartitionedResult(Generic[K, T]):
    """The verdicts on every partition: a violation anywhere makes the whole a violation; otherwise
    one undecided partition makes it unknown."""

    verdict: VerdictKind
    results: dict[K, Result[T]]

    @property
    def violations(self) -> dict[K, Result[T]]:
        return {k: r for k, r in self.results.items() if r.verdict == "violation"}

    @property
    def undecided(self) -> dict[K, Result[T]]:
        return {k: r for k, r in self.results.items() if r.verdict == "unknown"}

    @property
    def steps(self) -> int:
        return sum(r.steps for r in self.results.values())


def check(
    model: Model[S, T],
    history: Iterable[Operation[T]],
    *,
    max_steps: int | None = None,
    timeout: float | None = None,
) -> Result[T]:
    """Is ``history`` linearizable with respect to ``model``?

    ``max_steps`` bounds the iterations of the search, ``timeout`` its wall-clock seconds; when
    either runs out the verdict is ``"unknown"``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    return _check(model, list(history), max_steps, deadline)


def check_partitioned(
    model: Model[S, T] | Callable[[K, list[Operation[T]]], Model[S, T]],
    history: Iterable[Operation[T]],
    key: Callable[[T], K],
    *,
    max_steps: int | None = None,
    timeout: float | None = None,
) -> PartitionedResult[K, T]:
    """Check each part of ``history`` (grouped by ``key(op)``) separately.

    Sound when operations of different parts never constrain each other, as for independent
    registers.  ``model`` is either one model for every part or a function of a part's key and
    operations that returns the model for it (a model may prune with what it knows of its part).
    ``max_steps`` applies to each part, ``timeout`` to all of them together.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    parts: dict[K, list[Operation[T]]] = {}
    for operation in history:
        parts.setdefault(key(operation.op), []).append(operation)
    results = {
        k: _check(model if isinstance(model, Model) else model(k, ops), ops, max_steps, deadline)
        for k, ops in parts.items()
    }
    verdicts = {r.verdict for r in results.values()}
    verdict: VerdictKind = (
        "violation" if "violation" in verdicts else "unknown" if "unknown" in verdicts else "ok"
    )
    return PartitionedResult(verdict=verdict, results=results)


def _check(
    model: Model[S, T], ops: list[Operation[T]], max_steps: int | None, deadline: float | None
) -> Result[T]:
    n = len(ops)
    required = [o.ret is not None for o in ops]

    # Entries as (time, 0 for call / 1 for return, op): calls first at equal times, then a fixed
    # order so that the search, and so its explanations, are deterministic.  Optional operations
    # get no return entry: their return is at +infinity, past everything.
    entries = sorted(
        [(o.call, 0, i) for i, o in enumerate(ops)]
        + [(o.ret, 1, i) for i, o in enumerate(ops) if o.ret is not None]
    )
    # Two doubly linked lists in arrays, each behind its own head sentinel: the required operations'
    # calls and returns, and the optional operations' calls.  Keeping the optional ones apart lets
    # a walk try the required candidates first and skip all optional ones at once when the model
    # says none can take effect; interleaved, every walk would step over every pending unknown op.
    head, opt_head = 0, 1
    node_op = [-1, -1]
    is_call = [False, False]
    pos = [-1, -1]  # rank in the sorted entries: "is this optional call before that return?"
    ret_node = [_NIL] * n
    nxt = [_NIL, _NIL]
    prv = [_NIL, _NIL]
    tails = {True: head, False: opt_head}
    for rank, (_, kind, i) in enumerate(entries):
        node = len(node_op)
        node_op.append(i)
        is_call.append(kind == 0)
        pos.append(rank)
        if kind == 1:
            ret_node[i] = node
        tail = tails[required[i]]
        nxt[tail] = node
        nxt.append(_NIL)
        prv.append(tail)
        tails[required[i]] = node

    def unlink(node: int) -> None:
        nxt[prv[node]] = nxt[node]
        if nxt[node] != _NIL:
            prv[nxt[node]] = prv[node]

    def relink(node: int) -> None:
        nxt[prv[node]] = node
        if nxt[node] != _NIL:
            prv[nxt[node]] = node

    def lift(call: int) -> None:
        unlink(call)
        if ret_node[node_op[call]] != _NIL:
            unlink(ret_node[node_op[call]])

    def unlift(call: int) -> None:
        # Reverse order of lift, so each node's remembered neighbours are current again.
        if ret_node[node_op[call]] != _NIL:
            relink(ret_node[node_op[call]])
        relink(call)

    maybe_unknown = model.unknown_possible
    remaining = sum(required)
    state = model.init
    linearized = 0  # bitset of placed operations, as a Python int (hashable, any width)
    cache: set[tuple[int, S]] = set()
    # The stack: (call node placed, state before it, that level's boundary).
    calls: list[tuple[int, S, int]] = []
    # The longest prefix seen at a backtrack: (prefix op ids, state after it, blocking op, candidates).
    longest: tuple[list[int], S, int | None, list[int]] | None = None
    steps = 0
    entry = nxt[head]
    optional_phase = False
    # The first return entry of the current level: optional calls ranked before it are candidates.
    boundary = _NIL
    while remaining:
        steps += 1
        if (max_steps is not None and steps > max_steps) or (
            deadline is not None and steps % _CLOCK_EVERY == 0 and time.monotonic() > deadline
        ):
            return Result(
                verdict="unknown",
                steps=steps - 1,
                explanation=f"search budget exhausted after {steps - 1} steps ({n} operations)",
            )
        if entry != _NIL and (
            is_call[entry] if not optional_phase else boundary == _NIL or pos[entry] < pos[boundary]
        ):
            i = node_op[entry]
            accepted, new_state = model.step(state, ops[i].op)
            if accepted:
                new_linearized = linearized | (1 << i)
                if (new_linearized, new_state) not in cache:
                    cache.add((new_linearized, new_state))
                    calls.append((entry, state, boundary))
                    state, linearized = new_state, new_linearized
                    remaining -= required[i]
                    lift(entry)
                    entry, optional_phase = nxt[head], False
                    continue
            entry = nxt[entry]
            continue
        if not optional_phase:
            # Every required candidate was tried: now the optional ones, if any could take effect.
            # (A required return always remains while remaining > 0, so entry is one.)
            boundary = entry
            optional_phase = True
            if nxt[opt_head] != _NIL and (maybe_unknown is None or maybe_unknown(state)):
                entry = nxt[opt_head]
                continue
        # Dead end at this level: backtrack.
        if longest is None or len(calls) > len(longest[0]):
            candidates = []
            node = nxt[head]
            while node != boundary:
                candidates.append(node_op[node])
                node = nxt[node]
            blocking = None if boundary == _NIL else node_op[boundary]
            longest = ([node_op[c] for c, _, _ in calls], state, blocking, candidates)
        if not calls:
            assert longest is not None
            return _violation(model, ops, steps, *longest)
        entry, state, boundary = calls.pop()
        i = node_op[entry]
        linearized &= ~(1 << i)
        remaining += required[i]
        unlift(entry)
        # Go on with the next candidate of that level, in the list the popped one came from.
        optional_phase = not required[i]
        entry = nxt[entry]
    return Result(verdict="ok", steps=steps, linearization=tuple(ops[node_op[c]].op for c, _, _ in calls))


def _violation(
    model: Model[S, T],
    ops: list[Operation[T]],
    steps: int,
    prefix: list[int],
    state: S,
    blocking: int | None,
    candidates: list[int],
) -> Result[T]:
    describe = model.describe_op
    shown = prefix[-8:]  # the tail is what led into the dead end; the head is usually routine
    lines = [f"not linearizable: at most {len(prefix)} of {len(ops)} operations could be linearized"]
    if prefix:
        skipped = f" ({len(prefix) - len(shown)} earlier not shown)" if len(prefix) > len(shown) else ""
        lines.append(f"longest linearized prefix{skipped}:")
        lines.extend(f"  {describe(ops[i].op)}" for i in shown)
    lines.append(f"leaving state {model.describe_state(state)}; then none of")
    lines.extend(f"  {describe(ops[i].op)}" for i in candidates)
    if not candidates:
        lines.append("  (no candidate)")
    if blocking is not None:
        lines.append(f"could take effect before this one returned: {describe(ops[blocking].op)}")
    return Result(
        verdict="violation",
        steps=steps,
        linearization=tuple(ops[i].op for i in prefix),
        blocked=None if blocking is None else ops[blocking].op,
        unplaced=tuple(ops[i].op for i in candidates),
        explanation="\n".join(lines),
    )
