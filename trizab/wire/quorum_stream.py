"""QuorumPackets on a quorum connection, as Apache ZooKeeper writes them: unframed Jute records.

Theory of operation
-------------------
ZooKeeper's leader and learners write each packet with
``BinaryOutputArchive.writeRecord(qp, "packet")``: ``int type, long zxid, buffer
data, vector<Id> authinfo`` straight onto the stream, with no outer length.  A
reader therefore parses the record itself, incrementally, and bounds every length
it reads before it buffers what the length announces (``BinaryInputArchive``
checks a buffer against ``jute.maxbuffer`` plus its extra size the same way).

One packet is followed by more than itself: SNAP.  ``LearnerHandler`` writes the
SNAP packet (no data), then ``ZKDatabase.serializeSnapshot`` (``int`` session count,
``long id, int timeout`` per session, the ACL cache, every node as ``ustring path``
+ ``DataNode``, ended by the path ``"/"``), then the string ``"BenWasHere"``
(``signature``), and only then the packets queued behind it.  Here a SNAP's
snapshot travels in the in-memory :class:`QuorumPacket`'s ``data`` (the bytes of
:mod:`trizab.tree.snapshot`, the same serialization): :func:`encode_packet` writes
it after the record with the signature, and :class:`PacketReader` scans it off the
stream, node by node, and hands it back in ``data``.

:class:`PacketReader` is sans-I/O (h11's ``receive_data``/``next_event``): ``feed``
bytes, then call ``next_packet`` until it returns None (more bytes needed).
"""

from __future__ import annotations

import struct

from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import JuteError, decode, encode

__all__ = [
    "MAX_SNAPSHOT",
    "SIGNATURE",
    "FrameError",
    "PacketReader",
    "encode_packet",
    "encode_simple",
    "packet_limit",
]

# A snapshot after SNAP is bounded only by this (ZooKeeper streams it unbounded).
MAX_SNAPSHOT = 1 << 31
SIGNATURE = b"BenWasHere"
# Authentication ids a forwarded request may carry (QuorumPacket.authinfo): a client's
# identities, a handful in practice.
MAX_AUTH_IDS = 1024

_I = struct.Struct(">i")
_HEAD = struct.Struct(">iqi")  # type, zxid, data length (-1: null)
_NO_AUTH = b"\xff\xff\xff\xff"  # authinfo: a null vector
_STAT_PERSISTED = 60  # czxid mzxid ctime mtime, version cversion aversion, ephemeralOwner, pzxid
_SNAP = int(T.SNAP)


class FrameError(Exception):
    """The bytes on a quorum connection are not a QuorumPacket within the limits (the peer's fault)."""


def packet_limit(jute_max_buffer: int) -> int:
    """The largest QuorumPacket data: jute.maxbuffer + its extra size (ZooKeeper's default: as much again)."""
    return jute_max_buffer + max(jute_max_buffer, 1024) + 1024


def encode_packet(p: r.QuorumPacket) -> bytes:
    """The packet as ZooKeeper writes it; a SNAP's snapshot (``data``) follows it with the signature."""
    if p.type == _SNAP and p.data is not None:
        head = encode(r.QuorumPacket(p.type, p.zxid, None, p.authinfo))
        return b"".join((head, p.data, _I.pack(len(SIGNATURE)), SIGNATURE))
    return encode(p)


def encode_simple(type_: int, zxid: int, data: bytes | None) -> bytes:
    """``encode_packet(QuorumPacket(type_, zxid, data, None))`` without building the record.

    The broadcast packets (PROPOSAL, ACK, COMMIT) are most of the quorum traffic; this is
    the Jute layout of QuorumPacket written directly (a test checks it against the codec).
    """
    if data is None:
        return _HEAD.pack(type_, zxid, -1) + _NO_AUTH
    return b"".join((_HEAD.pack(type_, zxid, len(data)), data, _NO_AUTH))


def _packet_end(buf: bytearray, pos: int, limit: int) -> int | None:
    """Where the QuorumPacket starting at ``pos`` ends; None until enough bytes tell."""
    end = len(buf)
    if end - pos < _HEAD.size:
        return None
    type_, _zxid, n = _HEAD.unpack_from(buf, pos)
    if n < -1 or n > limit:
        raise FrameError(f"packet of type {type_} with {n} bytes of data (limit {limit})")
    p = pos + _HEAD.size + max(n, 0)
    if end - p < 4:
        return None
    (count,) = _I.unpack_from(buf, p)
    p += 4
    if count < -1 or count > MAX_AUTH_IDS:
        raise FrameError(f"packet of type {type_} with {count} authentication ids")
    for _ in range(max(count, 0) * 2):  # each Id: ustring scheme, ustring id
        if end - p < 4:
            return None
        (n,) = _I.unpack_from(buf, p)
        if n < -1 or n > limit:
            raise FrameError(f"authentication id of {n} bytes")
        p += 4 + max(n, 0)
        if p > end:
            return None
    return p


