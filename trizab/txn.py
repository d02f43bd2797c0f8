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
from trizab.wire.jute import JuteError, decode_prefix, encode_into, fast_init

# ZooKeeper's TxnDigest{int version; long treeDigest}, after the record in 3.6+.
DIGEST_SIZE = 12

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
        """Decode header and body; a trailing ``TxnDigest`` (ZooKeeper 3.6+'s leaders put one
        in every PROPOSAL, ``Util.marshallTxnEntry``) is accepted and dropped."""
        header, pos = decode_prefix(r.TxnHeader, data)
        try:
            body_type = TXN_BODY[header.type]
        except KeyError:
            raise JuteError(f"unknown transaction type {header.type}") from None
        end = len(data)
        if body_type is None:
            if end - pos not in (0, DIGEST_SIZE):
                raise JuteError("trailing bytes after a body-less transaction")
            return cls(header, None)
        # closeSession written by old servers has no body; accept that as ZooKeeper does.
        if header.type == OpCode.CLOSE_SESSION and pos == end:
            return cls(header, r.CloseSessionTxn(None))
        body, pos = decode_prefix(body_type, data, pos)
        if pos != end and end - pos != DIGEST_SIZE:
            raise JuteError(f"{end - pos} trailing bytes after {body_type.__name__}")
        return cls(header, body)


fast_init(Txn)  # one per write: the records' faster __init__


def encode_multi_member(body: Any) -> bytes:
    out = bytearray()
    encode_into(out, body)
    return bytes(out)
