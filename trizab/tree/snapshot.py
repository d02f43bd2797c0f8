"""Snapshots of the data tree in Apache ZooKeeper's layout, taken fuzzily while the tree changes.

Theory of operation
-------------------
The bytes are what ZooKeeper's ``SerializeUtils.serializeSnapshot`` writes
between a snapshot file's ``FileHeader`` and its checksum: the session table
(``int count``, then ``long id, int timeout``), the ACL cache
(``ReferenceCountedACLCache``: ``int count``, then ``long ref, vector<ACL>``;
ref -1 is world:anyone ALL and is never stored), then every node depth first as
``ustring path`` + ``DataNode{buffer data; long acl; StatPersisted stat}``
(the root's path is ``""``), ended by the path ``"/"``.  Storage engines add the
header and checksum; they treat these bytes as opaque.

Fuzzy snapshots (ZooKeeper's ``FileTxnSnapLog.save`` while the server runs):
:class:`SnapshotWriter` walks the tree a bounded number of nodes per
:meth:`~SnapshotWriter.step`, and the caller applies transactions between steps.
Its ``zxid`` is the tree's last applied zxid when the walk *started*: every
transaction after it may or may not be reflected (a node is copied whole at the
moment the walk reaches it; a node created behind the walk is missed, one
deleted ahead of it is skipped).  The ACL table and the session table are only
known at the end, so they are written then, in front of the node records.
Loading such a snapshot and replaying every logged transaction after ``zxid``
reaches exactly the state of the tree that applied them live, because replay
tolerates what the snapshot already holds (see ``DataTree.process_txn``:
creating an existing node, deleting a missing one).

The codec works on ``struct`` directly rather than through record objects: a
snapshot holds millions of nodes and its load time is the server's restart time.
"""

from __future__ import annotations

import contextlib
import gc
import struct
from collections.abc import Callable, Iterator
from typing import Any

from trizab.tree.acl import OPEN_ACL_UNSAFE, intern_acl
from trizab.tree.datatree import CONTAINER, NO_CHILDREN, TTL, DataTree, Node, ephemeral_kind, make_node
from trizab.wire import records as r
from trizab.wire.jute import Buffer, JuteError, Long, decode_prefix, record

__all__ = [
    "PROGRESS_NODES",
    "DataNodeRecord",
    "ProgressCallback",
    "SnapshotWriter",
    "deserialize_snapshot",
    "gc_paused",
    "serialize_snapshot",
]

_OPEN_REF = -1
# (what, done, total, unit): how long work reports how far it got (the CLI shows a bar or log lines).
ProgressCallback = Callable[[str, int, int, str], None]
PROGRESS_NODES = 50_000  # nodes loaded between two progress reports
# Nodes per step: a few milliseconds of work, so a server walking a million-node
# tree still answers its clients between steps.
DEFAULT_STEP_NODES = 2000


@record
class DataNodeRecord:
    data: Buffer
    acl: Long
    stat: r.StatPersisted


@record
class _AclEntry:
    ref: Long
    acl: r.ACLList


_I = struct.Struct(">i")
_SESSION = struct.Struct(">qi")
# DataNode after its data buffer: long acl ref, then StatPersisted
# (czxid, mzxid, ctime, mtime, version, cversion, aversion, ephemeralOwner, pzxid).
_NODE_TAIL = struct.Struct(">qqqqqiiiqq")
_NODE_TAIL_NEXT = struct.Struct(">qqqqqiiiqqi")  # ... and the next node's path length
_END = b"\x00\x00\x00\x01/"  # the path "/" that ends the node list