class _SnapshotScan:
    """Finds the end of a serialized snapshot and its signature, resumably (see the module docstring).

    ``off`` is relative to where the snapshot starts; each call resumes at the first item
    (a session table, an ACL entry, a node) not yet complete.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit  # the longest single buffer (path, data) allowed
        self.off = 0
        self.phase = 0  # 0 sessions, 1 ACL count, 2 ACL entries, 3 nodes, 4 signature
        self.left = 0
        self.snapshot_end = 0

    def _length(self, buf: bytearray, p: int, what: str) -> int:
        (n,) = _I.unpack_from(buf, p)
        if n < -1 or n > self.limit:
            raise FrameError(f"snapshot {what} of {n} bytes")
        return max(n, 0)

    def scan(self, buf: bytearray, start: int) -> bool:
        """True once the signature has been read; then ``off`` is just past it."""
        avail = len(buf) - start
        while True:
            if self.off > MAX_SNAPSHOT:
                raise FrameError(f"snapshot longer than {MAX_SNAPSHOT} bytes")
            p = start + self.off
            if self.phase == 0:
                if avail - self.off < 4:
                    return False
                (count,) = _I.unpack_from(buf, p)
                if count < 0 or count > MAX_SNAPSHOT // 12:
                    raise FrameError(f"snapshot with {count} sessions")
                if avail - self.off < 4 + 12 * count:
                    return False
                self.off += 4 + 12 * count
                self.phase = 1
            elif self.phase == 1:
                if avail - self.off < 4:
                    return False
                (count,) = _I.unpack_from(buf, p)
                if count < 0:
                    raise FrameError(f"snapshot with {count} ACL entries")
                self.left = count
                self.off += 4
                self.phase = 2
            elif self.phase == 2:
                if self.left == 0:
                    self.phase = 3
                    continue
                q = self._acl_entry_end(buf, p, start + avail)
                if q is None:
                    return False
                self.off = q - start
                self.left -= 1
            elif self.phase == 3:
                if avail - self.off < 4:
                    return False
                n = self._length(buf, p, "path")
                if avail - self.off < 4 + n:
                    return False
                if buf[p + 4 : p + 4 + n] == b"/":
                    self.off += 4 + n
                    self.snapshot_end = self.off
                    self.phase = 4
                    continue
                q = p + 4 + n
                if start + avail - q < 4:
                    return False
                m = self._length(buf, q, "node data")
                q += 4 + m + 8 + _STAT_PERSISTED
                if q > start + avail:
                    return False
                self.off = q - start
            else:
                if avail - self.off < 4:
                    return False
                (n,) = _I.unpack_from(buf, p)
                if n != len(SIGNATURE):
                    raise FrameError(f"snapshot signature of {n} bytes, expected {SIGNATURE!r}")
                if avail - self.off < 4 + n:
                    return False
                if buf[p + 4 : p + 4 + n] != SIGNATURE:
                    raise FrameError(f"missing snapshot signature: got {bytes(buf[p + 4 : p + 4 + n])!r}")
                self.off += 4 + n
                return True

    def _acl_entry_end(self, buf: bytearray, p: int, end: int) -> int | None:
        """End of one ``long ref, vector<ACL>`` entry of the ACL cache, or None if incomplete."""
        if end - p < 12:
            return None
        (count,) = _I.unpack_from(buf, p + 8)
        if count < -1 or count > self.limit:
            raise FrameError(f"snapshot ACL list of {count} entries")
        p += 12
        for _ in range(max(count, 0)):
            p += 4  # perms
            for what in ("ACL scheme", "ACL id"):
                if end - p < 4:
                    return None
                p += 4 + self._length(buf, p, what)
            if p > end:
                return None
        return p


class PacketReader:
    """Incremental QuorumPacket parser for one connection (see the module docstring).

    ``limit`` bounds a packet's data (:func:`packet_limit`); ``big_types`` may carry up to
    ``big_limit`` (trizab's ACKEPOCH with a follower's history).
    """

    def __init__(self, limit: int, *, big_types: frozenset[int] = frozenset(), big_limit: int = 0) -> None:
        self.buf = bytearray()
        self.pos = 0
        self.limit = limit
        self.big_types = big_types
        self.big_limit = max(big_limit, limit)
        self._snap: tuple[r.QuorumPacket, _SnapshotScan] | None = None

    def feed(self, data: bytes) -> None:
        if self.pos and self.pos >= len(self.buf) // 2:
            del self.buf[: self.pos]  # compact now and then, not per packet
            self.pos = 0
        self.buf += data

    def buffered(self) -> int:
        """Bytes received and not yet returned as packets."""
        return len(self.buf) - self.pos

    def next_packet(self) -> r.QuorumPacket | None:
        """The next complete packet, or None until more bytes arrive; FrameError if malformed."""
        buf = self.buf
        if self._snap is not None:
            head, scan = self._snap
            if not scan.scan(buf, self.pos):
                return None
            snapshot = bytes(buf[self.pos : self.pos + scan.snapshot_end])
            self.pos += scan.off
            self._snap = None
            return r.QuorumPacket(head.type, head.zxid, snapshot, head.authinfo)
        limit = self.limit
        if self.big_types and len(buf) - self.pos >= 4:
            (type_,) = _I.unpack_from(buf, self.pos)
            if type_ in self.big_types:
                limit = self.big_limit
        pos = self.pos
        end = _packet_end(buf, pos, limit)
        if end is None:
            return None
        type_, zxid, n = _HEAD.unpack_from(buf, pos)
        data_end = pos + _HEAD.size + max(n, 0)
        if end == data_end + 4:
            # No authentication ids (all but a forwarded request with a client's identities):
            # the record is what _packet_end just read.  Built here rather than decoded again
            # by the Jute codec: 1.0 instead of 1.3 us per ACK or PROPOSAL parsed, and a
            # member parses several per write.
            (count,) = _I.unpack_from(buf, data_end)
            data = bytes(buf[pos + _HEAD.size : data_end]) if n >= 0 else None
            pkt = r.QuorumPacket(type_, zxid, data, None if count < 0 else [])
        else:
            try:
                pkt = decode(r.QuorumPacket, bytes(buf[pos:end]))
            except JuteError as e:
                raise FrameError(f"malformed QuorumPacket: {e}") from None
        self.pos = end
        if pkt.type == _SNAP:
            if pkt.data:
                raise FrameError("SNAP packet with data (the snapshot must follow the packet)")
            self._snap = (pkt, _SnapshotScan(self.limit))
            return self.next_packet()
        return pkt
