"""The server core's reads: ``FinalRequestProcessor`` for the requests that change nothing.

Theory of operation
-------------------
A read is answered from the tree as it is when the read runs, with the zxid of the
last applied transaction in its reply header.  :meth:`Reads._read` runs either at
once (nothing of the connection's is in flight) or when the connection's queue
reaches it (:meth:`~trizab.server.writes.Writes._drain`), so a read sees every
write its own session made before it.  getData has a path of its own, without the
generic dispatch of :meth:`Reads._read_body` (the hot read, benchmarked with
``bench.pipeline --op getData``).

Reads set watches (getData, exists, getChildren, addWatch, setWatches) and remove
them (removeWatches); checkWatches and removeWatches answer as ZooKeeper 3.8 does,
quirks included (see :meth:`Reads._check_watch`).  An error is a ZooKeeper error
code in the reply header; a request ZooKeeper would fail on with an exception
(a null path, an unknown watcher type) is MarshallingError, as there.
"""

from __future__ import annotations

from typing import Any

from trizab.server.api import ConnId, Notification, Reply
from trizab.server.pending import CoreConnection
from trizab.server.sessions import SessionTracker
from trizab.tree import acl as acls
from trizab.tree import watches as wm
from trizab.tree.acl import OPEN_ACL_UNSAFE
from trizab.tree.datatree import DataTree, child_names
from trizab.tree.prep import PrepError
from trizab.wire import records as r
from trizab.wire.codes import Err, OpCode, Perms, WatcherType
from trizab.wire.jute import JuteError
from trizab.wire.requests import MultiResponse, OpResult, decode_multi, decode_request

# Plain ints for the per-request paths (see the note at _CREATE in trizab.server.writes).
_GET_DATA = int(OpCode.GET_DATA)
_PING = int(OpCode.PING)
_MARSHALLING_ERROR = int(Err.MARSHALLING_ERROR)
_decode_get_data = r.GetDataRequest.jute_decode  # type: ignore[attr-defined]
_READ = int(Perms.READ)
_ADMIN = int(Perms.ADMIN)


class _FailedWithBody(PrepError):
    """An error reply that still carries a body (ZooKeeper sends the response built so far)."""

    def __init__(self, code: int, body: Any) -> None:
        super().__init__(code)
        self.body = body


