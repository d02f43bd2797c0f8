"""The history checkers on one clean hand-made run, and on that run corrupted one way at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compat.chaos.checkers import (
    Verdict,
    acknowledged_writes_present,
    check_all,
    converged,
    linearizable_registers,
    session_order,
    session_safety,
    unique_sequence_numbers,
)
from compat.chaos.history import (
    ClientEnd,
    FinalState,
    History,
    MemberState,
    Op,
    SessionEvent,
    read_history,
    write_history,
)

MEMBERS = (1, 2, 3)
CHECKERS = {
    "linearizable_registers",
    "acknowledged_writes_present",
    "unique_sequence_numbers",
    "session_order",
    "converged",
    "session_safety",
}


class Sim:
    """A one-server stand-in for the ensemble that records ops the way the harness does.

    Each call applies its op at once (its linearization point), so a test lists ops in the order they
    take effect and gives them whatever overlapping [call, ret] intervals it likes around that.
    """

    def __init__(self, keys: tuple[str, ...] = ("/r/a", "/r/b")) -> None:
        self.zxid = 0
        self.registers: dict[str, tuple[bytes, int, int]] = {key: (b"", 0, 0) for key in keys}
        self.seq = 0
        self.seq_children: list[str] = []
        self.ephemerals: dict[str, int] = {}
        self.seen: dict[int, int] = {}  # process -> last zxid its client saw
        self.ops: list[Op] = []
        self.events: list[SessionEvent] = []

    def _op(
        self,
        process: int,
        session: int | None,
        kind: str,
        key: str,
        call: float,
        ret: float | None,
        **kw: Any,
    ) -> Op:
        outcome = kw.pop("outcome", "ok")
        client_zxid = None
        if ret is not None:
            self.seen[process] = max(self.seen.get(process, 0), self.zxid)
            client_zxid = self.seen[process]
        fields: dict[str, Any] = {"value": None, "expected_version": None}
        fields.update(kw)
        op = Op(
            index=len(self.ops),
            process=process,
            member=MEMBERS[process % len(MEMBERS)],
            session=session,
            kind=kind,
            key=key,
            call=call,
            ret=ret,
            outcome=outcome if ret is not None else "unknown",
            client_zxid=client_zxid,
            **fields,
        )
        self.ops.append(op)
        return op

    def _set(self, key: str, value: bytes) -> tuple[int, int]:
        self.zxid += 1
        version = self.registers[key][1] + 1
        self.registers[key] = (value, version, self.zxid)
        return version, self.zxid

    def write(
        self, p: int, s: int, key: str, value: bytes, call: float, ret: float | None, applied: bool = True
    ) -> Op:
        version, mzxid = self._set(key, value) if applied else (None, None)
        if ret is None:
            return self._op(p, s, "write", key, call, None, value=value, error="ConnectionLoss")
        return self._op(p, s, "write", key, call, ret, value=value, version=version, mzxid=mzxid)

    def cas(self, p: int, s: int, key: str, value: bytes, expected: int, call: float, ret: float) -> Op:
        if self.registers[key][1] != expected:
            return self._op(
                p,
                s,
                "cas",
                key,
                call,
                ret,
                value=value,
                expected_version=expected,
                outcome="fail",
                error="BadVersionError",
            )
        version, mzxid = self._set(key, value)
        return self._op(
            p, s, "cas", key, call, ret, value=value, expected_version=expected, version=version, mzxid=mzxid
        )

    def read(self, p: int, s: int, key: str, call: float, ret: float | None) -> Op:
        if ret is None:
            return self._op(p, s, "read", key, call, None, error="ConnectionLoss")
        data, version, mzxid = self.registers[key]
        return self._op(p, s, "read", key, call, ret, read_value=data, version=version, mzxid=mzxid)

    def seq_create(self, p: int, s: int, prefix: str, call: float, ret: float) -> Op:
        self.zxid += 1
        path = f"{prefix}{self.seq:010d}"
        self.seq += 1
        self.seq_children.append(path)
        return self._op(p, s, "seq_create", prefix, call, ret, path=path)

    def ephemeral(self, p: int, s: int, path: str, call: float, ret: float) -> Op:
        self.zxid += 1
        self.ephemerals[path] = s
        return self._op(p, s, "ephemeral", path, call, ret, path=path)

    def event(self, p: int, s: int, kind: str, time: float) -> None:
        self.events.append(SessionEvent(process=p, session=s, kind=kind, time=time))

    def expire(self, s: int) -> None:
        self.zxid += 1  # closeSession is a transaction
        self.ephemerals = {path: owner for path, owner in self.ephemerals.items() if owner != s}

    def final(self) -> FinalState:
        def member() -> MemberState:
            return MemberState(
                last_zxid=self.zxid,
                registers=dict(self.registers),
                seq_children=list(self.seq_children),
                ephemerals=dict(self.ephemerals),
            )

        return FinalState(members={sid: member() for sid in MEMBERS})


S0, S1, S2, S2B = 0x100, 0x200, 0x300, 0x301


def clean_run() -> History:
    """Three processes, overlapping writes, a cas that wins and one that loses, reads, sequential
    creates, an op lost in a connection loss, and p2's session expiring and being replaced."""
    sim = Sim()
    for p, s in ((0, S0), (1, S1), (2, S2)):
        sim.event(p, s, "established", 0.0)
    sim.ephemeral(0, S0, "/e/p0", 0.5, 0.6)
    sim.ephemeral(1, S1, "/e/p1", 0.5, 0.7)
    sim.ephemeral(2, S2, "/e/p2", 0.5, 0.8)
    sim.write(0, S0, "/r/a", b"a1", 1.0, 3.0)
    sim.write(1, S1, "/r/a", b"a2", 1.5, 2.5)
    sim.read(2, S2, "/r/a", 2.0, 4.0)  # sees a2
    sim.cas(0, S0, "/r/a", b"a3", 2, 4.0, 5.0)  # wins
    sim.cas(1, S1, "/r/a", b"a3'", 1, 4.2, 5.2)  # BadVersion
    sim.write(2, S2, "/r/b", b"b1", 5.0, 6.0)
    sim.read(0, S0, "/r/b", 6.5, 7.0)
    sim.seq_create(1, S1, "/q/n-", 7.0, 8.0)
    sim.seq_create(0, S0, "/q/n-", 7.1, 8.1)
    sim.write(2, S2, "/r/b", b"b2", 9.0, None)  # connection lost, but it went through
    sim.expire(S2)
    sim.event(2, S2, "expired", 20.0)
    sim.event(2, S2B, "established", 21.0)
    sim.ephemeral(2, S2B, "/e/p2", 22.0, 23.0)
    sim.read(1, S1, "/r/b", 24.0, 25.0)  # sees b2
    sim.write(0, S0, "/r/a", b"a4", 26.0, None, applied=False)  # connection lost, never applied
    sim.seq_create(2, S2B, "/q/n-", 27.0, 28.0)
    sim.read(1, S1, "/r/a", 29.0, 30.0)  # sees a3
    sim.read(2, S2B, "/r/a", 29.5, None)  # no answer: constrains nothing
    ends = (
        ClientEnd(process=0, session=S0, connected=True, ephemeral_path="/e/p0"),
        ClientEnd(process=1, session=S1, connected=True, ephemeral_path="/e/p1"),
        ClientEnd(process=2, session=S2B, connected=True, ephemeral_path="/e/p2"),
    )
    return History(ops=tuple(sim.ops), events=tuple(sim.events), final=sim.final(), ends=ends)


