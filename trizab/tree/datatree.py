"""The replicated state: znodes, ephemerals, containers, TTL nodes, sessions, watches.

Theory of operation
-------------------
This is ZooKeeper's ``DataTree`` (plus the session table that ``ZKDatabase``
keeps beside it).  It changes only through :meth:`DataTree.process_txn`, a pure
function of the tree and one transaction: the transaction carries everything,
including the time and the parent's new cversion, so every server that applies
the same log reaches the same tree.  Reads go straight to :attr:`DataTree.nodes`
(a flat ``path -> Node`` map, as ZooKeeper's ``NodeHashMap``).

Watches fire as a side effect of applying: every trigger appends
``(watchers, WatcherEvent)`` to :attr:`DataTree.events`, which the server core
drains after each transaction and turns into notifications (before any reply
that shows the change).

A node stores its cversion the way ZooKeeper does internally, as the number of
children ever created (that is what sequential names count); clients see
``2 * cversion - numChildren`` (``DataNode.copyStat``), i.e. creates plus
deletes.  The client-visible :class:`~trizab.wire.records.Stat` is built lazily
and cached until the node changes, because getData and exists are the hot path.

Memory: a tree may hold millions of znodes, so a node keeps no more than it must
(measured per znode with 1,000,000 leaves of 32 bytes, see ``bench/restart.py``).
A node lists its children by their *full paths*, the very string objects that key
:attr:`DataTree.nodes`, so a child's name costs no string of its own (getChildren
cuts the names out when asked, :func:`child_names`); a node without children shares
one empty tuple instead of owning an empty dict.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

from trizab.tree import watches as w
from trizab.tree.acl import OPEN_ACL_UNSAFE, READ_ACL_UNSAFE, intern_acl
from trizab.txn import TXN_BODY
from trizab.wire import records as r
from trizab.wire.codes import (
    CONTAINER_EPHEMERAL_OWNER,
    TTL_EPHEMERAL_OWNER_MASK,
    Err,
    EventType,
    KeeperState,
    OpCode,
)
from trizab.wire.jute import JuteError, decode

__all__ = [
    "NO_CHILDREN",
    "DataTree",
    "Node",
    "OwnedNode",
    "Result",
    "ServerOwnedNode",
    "TreeError",
    "child_names",
    "ephemeral_kind",
    "make_node",
]

# A childless node's ``children``: one shared empty tuple instead of an empty dict per node
# (64 bytes each, most znodes are leaves).
NO_CHILDREN: tuple[()] = ()

# Quotas (ZooKeeper's Quotas / StatsTrack): /zookeeper/quota/<path>/zookeeper_limits marks <path>,
# and its zookeeper_stats sibling holds "count=N,bytes=M" for <path>'s subtree, kept up to date
# by every create, delete and setData below a marked path (not enforced, like
# zookeeper.enforceQuota's default).
_QUOTA_ROOT = "/zookeeper/quota"
_LIMIT_NODE = "zookeeper_limits"
_STAT_NODE = "zookeeper_stats"

VOID, NORMAL, CONTAINER, TTL = 0, 1, 2, 3
_TTL_MASK = TTL_EPHEMERAL_OWNER_MASK
_SYNC_CONNECTED = int(KeeperState.SYNC_CONNECTED)
_CREATED = int(EventType.NODE_CREATED)
_DELETED = int(EventType.NODE_DELETED)
_DATA_CHANGED = int(EventType.NODE_DATA_CHANGED)
_CHILDREN_CHANGED = int(EventType.NODE_CHILDREN_CHANGED)
# Plain ints: IntEnum attribute lookups are slow on CPython 3.11 and process_txn runs per write.
_SET_DATA = int(OpCode.SET_DATA)
_RECONFIG = int(OpCode.RECONFIG)
_CREATE = int(OpCode.CREATE)
_CREATE2 = int(OpCode.CREATE2)
_NODE_EXISTS = int(Err.NODE_EXISTS)
_CREATES = frozenset(
    {int(OpCode.CREATE), int(OpCode.CREATE2), int(OpCode.CREATE_TTL), int(OpCode.CREATE_CONTAINER)}
)


def ephemeral_kind(owner: int, extended_types: bool) -> int:
    """``EphemeralType.get``: VOID, NORMAL, CONTAINER or TTL."""
    if owner == 0:
        return VOID
    if owner == CONTAINER_EPHEMERAL_OWNER:
        return CONTAINER
    if extended_types and (owner & _TTL_MASK) == _TTL_MASK:
        return TTL
    return NORMAL


def ttl_of(owner: int) -> int:
    return owner & ((1 << 40) - 1)


class TreeError(Exception):
    """A KeeperException raised while applying (NoNode, NodeExists, ...)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Node:
    """``DataNode`` + ``StatPersisted``; ``cversion`` is the internal create count.

    ``children`` maps each child's full path to None, in creation order (NO_CHILDREN when
    there are none); the tree owns it.  A plain Node belongs to no session: its
    ``ephemeral_owner`` is the class's 0, and only :class:`OwnedNode` has a slot for one
    (two slots fewer per znode: 144 -> 128 bytes each, most znodes are persistent).
    """

    __slots__ = (
        "_stat",
        "acl",
        "aversion",
        "children",
        "ctime",
        "cversion",
        "czxid",
        "data",
        "mtime",
        "mzxid",
        "pzxid",
        "version",
    )
    ephemeral_owner: int = 0
    # The stat's ephemeralOwner: the owning session of an ephemeral, 0 for any other node.
    client_owner: int = 0

    def __init__(
        self,
        data: bytes | None,
        acl: Sequence[r.ACL],
        czxid: int = 0,
        mzxid: int = 0,
        ctime: int = 0,
        mtime: int = 0,
        version: int = 0,
        cversion: int = 0,
        aversion: int = 0,
        pzxid: int = 0,
    ) -> None:
        self.data = data
        self.acl = acl
        self.czxid = czxid
        self.mzxid = mzxid
        self.ctime = ctime
        self.mtime = mtime
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.pzxid = pzxid
        self.children: dict[str, None] | tuple[()] = NO_CHILDREN
        self._stat: r.Stat | None = None

    def stat(self) -> r.Stat:
        s = self._stat
        if s is None:
            n = len(self.children)
            data = self.data
            cversion = 2 * self.cversion - n
            if not -0x80000000 <= cversion <= 0x7FFFFFFF:  # Java int arithmetic wraps
                cversion = (cversion + 0x80000000) % 0x100000000 - 0x80000000
            s = self._stat = r.Stat(
                self.czxid,
                self.mzxid,
                self.ctime,
                self.mtime,
                self.version,
                cversion,
                self.aversion,
                self.client_owner,
                0 if data is None else len(data),
                n,
                self.pzxid,
            )
        return s

    def persisted(self) -> r.StatPersisted:
        return r.StatPersisted(
            self.czxid,
            self.mzxid,
            self.ctime,
            self.mtime,
            self.version,
            self.cversion,
            self.aversion,
            self.ephemeral_owner,
            self.pzxid,
        )


