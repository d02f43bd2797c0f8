"""The Wing-Gong/Lowe search on a plain register: verdicts, unknown outcomes, budgets, partitions."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat.chaos.wgl import Model, Operation, check, check_partitioned

# An op is ("w", value) or ("r", value seen), optionally with a key in front for partitioning.
RegOp = tuple[str, int]


def step(state: int, op: RegOp) -> tuple[bool, int]:
    kind, value = op
    if kind == "w":
        return True, value
    return value == state, state


REGISTER: Model[int, RegOp] = Model(init=0, step=step)


def w(value: int, call: float, ret: float | None) -> Operation[RegOp]:
    return Operation(("w", value), call, ret)


def r(value: int, call: float, ret: float | None) -> Operation[RegOp]:
    return Operation(("r", value), call, ret)


def test_empty_history_is_linearizable() -> None:
    result = check(REGISTER, [])
    assert result.verdict == "ok"
    assert result.linearization == ()


def test_sequential_history() -> None:
    result = check(REGISTER, [w(1, 0, 1), r(1, 2, 3), w(2, 4, 5), r(2, 6, 7)])
    assert result.verdict == "ok"
    assert result.linearization == (("w", 1), ("r", 1), ("w", 2), ("r", 2))


def test_stale_read_is_a_violation() -> None:
    result = check(REGISTER, [w(1, 0, 1), w(2, 2, 3), r(1, 4, 5)])
    assert result.verdict == "violation"
    assert result.linearization == (("w", 1), ("w", 2))
    assert result.blocked == ("r", 1)
    assert result.unplaced == (("r", 1),)
    assert "at most 2 of 3" in result.explanation
    assert "('r', 1)" in result.explanation


def test_read_of_a_value_never_written() -> None:
    result = check(REGISTER, [r(7, 0, 1)])
    assert result.verdict == "violation"
    assert result.linearization == ()
    assert result.blocked == ("r", 7)


def test_concurrent_read_may_see_either_value() -> None:
    assert check(REGISTER, [w(1, 0, 10), r(1, 1, 2)]).verdict == "ok"
    assert check(REGISTER, [w(1, 0, 10), r(0, 1, 2)]).verdict == "ok"


def test_reads_must_agree_on_the_order_of_a_concurrent_write() -> None:
    # Once one read saw the new value, a read that started after it returned cannot see the old one.
    assert check(REGISTER, [w(1, 0, 10), r(1, 1, 2), r(0, 3, 4)]).verdict == "violation"
    assert check(REGISTER, [w(1, 0, 10), r(0, 1, 2), r(1, 3, 4)]).verdict == "ok"


def test_concurrent_writes_either_order() -> None:
    ops = [w(1, 0, 10), w(2, 0, 10)]
    assert check(REGISTER, [*ops, r(1, 11, 12)]).verdict == "ok"
    assert check(REGISTER, [*ops, r(2, 11, 12)]).verdict == "ok"
    assert check(REGISTER, [*ops, r(0, 11, 12)]).verdict == "violation"


def test_touching_intervals_count_as_concurrent() -> None:
    # The read is invoked at the instant the write returns: calls sort first, so either order goes.
    assert check(REGISTER, [w(1, 0, 1), r(0, 1, 2)]).verdict == "ok"
    assert check(REGISTER, [w(1, 0, 1), r(0, 1.5, 2)]).verdict == "violation"


def test_backtracking_finds_the_one_order() -> None:
    # Three overlapping writes; the reads pin the order 3, 1, 2, which is not the order of calls.
    ops = [w(1, 0, 10), w(2, 1, 10), w(3, 2, 10), r(3, 3, 4), r(1, 5, 6), r(2, 11, 12)]
    result = check(REGISTER, ops)
    assert result.verdict == "ok"
    writes = [op for op in result.linearization if op[0] == "w"]
    assert writes == [("w", 3), ("w", 1), ("w", 2)]


def test_unknown_write_may_take_effect() -> None:
    assert check(REGISTER, [w(1, 0, None), r(1, 5, 6)]).verdict == "ok"


def test_unknown_write_may_never_take_effect() -> None:
    result = check(REGISTER, [w(1, 0, None), r(0, 5, 6)])
    assert result.verdict == "ok"
    assert result.linearization == (("r", 0),)


def test_unknown_write_may_take_effect_late() -> None:
    assert check(REGISTER, [w(1, 0, None), r(0, 5, 6), r(1, 7, 8)]).verdict == "ok"


def test_unknown_write_cannot_be_undone() -> None:
    assert check(REGISTER, [w(1, 0, None), r(1, 5, 6), r(0, 7, 8)]).verdict == "violation"


def test_unknown_write_cannot_take_effect_before_its_call() -> None:
    assert check(REGISTER, [r(1, 0, 1), w(1, 2, None)]).verdict == "violation"


def test_required_op_with_infinite_return_must_be_placed() -> None:
    # ret=inf: it happened, some time after its call.
    assert check(REGISTER, [w(1, 0, math.inf), r(0, 1, 2)]).verdict == "ok"
    result = check(REGISTER, [w(1, 0, math.inf)])
    assert result.verdict == "ok" and result.linearization == (("w", 1),)


def test_return_before_call_is_rejected() -> None:
    with pytest.raises(ValueError, match="before its call"):
        Operation(("w", 1), 2.0, 1.0)


def hard_history(n: int) -> list[Operation[RegOp]]:
    # n concurrent unknown writes and a read of a value nobody wrote: every subset and order of the
    # writes must be tried before the search can say no.
    return [w(i, 0, None) for i in range(1, n + 1)] + [r(-1, 1, 2)]


def test_step_budget_gives_unknown() -> None:
    result = check(REGISTER, hard_history(14), max_steps=500)
    assert result.verdict == "unknown"
    assert result.steps == 500
    assert "budget" in result.explanation


def test_deadline_gives_unknown() -> None:
    assert check(REGISTER, hard_history(14), timeout=0.0).verdict == "unknown"


def test_small_hard_history_is_decided() -> None:
    assert check(REGISTER, hard_history(4)).verdict == "violation"


def test_partitions_are_checked_separately() -> None:
    def keyed(key: str, op: Operation[RegOp]) -> Operation[tuple[str, RegOp]]:
        return Operation((key, op.op), op.call, op.ret)

    model: Model[int, tuple[str, RegOp]] = Model(init=0, step=lambda s, op: step(s, op[1]))
    history = [
        keyed("a", w(1, 0, 1)),
        keyed("b", w(5, 0, 1)),
        keyed("a", r(1, 2, 3)),
        keyed("b", r(0, 2, 3)),  # stale
        *(keyed("c", op) for op in hard_history(14)),
    ]
    result = check_partitioned(model, history, key=lambda op: op[0], max_steps=2000)
    assert result.verdict == "violation"
    assert set(result.violations) == {"b"}
    assert set(result.undecided) == {"c"}
    assert result.results["a"].verdict == "ok"
    assert result.steps > 2000

    without_b = [op for op in history if op.op[0] != "b"]
    assert check_partitioned(model, without_b, key=lambda op: op[0], max_steps=2000).verdict == "unknown"
    only_a = [op for op in history if op.op[0] == "a"]
    assert check_partitioned(model, only_a, key=lambda op: op[0]).verdict == "ok"


# ---------------------------------------------------------------------------
# generated histories


@st.composite
def register_runs(draw: st.DrawFn) -> list[Operation[RegOp]]:
    """A concurrent history that a real register produced: each op takes effect at a random instant
    inside its interval, and reads return what the register held then.  Some ops lose their answer
    (ret None); of those, writes took effect or not at random and reads are dropped."""
    n = draw(st.integers(0, 12))
    raw = []
    for i in range(n):
        call = draw(st.integers(0, 40))
        length = draw(st.integers(0, 10))
        point = call + draw(st.floats(0, 1)) * length
        kind = draw(st.sampled_from("wr"))
        lost = draw(st.integers(0, 5)) == 0
        applied = not lost or draw(st.booleans())
        raw.append((point, i, kind, float(call), float(call + length), lost, applied))
    history: list[Operation[RegOp]] = []
    value = 0
    for _point, i, kind, call, ret, lost, applied in sorted(raw):
        if kind == "w":
            if applied:
                value = i + 1
            history.append(Operation(("w", i + 1), call, None if lost else ret))
        elif not lost:
            history.append(Operation(("r", value), call, ret))
    return history


@settings(max_examples=150, deadline=None)
@given(register_runs())
def test_histories_of_a_real_register_are_linearizable(history: list[Operation[RegOp]]) -> None:
    assert check(REGISTER, history).verdict == "ok"


@st.composite
def sequential_with_corrupt_read(draw: st.DrawFn) -> list[Operation[RegOp]]:
    """A one-op-at-a-time history with one read answering a value nobody ever wrote."""
    kinds = draw(st.lists(st.sampled_from("wr"), min_size=0, max_size=20))
    kinds.insert(draw(st.integers(0, len(kinds))), "bad")
    history: list[Operation[RegOp]] = []
    value = 0
    for i, kind in enumerate(kinds):
        if kind == "w":
            value = i + 1
            history.append(w(value, 2 * i, 2 * i + 1))
        else:
            history.append(r(-1 if kind == "bad" else value, 2 * i, 2 * i + 1))
    return history


@settings(max_examples=100, deadline=None)
@given(sequential_with_corrupt_read())
def test_a_corrupt_read_is_always_flagged(history: list[Operation[RegOp]]) -> None:
    result = check(REGISTER, history)
    assert result.verdict == "violation"
    assert result.blocked == ("r", -1)


def brute_force(history: list[Operation[RegOp]]) -> bool:
    """Linearizable, by trying every subset of the unknown ops and every order of what is kept."""
    known = [o for o in history if o.ret is not None]
    unknown = [o for o in history if o.ret is None]
    for chosen in itertools.product([False, True], repeat=len(unknown)):
        kept = known + [o for o, keep in zip(unknown, chosen, strict=True) if keep]
        for order in itertools.permutations(kept):
            # Real time: nothing may go before an op that returned before it was invoked.
            if any(b.ret is not None and b.ret < a.call for i, a in enumerate(order) for b in order[i + 1 :]):
                continue
            state, ok = REGISTER.init, True
            for o in order:
                ok, state = step(state, o.op)
                if not ok:
                    break
            if ok:
                return True
    return False


@st.composite
def small_histories(draw: st.DrawFn) -> list[Operation[RegOp]]:
    """Arbitrary histories, mostly not linearizable: few ops, few values, random intervals."""
    history = []
    for _ in range(draw(st.integers(0, 6))):
        call = draw(st.integers(0, 6))
        ret = None if draw(st.integers(0, 3)) == 0 else call + draw(st.integers(0, 4))
        history.append(Operation((draw(st.sampled_from("wr")), draw(st.integers(0, 2))), call, ret))
    return history


@settings(max_examples=300, deadline=None)
@given(small_histories())
def test_search_agrees_with_brute_force(history: list[Operation[RegOp]]) -> None:
    expected = "ok" if brute_force(history) else "violation"
    assert check(REGISTER, history).verdict == expected
    # A model that prunes nothing must reach the same verdict by the same search.
    assert check(Model(init=0, step=step, unknown_possible=lambda s: True), history).verdict == expected


def test_unknown_possible_prunes_unknown_ops() -> None:
    history = [w(1, 0, None), r(1, 5, 6)]
    never: Model[int, RegOp] = Model(init=0, step=step, unknown_possible=lambda s: False)
    assert check(REGISTER, history).verdict == "ok"
    assert check(never, history).verdict == "violation"


def test_partitioned_model_per_part() -> None:
    # Each part gets a model built from its key: part "a" starts at 1, part "b" at 0.
    history = [Operation(("a", ("r", 1)), 0, 1), Operation(("b", ("r", 0)), 0, 1)]

    def model(key: str, part: list[Operation[tuple[str, RegOp]]]) -> Model[int, tuple[str, RegOp]]:
        assert all(o.op[0] == key for o in part)
        return Model(init=1 if key == "a" else 0, step=lambda s, op: step(s, op[1]))

    assert check_partitioned(model, history, key=lambda op: op[0]).verdict == "ok"
