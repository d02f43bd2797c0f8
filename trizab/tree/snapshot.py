"""Snapshots of the data tree in Apache ZooKeeper's layout.

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
"""

from __future__ import annotations

import struct

from trizab.tree.acl import OPEN_ACL_UNSAFE, intern_acl
from trizab.tree.datatree import CONTAINER, NORMAL, TTL, DataTree, Node, ephemeral_kind
from trizab.wire import records as r
from trizab.wire.jute import Buffer, Int, JuteError, Long, UString, decode_prefix, record

__all__ = ["deserialize_snapshot", "serialize_snapshot"]

_OPEN_REF = -1


@record
class DataNodeRecord:
    data: Buffer
    acl: Long
    stat: r.StatPersisted


@record
class _Path:
    path: UString


@record
class _AclEntry:
    ref: Long
    acl: r.ACLList


@record
class _SessionEntry:
    session_id: Long
    timeout: Int


def serialize_snapshot(tree: DataTree) -> bytes:
    out = bytearray()
    out += struct.pack(">i", len(tree.sessions))
    for sid, timeout in tree.sessions.items():
        out += struct.pack(">qi", sid, timeout)
    refs: dict[tuple[r.ACL, ...], int] = {}
    for node in tree.nodes.values():
        key = tuple(node.acl)
        if key != OPEN_ACL_UNSAFE and key not in refs:
            refs[key] = len(refs) + 1
    out += struct.pack(">i", len(refs))
    for key, ref in refs.items():
        _AclEntry(ref, list(key)).jute_encode(out)
    stack = ["/"]
    while stack:
        path = stack.pop()
        node = tree.nodes[path]
        key = tuple(node.acl)
        _Path("" if path == "/" else path).jute_encode(out)
        ref = _OPEN_REF if key == OPEN_ACL_UNSAFE else refs[key]
        DataNodeRecord(node.data, ref, node.persisted()).jute_encode(out)
        prefix = "/" if path == "/" else path + "/"
        stack.extend(prefix + c for c in reversed(list(node.children)))
    _Path("/").jute_encode(out)
    return bytes(out)


def deserialize_snapshot(tree: DataTree, data: bytes | memoryview) -> None:
    """Replace ``tree``'s contents with the snapshot; JuteError if malformed."""
    pos = 0
    if len(data) < 4:
        raise JuteError("truncated snapshot")
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    if count < 0:
        raise JuteError("negative session count")
    sessions: dict[int, int] = {}
    for _ in range(count):
        s, pos = decode_prefix(_SessionEntry, data, pos)
        sessions[s.session_id] = s.timeout
    if len(data) < pos + 4:
        raise JuteError("truncated snapshot")
    (count,) = struct.unpack_from(">i", data, pos)
    pos += 4
    if count < 0:
        raise JuteError("negative ACL count")
    acl_by_ref: dict[int, tuple[r.ACL, ...]] = {_OPEN_REF: OPEN_ACL_UNSAFE}
    for _ in range(count):
        e, pos = decode_prefix(_AclEntry, data, pos)
        acl_by_ref[e.ref] = tuple(e.acl or ())
    nodes: dict[str, Node] = {}
    ephemerals: dict[int, dict[str, None]] = {}
    containers: dict[str, None] = {}
    ttls: dict[str, None] = {}
    p, pos = decode_prefix(_Path, data, pos)
    while p.path != "/":
        rec, pos = decode_prefix(DataNodeRecord, data, pos)
        if p.path is None:
            raise JuteError("null path in snapshot")
        st = rec.stat
        acl = acl_by_ref.get(rec.acl)
        if acl is not None:
            acl = intern_acl(acl)
        else:
            raise JuteError(f"unknown ACL reference {rec.acl}")
        owner = st.ephemeral_owner
        kind = ephemeral_kind(owner, tree.extended_types)
        node = Node(
            rec.data,
            acl,
            st.czxid,
            st.mzxid,
            st.ctime,
            st.mtime,
            st.version,
            st.cversion,
            st.aversion,
            owner,
            st.pzxid,
            owner if kind == NORMAL else 0,
        )
        path = p.path or "/"
        if path != "/":
            i = path.rfind("/")
            parent = nodes.get(path[:i] or "/")
            if parent is None:
                raise JuteError(f"snapshot node {path!r} has no parent")
            parent.children[path[i + 1 :]] = None
            if kind == CONTAINER:
                containers[path] = None
            elif kind == TTL:
                ttls[path] = None
            elif owner != 0:
                ephemerals.setdefault(owner, {})[path] = None
        nodes[path] = node
        p, pos = decode_prefix(_Path, data, pos)
    if "/" not in nodes:
        raise JuteError("snapshot without a root")
    tree.nodes = nodes
    tree.ephemerals = ephemerals
    tree.containers = containers
    tree.ttls = ttls
    tree.sessions = sessions