def run(h: History) -> dict[str, Verdict]:
    verdicts = check_all(list(h.ops), list(h.events), h.final, list(h.ends))
    assert {v.name for v in verdicts} == CHECKERS
    return {v.name: v for v in verdicts}


def failing(h: History) -> dict[str, Verdict]:
    return {name: v for name, v in run(h).items() if v.ok is not True}


def replace_op(h: History, index: int, **changes: Any) -> History:
    ops = list(h.ops)
    ops[index] = attrs.evolve(ops[index], **changes)
    return attrs.evolve(h, ops=tuple(ops))


def edit_members(h: History, edit: Callable[[int, MemberState], MemberState]) -> History:
    assert h.final is not None
    return attrs.evolve(
        h, final=FinalState(members={sid: edit(sid, m) for sid, m in h.final.members.items()})
    )


def find(h: History, **match: object) -> Op:
    (op,) = [op for op in h.ops if all(getattr(op, k) == v for k, v in match.items())]
    return op


# ---------------------------------------------------------------------------


def test_clean_run_passes_every_checker() -> None:
    verdicts = run(clean_run())
    assert all(v.ok is True and v.count == 0 for v in verdicts.values()), verdicts
    assert "2 registers" in verdicts["linearizable_registers"].detail


def test_stale_read() -> None:
    h = clean_run()
    last = find(h, process=1, key="/r/a", kind="read")
    a2 = find(h, value=b"a2")
    # p1's last read returns a2 although the cas to a3 completed long before.
    bad = failing(replace_op(h, last.index, read_value=b"a2", version=2, mzxid=a2.mzxid))
    assert set(bad) == {"linearizable_registers"}
    assert bad["linearizable_registers"].count == 1
    assert bad["linearizable_registers"].detail.startswith("/r/a: not linearizable")
    assert f"#{last.index} " in bad["linearizable_registers"].detail


