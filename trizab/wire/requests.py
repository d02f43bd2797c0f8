"""Client request bodies by opcode, and ZooKeeper's multi-operation records.

Theory of operation
-------------------
After the ``RequestHeader`` a request body is one record whose type the opcode
names (``REQUEST_RECORD``); opcodes without a body (ping, closeSession, whoAmI)
map to None.  Like Java's ``ByteBufferInputStream.byteBuffer2Record``, decoding
ignores trailing bytes.

``multi`` and ``multiRead`` bodies are a sequence of ``MultiHeader`` + op record,
ended by a header with ``done`` set (``MultiOperationRecord``); replies are the
same shape (``MultiResponse``).  As in ``MultiOperationRecord.deserialize``, an
unknown op type or a mix of read and write ops is a decode error, and a create
whose flags say container (or TTL) becomes a createContainer (createTTL) op
while a create2 becomes a plain create (``Op.create``), and a createTTL
whose flags are not a TTL mode a plain create or createContainer.
"""

from __future__ import annotations

from typing import Any

import attrs

from trizab.wire import records as r
from trizab.wire.codes import CreateMode, OpCode
from trizab.wire.jute import JuteError, decode_prefix

__all__ = [
    "REQUEST_RECORD",
    "MultiOp",
    "MultiResponse",
    "OpResult",
    "decode_multi",
    "decode_request",
    "encode_multi",
]

REQUEST_RECORD: dict[int, type | None] = {
    OpCode.CREATE: r.CreateRequest,
    OpCode.DELETE: r.DeleteRequest,
    OpCode.EXISTS: r.ExistsRequest,
    OpCode.GET_DATA: r.GetDataRequest,
    OpCode.SET_DATA: r.SetDataRequest,
    OpCode.GET_ACL: r.GetACLRequest,
    OpCode.SET_ACL: r.SetACLRequest,
    OpCode.GET_CHILDREN: r.GetChildrenRequest,
    OpCode.SYNC: r.SyncRequest,
    OpCode.PING: None,
    OpCode.GET_CHILDREN2: r.GetChildren2Request,
    OpCode.CHECK: r.CheckVersionRequest,
    OpCode.CREATE2: r.CreateRequest,
    OpCode.RECONFIG: r.ReconfigRequest,
    OpCode.CHECK_WATCHES: r.CheckWatchesRequest,
    OpCode.REMOVE_WATCHES: r.RemoveWatchesRequest,
    OpCode.CREATE_CONTAINER: r.CreateRequest,
    OpCode.CREATE_TTL: r.CreateTTLRequest,
    OpCode.AUTH: r.AuthPacket,
    OpCode.SET_WATCHES: r.SetWatches,
    OpCode.SASL: r.GetSASLRequest,
    OpCode.GET_EPHEMERALS: r.GetEphemeralsRequest,
    OpCode.GET_ALL_CHILDREN_NUMBER: r.GetAllChildrenNumberRequest,
    OpCode.SET_WATCHES2: r.SetWatches2,
    OpCode.ADD_WATCH: r.AddWatchRequest,
    OpCode.WHO_AM_I: None,
    OpCode.CLOSE_SESSION: None,
}

_WRITE_OPS: dict[int, type] = {
    OpCode.CREATE: r.CreateRequest,
    OpCode.CREATE2: r.CreateRequest,
    OpCode.CREATE_CONTAINER: r.CreateRequest,
    OpCode.CREATE_TTL: r.CreateTTLRequest,
    OpCode.DELETE: r.DeleteRequest,
    OpCode.SET_DATA: r.SetDataRequest,
    OpCode.CHECK: r.CheckVersionRequest,
}
_READ_OPS: dict[int, type] = {
    OpCode.GET_CHILDREN: r.GetChildrenRequest,
    OpCode.GET_DATA: r.GetDataRequest,
}


def decode_request(opcode: int, payload: bytes | memoryview) -> Any:
    """The request record for ``opcode`` (None for body-less ops); JuteError if malformed.

    Raises KeyError for an opcode that is not a client request.
    """
    cls = REQUEST_RECORD[opcode]
    if cls is None:
        return None
    return decode_prefix(cls, payload, 0)[0]


@attrs.frozen
class MultiOp:
    """One op of a multi: its (possibly rewritten) type and request record."""

    type: int
    request: Any


