"""Every record of ``zookeeper.jute`` that trizab speaks, declared once.

Field names follow ``zookeeper.jute`` in snake_case (``lastZxidSeen`` becomes
``last_zxid_seen``); field order is wire order.  The same classes serve the client
protocol (frontend), transactions (data tree, storage) and the quorum protocol.
"""

from __future__ import annotations

from typing import Annotated

import attrs

from trizab.wire.jute import BUFFER, USTRING, Bool, Buffer, Int, Long, UString, Vector, record

# ---------------------------------------------------------------------------
# data


@record
class Id:
    scheme: UString
    id: UString


@record
class ACL:
    perms: Int
    id: Id


@record
class Stat:
    czxid: Long
    mzxid: Long
    ctime: Long
    mtime: Long
    version: Int
    cversion: Int
    aversion: Int
    ephemeral_owner: Long
    data_length: Int
    num_children: Int
    pzxid: Long


@record
class StatPersisted:
    czxid: Long
    mzxid: Long
    ctime: Long
    mtime: Long
    version: Int
    cversion: Int
    aversion: Int
    ephemeral_owner: Long
    pzxid: Long


ACLList = Annotated[list[ACL] | None, Vector(ACL)]
StringList = Annotated[list[str] | None, Vector(USTRING)]
IdList = Annotated[list[Id] | None, Vector(Id)]

# ---------------------------------------------------------------------------
# connection


@record
class ConnectRequest:
    protocol_version: Int
    last_zxid_seen: Long
    time_out: Int
    session_id: Long
    passwd: Buffer
    read_only: Bool


@record
class ConnectRequestNoRO:
    """A ConnectRequest from a pre-3.4 client, which omits ``readOnly``."""

    protocol_version: Int
    last_zxid_seen: Long
    time_out: Int
    session_id: Long
    passwd: Buffer


@record
class ConnectResponse:
    protocol_version: Int
    time_out: Int
    session_id: Long
    passwd: Buffer
    read_only: Bool


@record
class ConnectResponseNoRO:
    protocol_version: Int
    time_out: Int
    session_id: Long
    passwd: Buffer


@record
class RequestHeader:
    xid: Int
    type: Int


@record
class ReplyHeader:
    xid: Int
    zxid: Long
    err: Int


@record
class WatcherEvent:
    type: Int
    state: Int
    path: UString


@record
class AuthPacket:
    type: Int
    scheme: UString
    # The credentials ("user:password" for digest): kept out of repr, so out of logs and tracebacks.
    auth: Buffer = attrs.field(repr=False)


@record
class MultiHeader:
    type: Int
    done: Bool
    err: Int


@record
class ErrorResponse:
    err: Int


# ---------------------------------------------------------------------------
# requests and responses


@record
class CreateRequest:
    path: UString
    data: Buffer
    acl: ACLList
    flags: Int


@record
class CreateTTLRequest:
    path: UString
    data: Buffer
    acl: ACLList
    flags: Int
    ttl: Long


@record
class CreateResponse:
    path: UString


@record
class Create2Response:
    path: UString
    stat: Stat


@record
class DeleteRequest:
    path: UString
    version: Int


@record
class ExistsRequest:
    path: UString
    watch: Bool


@record
class ExistsResponse:
    stat: Stat


@record
class GetDataRequest:
    path: UString
    watch: Bool


@record
class GetDataResponse:
    data: Buffer
    stat: Stat


@record
class SetDataRequest:
    path: UString
    data: Buffer
    version: Int


@record
class SetDataResponse:
    stat: Stat


@record
class GetACLRequest:
    path: UString


@record
class GetACLResponse:
    acl: ACLList
    stat: Stat


@record
class SetACLRequest:
    path: UString
    acl: ACLList
    version: Int


@record
class SetACLResponse:
    stat: Stat


@record
class GetChildrenRequest:
    path: UString
    watch: Bool


@record
class GetChildrenResponse:
    children: StringList


@record
class GetChildren2Request:
    path: UString
    watch: Bool


@record
class GetChildren2Response:
    children: StringList
    stat: Stat


@record
class SyncRequest:
    path: UString


@record
class SyncResponse:
    path: UString


@record
class CheckVersionRequest:
    path: UString
    version: Int


@record
class ReconfigRequest:
    joining_servers: UString
    leaving_servers: UString
    new_members: UString
    cur_config_id: Long


@record
class CheckWatchesRequest:
    path: UString
    type: Int


@record
class RemoveWatchesRequest:
    path: UString
    type: Int


@record
class SetWatches:
    relative_zxid: Long
    data_watches: StringList
    exist_watches: StringList
    child_watches: StringList


@record
class SetWatches2:
    relative_zxid: Long
    data_watches: StringList
    exist_watches: StringList
    child_watches: StringList
    persistent_watches: StringList
    persistent_recursive_watches: StringList


@record
class GetSASLRequest:
    token: Buffer


@record
class SetSASLResponse:
    token: Buffer


@record
class GetEphemeralsRequest:
    prefix_path: UString


@record
class GetEphemeralsResponse:
    ephemerals: StringList


@record
class GetAllChildrenNumberRequest:
    path: UString


@record
class GetAllChildrenNumberResponse:
    total_number: Int


@record
class AddWatchRequest:
    path: UString
    mode: Int


@record
class ClientInfo:
    auth_scheme: UString
    user: UString


@record
class WhoAmIResponse:
    client_info: Annotated[list[ClientInfo] | None, Vector(ClientInfo)]


# ---------------------------------------------------------------------------
# transactions (zookeeper.jute module org.apache.zookeeper.txn)


@record
class TxnHeader:
    client_id: Long
    cxid: Int
    zxid: Long
    time: Long
    type: Int


@record
class CreateTxn:
    path: UString
    data: Buffer
    acl: ACLList
    ephemeral: Bool
    parent_c_version: Int


@record
class CreateContainerTxn:
    path: UString
    data: Buffer
    acl: ACLList
    parent_c_version: Int


@record
class CreateTTLTxn:
    path: UString
    data: Buffer
    acl: ACLList
    parent_c_version: Int
    ttl: Long


@record
class DeleteTxn:
    path: UString


@record
class SetDataTxn:
    path: UString
    data: Buffer
    version: Int


@record
class CheckVersionTxn:
    path: UString
    version: Int


@record
class SetACLTxn:
    path: UString
    acl: ACLList
    version: Int


@record
class CreateSessionTxn:
    time_out: Int


@record
class CloseSessionTxn:
    paths2_delete: StringList


@record
class ErrorTxn:
    err: Int


@record
class Txn:
    """One member of a MultiTxn: its type and its encoded body."""

    type: Int
    data: Buffer


@record
class MultiTxn:
    txns: Annotated[list[Txn] | None, Vector(Txn)]


# ---------------------------------------------------------------------------
# quorum (org.apache.zookeeper.server.quorum)


@record
class QuorumPacket:
    type: Int
    zxid: Long
    data: Buffer
    authinfo: IdList


@record
class LearnerInfo:
    serverid: Long
    protocol_version: Int
    config_version: Long


# ---------------------------------------------------------------------------
# persistence (org.apache.zookeeper.server.persistence)


@record
class FileHeader:
    magic: Int
    version: Int
    dbid: Long


__all__ = [name for name, value in list(globals().items()) if hasattr(value, "jute_fields")] + [
    "ACLList",
    "IdList",
    "StringList",
]

# Keep the markers importable for modules that declare their own records.
_ = (BUFFER, USTRING)