def test_read_of_an_unknown_write_that_never_happened() -> None:
    h = clean_run()
    last = find(h, process=1, key="/r/a", kind="read")
    # a4 was sent (outcome unknown) before this read: seeing it is fine as far as the read goes ...
    h2 = replace_op(h, last.index, read_value=b"a4", version=4)
    bad = failing(h2)
    # ... but then the final state (a3, v3) cannot follow it.
    assert set(bad) == {"linearizable_registers"}


def test_dropped_acknowledged_write() -> None:
    h = clean_run()
    a2 = find(h, value=b"a2")

    def lose_cas(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(m, registers={**m.registers, "/r/a": (b"a2", 2, a2.mzxid)})

    bad = failing(edit_members(h, lose_cas))
    assert set(bad) == {"linearizable_registers", "acknowledged_writes_present"}
    assert bad["acknowledged_writes_present"].count == 1
    assert "lost: #" in bad["acknowledged_writes_present"].detail
    assert "ends at v2" in bad["acknowledged_writes_present"].detail


def test_dropped_sequential_node() -> None:
    h = clean_run()

    def lose(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(m, seq_children=[c for c in m.seq_children if not c.endswith("1")])

    bad = failing(edit_members(h, lose))
    assert set(bad) == {"acknowledged_writes_present"}
    assert "/q/n-0000000001" in bad["acknowledged_writes_present"].detail
    assert "missing on members [1, 2, 3]" in bad["acknowledged_writes_present"].detail


def test_duplicate_sequence_number_returned() -> None:
    h = clean_run()
    second = find(h, path="/q/n-0000000001")
    bad = failing(replace_op(h, second.index, path="/q/n-0000000000"))
    assert set(bad) == {"unique_sequence_numbers"}
    assert bad["unique_sequence_numbers"].count == 1
    assert "/q/n-0000000000 2 times" in bad["unique_sequence_numbers"].detail


def test_duplicate_sequence_number_under_another_prefix() -> None:
    h = clean_run()
    # Another client's prefix, same parent: the counter is per parent, so the number is taken.
    extra = find(h, path="/q/n-0000000002")
    h2 = replace_op(h, extra.index, key="/q/m-", path="/q/m-0000000001")

    def rename(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(
            m, seq_children=[c.replace("n-0000000002", "m-0000000001") for c in m.seq_children]
        )

    bad = failing(edit_members(h2, rename))
    assert set(bad) == {"unique_sequence_numbers"}
    # Both among the paths returned and in every member's children.
    assert bad["unique_sequence_numbers"].count == 1 + len(MEMBERS)
    assert "sequence number 1 under /q" in bad["unique_sequence_numbers"].detail


def test_write_on_expired_session() -> None:
    h = clean_run()
    b2 = find(h, value=b"b2")
    # An ok read on p2's old session, invoked after the client saw that session expire.
    late = Op(
        index=len(h.ops),
        process=2,
        member=3,
        session=S2,
        kind="read",
        key="/r/b",
        value=None,
        expected_version=None,
        call=20.5,
        ret=20.6,
        outcome="ok",
        read_value=b"b2",
        version=2,
        mzxid=b2.mzxid,
    )
    bad = failing(attrs.evolve(h, ops=(*h.ops, late)))
    assert set(bad) == {"session_safety"}
    assert "succeeded on session 0x300 expired at 20.000" in bad["session_safety"].detail


def test_op_after_the_ephemeral_vanished() -> None:
    h = clean_run()
    # No client saw an expiry, but an observer saw p0's ephemeral go at 5.0; p0 went on with a read
    # (6.5) and a sequential create (7.1) on that session, and both succeeded.
    gone = SessionEvent(process=0, session=S0, kind="ephemeral_gone", time=5.0)
    bad = failing(attrs.evolve(h, events=(*h.events, gone)))
    assert set(bad) == {"session_safety"}
    assert bad["session_safety"].count == 2
    assert "succeeded on session 0x100 expired at 5.000" in bad["session_safety"].detail


def test_leftover_ephemeral_of_expired_session() -> None:
    h = clean_run()

    def leave(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(m, ephemerals={**m.ephemerals, "/e/p2-old": S2})

    bad = failing(edit_members(h, leave))
    assert set(bad) == {"session_safety"}
    assert (
        "ephemeral /e/p2-old of dead session 0x300 remains on members [1, 2, 3]"
        in bad["session_safety"].detail
    )


def test_leftover_ephemeral_on_one_member_is_also_divergence() -> None:
    h = clean_run()

    def leave(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(m, ephemerals={**m.ephemerals, "/e/p2-old": S2}) if sid == 2 else m

    bad = failing(edit_members(h, leave))
    assert set(bad) == {"session_safety", "converged"}
    assert "remains on members [2]" in bad["session_safety"].detail


def test_connected_session_missing_its_ephemeral() -> None:
    h = clean_run()

    def drop(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(m, ephemerals={p: o for p, o in m.ephemerals.items() if p != "/e/p1"})

    bad = failing(edit_members(h, drop))
    assert set(bad) == {"session_safety"}
    assert (
        "p1's live session 0x200 lacks its ephemeral /e/p1 on members [1, 2, 3]"
        in bad["session_safety"].detail
    )


def test_members_diverge_on_a_register() -> None:
    h = clean_run()
    b1 = find(h, value=b"b1")

    def behind(sid: int, m: MemberState) -> MemberState:
        return attrs.evolve(m, registers={**m.registers, "/r/b": (b"b1", 1, b1.mzxid)}) if sid == 3 else m

    verdicts = run(edit_members(h, behind))
    assert verdicts["converged"].ok is False
    assert verdicts["converged"].count == 1
    assert "register /r/b differs" in verdicts["converged"].detail
    # The other checkers cannot use /r/b's final value, and say so rather than guess.
    assert verdicts["acknowledged_writes_present"].ok is None
    assert "/r/b" in verdicts["acknowledged_writes_present"].detail
    others = CHECKERS - {"converged", "acknowledged_writes_present"}
    assert all(verdicts[name].ok is True for name in others)


def test_members_diverge_on_last_zxid_and_sequential_nodes() -> None:
    h = clean_run()

    def behind(sid: int, m: MemberState) -> MemberState:
        if sid != 1:
            return m
        assert m.last_zxid is not None
        return attrs.evolve(m, last_zxid=m.last_zxid - 1, seq_children=[*m.seq_children, "/q/n-0000000009"])

    bad = failing(edit_members(h, behind))
    assert set(bad) == {"converged"}
    assert bad["converged"].count == 2
    assert "last zxid differs" in bad["converged"].detail
    assert "sequential node /q/n-0000000009 only on members [1]" in bad["converged"].detail


def test_unknown_last_zxid_is_not_compared() -> None:
    h = clean_run()
    h2 = edit_members(h, lambda sid, m: attrs.evolve(m, last_zxid=None) if sid == 1 else m)
    assert run(h2)["converged"].ok is True


def test_client_zxid_going_backwards() -> None:
    h = clean_run()
    op = find(h, process=0, kind="read")
    bad = failing(replace_op(h, op.index, client_zxid=1))
    assert set(bad) == {"session_order"}
    # The drop is one violation; the climb back afterwards is not.
    assert bad["session_order"].count == 1
    assert "p0 client zxid went back" in bad["session_order"].detail


def test_read_mzxid_going_backwards() -> None:
    h = clean_run()
    last = find(h, process=1, key="/r/a", kind="read")
    a1 = find(h, value=b"a1")
    # The value is right but the stat is older than p1's own earlier write of a2.
    bad = failing(replace_op(h, last.index, mzxid=a1.mzxid))
    assert set(bad) == {"session_order"}
    assert bad["session_order"].count == 1
    assert "p1 /r/a" in bad["session_order"].detail


def test_session_writes_out_of_order() -> None:
    h = clean_run()
    # p0's cas on /r/a, after its write to /r/a in the same session, with a smaller zxid.
    cas = find(h, process=0, kind="cas")
    bad = failing(replace_op(h, cas.index, mzxid=0))
    assert set(bad) == {"session_order"}
    assert "p0 session 0x100 write order" in bad["session_order"].detail


def test_no_final_state() -> None:
    h = clean_run()
    verdicts = {v.name: v for v in check_all(list(h.ops), list(h.events), None, list(h.ends))}
    assert verdicts["converged"].ok is None
    assert verdicts["acknowledged_writes_present"].ok is None
    assert verdicts["linearizable_registers"].ok is True
    assert verdicts["session_safety"].ok is True


def many_unknown_writes_then(read_version: int, n: int = 16) -> list[Op]:
    sim = Sim(keys=("/r/a",))
    for i in range(n):
        sim.write(i, 0x100 + i, "/r/a", b"x%d" % i, 0.0, None, applied=False)
    ops = [*sim.ops]
    # A read of a value none of the unknown writes wrote: proving that takes trying them all.
    read = sim.read(0, 0x100, "/r/a", 1.0, 2.0)
    ops.append(attrs.evolve(read, read_value=b"nobody", version=read_version, index=len(ops)))
    return ops


def test_budget_exhausted_is_undecided() -> None:
    verdict = linearizable_registers(many_unknown_writes_then(5), [], None, [], max_steps=1000)
    assert verdict.ok is None
    assert verdict.detail == "search budget exhausted for /r/a"
    # Fewer writes, and the search proves it.
    assert linearizable_registers(many_unknown_writes_then(5, n=8), [], None, []).ok is False


def test_versions_prove_what_the_search_cannot() -> None:
    # Version 0 is the initial b"": no search needed to see that b"nobody" was never there.
    verdict = linearizable_registers(many_unknown_writes_then(0), [], None, [], max_steps=1000)
    assert verdict.ok is False
    assert verdict.detail.startswith("/r/a: not linearizable (search: unknown)")
    assert "read b'nobody' at v0, which holds b''" in verdict.detail


def test_version_made_twice() -> None:
    h = clean_run()
    # p1's write of a2 claims version 1, which p0's write of a1 (acknowledged) already made.
    a2 = find(h, value=b"a2")
    verdict = linearizable_registers(list(replace_op(h, a2.index, version=1).ops), [], h.final, [])
    assert verdict.ok is False
    assert "version 1 made twice" in verdict.detail


def test_each_checker_alone() -> None:
    h = clean_run()
    args = (list(h.ops), list(h.events), h.final, list(h.ends))
    for checker in (
        acknowledged_writes_present,
        unique_sequence_numbers,
        session_order,
        converged,
        session_safety,
    ):
        verdict = checker(*args)
        assert verdict.ok is True, verdict


# ---------------------------------------------------------------------------
# the file format


def test_history_round_trip(tmp_path: Path) -> None:
    h = clean_run()
    # Bytes that are not text must survive too.
    h = replace_op(h, 3, value=b'\x00\xff\x80 \n"\\')
    path = tmp_path / "history.jsonl"
    write_history(path, h.ops, h.final, events=h.events, ends=h.ends)
    assert path.read_text().isascii()
    assert read_history(path) == h


def test_history_sorted_by_index_and_truncated_tail(tmp_path: Path) -> None:
    h = clean_run()
    path = tmp_path / "history.jsonl"
    write_history(path, reversed(h.ops), None)
    with path.open("a") as f:
        f.write('{"type": "op", "index": 99')  # the harness died mid-line
    back = read_history(path)
    assert back.ops == h.ops
    assert back.final is None and back.events == () and back.ends == ()


def test_history_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"type": "op"}\n')
    with pytest.raises(ValueError, match="not a trizab-chaos-history file"):
        read_history(path)


def test_op_validates_kind_and_outcome() -> None:
    op = clean_run().ops[0]
    with pytest.raises(ValueError):
        attrs.evolve(op, kind="delete")
    with pytest.raises(ValueError):
        attrs.evolve(op, outcome="maybe")


# ---------------------------------------------------------------------------
# generated sequential runs


@st.composite
def sequential_runs(draw: st.DrawFn) -> Sim:
    """One op at a time on two registers: writes, cas (right or wrong version), reads, lost writes."""
    sim = Sim()
    steps = draw(
        st.lists(
            st.tuples(
                st.sampled_from(["write", "cas", "read", "lost"]),
                st.sampled_from(["/r/a", "/r/b"]),
                st.booleans(),
            ),
            max_size=25,
        )
    )
    for i, (kind, key, flag) in enumerate(steps):
        p = i % 3
        s, t = 0x100 + p, float(2 * i)
        if kind == "write":
            sim.write(p, s, key, b"v%d" % i, t, t + 1)
        elif kind == "cas":
            version = sim.registers[key][1]
            sim.cas(p, s, key, b"v%d" % i, version if flag else version + 1, t, t + 1)
        elif kind == "read":
            sim.read(p, s, key, t, t + 1)
        else:
            sim.write(p, s, key, b"v%d" % i, t, None, applied=flag)
    return sim


@settings(max_examples=60, deadline=None)
@given(sequential_runs())
def test_generated_runs_pass(sim: Sim) -> None:
    verdicts = check_all(sim.ops, sim.events, sim.final(), [])
    assert all(v.ok is True for v in verdicts), verdicts


@settings(max_examples=60, deadline=None)
@given(sequential_runs(), st.data())
def test_a_corrupt_read_value_is_flagged(sim: Sim, data: st.DataObject) -> None:
    reads = [op for op in sim.ops if op.kind == "read" and op.outcome == "ok"]
    if not reads:
        sim.read(0, 0x100, "/r/a", 1000.0, 1001.0)
        reads = [sim.ops[-1]]
    victim = data.draw(st.sampled_from(reads))
    ops = [attrs.evolve(op, read_value=b"corrupt") if op is victim else op for op in sim.ops]
    verdict = linearizable_registers(ops, [], sim.final(), [])
    assert verdict.ok is False
    assert verdict.count == 1
