"""The tree's compact node layout: what it shares, what it leaves out, and what a znode costs."""

from __future__ import annotations

import gc
import tracemalloc

from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.tree.datatree import (
    NO_CHILDREN,
    DataTree,
    Node,
    OwnedNode,
    ServerOwnedNode,
    child_names,
)
from trizab.tree.snapshot import deserialize_snapshot, serialize_snapshot
from trizab.wire import records as r
from trizab.wire.codes import CONTAINER_EPHEMERAL_OWNER, TTL_EPHEMERAL_OWNER_MASK, OpCode

ACL = list(OPEN_ACL_UNSAFE)
SESSION = 0x0100000000000001


def create(tree: DataTree, zxid: int, path: str, *, owner: int = 0, time: int = 1000) -> r.Stat | None:
    parent = tree.nodes[path[: path.rfind("/")] or "/"]
    body = r.CreateTxn(path, b"v", ACL, owner != 0, parent.cversion + 1)
    return tree.process_txn(r.TxnHeader(owner, 1, zxid, time, int(OpCode.CREATE2)), body).stat


def test_children_are_listed_by_the_strings_that_key_the_tree() -> None:
    tree = DataTree()
    create(tree, 1, "/a")
    create(tree, 2, "/a/b")
    create(tree, 3, "/a/c")
    keys = {id(k) for k in tree.nodes}
    assert all(id(p) in keys for p in tree.nodes["/a"].children)
    assert child_names(tree.nodes["/a"]) == ["b", "c"]
    assert child_names(tree.nodes["/"]) == ["zookeeper", "a"]
    assert tree.nodes["/a/b"].children is NO_CHILDREN
    for zxid, path in ((4, "/a/b"), (5, "/a/c")):
        tree.process_txn(r.TxnHeader(0, 1, zxid, 1000, int(OpCode.DELETE)), r.DeleteTxn(path))
    assert tree.nodes["/a"].children is NO_CHILDREN  # the last child gone: back to the shared tuple
    assert tree.nodes["/a"].stat().num_children == 0


def test_a_loaded_tree_shares_its_keys_too_and_equals_the_original() -> None:
    tree = DataTree()
    create(tree, 1, "/a")
    create(tree, 2, "/a/b")
    loaded = DataTree()
    deserialize_snapshot(loaded, serialize_snapshot(tree))
    keys = {id(k) for k in loaded.nodes}
    assert all(id(p) in keys for n in loaded.nodes.values() for p in n.children)
    assert {p: (n.stat(), child_names(n)) for p, n in loaded.nodes.items()} == {
        p: (n.stat(), child_names(n)) for p, n in tree.nodes.items()
    }


def test_only_owned_nodes_carry_an_owner() -> None:
    tree = DataTree(extended_types=True)
    create(tree, 1, "/plain")
    create(tree, 2, "/eph", owner=SESSION)
    ttl_owner = TTL_EPHEMERAL_OWNER_MASK | 5000
    container = tree.process_txn(
        r.TxnHeader(SESSION, 2, 3, 1000, int(OpCode.CREATE_CONTAINER)),
        r.CreateContainerTxn("/box", b"", ACL, 2),
    )
    ttl = tree.process_txn(
        r.TxnHeader(SESSION, 3, 4, 1000, int(OpCode.CREATE_TTL)),
        r.CreateTTLTxn("/ttl", b"", ACL, 3, 5000),
    )
    nodes = tree.nodes
    assert type(nodes["/plain"]) is Node and nodes["/plain"].ephemeral_owner == 0
    assert type(nodes["/eph"]) is OwnedNode and nodes["/eph"].stat().ephemeral_owner == SESSION
    assert type(nodes["/box"]) is ServerOwnedNode
    assert nodes["/box"].ephemeral_owner == CONTAINER_EPHEMERAL_OWNER
    assert container.stat is not None and container.stat.ephemeral_owner == 0
    assert nodes["/ttl"].ephemeral_owner == ttl_owner
    assert ttl.stat is not None and ttl.stat.ephemeral_owner == 0
    assert tree.ephemerals == {SESSION: {"/eph": None}}
    # The snapshot keeps the raw owner; loading picks the same classes.
    loaded = DataTree(extended_types=True)
    deserialize_snapshot(loaded, serialize_snapshot(tree))
    assert {p: type(n) for p, n in loaded.nodes.items()} == {p: type(n) for p, n in nodes.items()}
    assert loaded.nodes["/ttl"].persisted() == nodes["/ttl"].persisted()


def test_without_extended_types_a_ttl_shaped_owner_is_a_session() -> None:
    tree = DataTree(extended_types=False)
    owner = TTL_EPHEMERAL_OWNER_MASK | 7
    create(tree, 1, "/e", owner=owner)
    assert type(tree.nodes["/e"]) is OwnedNode
    assert tree.nodes["/e"].stat().ephemeral_owner == owner


def test_replay_builds_no_stats() -> None:
    tree = DataTree()
    create(tree, 1, "/a")
    header = r.TxnHeader(0, 1, 2, 2000, int(OpCode.SET_DATA))
    rc = tree.process_txn(header, r.SetDataTxn("/a", b"new", 1), stats=False)
    assert rc.stat is None and rc.err == 0
    assert tree.nodes["/a"]._stat is None
    assert tree.nodes["/a"].data == b"new" and tree.nodes["/a"].stat().mzxid == 2


def test_a_loaded_znode_costs_what_the_layout_promises() -> None:
    """A budget, so a change that puts an object back on every znode fails here.

    20,000 leaves with 32-byte values and 12-character paths, loaded from a snapshot: 325 bytes
    each measured with the compact layout (the previous layout took 587).
    """
    count = 20_000
    tree = DataTree()
    create(tree, 1, "/p")
    for i in range(count):
        body = r.CreateTxn(f"/p/n{i:05d}", bytes([i % 251]) * 32, ACL, False, i + 1)
        tree.process_txn(r.TxnHeader(0, 1, 2 + i, 1000 + i // 30, int(OpCode.CREATE)), body)
    snapshot = serialize_snapshot(tree)
    del tree
    gc.collect()
    tracemalloc.start()
    try:
        loaded = DataTree()
        deserialize_snapshot(loaded, snapshot)
        traced, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(loaded.nodes) == count + 5
    assert traced / count < 360


def test_a_loaded_node_has_every_slot_a_built_one_has() -> None:
    # The snapshot loader fills a plain Node's slots itself (faster than calling Node(...)):
    # a slot added to Node and forgotten there would be missing from every loaded znode.
    tree = DataTree()
    create(tree, 1, "/a")
    loaded = DataTree()
    deserialize_snapshot(loaded, serialize_snapshot(tree))
    node, built = loaded.nodes["/a"], tree.nodes["/a"]
    assert type(node) is type(built) is Node
    for slot in Node.__slots__:
        assert getattr(node, slot) == (None if slot == "_stat" else getattr(built, slot)), slot
