"""Fuzzy snapshots: a walk interleaved with transactions, plus log replay, equals the live tree.

The live tree applies a random stream of valid transactions (the kinds a server
logs: creates of every type, deletes, setData, setACL, sessions opening and
closing with their ephemerals, multis, error txns).  A :class:`SnapshotWriter`
walks it a few nodes at a time while transactions keep arriving.  Recovery then
loads the snapshot into a fresh :class:`ServerCore` and replays every
transaction after the snapshot's zxid, as ``Storage.open`` would hand them over;
the recovered tree must equal the live one in every node field, the ephemeral,
container and TTL indexes, and the session table.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from trizab.server.core import CoreConfig, ServerCore
from trizab.storage import Recovered
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.tree.datatree import NORMAL, DataTree, child_names, ephemeral_kind
from trizab.tree.snapshot import SnapshotWriter, deserialize_snapshot, serialize_snapshot
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import Err, OpCode
from trizab.wire.jute import encode

NAMES = ("a", "b", "c")
MAX_DEPTH = 3
ACLS = (
    list(OPEN_ACL_UNSAFE),
    [r.ACL(1, r.Id("world", "anyone"))],
    [r.ACL(31, r.Id("digest", "u:hash")), r.ACL(1, r.Id("world", "anyone"))],
)
SPECIAL = ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")


class TxnSource:
    """Valid transactions for the tree's current state, as a server's prep would log them."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.zxid = 0
        self.next_session = 0x1000

    def _header(self, client: int, op: int) -> r.TxnHeader:
        self.zxid += 1
        return r.TxnHeader(client, self.zxid, self.zxid, 1_000_000 + 10 * self.zxid, int(op))

    def _parents(self, tree: DataTree) -> list[str]:
        out = []
        for path, node in tree.nodes.items():
            if path.startswith("/zookeeper") or (path.count("/") >= MAX_DEPTH and path != "/"):
                continue
            if ephemeral_kind(node.ephemeral_owner, True) == NORMAL:
                continue  # ephemerals have no children
            out.append(path)
        return out

    def _free_child(self, tree: DataTree, parent: str) -> str | None:
        prefix = "/" if parent == "/" else parent + "/"
        free = [prefix + n for n in NAMES if prefix + n not in tree.nodes]
        return self.rng.choice(free) if free else None

    def _leaves(self, tree: DataTree) -> list[str]:
        return [p for p, n in tree.nodes.items() if p not in SPECIAL and not n.children]

    def _plain(self, tree: DataTree) -> list[str]:
        return [p for p in tree.nodes if p not in SPECIAL]

    def _create(self, tree: DataTree, sessions: list[int]) -> tuple[int, int, object] | None:
        rng = self.rng
        parent = rng.choice(self._parents(tree))
        path = self._free_child(tree, parent)
        if path is None:
            return None
        pcv = tree.nodes[parent].cversion + 1
        data = rng.choice([b"", b"x", b"payload", None])
        acl = rng.choice(ACLS)
        kind = rng.randrange(5)
        if kind == 0 and sessions:
            sid = rng.choice(sessions)
            return sid, OpCode.CREATE, r.CreateTxn(path, data, acl, True, pcv)
        if kind == 1:
            return 0, OpCode.CREATE_CONTAINER, r.CreateContainerTxn(path, data, acl, pcv)
        if kind == 2:
            return 0, OpCode.CREATE_TTL, r.CreateTTLTxn(path, data, acl, pcv, rng.randrange(1, 10_000))
        op = OpCode.CREATE2 if kind == 3 else OpCode.CREATE
        return 0, op, r.CreateTxn(path, data, acl, False, pcv)

    def next(self, tree: DataTree) -> Txn:
        rng = self.rng
        sessions = list(tree.sessions)
        while True:
            roll = rng.random()
            choice: tuple[int, int, object] | None = None
            if roll < 0.35:
                choice = self._create(tree, sessions)
            elif roll < 0.55:
                leaves = self._leaves(tree)
                if leaves:
                    path = rng.choice(leaves)
                    owner = tree.nodes[path].ephemeral_owner
                    op = OpCode.DELETE_CONTAINER if ephemeral_kind(owner, True) == 2 else OpCode.DELETE
                    choice = 0, op, r.DeleteTxn(path)
            elif roll < 0.7:
                plain = self._plain(tree)
                if plain:
                    path = rng.choice(plain)
                    version = tree.nodes[path].version + 1
                    choice = 0, OpCode.SET_DATA, r.SetDataTxn(path, rng.choice([b"v", b"vv", None]), version)
            elif roll < 0.75:
                plain = self._plain(tree)
                if plain:
                    path = rng.choice(plain)
                    version = tree.nodes[path].aversion + 1
                    choice = 0, OpCode.SET_ACL, r.SetACLTxn(path, rng.choice(ACLS), version)
            elif roll < 0.82:
                self.next_session += 1
                choice = self.next_session, OpCode.CREATE_SESSION, r.CreateSessionTxn(30_000)
            elif roll < 0.87:
                if sessions:
                    sid = rng.choice(sessions)
                    paths = sorted(tree.ephemerals.get(sid, ()))
                    choice = sid, OpCode.CLOSE_SESSION, r.CloseSessionTxn(paths)
            elif roll < 0.95:
                choice = self._multi(tree)
            else:
                choice = 0, OpCode.ERROR, r.ErrorTxn(int(Err.NO_NODE))
            if choice is not None:
                client, op, body = choice
                return Txn(self._header(client, op), body)

    def _multi(self, tree: DataTree) -> tuple[int, int, object] | None:
        """create + setData + delete on unrelated paths, valid in sequence (one MultiTxn)."""
        rng = self.rng
        subs: list[r.Txn] = []
        leaves = self._leaves(tree)
        doomed = rng.choice(leaves) if leaves and rng.random() < 0.7 else None
        if doomed is not None:
            subs.append(r.Txn(int(OpCode.DELETE), encode(r.DeleteTxn(doomed))))
        parents = [p for p in self._parents(tree) if p != doomed]
        parent = rng.choice(parents)
        path = self._free_child(tree, parent)
        if path is not None:
            pcv = tree.nodes[parent].cversion + 1
            subs.append(r.Txn(int(OpCode.CREATE), encode(r.CreateTxn(path, b"m", ACLS[0], False, pcv))))
        plain = [p for p in self._plain(tree) if p != doomed]
        if plain:
            target = rng.choice(plain)
            version = tree.nodes[target].version + 1
            subs.append(r.Txn(int(OpCode.SET_DATA), encode(r.SetDataTxn(target, b"mm", version))))
        if not subs:
            return None
        rng.shuffle(subs)  # the paths are unrelated, so any order is valid
        return 0, OpCode.MULTI, r.MultiTxn(subs)


