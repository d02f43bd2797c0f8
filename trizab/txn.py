"""Transactions: the unit that is logged, replicated by ZAB and applied to the tree.

A transaction is ZooKeeper's ``TxnHeader`` plus the record for its type
(``CreateTxn``, ``SetDataTxn``, ...), exactly as Apache ZooKeeper writes them into
its transaction log, so that a log can be read by either side.  The encoded form
(header then body) is what storage engines persist and what a ZAB proposal
carries; the data tree only ever sees decoded :class:`Txn` values.
"""

from __future__ import annotations

from typing import Any

import attrs

from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import JuteError, decode, decode_prefix, encode_into, fast_init

# Which body record each transaction type carries (None: no body).
TXN_BODY: dict[int, type | None] = {
    OpCode.CREATE: r.CreateTxn,
    OpCode.CREATE2: r.CreateTxn,
    OpCode.CREATE_CONTAINER: r.CreateContainerTxn,
    OpCode.CREATE_TTL: r.CreateTTLTxn,
    OpCode.DELETE: r.DeleteTxn,
    OpCode.DELETE_CONTAINER: r.DeleteTxn,
    OpCode.SET_DATA: r.SetDataTxn,
    # ZooKeeper logs a reconfig as a setData of /zookeeper/config with its own type.
    OpCode.RECONFIG: r.SetDataTxn,
    OpCode.SET_ACL: r.SetACLTxn,
    OpCode.CHECK: r.CheckVersionTxn,
    OpCode.MULTI: r.MultiTxn,
    OpCode.CREATE_SESSION: r.CreateSessionTxn,
    OpCode.CLOSE_SESSION: r.CloseSessionTxn,
    OpCode.ERROR: r.ErrorTxn,
}


@attrs.frozen
class Txn:
    """One transaction: ``header.zxid`` orders it, ``header.type`` says what ``body`` is."""

    header: r.TxnHeader
    body: Any

    @property
    def zxid(self) -> int:
        return self.header.zxid

    def encode(self) -> bytes:
        out = bytearray()
        encode_into(out, self.header)
        if self.body is not None:
            encode_into(out, self.body)
        return bytes(out)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Txn:
        header, pos = decode_prefix(r.TxnHeader, data)
        try:
            body_type = TXN_BODY[header.type]
        except KeyError:
            raise JuteError(f"unknown transaction type {header.type}") from None
        if body_type is None:
            if pos != len(data):
                raise JuteError("trailing bytes after a body-less transaction")
            return cls(header, None)
        # closeSession written by old servers has no body; accept that as ZooKeeper does.
        if header.type == OpCode.CLOSE_SESSION and pos == len(data):
            return cls(header, r.CloseSessionTxn(None))
        return cls(header, decode(body_type, data, pos))


fast_init(Txn)  # one per write: the records' faster __init__


def encode_multi_member(body: Any) -> bytes:
    out = bytearray()
    encode_into(out, body)
    return bytes(out)