class SnapshotWriter:
    """A fuzzy snapshot in progress; call :meth:`step` until it returns True, then :meth:`result`."""

    def __init__(self, tree: DataTree) -> None:
        self.tree = tree
        self.zxid = tree.last_processed_zxid
        self._stack = ["/"]
        self._body = bytearray()
        self._refs: dict[Any, int] = {}  # id(acl) or tuple(acl) -> ref
        self._acls: list[tuple[r.ACL, ...]] = []  # by ref - 1; also keeps id()-keyed ACLs alive
        self._keep: list[Any] = []
        self.nodes_written = 0
        self._done = False

    def _ref(self, acl: Any) -> int:
        if acl is OPEN_ACL_UNSAFE:
            return _OPEN_REF
        ref = self._refs.get(id(acl))
        if ref is not None:
            return ref
        key = tuple(acl)
        if key == OPEN_ACL_UNSAFE:
            ref = _OPEN_REF
        else:
            ref = self._refs.get(key)
            if ref is None:
                self._acls.append(key)
                ref = self._refs[key] = len(self._acls)
        self._refs[id(acl)] = ref
        self._keep.append(acl)  # an id() is only unique while its object lives
        return ref

    def step(self, max_nodes: int = DEFAULT_STEP_NODES) -> bool:
        """Copy up to ``max_nodes`` more nodes; True once the walk is complete."""
        if self._done:
            return True
        nodes = self.tree.nodes
        stack = self._stack
        out = self._body
        pack_int = _I.pack
        pack_tail = _NODE_TAIL.pack
        written = 0
        while stack and written < max_nodes:
            path = stack.pop()
            node = nodes.get(path)
            if node is None:
                continue  # deleted since its parent was copied: replay settles it
            raw = b"" if path == "/" else path.encode("utf-8", "surrogateescape")
            out += pack_int(len(raw))
            out += raw
            data = node.data
            if data is None:
                out += b"\xff\xff\xff\xff"
            else:
                out += pack_int(len(data))
                out += data
            out += pack_tail(
                self._ref(node.acl),
                node.czxid,
                node.mzxid,
                node.ctime,
                node.mtime,
                node.version,
                node.cversion,
                node.aversion,
                node.ephemeral_owner,
                node.pzxid,
            )
            written += 1
            if node.children:
                stack.extend(reversed(node.children))  # full paths: see Node.children
        self.nodes_written += written
        if not stack:
            self._done = True
        return self._done

    def parts(self) -> list[bytes | bytearray]:
        """The snapshot as pieces to concatenate (sessions and ACLs as of now, then the nodes).

        Only this reads the tree; joining the pieces (a copy of the whole snapshot) may
        happen anywhere, for example in the thread that writes it.
        """
        if not self._done:
            raise RuntimeError("snapshot walk not finished")
        sessions = self.tree.sessions
        head = bytearray(_I.pack(len(sessions)))
        for sid, timeout in sessions.items():
            head += _SESSION.pack(sid, timeout)
        head += _I.pack(len(self._acls))
        for ref, key in enumerate(self._acls, start=1):
            _AclEntry(ref, list(key)).jute_encode(head)
        return [head, self._body, _END]

    def result(self) -> bytes:
        """The snapshot bytes (see :meth:`parts`)."""
        return b"".join(self.parts())


def serialize_snapshot(tree: DataTree) -> bytes:
    """A snapshot of ``tree`` as it is now (the whole walk in one go)."""
    w = SnapshotWriter(tree)
    while not w.step(1 << 62):
        pass
    return w.result()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (bulk loads create millions of long-lived objects).

    CPython's collector runs every few hundred allocations and its older generations
    get walked again and again while a big tree is built: measured here, loading a
    200,000-node snapshot took 1.6 s with it and 0.6 s without.  Nothing built here
    forms reference cycles, so nothing is lost by pausing it.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def deserialize_snapshot(
    tree: DataTree, data: bytes | memoryview, progress: ProgressCallback | None = None
) -> None:
    """Replace ``tree``'s contents with the snapshot; JuteError if malformed.

    ``progress("loading snapshot", bytes_done, bytes_total, "bytes")`` is called every
    ``PROGRESS_NODES`` nodes (a big snapshot takes seconds to load).
    """
    try:
        with gc_paused():
            _deserialize(tree, data, progress)
        tree.setup_quota()  # DataTree.deserialize ends with setupQuota
    except struct.error as exc:
        raise JuteError(f"truncated snapshot: {exc}") from None
    except UnicodeError as exc:  # pragma: no cover - surrogateescape accepts any bytes
        raise JuteError(f"bad path in snapshot: {exc}") from None