def apply(tree: DataTree, txn: Txn) -> None:
    rc = tree.process_txn(txn.header, txn.body)
    tree.events.clear()
    assert rc.err == 0 or txn.header.type == OpCode.ERROR, (txn, rc.err)


def tree_state(tree: DataTree) -> dict[str, object]:
    nodes = {
        path: (
            n.data,
            tuple(n.acl),
            n.czxid,
            n.mzxid,
            n.ctime,
            n.mtime,
            n.version,
            n.cversion,
            n.aversion,
            n.ephemeral_owner,
            n.pzxid,
            n.client_owner,
            sorted(n.children),
            n.stat(),
        )
        for path, n in tree.nodes.items()
    }
    return {
        "nodes": nodes,
        "ephemerals": {sid: sorted(ps) for sid, ps in tree.ephemerals.items() if ps},
        "containers": sorted(tree.containers),
        "ttls": sorted(tree.ttls),
        "sessions": dict(tree.sessions),
        "zxid": tree.last_processed_zxid,
    }


def recover(snapshot: bytes, snapshot_zxid: int, log: list[Txn]) -> DataTree:
    """What a restart does: ServerCore.load over the snapshot and the log after its zxid."""
    core = ServerCore(CoreConfig(extended_types_enabled=True), now_ms=0)
    after = [t for t in log if t.zxid > snapshot_zxid]
    core.load(Recovered(snapshot, snapshot_zxid, after, 0, 0))
    return core.tree