class Reads:
    """Part of :class:`~trizab.server.core.ServerCore`: the reads (see the module docstring).

    Reads ``tree`` (nodes, ACLs) and ``tracker`` (whether the session is live); writes
    the tree's watch tables (the watches a read sets or removes) and appends to
    ``_outputs`` the notifications a setWatches fires at once.  Everything else comes
    with the request: the connection's session id and auth ids.  It calls no other part.
    """

    tree: DataTree
    tracker: SessionTracker
    _outputs: list[tuple[ConnId, Any]]  # what ready() hands the driver: (connection, reply or event)

    def _read(self, conn: CoreConnection, xid: int, op: int, payload: Any) -> Reply:
        zxid = self.tree.last_processed_zxid
        if op == _GET_DATA and conn.session_id in self.tracker.live:
            # Hot path (benchmarked): getData without the generic dispatch.
            try:
                req = _decode_get_data(payload, 0, len(payload))[0]
            except JuteError:
                return Reply(r.ReplyHeader(xid, zxid, _MARSHALLING_ERROR))
            node = self.tree.nodes.get(req.path)
            if node is None:
                if req.path is None:  # ZooKeeper: a NullPointerException, i.e. MarshallingError
                    return Reply(r.ReplyHeader(xid, zxid, _MARSHALLING_ERROR))
                node = self.tree.get_node(req.path)  # "" is the root too
                if node is None:
                    return Reply(r.ReplyHeader(xid, zxid, Err.NO_NODE))
            acl = node.acl
            if acl is not OPEN_ACL_UNSAFE and not acls.check_acl(acl, _READ, conn.ids):
                return Reply(r.ReplyHeader(xid, zxid, Err.NO_AUTH))
            if req.watch:
                self.tree.data_watches.add(req.path, conn.session_id)
            return Reply(r.ReplyHeader(xid, zxid, 0), r.GetDataResponse(node.data, node.stat()))
        if op == _PING:
            return Reply(r.ReplyHeader(xid, zxid, 0))
        if not self.tracker.is_live(conn.session_id):
            return Reply(r.ReplyHeader(xid, zxid, Err.SESSION_EXPIRED))
        try:
            body = self._read_body(conn, op, payload)
        except _FailedWithBody as e:
            return Reply(r.ReplyHeader(xid, zxid, e.code), e.body)
        except PrepError as e:
            return Reply(r.ReplyHeader(xid, zxid, e.code))
        except (JuteError, KeyError, ValueError, TypeError, AttributeError):
            return Reply(r.ReplyHeader(xid, zxid, Err.MARSHALLING_ERROR))
        return Reply(r.ReplyHeader(xid, zxid, 0), body)

    def _node_for_read(self, conn: CoreConnection, path: str | None, perm: int = _READ) -> Any:
        if path is None:
            # ZooKeeper looks a null path up and throws NullPointerException: MarshallingError.
            raise PrepError(Err.MARSHALLING_ERROR)
        node = self.tree.get_node(path)  # "" is the root too, as in ZooKeeper's NodeHashMap
        if node is None:
            raise PrepError(Err.NO_NODE)
        if not acls.check_acl(node.acl, perm, conn.ids):
            raise PrepError(Err.NO_AUTH)
        return node

    def _read_body(self, conn: CoreConnection, op: int, payload: Any) -> Any:
        tree = self.tree
        sid = conn.session_id
        if op == _GET_DATA:
            req = decode_request(op, payload)
            node = self._node_for_read(conn, req.path)
            if req.watch:
                tree.data_watches.add(req.path, sid)
            return r.GetDataResponse(node.data, node.stat())
        if op == OpCode.EXISTS:
            req = decode_request(op, payload)
            path = req.path
            if path is None:  # path.indexOf('\0') throws NullPointerException
                raise PrepError(Err.MARSHALLING_ERROR)
            if "\0" in path:
                raise PrepError(Err.BAD_ARGUMENTS)
            if req.watch:
                tree.data_watches.add(path, sid)
            node = tree.get_node(path)
            if node is None:
                raise PrepError(Err.NO_NODE)
            return r.ExistsResponse(node.stat())
        if op == OpCode.GET_CHILDREN or op == OpCode.GET_CHILDREN2:
            req = decode_request(op, payload)
            node = self._node_for_read(conn, req.path)
            if req.watch:
                tree.child_watches.add(req.path, sid)
            if op == OpCode.GET_CHILDREN:
                return r.GetChildrenResponse(child_names(node))
            return r.GetChildren2Response(child_names(node), node.stat())
        if op == OpCode.GET_ACL:
            req = decode_request(op, payload)
            node = self._node_for_read(conn, req.path, _READ | _ADMIN)
            acl = list(node.acl)
            if not acls.check_acl(node.acl, _ADMIN, conn.ids):
                # Without ADMIN the digest hashes are masked (ZOOKEEPER-1392 follow-up).
                acl = [
                    r.ACL(a.perms, r.Id(a.id.scheme, (a.id.id or "").split(":", 1)[0] + ":x"))
                    if a.id.scheme == "digest"
                    else a
                    for a in acl
                ]
            return r.GetACLResponse(acl, node.stat())
        if op == OpCode.SYNC:
            # At once: a standalone server (or a read-only one) is all there is.  An ensemble
            # member's ReplicaCore holds a sync until a quorum confirms its leader.
            req = decode_request(op, payload)
            return r.SyncResponse(req.path)
        if op == OpCode.SET_WATCHES or op == OpCode.SET_WATCHES2:
            req = decode_request(op, payload)
            two = op == OpCode.SET_WATCHES2
            events = tree.set_watches(
                req.relative_zxid,
                req.data_watches or (),
                req.exist_watches or (),
                req.child_watches or (),
                (req.persistent_watches or ()) if two else (),
                (req.persistent_recursive_watches or ()) if two else (),
                sid,
            )
            for ev in events:
                self._outputs.append((conn.conn_id, Notification(-1, ev)))
            return None
        if op == OpCode.CHECK_WATCHES or op == OpCode.REMOVE_WATCHES:
            req = decode_request(op, payload)
            # ZooKeeper 3.8's WatcherType.fromInt knows only 1-3 (it throws, i.e. MarshallingError,
            # for 4 and 5 too).
            if req.type not in (1, 2, 3):
                raise PrepError(Err.MARSHALLING_ERROR)
            if req.path is None:
                # checkWatches walks the path (NullPointerException); removeWatches looks it up
                # in the watcher's path set and finds nothing.
                raise PrepError(Err.MARSHALLING_ERROR if op == OpCode.CHECK_WATCHES else Err.NO_WATCHER)
            wtype = WatcherType(req.type)
            found = (self._check_watch if op == OpCode.CHECK_WATCHES else self._remove_watch)(
                req.path, wtype, sid
            )
            if not found:
                raise PrepError(Err.NO_WATCHER)
            return None
        if op == OpCode.GET_EPHEMERALS:
            req = decode_request(op, payload)
            prefix = req.prefix_path
            mine = list(tree.ephemerals.get(sid, ()))
            if prefix is None or not prefix.strip() or prefix.strip() == "/":
                return r.GetEphemeralsResponse(mine)
            return r.GetEphemeralsResponse([p for p in mine if p.startswith(prefix)])
        if op == OpCode.GET_ALL_CHILDREN_NUMBER:
            req = decode_request(op, payload)
            self._node_for_read(conn, req.path)
            return r.GetAllChildrenNumberResponse(tree.get_all_children_number(req.path))
        if op == OpCode.MULTI_READ:
            return MultiResponse(self._multi_read(conn, payload))
        if op == OpCode.ADD_WATCH:
            req = decode_request(op, payload)
            if req.mode == 0:
                mode = wm.PERSISTENT
            elif req.mode == 1:
                mode = wm.RECURSIVE
            else:
                raise ValueError(f"unsupported addWatch mode {req.mode}")
            if req.path is not None:  # ZooKeeper keeps a watch on null; it can never fire
                tree.add_watch(req.path, sid, mode)
            return r.ErrorResponse(0)
        if op == OpCode.WHO_AM_I:
            return r.WhoAmIResponse([r.ClientInfo(i.scheme, acls.user_name(i)) for i in conn.ids])
        raise KeyError(op)

    def _multi_read(self, conn: CoreConnection, payload: Any) -> list[OpResult]:
        try:
            ops = decode_multi(payload, read=True)
        except JuteError:
            # Only write ops: ZooKeeper decodes them, then fails at the first one ("Invalid type
            # of op"), sending the empty MultiResponse along.  Anything else is undecodable.
            decode_multi(payload, read=False)
            raise _FailedWithBody(Err.MARSHALLING_ERROR, MultiResponse([])) from None
        out: list[OpResult] = []
        for op in ops:
            if op.request.path is None:
                # A NullPointerException in FinalRequestProcessor: MarshallingError, and the
                # MultiResponse built so far goes out with it.
                raise _FailedWithBody(Err.MARSHALLING_ERROR, MultiResponse(out))
            try:
                node = self._node_for_read(conn, op.request.path)
            except PrepError as e:
                out.append(OpResult(OpCode.ERROR, e.code))
                continue
            if op.type == OpCode.GET_DATA:
                if op.request.watch:
                    self.tree.data_watches.add(op.request.path, conn.session_id)
                out.append(OpResult(OpCode.GET_DATA, 0, r.GetDataResponse(node.data, node.stat())))
            else:
                if op.request.watch:
                    self.tree.child_watches.add(op.request.path, conn.session_id)
                out.append(OpResult(OpCode.GET_CHILDREN, 0, r.GetChildrenResponse(child_names(node))))
        return out

    def _check_watch(self, path: str, wtype: WatcherType, sid: int) -> bool:
        # ZooKeeper 3.8's WatchManager.containsWatcher answers true when *any* session watches
        # the path in that table (it never looks the watcher up in the set; a recursive watch
        # of the caller's own is in the set too); checkWatches reproduces that.
        t = self.tree
        if wtype == WatcherType.CHILDREN:
            return bool(t.child_watches.table.get(path))
        if wtype == WatcherType.DATA:
            return bool(t.data_watches.table.get(path))
        return bool(t.child_watches.table.get(path)) or bool(t.data_watches.table.get(path))

    def _remove_watch(self, path: str, wtype: WatcherType, sid: int) -> bool:
        # ZooKeeper 3.8's WatchManager.removeWatcher drops the watcher from the path's set
        # whatever its mode (standard, persistent or recursive).
        t = self.tree
        if wtype == WatcherType.CHILDREN:
            return t.child_watches.remove(path, sid, None)
        if wtype == WatcherType.DATA:
            return t.data_watches.remove(path, sid, None)
        a = t.child_watches.remove(path, sid, None)
        b = t.data_watches.remove(path, sid, None)
        return a or b