class OwnedNode(Node):
    """A node with a non-zero ephemeralOwner: a session's ephemeral."""

    __slots__ = ("ephemeral_owner",)

    @property  # type: ignore[override]
    def client_owner(self) -> int:
        return self.ephemeral_owner


class ServerOwnedNode(OwnedNode):
    """A container or TTL node: its ephemeralOwner encodes the kind, clients see 0."""

    __slots__ = ()
    client_owner = 0  # type: ignore[assignment]


def make_node(
    data: bytes | None,
    acl: Sequence[r.ACL],
    czxid: int,
    mzxid: int,
    ctime: int,
    mtime: int,
    version: int,
    cversion: int,
    aversion: int,
    ephemeral_owner: int,
    pzxid: int,
    kind: int,
) -> Node:
    """A node of the class its owner needs (``kind``: :func:`ephemeral_kind` of the owner)."""
    if ephemeral_owner == 0:
        return Node(data, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, pzxid)
    cls = OwnedNode if kind == NORMAL else ServerOwnedNode
    node = cls(data, acl, czxid, mzxid, ctime, mtime, version, cversion, aversion, pzxid)
    node.ephemeral_owner = ephemeral_owner
    return node


def child_names(node: Node) -> list[str]:
    """The names of ``node``'s children (what getChildren answers), in creation order.

    Every child's path is its parent's path and "/" (just "/" under the root) before its
    name, so one slice cuts every name out, applied by a C loop (100,000 children: 4 ms,
    against 10 for a comprehension finding each path's last "/").
    """
    children = node.children
    if not children:
        return []
    name_start = next(iter(children)).rfind("/") + 1
    return list(map(itemgetter(slice(name_start, None)), children))


