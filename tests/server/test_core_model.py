"""Stateful test: ServerCore (with pipelined, group-committed writes) against a plain dict model.

Writes are sent without committing, so later writes are prepared against the
outstanding changes of earlier ones (ZooKeeper's ChangeRecords); the model applies
them one by one in send order, which is what the core must be equivalent to.
"""

from __future__ import annotations

from typing import Any

from core_harness import Harness
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from trizab.server.api import Reply
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.wire import records as r
from trizab.wire.codes import CreateMode, Err, OpCode
from trizab.wire.requests import MultiOp, encode_multi

PATHS = ["/a", "/b", "/a/x", "/a/y", "/b/z", "/a/x/q", "/c/d"]
ACL = list(OPEN_ACL_UNSAFE)


class ModelNode:
    def __init__(self, data: bytes, owner: int) -> None:
        self.data = data
        self.version = 0
        self.owner = owner
        self.creates = 0
        self.children: set[str] = set()

    def copy(self) -> ModelNode:
        n = ModelNode(self.data, self.owner)
        n.version, n.creates, n.children = self.version, self.creates, set(self.children)
        return n


def parent(path: str) -> str:
    return path[: path.rfind("/")] or "/"


class Model:
    def __init__(self) -> None:
        self.nodes: dict[str, ModelNode] = {"/": ModelNode(b"", 0)}
        self.nodes["/"].children.add("/zookeeper")  # created at start-up, not counted in cversion

    def copy(self) -> Model:
        m = Model()
        m.nodes = {p: n.copy() for p, n in self.nodes.items()}
        return m

    def create(self, path: str, data: bytes, flags: int, session: int) -> tuple[int, str | None]:
        p = self.nodes.get(parent(path))
        if p is None:
            return Err.NO_NODE, None
        mode = CreateMode(flags)
        if mode.is_sequential:
            path = f"{path}{p.creates:010d}"
        if path in self.nodes:
            return Err.NODE_EXISTS, None
        if p.owner:
            return Err.NO_CHILDREN_FOR_EPHEMERALS, None
        p.creates += 1
        p.children.add(path)
        self.nodes[path] = ModelNode(data, session if mode.is_ephemeral else 0)
        return 0, path

    def delete(self, path: str, version: int) -> int:
        n = self.nodes.get(path)
        if n is None:
            return Err.NO_NODE
        if version != -1 and version != n.version:
            return Err.BAD_VERSION
        if n.children:
            return Err.NOT_EMPTY
        del self.nodes[path]
        self.nodes[parent(path)].children.discard(path)
        return 0

    def set_data(self, path: str, data: bytes, version: int) -> int:
        n = self.nodes.get(path)
        if n is None:
            return Err.NO_NODE
        if version != -1 and version != n.version:
            return Err.BAD_VERSION
        n.data = data
        n.version += 1
        return 0

    def close(self, session: int) -> None:
        for path in sorted((p for p, n in self.nodes.items() if n.owner == session), reverse=True):
            del self.nodes[path]
            self.nodes[parent(path)].children.discard(path)


class CoreVsModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.h = Harness()
        self.conns: list[int] = []
        self.sids: list[int] = []
        for _ in range(2):
            c, resp = self.h.session()
            self.conns.append(c)
            self.sids.append(resp.session_id)
        self.h.auto_commit = False
        self.model = Model()
        self.expected: dict[int, list[tuple[int, Any]]] = {c: [] for c in self.conns}
        self.writers: set[int] = set()  # connections with writes sent since the last commit

    def _expect(self, i: int, xid: int, check: Any) -> None:
        self.expected[self.conns[i]].append((xid, check))
        if check[0] != "read":
            self.writers.add(i)

    @rule(
        i=st.integers(0, 1), path=st.sampled_from(PATHS), data=st.binary(max_size=3), flags=st.integers(0, 3)
    )
    def create(self, i: int, path: str, data: bytes, flags: int) -> None:
        err, name = self.model.create(path, data, flags, self.sids[i])
        xid = self.h.send(self.conns[i], OpCode.CREATE, r.CreateRequest(path, data, ACL, flags))
        self._expect(i, xid, (err, name))

    @rule(i=st.integers(0, 1), path=st.sampled_from(PATHS), vdelta=st.sampled_from([None, 0, 1]))
    def delete(self, i: int, path: str, vdelta: int | None) -> None:
        n = self.model.nodes.get(path)
        version = -1 if vdelta is None or n is None else n.version + vdelta
        err = self.model.delete(path, version)
        xid = self.h.send(self.conns[i], OpCode.DELETE, r.DeleteRequest(path, version))
        self._expect(i, xid, (err, None))

    @rule(
        i=st.integers(0, 1),
        path=st.sampled_from(PATHS),
        data=st.binary(max_size=3),
        vdelta=st.sampled_from([None, 0, 1]),
    )
    def set_data(self, i: int, path: str, data: bytes, vdelta: int | None) -> None:
        n = self.model.nodes.get(path)
        version = -1 if vdelta is None or n is None else n.version + vdelta
        err = self.model.set_data(path, data, version)
        xid = self.h.send(self.conns[i], OpCode.SET_DATA, r.SetDataRequest(path, data, version))
        self._expect(i, xid, (err, None))

    @rule(i=st.integers(0, 1), path=st.sampled_from(PATHS))
    def get_data(self, i: int, path: str) -> None:
        # Another connection's uncommitted writes are invisible; the model cannot say which
        # of them a read sees, so only read when they are all ours (queued behind them).
        if self.writers - {i}:
            return
        n = self.model.nodes.get(path)
        xid = self.h.send(self.conns[i], OpCode.GET_DATA, r.GetDataRequest(path, False))
        self._expect(i, xid, ("read", None if n is None else (n.data, n.version)))

    @rule(
        i=st.integers(0, 1),
        ops=st.lists(
            st.tuples(
                st.sampled_from(["create", "delete", "set"]), st.sampled_from(PATHS), st.integers(0, 3)
            ),
            min_size=1,
            max_size=4,
        ),
    )
    def multi(self, i: int, ops: list[tuple[str, str, int]]) -> None:
        trial = self.model.copy()
        results: list[int] = []
        mops: list[MultiOp] = []
        for kind, path, arg in ops:
            if kind == "create":
                mops.append(MultiOp(OpCode.CREATE, r.CreateRequest(path, b"m", ACL, arg)))
            elif kind == "delete":
                mops.append(MultiOp(OpCode.DELETE, r.DeleteRequest(path, -1)))
            else:
                mops.append(MultiOp(OpCode.SET_DATA, r.SetDataRequest(path, b"s", -1)))
        for kind, path, arg in ops:
            if kind == "create":
                err, _ = trial.create(path, b"m", arg, self.sids[i])
            elif kind == "delete":
                err = trial.delete(path, -1)
            else:
                err = trial.set_data(path, b"s", -1)
            results.append(err)
            if err:
                break
        if any(results):
            k = len(results) - 1
            expect = [0] * k + [results[-1]] + [Err.RUNTIME_INCONSISTENCY] * (len(ops) - k - 1)
            check = ("multi", [(OpCode.ERROR, e) for e in expect])
        else:
            self.model = trial
            check = (
                "multi",
                [
                    ({"create": OpCode.CREATE, "delete": OpCode.DELETE, "set": OpCode.SET_DATA}[k], 0)
                    for k, _, _ in ops
                ],
            )
        xid = self.h.send(self.conns[i], OpCode.MULTI, encode_multi(mops))
        self._expect(i, xid, check)

    @rule()
    def commit(self) -> None:
        self.h.commit()
        for c in self.conns:
            replies = [o for o in self.h.take(c) if isinstance(o, Reply)]
            exp = self.expected[c]
            assert [rep.header.xid for rep in replies] == [x for x, _ in exp]
            for rep, (_, check) in zip(replies, exp, strict=True):
                self._check(rep, check)
            exp.clear()
        self.writers.clear()
        self._compare_trees()

    @precondition(lambda self: not self.h.uncommitted and not any(self.expected.values()))
    @rule(i=st.integers(0, 1))
    def new_session(self, i: int) -> None:
        self.h.auto_commit = True
        self.h.call(self.conns[i], OpCode.CLOSE_SESSION)
        self.model.close(self.sids[i])
        c, resp = self.h.session()
        self.expected[c] = self.expected.pop(self.conns[i])
        self.conns[i], self.sids[i] = c, resp.session_id
        self.h.auto_commit = False

    def _check(self, rep: Reply, check: Any) -> None:
        if check[0] == "read":
            if check[1] is None:
                assert rep.header.err == Err.NO_NODE
            else:
                assert rep.header.err == 0
                assert (rep.body.data, rep.body.stat.version) == check[1]
        elif check[0] == "multi":
            assert rep.header.err == 0
            assert [(x.type, x.err) for x in rep.body.results] == check[1]
        else:
            err, name = check
            assert rep.header.err == err
            if name is not None:
                assert rep.body.path == name

    def _compare_trees(self) -> None:
        nodes = self.h.core.tree.nodes
        mine = {p for p in nodes if not p.startswith("/zookeeper")}
        assert mine == set(self.model.nodes)
        for path, m in self.model.nodes.items():
            st_ = nodes[path].stat()
            assert nodes[path].data == m.data and st_.version == m.version
            assert st_.num_children == len(m.children)
            assert st_.cversion == 2 * m.creates - len(m.children)
            assert st_.ephemeral_owner == m.owner

    @invariant()
    def zxids_only_grow(self) -> None:
        zxids = [t.zxid for t in self.h.log]
        assert zxids == sorted(set(zxids))


CoreVsModel.TestCase.settings = settings(
    max_examples=40, stateful_step_count=25, derandomize=True, deadline=None
)
TestCoreVsModel = CoreVsModel.TestCase
