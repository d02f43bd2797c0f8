"""The operations a differential sequence is made of, and how each becomes wire bytes.

Theory of operation
-------------------
An operation is a small frozen value naming a session slot (``s``) and the
arguments of one request, written so that a shrunk failing sequence reads like
a script.  Paths are templates: ``{b}`` stands for the example's base node
(``/dt<N>``), so every example works in a fresh subtree while invalid paths
(``""``, ``None``, relative, ``//``, ``.``) stay literally what they are.

:func:`encode_request` turns an operation into ``(opcode, body bytes)``;
:func:`decode_body` turns a successful reply body back into plain Python values
(``Stat`` as a :class:`StatV`, zxids as :class:`Z`, times as :class:`T`,
session ids as :class:`Sid`) so the normalizer can map them to relations.
Bodies that do not decode as the expected record are kept as hex, so a server
sending the wrong record shows up as a difference rather than a crash.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import attrs

from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

# ---------------------------------------------------------------------------
# markers for values the normalizer rewrites


class Z(int):
    """A zxid as the server sent it."""

    def __repr__(self) -> str:
        return f"Z({int(self)})"


class T(int):
    """A time in ms since the epoch as the server sent it."""

    def __repr__(self) -> str:
        return f"T({int(self)})"


class Sid(int):
    """A session id (an ``ephemeralOwner``) as the server sent it."""

    def __repr__(self) -> str:
        return f"Sid({int(self)})"


ACLSpec = tuple[tuple[int, str | None, str | None], ...] | None


def digest_id(user: str, password: str) -> str:
    """``user:base64(sha1(user:password))``, DigestAuthenticationProvider.generateDigest."""
    raw = hashlib.sha1(f"{user}:{password}".encode()).digest()
    return f"{user}:{base64.b64encode(raw).decode()}"


def resolve(path: str | None, base: str) -> str | None:
    return None if path is None else path.replace("{b}", base)


def acl_records(acl: ACLSpec) -> list[r.ACL] | None:
    if acl is None:
        return None
    return [r.ACL(perms, r.Id(scheme, ident)) for perms, scheme, ident in acl]


# ---------------------------------------------------------------------------
# operations


@attrs.frozen
class Create:
    s: int
    path: str | None
    data: bytes | None = b""
    acl: ACLSpec = ((31, "world", "anyone"),)
    flags: int = 0
    opcode: int = OpCode.CREATE
    ttl: int = 0


@attrs.frozen
class Delete:
    s: int
    path: str | None
    version: int = -1


@attrs.frozen
class Read:
    """exists / getData / getChildren / getChildren2 (``opcode``) with a watch flag."""

    s: int
    opcode: int
    path: str | None
    watch: bool = False


@attrs.frozen
class SetData:
    s: int
    path: str | None
    data: bytes | None = b"x"
    version: int = -1


@attrs.frozen
class GetACL:
    s: int
    path: str | None


@attrs.frozen
class SetACL:
    s: int
    path: str | None
    acl: ACLSpec
    version: int = -1


@attrs.frozen
class Check:
    s: int
    path: str | None
    version: int = -1


@attrs.frozen
class Sync:
    s: int
    path: str | None


SubOp = Create | Delete | SetData | Check | Read


@attrs.frozen
class Multi:
    """multi (14) or multiRead (22) over sub-operations (their ``s`` is ignored)."""

    s: int
    ops: tuple[SubOp, ...]
    opcode: int = OpCode.MULTI


@attrs.frozen
class SetWatchesOp:
    """setWatches (101) or setWatches2 (105) on xid -8; ``rel`` is 'zero', 'last' or 'future'."""

    s: int
    rel: str
    data: tuple[str, ...] = ()
    exist: tuple[str, ...] = ()
    child: tuple[str, ...] = ()
    persistent: tuple[str, ...] = ()
    recursive: tuple[str, ...] = ()
    v2: bool = False


@attrs.frozen
class AddWatch:
    s: int
    path: str | None
    mode: int


@attrs.frozen
class WatchCheck:
    """checkWatches (17) or removeWatches (18)."""

    s: int
    opcode: int
    path: str | None
    type: int


@attrs.frozen
class GetEphemerals:
    s: int
    prefix: str | None


@attrs.frozen
class GetAllChildrenNumber:
    s: int
    path: str | None


@attrs.frozen
class WhoAmI:
    s: int


@attrs.frozen
class Auth:
    s: int
    scheme: str | None
    auth: bytes | None


@attrs.frozen
class CloseSession:
    s: int


@attrs.frozen
class Reconnect:
    """Drop the TCP connection and resume the session on a new one (with lastZxidSeen)."""

    s: int


@attrs.frozen
class RawRequest:
    """Any opcode with any body bytes: unknown opcodes, truncated records."""

    s: int
    opcode: int
    body: bytes = b""


@attrs.frozen
class Pipeline:
    """Several requests sent back to back on one session before any reply is read.

    Replies must come back in request order, a read queued behind a write of the same session
    must see it, and a notification must precede any reply that shows its change.
    """

    s: int
    ops: tuple[Create | Delete | Read | SetData | Multi | GetACL | SetACL | Sync, ...]


Op = (
    Pipeline
    | Create
    | Delete
    | Read
    | SetData
    | GetACL
    | SetACL
    | Check
    | Sync
    | Multi
    | SetWatchesOp
    | AddWatch
    | WatchCheck
    | GetEphemerals
    | GetAllChildrenNumber
    | WhoAmI
    | Auth
    | CloseSession
    | Reconnect
    | RawRequest
)


# ---------------------------------------------------------------------------
# encoding


def _sub_record(op: SubOp, base: str) -> tuple[int, Any]:
    if isinstance(op, Create):
        path = resolve(op.path, base)
        if op.opcode == OpCode.CREATE_TTL:
            return op.opcode, r.CreateTTLRequest(path, op.data, acl_records(op.acl), op.flags, op.ttl)
        return op.opcode, r.CreateRequest(path, op.data, acl_records(op.acl), op.flags)
    if isinstance(op, Delete):
        return OpCode.DELETE, r.DeleteRequest(resolve(op.path, base), op.version)
    if isinstance(op, SetData):
        return OpCode.SET_DATA, r.SetDataRequest(resolve(op.path, base), op.data, op.version)
    if isinstance(op, Check):
        return OpCode.CHECK, r.CheckVersionRequest(resolve(op.path, base), op.version)
    if isinstance(op, Read):
        path = resolve(op.path, base)
        if op.opcode in (OpCode.GET_CHILDREN, OpCode.GET_CHILDREN2):
            return op.opcode, r.GetChildrenRequest(path, op.watch)
        if op.opcode == OpCode.EXISTS:
            return op.opcode, r.ExistsRequest(path, op.watch)
        return op.opcode, r.GetDataRequest(path, op.watch)
    raise TypeError(op)


def encode_request(op: Op, base: str, last_zxid: int = 0) -> tuple[int, int | None, bytes]:
    """``(opcode, forced xid or None, body)`` for an operation (Reconnect is not a request)."""
    if isinstance(op, Create | Delete | SetData | Check | Read):
        opcode, rec = _sub_record(op, base)
        return opcode, None, jute.encode(rec)
    if isinstance(op, GetACL):
        return OpCode.GET_ACL, None, jute.encode(r.GetACLRequest(resolve(op.path, base)))
    if isinstance(op, SetACL):
        rec = r.SetACLRequest(resolve(op.path, base), acl_records(op.acl), op.version)
        return OpCode.SET_ACL, None, jute.encode(rec)
    if isinstance(op, Sync):
        return OpCode.SYNC, None, jute.encode(r.SyncRequest(resolve(op.path, base)))
    if isinstance(op, Multi):
        out = bytearray()
        for sub in op.ops:
            opcode, rec = _sub_record(sub, base)
            jute.encode_into(out, r.MultiHeader(opcode, False, -1), rec)
        jute.encode_into(out, r.MultiHeader(-1, True, -1))
        return op.opcode, None, bytes(out)
    if isinstance(op, SetWatchesOp):
        rel = {"zero": 0, "last": last_zxid, "future": last_zxid + 1000}[op.rel]

        def paths(ps: tuple[str, ...]) -> list[str]:
            return [p.replace("{b}", base) for p in ps]

        if op.v2:
            rec2 = r.SetWatches2(
                rel,
                paths(op.data),
                paths(op.exist),
                paths(op.child),
                paths(op.persistent),
                paths(op.recursive),
            )
            return OpCode.SET_WATCHES2, -8, jute.encode(rec2)
        rec1 = r.SetWatches(rel, paths(op.data), paths(op.exist), paths(op.child))
        return OpCode.SET_WATCHES, -8, jute.encode(rec1)
    if isinstance(op, AddWatch):
        return OpCode.ADD_WATCH, None, jute.encode(r.AddWatchRequest(resolve(op.path, base), op.mode))
    if isinstance(op, WatchCheck):
        rec3 = r.CheckWatchesRequest(resolve(op.path, base), op.type)
        return op.opcode, None, jute.encode(rec3)
    if isinstance(op, GetEphemerals):
        return OpCode.GET_EPHEMERALS, None, jute.encode(r.GetEphemeralsRequest(resolve(op.prefix, base)))
    if isinstance(op, GetAllChildrenNumber):
        rec4 = r.GetAllChildrenNumberRequest(resolve(op.path, base))
        return OpCode.GET_ALL_CHILDREN_NUMBER, None, jute.encode(rec4)
    if isinstance(op, WhoAmI):
        return OpCode.WHO_AM_I, None, b""
    if isinstance(op, Auth):
        return OpCode.AUTH, -4, jute.encode(r.AuthPacket(0, op.scheme, op.auth))
    if isinstance(op, CloseSession):
        return OpCode.CLOSE_SESSION, None, b""
    if isinstance(op, RawRequest):
        return op.opcode, None, op.body
    raise TypeError(op)


# ---------------------------------------------------------------------------
# decoding


@attrs.frozen
class StatV:
    czxid: Z
    mzxid: Z
    ctime: T
    mtime: T
    version: int
    cversion: int
    aversion: int
    ephemeral_owner: Sid
    data_length: int
    num_children: int
    pzxid: Z


def stat_value(st: r.Stat) -> StatV:
    return StatV(
        Z(st.czxid),
        Z(st.mzxid),
        T(st.ctime),
        T(st.mtime),
        st.version,
        st.cversion,
        st.aversion,
        Sid(st.ephemeral_owner),
        st.data_length,
        st.num_children,
        Z(st.pzxid),
    )


def _acl_value(acl: list[r.ACL] | None) -> Any:
    return None if acl is None else [(a.perms, a.id.scheme, a.id.id) for a in acl]


def _children(children: list[str] | None) -> Any:
    return None if children is None else ("children", *children)


_RESPONSES: dict[int, Any] = {
    OpCode.CREATE: r.CreateResponse,
    OpCode.EXISTS: r.ExistsResponse,
    OpCode.GET_DATA: r.GetDataResponse,
    OpCode.SET_DATA: r.SetDataResponse,
    OpCode.GET_ACL: r.GetACLResponse,
    OpCode.SET_ACL: r.SetACLResponse,
    OpCode.GET_CHILDREN: r.GetChildrenResponse,
    OpCode.SYNC: r.SyncResponse,
    OpCode.GET_CHILDREN2: r.GetChildren2Response,
    OpCode.CHECK: r.SetDataResponse,
    OpCode.CREATE2: r.Create2Response,
    OpCode.CREATE_CONTAINER: r.Create2Response,
    OpCode.CREATE_TTL: r.Create2Response,
    OpCode.GET_EPHEMERALS: r.GetEphemeralsResponse,
    OpCode.GET_ALL_CHILDREN_NUMBER: r.GetAllChildrenNumberResponse,
    OpCode.ADD_WATCH: r.ErrorResponse,
    OpCode.WHO_AM_I: r.WhoAmIResponse,
}


def record_value(rec: Any) -> Any:
    """A decoded response record as comparable plain values with markers."""
    if isinstance(rec, r.Stat):
        return stat_value(rec)
    if isinstance(rec, r.GetChildrenResponse):
        return _children(rec.children)
    if isinstance(rec, r.GetChildren2Response):
        return (_children(rec.children), stat_value(rec.stat))
    if isinstance(rec, r.GetACLResponse):
        return (_acl_value(rec.acl), stat_value(rec.stat))
    if isinstance(rec, r.GetEphemeralsResponse):
        return _children(rec.ephemerals)
    if isinstance(rec, r.WhoAmIResponse):
        info = rec.client_info
        return None if info is None else [(c.auth_scheme, c.user) for c in info]
    out = []
    for field in attrs.fields(type(rec)):
        value = getattr(rec, field.name)
        out.append((field.name, stat_value(value) if isinstance(value, r.Stat) else value))
    return (type(rec).__name__, *out)


def _decode_multi(body: bytes) -> Any:
    results: list[Any] = []
    pos = 0
    while True:
        header, pos = jute.decode_prefix(r.MultiHeader, body, pos)
        if header.done:
            break
        if header.type == -1:
            rec, pos = jute.decode_prefix(r.ErrorResponse, body, pos)
            results.append(("error", rec.err))
            continue
        cls = {
            OpCode.CREATE: r.CreateResponse,
            OpCode.CREATE2: r.Create2Response,
            OpCode.SET_DATA: r.SetDataResponse,
            OpCode.GET_DATA: r.GetDataResponse,
            OpCode.GET_CHILDREN: r.GetChildrenResponse,
        }.get(header.type)
        if cls is None:
            results.append((header.type, header.err))
            continue
        rec, pos = jute.decode_prefix(cls, body, pos)
        results.append((header.type, header.err, record_value(rec)))
    trailing = body[pos:]
    return ("multi", header.type, header.err, results, trailing.hex())


def decode_body(opcode: int, body: bytes) -> Any:
    """The value of a successful reply body for ``opcode`` (hex if it is not the expected record)."""
    try:
        if opcode in (OpCode.MULTI, OpCode.MULTI_READ):
            return _decode_multi(body)
        cls = _RESPONSES.get(opcode)
        if cls is None:
            return ("raw", body.hex()) if body else None
        return record_value(jute.decode(cls, body))
    except jute.JuteError:
        return ("undecodable", body.hex())