def _deserialize(tree: DataTree, data: bytes | memoryview, progress: ProgressCallback | None) -> None:
    if not isinstance(data, bytes):
        data = bytes(data)  # one copy here saves a memoryview per path and per value below
    end = len(data)
    # One decrement per node; -1 never counts down to 0 (no reports).
    report_every = PROGRESS_NODES if progress is not None else -1
    countdown = report_every
    unpack_int = _I.unpack_from
    pos = 0
    (count,) = unpack_int(data, pos)
    pos += 4
    if count < 0 or count * _SESSION.size > end - pos:
        raise JuteError(f"bad session count {count}")
    sessions: dict[int, int] = {}
    for sid, timeout in _SESSION.iter_unpack(data[pos : pos + count * _SESSION.size]):
        sessions[sid] = timeout
    pos += count * _SESSION.size
    (count,) = unpack_int(data, pos)
    pos += 4
    if count < 0:
        raise JuteError("negative ACL count")
    acl_by_ref: dict[int, Any] = {_OPEN_REF: OPEN_ACL_UNSAFE}
    for _ in range(count):
        e, pos = decode_prefix(_AclEntry, data, pos)
        acl_by_ref[e.ref] = intern_acl(tuple(e.acl or ()))
    nodes: dict[str, Node] = {}
    ephemerals: dict[int, dict[str, None]] = {}
    containers: dict[str, None] = {}
    ttls: dict[str, None] = {}
    extended = tree.extended_types
    last_time = 0
    # The tail of one node and the length of the next path are adjacent: one unpack for both
    # (the list ends with the path "/", so a next path always follows).
    unpack_tail = _NODE_TAIL_NEXT.unpack_from
    new_node = object.__new__
    tail_size = _NODE_TAIL_NEXT.size
    # Depth first: a node's children come in a run right after it, so the parent found for
    # one node usually serves the next ones too (no slice, hash and lookup of its path).
    parent: Node | None = None
    parent_prefix = "\0"  # no path starts with it
    (n,) = unpack_int(data, pos)
    pos += 4
    while True:
        if n < 0 or n > end - pos:
            raise JuteError(f"bad path length {n} at offset {pos - 4}")
        path = data[pos : pos + n].decode("utf-8", "surrogateescape")
        pos += n
        if path == "/":
            break
        (n,) = unpack_int(data, pos)
        pos += 4
        if n == -1:
            value = None
        elif n < 0 or n > end - pos:
            raise JuteError(f"bad data length {n} at offset {pos - 4}")
        else:
            value = data[pos : pos + n]
            pos += n
        ref, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid, n = unpack_tail(data, pos)
        pos += tail_size
        # unpack_from makes a fresh int object (32 bytes) of every 64-bit field; equal fields
        # share one instead, as a node created live does (measured with 1,000,000 nodes:
        # 160 -> 64 bytes of ints per node, as most nodes were never changed; 32 when the
        # nodes were created in bursts, as they are).
        if mzxid == czxid:
            mzxid = czxid
        if pzxid == czxid:
            pzxid = czxid
        if ctime == last_time:  # and nodes created in one millisecond share theirs
            ctime = last_time
        else:
            last_time = ctime
        if mtime == ctime:
            mtime = ctime
        acl = acl_by_ref.get(ref)
        if acl is None:
            raise JuteError(f"unknown ACL reference {ref}")
        if owner:
            kind = ephemeral_kind(owner, extended)
            node = make_node(
                value, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, owner, pzxid, kind
            )
        else:
            kind = 0
            # Node(...) spelled out: calling a class with a Python __init__ is not inlined on
            # CPython 3.11, and these stores are (1,001,005 nodes, medians of alternating runs:
            # 1.53 -> 1.42 s, 7 %).  Every slot of Node is set: see test_compact_nodes.
            node = new_node(Node)
            node.data = value
            node.acl = acl
            node.czxid = czxid
            node.mzxid = mzxid
            node.ctime = ctime
            node.mtime = mtime
            node.version = version
            node.cversion = cversion
            node.aversion = aversion
            node.pzxid = pzxid
            node.children = NO_CHILDREN
            node._stat = None
        if path:
            i = path.rfind("/")
            if i != len(parent_prefix) - 1 or not path.startswith(parent_prefix):
                parent_path = path[:i] or "/"
                parent = nodes.get(parent_path)
                if parent is None:
                    raise JuteError(f"snapshot node {path!r} has no parent")
                parent_prefix = path[: i + 1]
            children = parent.children  # type: ignore[union-attr]
            if children is NO_CHILDREN:
                children = parent.children = {}  # type: ignore[union-attr]
            children[path] = None  # by full path, see Node.children
            if owner:
                if kind == CONTAINER:
                    containers[path] = None
                elif kind == TTL:
                    ttls[path] = None
                else:
                    eph = ephemerals.get(owner)
                    if eph is None:
                        eph = ephemerals[owner] = {}
                    eph[path] = None
        else:
            path = "/"
        nodes[path] = node
        countdown -= 1
        if countdown == 0:
            countdown = report_every
            assert progress is not None
            progress("loading snapshot", pos, end, "bytes")
    if "/" not in nodes:
        raise JuteError("snapshot without a root")
    tree.nodes = nodes
    tree.ephemerals = ephemerals
    tree.containers = containers
    tree.ttls = ttls
    tree.sessions = sessions
