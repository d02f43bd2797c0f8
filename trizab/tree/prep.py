"""Turning write requests into transactions: ZooKeeper's ``PrepRequestProcessor``.

Theory of operation
-------------------
A write is checked (path, ACL, version, existence) and turned into the
transaction that will be logged.  With group commit many writes are in flight
at once, so checks run against the tree *plus* the changes of every prepared but
not yet applied transaction: ``ChangeRecord`` s in :attr:`Prep.changes`, exactly
as ``zks.outstandingChanges`` / ``outstandingChangesForPath``.  A record carries
only what later checks need (existence, versions, child count, owner, ACL).
When a transaction is applied, :meth:`Prep.applied` drops the records up to its
zxid.  A failing op inside a multi rolls back the records that multi added.

Failures raise :class:`PrepError`; the caller logs an ``ErrorTxn`` with that code
(ZooKeeper logs failed writes too, so they consume a zxid).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from trizab.tree import acl as acls
from trizab.tree.datatree import NORMAL, TTL, DataTree, ephemeral_kind
from trizab.tree.paths import InvalidPath, validate_path
from trizab.txn import encode_multi_member
from trizab.wire import records as r
from trizab.wire.codes import CONTAINER_EPHEMERAL_OWNER, CREATE_MODES, MAX_TTL_MS, Err, OpCode, Perms
from trizab.wire.requests import MultiOp

__all__ = ["ChangeRecord", "Prep", "PrepError"]

_TTL_MASK = -0x0100000000000000
# Plain ints: IntFlag arithmetic is slow and this is the write hot path.
_READ, _WRITE, _CREATE, _DELETE, _ADMIN = (
    int(p) for p in (Perms.READ, Perms.WRITE, Perms.CREATE, Perms.DELETE, Perms.ADMIN)
)
_SET_DATA = int(OpCode.SET_DATA)
_DELETE_OP = int(OpCode.DELETE)
# _create compares with these five times a create (an IntEnum member lookup is ~0.1 us on 3.11).
_CREATE_TTL = int(OpCode.CREATE_TTL)
_CREATE_CONTAINER = int(OpCode.CREATE_CONTAINER)
_CREATES = frozenset(
    int(o) for o in (OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER, OpCode.CREATE_TTL)
)
_INCONSISTENT = r.ErrorTxn(Err.RUNTIME_INCONSISTENCY)


class PrepError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ChangeRecord:
    """``ZooKeeperServer.ChangeRecord``: the pending view of one path (``exists`` False = deleted)."""

    __slots__ = ("acl", "aversion", "child_count", "cversion", "exists", "owner", "path", "version", "zxid")

    def __init__(
        self,
        zxid: int,
        path: str,
        exists: bool,
        version: int = 0,
        cversion: int = 0,
        aversion: int = 0,
        owner: int = 0,
        child_count: int = 0,
        acl: Sequence[r.ACL] = (),
    ) -> None:
        self.zxid = zxid
        self.path = path
        self.exists = exists
        self.version = version
        self.cversion = cversion
        self.aversion = aversion
        self.owner = owner
        self.child_count = child_count
        self.acl = acl

    def duplicate(self, zxid: int) -> ChangeRecord:
        return ChangeRecord(
            zxid,
            self.path,
            self.exists,
            self.version,
            self.cversion,
            self.aversion,
            self.owner,
            self.child_count,
            self.acl,
        )


def _check_and_inc_version(current: int, expected: int) -> int:
    """``checkAndIncVersion``, including the ZOOKEEPER-4743 wrap past -1."""
    if expected != -1 and expected != current:
        raise PrepError(Err.BAD_VERSION)
    nxt = current + 1
    if nxt > 0x7FFFFFFF:
        nxt -= 1 << 32
    return 0 if nxt == -1 else nxt


def _validate(path: str | None) -> str:
    try:
        validate_path(path)
    except InvalidPath:
        raise PrepError(Err.BAD_ARGUMENTS) from None
    assert path is not None
    return path


def _parent_for(path: str | None, tree: DataTree, *, special_ok: bool) -> str:
    """``validatePathForCreate`` / ``getParentPathAndValidate``."""
    if path is None:
        # Java calls path.lastIndexOf on it: NullPointerException, answered as MarshallingError.
        raise PrepError(Err.MARSHALLING_ERROR)
    i = path.rfind("/")
    if i == -1 or "\0" in path or (not special_ok and tree.is_special_path(path)):
        raise PrepError(Err.BAD_ARGUMENTS)
    return path[:i] or "/"


class Prep:
    def __init__(
        self, tree: DataTree, *, extended_types: bool = False, x509: bool = False, sasl: bool = False
    ) -> None:
        self.tree = tree
        self.extended_types = extended_types
        self.x509 = x509  # whether the x509 scheme is registered (ACLs may name it)
        self.sasl = sasl  # whether the sasl scheme is registered
        self.changes: dict[str, ChangeRecord] = {}
        self.outstanding: deque[ChangeRecord] = deque()
        # Undo log of the multi being prepared: (path, previous record or None).
        self._undo: list[tuple[str, ChangeRecord | None]] | None = None

    # -- outstanding changes ---------------------------------------------------

    def record(self, path: str) -> ChangeRecord:
        """``getRecordForPath``: the pending view, or NoNode."""
        c = self.changes.get(path)
        if c is None:
            n = self.tree.nodes.get(path)
            if n is None:
                raise PrepError(Err.NO_NODE)
            return ChangeRecord(
                -1, path, True, n.version, n.cversion, n.aversion, n.ephemeral_owner, len(n.children), n.acl
            )
        if not c.exists:
            raise PrepError(Err.NO_NODE)
        return c

    def exists(self, path: str) -> bool:
        c = self.changes.get(path)
        if c is not None:
            return c.exists
        return path in self.tree.nodes

    def add(self, c: ChangeRecord) -> None:
        if self._undo is not None:
            self._undo.append((c.path, self.changes.get(c.path)))
        self.outstanding.append(c)
        self.changes[c.path] = c

    def applied(self, zxid: int) -> None:
        """Drop change records up to ``zxid`` (FinalRequestProcessor, after processTxn)."""
        out = self.outstanding
        changes = self.changes
        while out and out[0].zxid <= zxid:
            c = out.popleft()
            if changes.get(c.path) is c:
                del changes[c.path]

    def clear(self) -> None:
        self.changes.clear()
        self.outstanding.clear()

    # -- pRequest2Txn ------------------------------------------------------------

    def prep(
        self, op: int, req: Any, session_id: int, ids: Sequence[r.Id], zxid: int, time: int
    ) -> tuple[int, Any]:
        """One write op -> ``(txn type, txn body)``; raises PrepError."""
        if op == _SET_DATA:
            path = req.path
            rec = self.changes.get(path)
            if rec is None:
                # The common case, spelled out: no write to this path in flight, so the new
                # record is made straight from the node (record() then duplicate() would
                # build two).
                n = self.tree.nodes.get(path)
                if n is None:
                    # Only now validate: a path in the tree or among the pending changes was
                    # validated when it was created, so the answer cannot differ.
                    _validate(path)
                    raise PrepError(Err.NO_NODE)
                if not acls.check_acl(n.acl, _WRITE, ids):
                    raise PrepError(Err.NO_AUTH)
                version = _check_and_inc_version(n.version, req.version)
                nrec = ChangeRecord(
                    zxid,
                    path,
                    True,
                    version,
                    n.cversion,
                    n.aversion,
                    n.ephemeral_owner,
                    len(n.children),
                    n.acl,
                )
            else:
                if not rec.exists:
                    raise PrepError(Err.NO_NODE)
                if not acls.check_acl(rec.acl, _WRITE, ids):
                    raise PrepError(Err.NO_AUTH)
                version = _check_and_inc_version(rec.version, req.version)
                nrec = rec.duplicate(zxid)
                nrec.version = version
            self.add(nrec)
            return _SET_DATA, r.SetDataTxn(path, req.data, version)
        if op in _CREATES:
            return self._create(op, req, session_id, ids, zxid)
        if op == _DELETE_OP:
            return self._delete(req, ids, zxid)
        if op == OpCode.SET_ACL:
            path = _validate(req.path)
            new_acl = self._fixup(req.acl, ids)
            rec = self.record(path)
            if not acls.check_acl(rec.acl, _ADMIN, ids):
                raise PrepError(Err.NO_AUTH)
            version = _check_and_inc_version(rec.aversion, req.version)
            nrec = rec.duplicate(zxid)
            nrec.aversion = version
            nrec.acl = new_acl
            self.add(nrec)
            return OpCode.SET_ACL, r.SetACLTxn(path, new_acl, version)
        if op == OpCode.CHECK:
            path = _validate(req.path)
            rec = self.record(path)
            if not acls.check_acl(rec.acl, _READ, ids):
                raise PrepError(Err.NO_AUTH)
            return OpCode.CHECK, r.CheckVersionTxn(path, _check_and_inc_version(rec.version, req.version))
        raise PrepError(Err.MARSHALLING_ERROR)

    def _fixup(self, acl: Sequence[r.ACL] | None, ids: Sequence[r.Id]) -> list[r.ACL]:
        try:
            return acls.fixup_acl(acl, ids, x509=self.x509, sasl=self.sasl)
        except acls.AclError as e:
            raise PrepError(e.code) from None

    def _create(self, op: int, req: Any, session_id: int, ids: Sequence[r.Id], zxid: int) -> tuple[int, Any]:
        if op == _CREATE_TTL and not isinstance(req, r.CreateTTLRequest):
            # A multi's create op with TTL flags but no ttl: ZooKeeper casts its CreateRequest
            # to CreateTTLRequest (ClassCastException), failing the whole multi.
            raise PrepError(Err.MARSHALLING_ERROR)
        ttl = req.ttl if op == _CREATE_TTL else -1
        mode = CREATE_MODES.get(req.flags)
        if mode is None:
            raise PrepError(Err.BAD_ARGUMENTS)
        # validateCreateRequest
        if mode.is_ttl and not self.extended_types:
            raise PrepError(Err.UNIMPLEMENTED)
        if mode.is_ttl:
            if ttl > MAX_TTL_MS or ttl <= 0:
                raise PrepError(Err.BAD_ARGUMENTS)
        elif ttl >= 0:
            raise PrepError(Err.BAD_ARGUMENTS)
        if op == _CREATE_TTL and not mode.is_ttl:
            raise PrepError(Err.BAD_ARGUMENTS)
        path = req.path
        parent_path = _parent_for(path, self.tree, special_ok=True)
        new_acl = self._fixup(req.acl, ids)
        parent = self.record(parent_path)
        if not acls.check_acl(parent.acl, _CREATE, ids):
            raise PrepError(Err.NO_AUTH)
        if mode.is_sequential:
            # String.format("%010d", cversion): Python's format pads a negative the same way.
            path = f"{path}{parent.cversion:010d}"
        _validate(path)
        if self.exists(path):
            raise PrepError(Err.NODE_EXISTS)
        if ephemeral_kind(parent.owner, self.extended_types) == NORMAL:
            raise PrepError(Err.NO_CHILDREN_FOR_EPHEMERALS)
        new_cversion = parent.cversion + 1
        if new_cversion > 0x7FFFFFFF:
            new_cversion -= 1 << 32
        data = req.data
        if op == _CREATE_CONTAINER:
            txn_type, body = op, r.CreateContainerTxn(path, data, new_acl, new_cversion)
        elif op == _CREATE_TTL:
            txn_type, body = op, r.CreateTTLTxn(path, data, new_acl, new_cversion, ttl)
        else:
            txn_type, body = op, r.CreateTxn(path, data, new_acl, mode.is_ephemeral, new_cversion)
        # The pending owner follows the create *mode*, as in ZooKeeper's pRequest2TxnCreate,
        # even where the txn applied later makes another kind of node (a createContainer op
        # with ephemeral flags: pending, it is an ephemeral that refuses children).
        if mode.is_container:
            owner = CONTAINER_EPHEMERAL_OWNER
        elif mode.is_ttl:
            owner = _TTL_MASK | ttl
        elif mode.is_ephemeral:
            owner = session_id
        else:
            owner = 0
        prec = parent.duplicate(zxid)
        prec.child_count += 1
        prec.cversion = new_cversion
        self.add(prec)
        self.add(ChangeRecord(zxid, path, True, 0, 0, 0, owner, 0, new_acl))
        return txn_type, body

    def _delete(self, req: Any, ids: Sequence[r.Id], zxid: int) -> tuple[int, Any]:
        path = req.path
        parent_path = _parent_for(path, self.tree, special_ok=False)
        parent = self.record(parent_path)
        if not acls.check_acl(parent.acl, _DELETE, ids):
            raise PrepError(Err.NO_AUTH)
        rec = self.record(path)
        _check_and_inc_version(rec.version, req.version)
        if rec.child_count > 0:
            raise PrepError(Err.NOT_EMPTY)
        prec = parent.duplicate(zxid)
        prec.child_count -= 1
        self.add(prec)
        self.add(ChangeRecord(zxid, path, False))
        return OpCode.DELETE, r.DeleteTxn(path)

    def delete_container(self, path: str, zxid: int) -> tuple[int, Any]:
        """ContainerManager's deleteContainer (also used for expired TTL nodes)."""
        parent_path = _parent_for(path, self.tree, special_ok=False)
        rec = self.record(path)
        if rec.child_count > 0:
            raise PrepError(Err.NOT_EMPTY)
        if ephemeral_kind(rec.owner, self.extended_types) == NORMAL:
            raise PrepError(Err.BAD_VERSION)
        parent = self.record(parent_path)
        prec = parent.duplicate(zxid)
        prec.child_count -= 1
        self.add(prec)
        self.add(ChangeRecord(zxid, path, False))
        return OpCode.DELETE_CONTAINER, r.DeleteTxn(path)

    def close_session(self, session_id: int, zxid: int) -> tuple[int, Any]:
        """The closeSession txn lists the session's ephemerals, pending ones included."""
        es = dict(self.tree.ephemerals.get(session_id, {}))
        for c in self.outstanding:
            if not c.exists:
                es.pop(c.path, None)
            elif c.owner == session_id:
                es[c.path] = None
        for path in es:
            try:
                parent = self.record(path[: path.rfind("/")] or "/")
            except PrepError:
                parent = None
            if parent is not None:
                prec = parent.duplicate(zxid)
                prec.child_count -= 1
                self.add(prec)
            self.add(ChangeRecord(zxid, path, False))
        return OpCode.CLOSE_SESSION, r.CloseSessionTxn(list(es))

    def multi(
        self, ops: Sequence[MultiOp], session_id: int, ids: Sequence[r.Id], zxid: int, time: int
    ) -> tuple[r.MultiTxn, int]:
        """The MultiTxn for a multi, and the first failing op's error (0 if none)."""
        txns: list[r.Txn] = []
        err = 0
        self._undo = []
        try:
            for op in ops:
                if err:
                    txns.append(r.Txn(OpCode.ERROR, encode_multi_member(_INCONSISTENT)))
                    continue
                try:
                    t, body = self.prep(op.type, op.request, session_id, ids, zxid, time)
                except PrepError as e:
                    self._rollback(zxid)
                    if e.code == Err.MARSHALLING_ERROR:
                        # A NullPointerException in ZooKeeper, not a KeeperException: it fails
                        # the whole multi (an ErrorTxn), not just this op.
                        raise
                    err = e.code
                    txns.append(r.Txn(OpCode.ERROR, encode_multi_member(r.ErrorTxn(err))))
                    continue
                txns.append(r.Txn(t, encode_multi_member(body)))
        finally:
            self._undo = None
        return r.MultiTxn(txns), err

    def _rollback(self, zxid: int) -> None:
        undo = self._undo or []
        while self.outstanding and self.outstanding[-1].zxid == zxid:
            self.outstanding.pop()
        for path, prev in reversed(undo):
            if prev is None:
                self.changes.pop(path, None)
            else:
                self.changes[path] = prev
        undo.clear()


_ = TTL