def run_fuzzy(seed: int, *, before: int, during: int, after: int, step_nodes: int) -> None:
    rng = random.Random(seed)
    source = TxnSource(rng)
    live = DataTree(extended_types=True)
    log: list[Txn] = []

    def one() -> None:
        txn = source.next(live)
        apply(live, txn)
        log.append(txn)

    for _ in range(before):
        one()
    writer = SnapshotWriter(live)
    start_zxid = live.last_processed_zxid
    assert writer.zxid == start_zxid
    pending = during
    while True:
        # Between steps: zero or more transactions, as requests arrive between checkpoints.
        while pending and rng.random() < 0.7:
            one()
            pending -= 1
        if writer.step(rng.randint(1, step_nodes)):
            break
    for _ in range(pending + after):
        one()
    snapshot = writer.result()
    assert writer.zxid == start_zxid

    recovered = recover(snapshot, writer.zxid, log)
    assert tree_state(recovered) == tree_state(live)
    # The recovered tree serialises to the same snapshot as the live one taken now.
    assert serialize_snapshot(recovered) == serialize_snapshot(live)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    before=st.integers(0, 80),
    during=st.integers(0, 120),
    after=st.integers(0, 20),
    step_nodes=st.integers(1, 6),
)
def test_fuzzy_snapshot_plus_replay_equals_live_tree(
    seed: int, before: int, during: int, after: int, step_nodes: int
) -> None:
    run_fuzzy(seed, before=before, during=during, after=after, step_nodes=step_nodes)


def test_fuzzy_snapshot_long_runs() -> None:
    # Longer histories than the hypothesis examples: deep churn, many sessions.
    for seed in range(12):
        run_fuzzy(seed, before=400, during=600, after=50, step_nodes=3)


def test_snapshot_zxid_is_the_start_and_later_txns_may_show() -> None:
    live = DataTree(extended_types=True)
    source = TxnSource(random.Random(7))
    log = []
    for _ in range(30):
        txn = source.next(live)
        apply(live, txn)
        log.append(txn)
    writer = SnapshotWriter(live)
    zxid = live.last_processed_zxid
    writer.step(1)  # the root only
    created = Txn(
        r.TxnHeader(0, 999, zxid + 1, 5, int(OpCode.CREATE)),
        r.CreateTxn("/late", b"z", list(OPEN_ACL_UNSAFE), False, live.nodes["/"].cversion + 1),
    )
    apply(live, created)
    log.append(created)
    while not writer.step(2):
        pass
    assert writer.zxid == zxid
    loaded = DataTree(extended_types=True)
    deserialize_snapshot(loaded, writer.result())
    # "/late" was created behind the walk (the root was already copied): only the log has it.
    assert "/late" not in loaded.nodes
    assert "/late" in recover(writer.result(), zxid, log).nodes


def test_replay_tolerates_what_the_snapshot_already_holds() -> None:
    """Create of an existing node and delete of a missing one leave the replayed tree right."""
    acl = list(OPEN_ACL_UNSAFE)

    def txn(zxid: int, op: int, body: object) -> Txn:
        return Txn(r.TxnHeader(0, zxid, zxid, zxid, op), body)

    histories = [
        [
            txn(1, OpCode.CREATE, r.CreateTxn("/p", b"", acl, False, 1)),
            txn(2, OpCode.CREATE, r.CreateTxn("/p/c", b"1", acl, False, 1)),
            txn(3, OpCode.DELETE, r.DeleteTxn("/p/c")),
            txn(4, OpCode.DELETE, r.DeleteTxn("/p")),
            txn(5, OpCode.CREATE2, r.CreateTxn("/p", b"again", acl, False, 2)),
            txn(6, OpCode.CREATE, r.CreateTxn("/p/c", b"2", acl, False, 1)),
        ],
        [
            # Replaying "delete /p" strands the snapshot's /p/c; the replayed create of
            # /p/c (which finds it) must hang it under the re-created /p again.
            txn(1, OpCode.CREATE, r.CreateTxn("/p", b"", acl, False, 1)),
            txn(2, OpCode.DELETE, r.DeleteTxn("/p")),
            txn(3, OpCode.CREATE_CONTAINER, r.CreateContainerTxn("/p", b"", acl, 2)),
            txn(4, OpCode.CREATE, r.CreateTxn("/p/c", b"c", acl, False, 1)),
        ],
    ]
    for history in histories:
        t = DataTree()
        for x in history:
            apply(t, x)
        # A snapshot "at zxid 0" that already holds the final state (the most fuzzy possible):
        replayed = recover(serialize_snapshot(t), 0, history)
        assert tree_state(replayed) == tree_state(t)
        assert child_names(replayed.nodes["/p"]) == ["c"]