def _create_type(flags: int) -> int:
    try:
        mode = CreateMode(flags)
    except ValueError:
        return OpCode.CREATE
    if mode.is_ttl:
        return OpCode.CREATE_TTL
    return OpCode.CREATE_CONTAINER if mode.is_container else OpCode.CREATE


def decode_multi(payload: bytes | memoryview, *, read: bool) -> list[MultiOp]:
    """``MultiOperationRecord.deserialize``; JuteError on malformed input or mixed op kinds."""
    ops: list[MultiOp] = []
    h, pos = decode_prefix(r.MultiHeader, payload, 0)
    kind: bool | None = None
    while not h.done:
        t = h.type
        if t in _WRITE_OPS:
            is_read = False
            rec, pos = decode_prefix(_WRITE_OPS[t], payload, pos)
            if t in (OpCode.CREATE, OpCode.CREATE2, OpCode.CREATE_CONTAINER):
                # Op.create with TTL flags but no ttl becomes a createTTL op holding a
                # CreateRequest; preparing it fails the whole multi (Prep._create).
                t = _create_type(rec.flags)
            elif t == OpCode.CREATE_TTL and _create_type(rec.flags) != OpCode.CREATE_TTL:
                # Op.create(path, data, acl, flags, ttl) drops the ttl of a non-TTL mode: a
                # plain create (or createContainer) op.
                t = _create_type(rec.flags)
                rec = r.CreateRequest(rec.path, rec.data, rec.acl, rec.flags)
        elif t in _READ_OPS:
            is_read = True
            rec, pos = decode_prefix(_READ_OPS[t], payload, pos)
        else:
            raise JuteError(f"Invalid type of op {t}")
        if kind is None:
            kind = is_read
        elif kind != is_read:
            raise JuteError("Mixing read and write operations in a multi request")
        ops.append(MultiOp(t, rec))
        h, pos = decode_prefix(r.MultiHeader, payload, pos)
    if kind is not None and kind != read:
        raise JuteError("wrong kind of ops for this multi opcode")
    return ops


def encode_multi(ops: list[MultiOp]) -> bytes:
    """Client side of ``MultiOperationRecord.serialize`` (tests and load generators)."""
    out = bytearray()
    for op in ops:
        r.MultiHeader(op.type, False, -1).jute_encode(out)
        op.request.jute_encode(out)
    r.MultiHeader(-1, True, -1).jute_encode(out)
    return bytes(out)


@attrs.frozen
class OpResult:
    """One result: ``type`` is the op's (15 for create2-style creates, -1 for errors)."""

    type: int
    err: int = 0
    body: Any = None


_END = r.MultiHeader(-1, True, -1)


@attrs.frozen
class MultiResponse:
    """``MultiResponse``: encodes like a Jute record so drivers can treat it as one."""

    results: list[OpResult]

    def jute_encode(self, out: bytearray) -> None:
        for res in self.results:
            r.MultiHeader(res.type, False, res.err).jute_encode(out)
            if res.type == OpCode.ERROR:
                r.ErrorResponse(res.err).jute_encode(out)
            elif res.body is not None:
                res.body.jute_encode(out)
        _END.jute_encode(out)

    @classmethod
    def decode(cls, payload: bytes | memoryview) -> MultiResponse:
        """Client side (tests): parse a MultiResponse body."""
        results: list[OpResult] = []
        h, pos = decode_prefix(r.MultiHeader, payload, 0)
        bodies: dict[int, type | None] = {
            OpCode.CREATE: r.CreateResponse,
            OpCode.CREATE2: r.Create2Response,
            OpCode.DELETE: None,
            OpCode.CHECK: None,
            OpCode.SET_DATA: r.SetDataResponse,
            OpCode.GET_CHILDREN: r.GetChildrenResponse,
            OpCode.GET_DATA: r.GetDataResponse,
            OpCode.ERROR: r.ErrorResponse,
        }
        while not h.done:
            if h.type not in bodies:
                raise JuteError(f"unknown result type {h.type}")
            body_cls = bodies[h.type]
            body = None
            if body_cls is not None:
                body, pos = decode_prefix(body_cls, payload, pos)
            if h.type == OpCode.ERROR:
                results.append(OpResult(h.type, body.err, None))
            else:
                results.append(OpResult(h.type, h.err, body))
            h, pos = decode_prefix(r.MultiHeader, payload, pos)
        return cls(results)
