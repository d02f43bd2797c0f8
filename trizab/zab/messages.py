"""Messages between ZAB peers, named after ZooKeeper's ``Leader.java`` packet constants.

Theory of operation
-------------------
Quorum messages are small frozen classes.  ``sender`` is who sent the message;
it is not on the wire (the connection tells the receiver) and is filled in by
:func:`from_packet`.  Every quorum message converts to and from
:class:`trizab.wire.records.QuorumPacket` (``type, zxid, data, authinfo``), which
goes on the quorum port exactly as Apache ZooKeeper 3.8 writes it: an unframed Jute
record (:mod:`trizab.wire.quorum_stream`).  One protocol for both implementations:

==================  =================================  ==============================================
message             QuorumPacket.zxid                  QuorumPacket.data
==================  =================================  ==============================================
FollowerInfo        zxid(acceptedEpoch, 0)             LearnerInfo(sid, 0x10000, configVersion 0);
(+OBSERVERINFO)                                        protocol versions below 0x10000 are refused
LeaderInfo          zxid(newEpoch, 0)                  int 0x10000 [+ long currentEpoch + long
                                                       lastZxid: a trizab leader's trailing data,
                                                       ignored by ZooKeeper's Learner, absent from
                                                       ZooKeeper's LEADERINFO]
AckEpoch            lastLoggedZxid                     int currentEpoch (-1: the epoch was already
                                                       accepted) [+ history, see below]
Diff/Trunc          the sync point                     -
Snap                the snapshot's zxid                - (on the stream after the packet: the
                                                       snapshot serialization, then "BenWasHere";
                                                       in memory it rides in ``data``)
Proposal            the txn's zxid                     TxnHeader + record [+ TxnDigest, which
                                                       ZooKeeper 3.6+ leaders append; tolerated]
Inform              the txn's zxid                     as Proposal (observers)
InformAndActivate   the reconfig's zxid                long designated leader + as Proposal
Ack                 the zxid (one per proposal);       -
                    newEpoch << 32 for NEWLEADER
                    and again for UPTODATE
Commit              the zxid (one per proposal)        -
CommitAndActivate   the reconfig's zxid                long designated leader
NewLeader           zxid(newEpoch, 0)                  the leader's last configuration text
                                                       (QuorumVerifier.toString(), as ZooKeeper's
                                                       leader sends it)
UpToDate            the leader's commit point (-1      -
                    from ZooKeeper; ignored)
Ping                leader: its heartbeat round (a     learner: the touched sessions as
                    ZooKeeper leader: its last         ``long id, int timeout`` pairs
                    proposed zxid); learner: the       (Learner.ping); leader: none
                    echoed zxid of the PING
Request             -1                                 long sessionId, int cxid, int type,
                                                       request bytes (createSession: int
                                                       timeout; closeSession: none; sync: the
                                                       SyncRequest); authinfo: the client's ids
==================  =================================  ==============================================

Handled by the driver, outside the ZAB core (:mod:`trizab.runtime.zab_sessions`):
REVALIDATE (learner: ``long session, int timeout``; leader: ``long session, boolean
valid``, echoing the request's zxid -1; with the session id in the zxid field and
``valid`` false it tells a trizab learner that the session moved away, which a
ZooKeeper learner ignores as an answer it is not waiting for) and SYNC (the leader's
answer to a forwarded sync; a ZooKeeper leader sends zxid 0).

Commits and acknowledgements are per proposal, in zxid order, never coalesced: a
ZooKeeper follower exits on a COMMIT that is not the head of its pending proposals
(``FollowerZooKeeperServer.commit``), and a ZooKeeper leader counts ACKs per zxid.

AckEpoch's extension: when the LEADERINFO shows that the follower's history is
more up to date than the leader's (by currentEpoch, then lastZxid), the
follower appends what the leader is missing, encoded as a :class:`SyncPlan`,
exactly as a leader would describe a DIFF/TRUNC/SNAP to a learner.  This is
how a leader learns the best history of its quorum (Zab's ACK-E carrying the
follower's history) without depending on the election having picked it, which
the ``priority`` and ``static`` election policies need.  A ZooKeeper leader reads
only the leading int; a ZooKeeper follower never sends one, and a trizab leader
that finds such a follower ahead of it steps down as ZooKeeper's does.

Election notifications (:class:`Notification`) travel on the election port in
ZooKeeper's FastLeaderElection format (``FastLeaderElection.buildMsg``):
``int state, long leader, long zxid, long electionEpoch, long peerEpoch, int
version (2), int configLength, byte[] config``, big-endian.

Connection events (:class:`Disconnected` in, :class:`Disconnect` out) are not
on the wire: they are how the core and its driver talk about TCP connections.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterator, Sequence

import attrs

from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import JuteError, decode, encode
from trizab.zab.zxid import counter_of, epoch_of, zxid

PROTOCOL_VERSION = 0x10000


class ProtocolError(Exception):
    """A peer sent something that violates the ZAB protocol (the remote side's fault)."""


class PeerState(enum.IntEnum):
    """``QuorumPeer.ServerState`` in its wire order."""

    LOOKING = 0
    FOLLOWING = 1
    LEADING = 2
    OBSERVING = 3


# ---------------------------------------------------------------------------
# Entries and sync plans


@attrs.frozen
class Entry:
    """One transaction of a history: its zxid and its opaque encoded bytes.

    ``txn`` is the same transaction decoded, when whoever made the entry already had it
    (the leader's own proposals): the driver then neither decodes it for its log nor
    for its state machine.  It is a cache, never compared, never sent.
    """

    zxid: int
    data: bytes
    txn: Txn | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class SyncPlan:
    """How to turn a history ending at some zxid into the sender's history.

    ``kind`` is DIFF (append ``entries``), TRUNC (drop everything after ``zxid``,
    then append) or SNAP (install ``snapshot`` taken at ``zxid``, then append).
    """

    kind: T
    zxid: int
    entries: tuple[Entry, ...] = ()
    snapshot: bytes | None = None

    @property
    def last_zxid(self) -> int | None:
        return self.entries[-1].zxid if self.entries else None


# ---------------------------------------------------------------------------
# Quorum messages


@attrs.frozen
class FollowerInfo:
    sender: int
    accepted_epoch: int
    observer: bool = False


@attrs.frozen
class LeaderInfo:
    sender: int
    epoch: int
    # The leader's own position before discovery, so a follower can tell it is ahead: trailing
    # data of a trizab leader's LEADERINFO; None from a ZooKeeper leader, which sends only the
    # protocol version.
    current_epoch: int | None = None
    last_zxid: int | None = None


@attrs.frozen
class AckEpoch:
    sender: int
    current_epoch: int
    last_zxid: int
    history: SyncPlan | None = None


@attrs.frozen
class Diff:
    sender: int
    zxid: int


@attrs.frozen
class Trunc:
    sender: int
    zxid: int


@attrs.frozen
class Snap:
    sender: int
    zxid: int
    snapshot: bytes


@attrs.frozen
class NewLeader:
    sender: int
    epoch: int
    # The leader's last configuration, ``QuorumVerifier.toString()`` as ZooKeeper's leader sends
    # it (LearnerHandler: ``getQuorumVerifierBytes()``, its last seen verifier).  ZooKeeper's
    # learners make it their last seen one, then theirs at UPTODATE (Learner.syncWithLeader);
    # trizab's vote with it and make a configuration theirs when the synced history commits it.
    config: bytes = b""


@attrs.frozen
class UpToDate:
    sender: int
    zxid: int


@attrs.frozen
class Proposal:
    sender: int
    zxid: int
    data: bytes


@attrs.frozen
class Ack:
    sender: int
    zxid: int


@attrs.frozen
class Commit:
    sender: int
    zxid: int
    # COMMITANDACTIVATE: the commit of a reconfig, with the leader the new configuration
    # should have (Leader.getDesignatedLeader); trizab activates on the commit itself.
    activate: int | None = None


@attrs.frozen
class Inform:
    sender: int
    zxid: int
    data: bytes
    activate: int | None = None  # INFORMANDACTIVATE (see Commit.activate)


@attrs.frozen
class Ping:
    sender: int
    zxid: int = 0
    payload: bytes = b""


@attrs.frozen
class Request:
    """A forwarded client request: ZooKeeper's ``long sessionId, int cxid, int type`` + request
    bytes (``Learner.request``); ``auth`` is the client's identities (QuorumPacket.authinfo)."""

    sender: int
    payload: bytes
    auth: tuple[r.Id, ...] = ()


QuorumMessage = (
    FollowerInfo
    | LeaderInfo
    | AckEpoch
    | Diff
    | Trunc
    | Snap
    | NewLeader
    | UpToDate
    | Proposal
    | Ack
    | Commit
    | Inform
    | Ping
    | Request
)


# ---------------------------------------------------------------------------
# Connection events


@attrs.frozen
class Disconnected:
    """Input: the quorum connection with ``peer`` broke (or was closed by it)."""

    peer: int


@attrs.frozen
class Disconnect:
    """Output: close the quorum connection with ``peer``; anything queued for it is void."""

    peer: int


# ---------------------------------------------------------------------------
# Election notifications


@attrs.frozen
class Notification:
    """A FastLeaderElection notification: the sender's vote, round and state."""

    sender: int
    leader: int
    zxid: int
    election_epoch: int
    peer_epoch: int
    state: PeerState
    # The sender's committed configuration as ZooKeeper's ``QuorumVerifier.toString()``
    # renders it (members of either implementation never send one they do not know committed).
    config: bytes = b""
    # The sender appended :data:`POLICY_MARKER`: a trizab member whose election policy is not
    # ``fast``.  Members with ``fast`` (and ZooKeeper's) send FastLeaderElection's bytes only.
    policy_marker: bool = False


_NOTIFICATION = struct.Struct(">iqqqqii")
NOTIFICATION_VERSION = 2
# What a trizab member with ``election=priority`` or ``static`` appends after the
# configuration: a magic and a (zero) flags word.  ZooKeeper's WorkerReceiver reads
# ``configLength`` bytes of configuration and ignores what follows; such a member uses the
# marker's absence to tell that a sender does not run its policy (a ZooKeeper member, or a
# trizab member with ``fast``, whose notifications are exactly ZooKeeper's).
POLICY_MARKER = struct.Struct(">4si")
_MARKER_MAGIC = b"TZAB"


def encode_notification(n: Notification) -> bytes:
    """``FastLeaderElection.buildMsg(state, leader, zxid, electionEpoch, epoch, configData)``,
    then the policy marker if ``n.policy_marker``."""
    return (
        _NOTIFICATION.pack(
            int(n.state),
            n.leader,
            n.zxid,
            n.election_epoch,
            n.peer_epoch,
            NOTIFICATION_VERSION,
            len(n.config),
        )
        + n.config
        + (POLICY_MARKER.pack(_MARKER_MAGIC, 0) if n.policy_marker else b"")
    )


def decode_notification(data: bytes, sender: int) -> Notification:
    """Decode a notification as ``FastLeaderElection.Messenger.WorkerReceiver`` reads one.

    The 28-byte (no peer epoch) and 40-byte (no version) forms of older servers are accepted;
    a configuration follows only when the version is above 1, and bytes after it are ignored,
    as ZooKeeper ignores them, except trizab's policy marker (:data:`POLICY_MARKER`).
    :class:`ProtocolError` for what ZooKeeper skips as malformed.
    """
    marker = False
    if len(data) in (28, 40):
        state, leader, z, ee = struct.unpack_from(">iqqq", data)
        pe = struct.unpack_from(">q", data, 28)[0] if len(data) == 40 else epoch_of(z)
        config = b""
    elif len(data) >= _NOTIFICATION.size - 4:
        state, leader, z, ee, pe, version = struct.unpack_from(">iqqqqi", data)
        config = b""
        if version > 1:
            if len(data) < _NOTIFICATION.size:
                raise ProtocolError(f"notification of version {version} without a config length")
            n = _NOTIFICATION.unpack_from(data)[6]
            config = data[_NOTIFICATION.size : _NOTIFICATION.size + max(n, 0)]
            if n < 0 or n != len(config):
                follow = len(data) - _NOTIFICATION.size
                raise ProtocolError(f"notification config length {n} but {follow} bytes follow")
            rest = data[_NOTIFICATION.size + n :]
            marker = len(rest) >= POLICY_MARKER.size and rest.startswith(_MARKER_MAGIC)
    else:
        raise ProtocolError(f"notification of {len(data)} bytes")
    try:
        st = PeerState(state)
    except ValueError:
        raise ProtocolError(f"unknown peer state {state} in notification") from None
    return Notification(sender, leader, z, ee, pe, st, bytes(config), marker)


# ---------------------------------------------------------------------------
# QuorumPacket conversion

_I = struct.Struct(">i")
_Q = struct.Struct(">q")
_IQQ = struct.Struct(">iqq")


def encode_plan(plan: SyncPlan) -> bytes:
    out = bytearray(_I.pack(int(plan.kind)) + _Q.pack(plan.zxid))
    snap = plan.snapshot
    out += _I.pack(-1 if snap is None else len(snap))
    if snap is not None:
        out += snap
    out += _I.pack(len(plan.entries))
    for e in plan.entries:
        out += _Q.pack(e.zxid) + _I.pack(len(e.data)) + e.data
    return bytes(out)


def decode_plan(data: bytes) -> SyncPlan:
    try:
        pos = 0
        (kind,) = _I.unpack_from(data, pos)
        (z,) = _Q.unpack_from(data, pos + 4)
        (n,) = _I.unpack_from(data, pos + 12)
        pos += 16
        snap = None
        if n >= 0:
            snap = bytes(data[pos : pos + n])
            pos += n
        (count,) = _I.unpack_from(data, pos)
        pos += 4
        entries = []
        for _ in range(count):
            (ez,) = _Q.unpack_from(data, pos)
            (ln,) = _I.unpack_from(data, pos + 8)
            pos += 12
            if ln < 0 or pos + ln > len(data):
                raise ProtocolError("truncated history entry")
            entries.append(Entry(ez, bytes(data[pos : pos + ln])))
            pos += ln
        if pos != len(data):
            raise ProtocolError("trailing bytes after history")
        return SyncPlan(T(kind), z, tuple(entries), snap)
    except (struct.error, ValueError) as exc:
        raise ProtocolError(f"malformed history: {exc}") from None


def to_packet(msg: QuorumMessage) -> r.QuorumPacket:
    """The QuorumPacket that carries ``msg`` (``sender`` is implied by the connection)."""

    def pkt(t: T, z: int = 0, data: bytes | None = None) -> r.QuorumPacket:
        return r.QuorumPacket(int(t), z, data, None)

    match msg:
        case FollowerInfo(sender, accepted_epoch, observer):
            info = encode(r.LearnerInfo(sender, PROTOCOL_VERSION, 0))
            return pkt(T.OBSERVERINFO if observer else T.FOLLOWERINFO, zxid(accepted_epoch, 0), info)
        case LeaderInfo(_, epoch, current_epoch, last_zxid):
            if current_epoch is None or last_zxid is None:
                return pkt(T.LEADERINFO, zxid(epoch, 0), _I.pack(PROTOCOL_VERSION))
            return pkt(T.LEADERINFO, zxid(epoch, 0), _IQQ.pack(PROTOCOL_VERSION, current_epoch, last_zxid))
        case AckEpoch(_, current_epoch, last_zxid, history):
            data = _I.pack(current_epoch) + (encode_plan(history) if history is not None else b"")
            return pkt(T.ACKEPOCH, last_zxid, data)
        case Diff(_, z):
            return pkt(T.DIFF, z)
        case Trunc(_, z):
            return pkt(T.TRUNC, z)
        case Snap(_, z, snapshot):
            # The transport writes ``data`` after the packet (trizab.wire.quorum_stream).
            return pkt(T.SNAP, z, snapshot)
        case NewLeader(_, epoch, config):
            return pkt(T.NEWLEADER, zxid(epoch, 0), config or None)
        case UpToDate(_, z):
            return pkt(T.UPTODATE, z)
        case Proposal(_, z, data):
            return pkt(T.PROPOSAL, z, data)
        case Ack(_, z):
            return pkt(T.ACK, z)
        case Commit(_, z, None):
            return pkt(T.COMMIT, z)
        case Commit(_, z, leader):
            return pkt(T.COMMITANDACTIVATE, z, _Q.pack(leader))
        case Inform(_, z, data, None):
            return pkt(T.INFORM, z, data)
        case Inform(_, z, data, leader):
            return pkt(T.INFORMANDACTIVATE, z, _Q.pack(leader) + data)
        case Ping(_, z, payload):
            return pkt(T.PING, z, payload)
        case Request(_, payload, auth):
            return r.QuorumPacket(int(T.REQUEST), -1, payload, list(auth))
    raise TypeError(f"not a quorum message: {msg!r}")


def from_packet(p: r.QuorumPacket, sender: int) -> QuorumMessage:
    """Decode a QuorumPacket received from ``sender``; malformed input raises ProtocolError."""
    data = p.data or b""
    try:
        t = T(p.type)
    except ValueError:
        raise ProtocolError(f"unknown quorum packet type {p.type}") from None
    try:
        match t:
            case T.FOLLOWERINFO | T.OBSERVERINFO:
                if data:
                    info = decode(r.LearnerInfo, data)
                    if info.protocol_version < PROTOCOL_VERSION:
                        raise ProtocolError(
                            f"learner speaks protocol version {info.protocol_version:#x}, "
                            f"below {PROTOCOL_VERSION:#x}"
                        )
                return FollowerInfo(sender, epoch_of(p.zxid), t == T.OBSERVERINFO)
            case T.LEADERINFO:
                (version,) = _I.unpack_from(data)
                if version < PROTOCOL_VERSION:
                    raise ProtocolError(
                        f"leader speaks protocol version {version:#x}, below {PROTOCOL_VERSION:#x}"
                    )
                if len(data) >= _IQQ.size:
                    _, ce, lz = _IQQ.unpack_from(data)
                    return LeaderInfo(sender, epoch_of(p.zxid), ce, lz)
                return LeaderInfo(sender, epoch_of(p.zxid))
            case T.ACKEPOCH:
                (ce,) = _I.unpack_from(data)
                history = decode_plan(data[4:]) if len(data) > 4 else None
                return AckEpoch(sender, ce, p.zxid, history)
            case T.DIFF:
                return Diff(sender, p.zxid)
            case T.TRUNC:
                return Trunc(sender, p.zxid)
            case T.SNAP:
                return Snap(sender, p.zxid, data)
            case T.NEWLEADER:
                return NewLeader(sender, epoch_of(p.zxid), data)
            case T.UPTODATE:
                return UpToDate(sender, p.zxid)
            case T.PROPOSAL:
                return Proposal(sender, p.zxid, data)
            case T.ACK:
                return Ack(sender, p.zxid)
            case T.COMMIT:
                return Commit(sender, p.zxid)
            case T.INFORM:
                return Inform(sender, p.zxid, data)
            case T.COMMITANDACTIVATE:
                (leader,) = _Q.unpack_from(data)
                return Commit(sender, p.zxid, leader)
            case T.INFORMANDACTIVATE:
                (leader,) = _Q.unpack_from(data)
                return Inform(sender, p.zxid, bytes(data[8:]), leader)
            case T.PING:
                return Ping(sender, p.zxid, data)
            case T.REQUEST:
                return Request(sender, data, tuple(p.authinfo or ()))
    except (struct.error, JuteError) as exc:
        raise ProtocolError(f"malformed {t.name} packet: {exc}") from None
    raise ProtocolError(f"quorum packet type {t.name} is not supported")


_ACK = int(T.ACK)
_COMMIT = int(T.COMMIT)


def superseded(pkt: r.QuorumPacket, nxt: r.QuorumPacket) -> bool:
    """Whether stepping ``pkt`` is redundant because ``nxt`` follows it on the same link.

    Under load one read of a quorum connection brings runs of per-zxid ACKs (to a leader) or
    COMMITs (to a follower); the member steps only the last of such a run (py-spy at 256
    outstanding: about a seventh of a leader's busy time went to stepping each ACK).

    True for an ACK followed by an ACK (a COMMIT by a COMMIT) for a zxid of the same epoch
    at least as high, neither a NEWLEADER/UPTODATE acknowledgement (counter 0).  A leader
    takes a follower's ACKs cumulatively (``_Learner.acked`` is the highest) and makes one
    COMMIT per zxid its commit point passes, not per ACK; a follower's COMMIT only moves its
    commit point up.  So stepping the last of such a run leaves the peer exactly as
    stepping each would, sending the same COMMITs in the same order, as long as no
    reconfiguration is in flight (then the intermediate commit points could activate
    configurations one by one): the caller checks that, and that the peer is established.
    A zxid that is too high is refused as surely in the last packet of the run.
    """
    kind = pkt.type
    if kind != nxt.type or (kind != _ACK and kind != _COMMIT):
        return False
    z, z_next = pkt.zxid, nxt.zxid
    return z_next >= z and epoch_of(z) == epoch_of(z_next) and counter_of(z) != 0 and counter_of(z_next) != 0


def worth_stepping(pkts: Sequence[r.QuorumPacket], may_skip: Callable[[], bool]) -> Iterator[r.QuorumPacket]:
    """The packets of one read, less each one :func:`superseded` by the next while ``may_skip()``.

    ``may_skip`` (the peer is established, no reconfiguration in flight) is asked when the
    packet's turn comes, after the ones before it were stepped.
    """
    last = len(pkts) - 1
    for i, pkt in enumerate(pkts):
        if i < last and superseded(pkt, pkts[i + 1]) and may_skip():
            continue
        yield pkt