def add_child(parent: Node, path: str) -> None:
    """List ``path`` (the very string that keys the tree's nodes) among ``parent``'s children."""
    children = parent.children
    if children is NO_CHILDREN:
        children = parent.children = {}
    children[path] = None  # type: ignore[index]


class Result:
    """``DataTree.ProcessTxnResult``."""

    __slots__ = ("client_id", "cxid", "err", "multi", "path", "stat", "type", "zxid")

    def __init__(self, header: r.TxnHeader) -> None:
        self.client_id = header.client_id
        self.cxid = header.cxid
        self.zxid = header.zxid
        self.type = header.type
        self.err = 0
        self.path: str | None = None
        self.stat: r.Stat | None = None
        self.multi: list[Result] | None = None


class DataTree:
    def __init__(self, *, extended_types: bool = False) -> None:
        self.extended_types = extended_types
        root = Node(b"", OPEN_ACL_UNSAFE)
        proc = Node(b"", OPEN_ACL_UNSAFE)
        quota = Node(b"", OPEN_ACL_UNSAFE)
        # Reconfig node is access controlled (ZOOKEEPER-2014); setACL(..., -1) leaves aversion -1.
        config = Node(b"", READ_ACL_UNSAFE, aversion=-1)
        self.nodes: dict[str, Node] = {
            "/": root,
            "/zookeeper": proc,
            "/zookeeper/quota": quota,
            "/zookeeper/config": config,
        }
        for path in ("/zookeeper", "/zookeeper/quota", "/zookeeper/config"):
            add_child(self.nodes[path[: path.rfind("/")] or "/"], path)
        self.ephemerals: dict[int, dict[str, None]] = {}
        self.containers: dict[str, None] = {}
        self.ttls: dict[str, None] = {}
        # sessionsWithTimeouts (ZKDatabase): part of the replicated state and the snapshot.
        self.sessions: dict[int, int] = {}
        self.data_watches = w.WatchManager()
        self.child_watches = w.WatchManager()
        self.last_processed_zxid = 0
        self.events: list[tuple[list[int], r.WatcherEvent]] = []
        # ZooKeeper's pTrie: the paths that have a zookeeper_limits node.
        self.quota_paths: set[str] = set()
        self._last_time = 0  # see _shared_time

    # -- helpers -------------------------------------------------------------

    def _shared_time(self, time: int) -> int:
        """``time``, or the equal int object the last write used (32 bytes a node less).

        Writes arriving together carry the same millisecond; one int object can serve them all.
        """
        if time == self._last_time:
            return self._last_time
        self._last_time = time
        return time

    def _new_node(self, data: bytes | None, acl: Sequence[r.ACL], owner: int, zxid: int, time: int) -> Node:
        time = self._shared_time(time)
        kind = ephemeral_kind(owner, self.extended_types)
        return make_node(data, acl, zxid, zxid, time, time, 0, 0, 0, owner, zxid, kind)

    def _fire(self, watchers: list[int], event_type: int, path: str) -> None:
        if watchers:
            self.events.append((watchers, r.WatcherEvent(event_type, _SYNC_CONNECTED, path)))

    def is_special_path(self, path: str) -> bool:
        return path in ("/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config")

    # -- mutations (DataTree.createNode / deleteNode / setData / setACL) -----

    def create_node(
        self,
        path: str,
        data: bytes | None,
        acl: Sequence[r.ACL],
        owner: int,
        parent_cversion: int,
        zxid: int,
        time: int,
    ) -> Node:
        i = path.rfind("/")
        parent_name = path[:i] or "/"
        nodes = self.nodes
        parent = nodes.get(parent_name)
        if parent is None:
            raise TreeError(Err.NO_NODE)
        if path in nodes:
            if path not in parent.children:
                # Only in replay over a fuzzy snapshot: the snapshot caught this node but its
                # parent was deleted and re-created by the replay.  The node is there, so its
                # parent must list it (rare: a string of its own here is no matter).
                add_child(parent, path)
                parent._stat = None
            raise TreeError(Err.NODE_EXISTS)
        if parent_cversion == -1:
            parent_cversion = parent.cversion + 1
        # Replaying a create already in a fuzzy snapshot must not move cversion back.
        if parent_cversion > parent.cversion:
            parent.cversion = parent_cversion
            parent.pzxid = zxid
        node = self._new_node(data, intern_acl(acl), owner, zxid, time)
        add_child(parent, path)
        parent._stat = None
        nodes[path] = node
        kind = ephemeral_kind(owner, self.extended_types)
        if kind == CONTAINER:
            self.containers[path] = None
        elif kind == TTL:
            self.ttls[path] = None
        elif owner != 0:
            self.ephemerals.setdefault(owner, {})[path] = None
        if parent_name.startswith(_QUOTA_ROOT):
            child = path[i + 1 :]
            if child == _LIMIT_NODE and len(parent_name) > len(_QUOTA_ROOT):
                self.quota_paths.add(parent_name[len(_QUOTA_ROOT) :])
            elif child == _STAT_NODE:
                self._update_quota_for_path(parent_name[len(_QUOTA_ROOT) :])
        if self.quota_paths:
            self._update_quota_stat(path, len(data) if data else 0, 1)
        self._fire(self.data_watches.trigger(path, _CREATED), _CREATED, path)
        self._fire(self.child_watches.trigger(parent_name, _CHILDREN_CHANGED), _CHILDREN_CHANGED, parent_name)
        return node

    def delete_node(self, path: str, zxid: int) -> None:
        i = path.rfind("/")
        parent_name = path[:i] or "/"
        nodes = self.nodes
        parent = nodes.get(parent_name)
        if parent is None:
            raise TreeError(Err.NO_NODE)
        children = parent.children
        if path in children:
            del children[path]  # type: ignore[attr-defined]
            if not children:
                parent.children = NO_CHILDREN
        # Only move pzxid forward: a replayed delete must not undo a later create's pzxid.
        if zxid > parent.pzxid:
            parent.pzxid = zxid
        parent._stat = None
        node = nodes.pop(path, None)
        if node is None:
            raise TreeError(Err.NO_NODE)
        if self.quota_paths:
            self._update_quota_stat(path, -len(node.data) if node.data else 0, -1)
            if path.endswith("/" + _LIMIT_NODE) and parent_name.startswith(_QUOTA_ROOT):
                self.quota_paths.discard(parent_name[len(_QUOTA_ROOT) :])
        owner = node.ephemeral_owner
        kind = ephemeral_kind(owner, self.extended_types)
        if kind == CONTAINER:
            self.containers.pop(path, None)
        elif kind == TTL:
            self.ttls.pop(path, None)
        elif owner != 0:
            eph = self.ephemerals.get(owner)
            if eph is not None:
                eph.pop(path, None)
                if not eph:
                    del self.ephemerals[owner]
        processed = self.data_watches.trigger(path, _DELETED)
        self._fire(processed, _DELETED, path)
        self._fire(self.child_watches.trigger(path, _DELETED, processed), _DELETED, path)
        self._fire(self.child_watches.trigger(parent_name, _CHILDREN_CHANGED), _CHILDREN_CHANGED, parent_name)

    def set_data(self, path: str, data: bytes | None, version: int, zxid: int, time: int) -> r.Stat:
        return self._set_data(path, data, version, zxid, time).stat()

    def _set_data(self, path: str, data: bytes | None, version: int, zxid: int, time: int) -> Node:
        node = self.nodes.get(path)
        if node is None:
            raise TreeError(Err.NO_NODE)
        if self.quota_paths:
            old = len(node.data) if node.data else 0
            self._update_quota_stat(path, (len(data) if data else 0) - old, 0)
        node.data = data
        node.mtime = self._shared_time(time)
        node.mzxid = zxid
        node.version = version
        node._stat = None
        watches = self.data_watches
        if watches._recursive or path in watches.table:  # skip two calls when nobody watches
            self._fire(watches.trigger(path, _DATA_CHANGED), _DATA_CHANGED, path)
        return node

    def set_acl(self, path: str, acl: Sequence[r.ACL], version: int) -> r.Stat:
        node = self.nodes.get(path)
        if node is None:
            raise TreeError(Err.NO_NODE)
        node.aversion = version
        node.acl = intern_acl(acl)
        node._stat = None
        return node.stat()

    def set_cversion_pzxid(self, path: str, new_cversion: int, zxid: int) -> None:
        node = self.nodes.get(path)
        if node is None:
            raise TreeError(Err.NO_NODE)
        if new_cversion == -1:
            new_cversion = node.cversion + 1
        if new_cversion > node.cversion:
            node.cversion = new_cversion
            node.pzxid = zxid
            node._stat = None

    def kill_session(self, session_id: int, zxid: int, paths: Sequence[str] | None) -> None:
        local = self.ephemerals.pop(session_id, {})
        listed = list(paths or ())
        seen = set(listed)
        # The txn's list first; anything else this tree still has for the session after it.
        for path in listed + [p for p in local if p not in seen]:
            try:
                self.delete_node(path, zxid)
            except TreeError:
                pass  # "Ignoring NoNodeException ... while removing ephemeral for dead session"

    # -- DataTree.processTxn ------------------------------------------------

    def process_txn(
        self, header: r.TxnHeader, body: Any, sub_txn: bool = False, *, stats: bool = True
    ) -> Result:
        """Apply one transaction; ``stats=False`` when nobody reads the result's stat (replay).

        A setData's stat is built and cached on its node otherwise: replaying 100,000
        setData records at start-up spent a third of its time, and 13 MB, on them.
        """
        rc = Result(header)
        t = header.type
        try:
            if t == _SET_DATA or t == _RECONFIG:
                rc.path = body.path
                node = self._set_data(body.path, body.data, body.version, header.zxid, header.time)
                if stats:
                    rc.stat = node.stat()
            elif t == _CREATE or t == _CREATE2:
                rc.path = body.path
                node = self.create_node(
                    body.path,
                    body.data,
                    body.acl or (),
                    header.client_id if body.ephemeral else 0,
                    body.parent_c_version,
                    header.zxid,
                    header.time,
                )
                if t == _CREATE2 and stats:
                    rc.stat = node.stat()
            elif t == OpCode.CREATE_TTL:
                rc.path = body.path
                owner = _TTL_MASK | (body.ttl & ((1 << 40) - 1))
                node = self.create_node(
                    body.path,
                    body.data,
                    body.acl or (),
                    owner,
                    body.parent_c_version,
                    header.zxid,
                    header.time,
                )
                if stats:
                    rc.stat = node.stat()
            elif t == OpCode.CREATE_CONTAINER:
                rc.path = body.path
                node = self.create_node(
                    body.path,
                    body.data,
                    body.acl or (),
                    CONTAINER_EPHEMERAL_OWNER,
                    body.parent_c_version,
                    header.zxid,
                    header.time,
                )
                if stats:
                    rc.stat = node.stat()
            elif t == OpCode.DELETE or t == OpCode.DELETE_CONTAINER:
                rc.path = body.path
                self.delete_node(body.path, header.zxid)
            elif t == OpCode.SET_ACL:
                rc.path = body.path
                rc.stat = self.set_acl(body.path, body.acl or (), body.version)
            elif t == OpCode.CREATE_SESSION:
                self.sessions[header.client_id] = body.time_out
            elif t == OpCode.CLOSE_SESSION:
                self.sessions.pop(header.client_id, None)
                self.kill_session(header.client_id, header.zxid, body.paths2_delete if body else None)
            elif t == OpCode.ERROR:
                rc.err = body.err
            elif t == OpCode.CHECK:
                rc.path = body.path
            elif t == OpCode.MULTI:
                self._process_multi(header, body, rc, stats)
        except TreeError as e:
            rc.err = e.code
        if rc.err == _NODE_EXISTS and t in _CREATES and rc.path is not None:
            # Replay of a create whose node a fuzzy snapshot already holds: still move the
            # parent's cversion/pzxid (DataTree.processTxn does this for create; every
            # create type needs it for the replayed tree to equal the live one).
            try:
                self.set_cversion_pzxid(
                    rc.path[: rc.path.rfind("/")] or "/", body.parent_c_version, header.zxid
                )
            except TreeError as e:
                rc.err = e.code
        if not sub_txn and rc.zxid > self.last_processed_zxid:
            self.last_processed_zxid = rc.zxid
        return rc

    def _process_multi(self, header: r.TxnHeader, body: r.MultiTxn, rc: Result, stats: bool) -> None:
        txns = body.txns or []
        failed = any(sub.type == OpCode.ERROR for sub in txns)
        post_failed = False
        rc.multi = []
        for sub in txns:
            sub_type = sub.type
            if sub_type == OpCode.ERROR:
                post_failed = True
            if failed and sub_type != OpCode.ERROR:
                code = Err.RUNTIME_INCONSISTENCY if post_failed else Err.OK
                sub_type = OpCode.ERROR
                sub_body: Any = r.ErrorTxn(int(code))
            else:
                body_type = TXN_BODY.get(sub_type)
                if body_type is None or sub_type in (
                    OpCode.MULTI,
                    OpCode.CREATE_SESSION,
                    OpCode.CLOSE_SESSION,
                ):
                    raise TreeError(Err.MARSHALLING_ERROR)
                try:
                    sub_body = decode(body_type, sub.data or b"")
                except JuteError:
                    raise TreeError(Err.MARSHALLING_ERROR) from None
            sub_header = r.TxnHeader(header.client_id, header.cxid, header.zxid, header.time, sub_type)
            sub_rc = self.process_txn(sub_header, sub_body, True, stats=stats)
            rc.multi.append(sub_rc)
            if sub_rc.err != 0 and rc.err == 0:
                rc.err = sub_rc.err

    # -- quotas (DataTree.updateQuotaStat / getMaxPrefixWithQuota / updateQuotaForPath) --

    def quota_prefix(self, path: str) -> str | None:
        """``getMaxPrefixWithQuota``: the deepest path with a quota at or above ``path``."""
        best = None
        for q in self.quota_paths:
            if (path == q or path.startswith(q + "/")) and (best is None or len(q) > len(best)):
                best = q
        return None if best in (None, "/") else best

    def _update_quota_stat(self, path: str, bytes_diff: int, count_diff: int) -> None:
        prefix = self.quota_prefix(path)
        if prefix is None:
            return
        node = self.nodes.get(f"{_QUOTA_ROOT}{prefix}/{_STAT_NODE}")
        if node is None:
            return
        stats = _parse_stats(node.data)
        if stats is None:  # ZooKeeper would throw applying the txn; leave the node alone
            return
        stats["count"] = stats.get("count", -1) + count_diff
        stats["bytes"] = stats.get("bytes", -1) + bytes_diff
        node.data = _format_stats(stats)
        node._stat = None

    def _update_quota_for_path(self, path: str) -> None:
        """Recount ``path``'s subtree (the node itself included) into its stat node."""
        node = self.nodes.get(f"{_QUOTA_ROOT}{path}/{_STAT_NODE}")
        if node is None:
            return
        count = size = 0
        todo = [path]
        while todo:
            p = todo.pop()
            n = self.get_node(p)
            if n is None:
                continue
            count += 1
            size += len(n.data) if n.data else 0
            # path + "/" + child, as Java's getCounts (so "/" counts itself only: "//zookeeper").
            if p != "/":
                todo.extend(n.children)
        node.data = _format_stats({"count": count, "bytes": size})
        node._stat = None

    def setup_quota(self) -> None:
        """``DataTree.setupQuota`` after loading a snapshot: find the limits, recount the stats."""
        self.quota_paths.clear()
        suffix = "/" + _LIMIT_NODE
        # Only /zookeeper/quota's subtree can hold limits: walk it, not every znode (a scan
        # of 1,000,000 paths cost a restart 5 % of its snapshot load).
        below_quota: list[str] = []
        todo = [_QUOTA_ROOT]
        while todo:
            node = self.nodes.get(todo.pop())
            if node is not None:
                below_quota.extend(node.children)
                todo.extend(node.children)
        for p in sorted(below_quota):
            if p.endswith(suffix) and not self.nodes[p].children:
                real = p[len(_QUOTA_ROOT) : -len(suffix)]
                if real:
                    self._update_quota_for_path(real)
                    self.quota_paths.add(real)

    # -- reads and watches ---------------------------------------------------

    def get_node(self, path: str | None) -> Node | None:
        """``DataTree.getNode``: ZooKeeper's NodeHashMap also holds the root under ``""``."""
        node = self.nodes.get(path)  # type: ignore[arg-type]
        if node is None and path == "":
            return self.nodes["/"]
        return node

    def get_all_children_number(self, path: str) -> int:
        if path == "/":
            return len(self.nodes) - 1
        prefix = path + "/"
        return sum(1 for p in self.nodes if p.startswith(prefix))

    def add_watch(self, path: str, watcher: int, mode: int) -> None:
        """``DataTree.addWatch`` (addWatch op): persistent goes in both tables, recursive in data only."""
        self.data_watches.add(path, watcher, mode)
        if mode != w.RECURSIVE:
            self.child_watches.add(path, watcher, mode)

    def set_watches(
        self,
        relative_zxid: int,
        data_watches: Sequence[str],
        exist_watches: Sequence[str],
        child_watches: Sequence[str],
        persistent: Sequence[str],
        recursive: Sequence[str],
        watcher: int,
    ) -> list[r.WatcherEvent]:
        """``DataTree.setWatches``: re-register, or return the catch-up events to send now."""
        out: list[r.WatcherEvent] = []
        nodes = self.nodes
        for path in data_watches:
            node = self.get_node(path)
            if node is None:
                out.append(r.WatcherEvent(_DELETED, _SYNC_CONNECTED, path))
            elif node.mzxid > relative_zxid:
                out.append(r.WatcherEvent(_DATA_CHANGED, _SYNC_CONNECTED, path))
            else:
                self.data_watches.add(path, watcher)
        for path in exist_watches:
            if path in nodes or path == "":
                out.append(r.WatcherEvent(_CREATED, _SYNC_CONNECTED, path))
            else:
                self.data_watches.add(path, watcher)
        for path in child_watches:
            node = self.get_node(path)
            if node is None:
                out.append(r.WatcherEvent(_DELETED, _SYNC_CONNECTED, path))
            elif node.pzxid > relative_zxid:
                out.append(r.WatcherEvent(_CHILDREN_CHANGED, _SYNC_CONNECTED, path))
            else:
                self.child_watches.add(path, watcher)
        for path in persistent:
            self.child_watches.add(path, watcher, w.PERSISTENT)
            self.data_watches.add(path, watcher, w.PERSISTENT)
        for path in recursive:
            self.data_watches.add(path, watcher, w.RECURSIVE)
        return out

    def remove_watcher(self, watcher: int) -> None:
        self.data_watches.remove_watcher(watcher)
        self.child_watches.remove_watcher(watcher)

    def approximate_data_size(self) -> int:
        return sum(len(p) + (len(n.data) if n.data else 0) for p, n in self.nodes.items())


def _parse_stats(data: bytes | None) -> dict[str, int] | None:
    """``new StatsTrack(byte[])``: ``key=long`` pairs separated by ``,`` or ``;``."""
    stats: dict[str, int] = {}
    text = (data or b"").decode("utf-8", "replace")
    if not text:
        return stats
    try:
        for pair in (p for p in text.replace(";", ",").split(",") if p):
            kv = [x for x in pair.split("=")]
            while kv and kv[-1] == "":
                kv.pop()  # Java's split drops trailing empty strings
            stats[kv[0]] = int(kv[1]) if kv[1] else -1
    except (IndexError, ValueError):
        return None
    return stats


def _format_stats(stats: dict[str, int]) -> bytes:
    """``StatsTrack.toString``: count and bytes first, then the other keys sorted after ``=;``."""
    out = f"count={stats.get('count', -1)},bytes={stats.get('bytes', -1)}"
    extra = sorted(k for k in stats if k not in ("count", "bytes"))
    if extra:
        out += "=" + "".join(f";{k}={stats[k]}" for k in extra)
    return out.encode()
