"""Quorum connections: QuorumPacket records between a leader and its learners, as ZooKeeper writes them.

Theory of operation
-------------------
ZooKeeper's learners connect to the leader's quorum port (``Learner.connectToLeader``)
and the leader runs one ``LearnerHandler`` per connection.  Here each connection
is a :class:`Link`, and every link runs in its own task group (a cancel scope
owned by the transport's nursery) with three tasks:

* the **sender** drains the link's bounded queue of encoded chunks (one per
  ``send_many``: all of a Ready's packets for that peer) and writes them,
  batching whatever is queued into one ``send_all``; while it has nothing
  unwritten, ``send_frames`` writes a chunk to the socket itself, which saves
  a task wake-up per hop at low load; a write that does not
  finish within the heartbeat limit (syncLimit tickTimes) means the other side
  is gone or stuck, and ends the link;
* the **heartbeat** ends a link on which nothing arrived for that limit (a peer
  that is stopped, not dead, keeps its TCP connection open);
* the **receiver** parses the unframed :class:`QuorumPacket` records off the stream
  (:mod:`trizab.wire.quorum_stream`: ZooKeeper writes each with
  ``BinaryOutputArchive.writeRecord``, no outer length) and posts them to the member's
  inbox tagged with the link, every packet one read completed as one message
  (:class:`~trizab.runtime.events.QuorumReceived`), so the task that owns the ZAB peer can discard
  anything that arrives from a connection it has already replaced or closed.

Cancelling a link's scope tears down exactly that connection.  Links are
created, registered and forgotten only by the member's peer-owning task
(:class:`QuorumTransport` methods are synchronous and called from it); the
tasks only report (``link_lost``).  A learner's link is opened by the first
message addressed to its leader (FOLLOWERINFO); the leader only accepts links,
identified by that first FOLLOWERINFO/OBSERVERINFO packet's ``LearnerInfo``.

Packet size: a packet's data may be ``jute.maxbuffer`` plus ZooKeeper's
``jute.maxbuffer.extrasize`` (by default ``jute.maxbuffer`` again), as
``BinaryInputArchive`` bounds a QuorumPacket's data in ZooKeeper
(:func:`packet_limit`); a longer one ends the link before it is buffered.  A SNAP is
followed on the stream by the snapshot and its signature (scanned node by node,
each bounded the same way).  Only ACKEPOCH with a follower's history (a trizab
extension, trailing data ZooKeeper's leader ignores) may be up to ``MAX_FRAME``,
and never as the first packet of an accepted connection, which must be a small
FOLLOWERINFO.  The election port's notifications are length-prefixed frames
(``QuorumCnxManager``): :func:`read_frame` and :func:`frame` serve it.

Back-pressure: a link's queue is bounded (``MAX_QUEUED`` chunks).  A learner that
cannot keep up fills it; the leader then drops that link and tells the ZAB core
(``Disconnected``); the learner reconnects and is resynchronized by DIFF, TRUNC
or SNAP, while the other learners never wait for it.

SYNC packets (ZooKeeper's type 7) are handled here and in the member, outside the
ZAB core: a learner sends one per client ``sync``; the leader answers with SYNC
carrying its last proposed zxid, queued behind everything it already sent.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

import attrs
import trio

from trizab.runtime.events import QuorumAccepted, QuorumLinkLost, QuorumReceived
from trizab.runtime.tls import PeerTls
from trizab.wire import records as r
from trizab.wire.codes import QuorumPacketType as T
from trizab.wire.jute import JuteError, decode
from trizab.wire.quorum_stream import FrameError, PacketReader, encode_packet, encode_simple, packet_limit
from trizab.zab.messages import QuorumMessage, to_packet

__all__ = [
    "MAX_FIRST_FRAME",
    "MAX_QUEUED",
    "FrameError",
    "Link",
    "QuorumTransport",
    "encode_packet",
    "encode_simple",
    "frame",
    "packet_limit",
    "read_frame",
    "read_packet",
]

log = logging.getLogger("trizab.quorum")

MAX_QUEUED = 50_000
MAX_FRAME = 512 * 1024 * 1024  # an ACKEPOCH with a follower's history (a trizab extension)
# The first packet on an accepted connection, before it says which server it is: a
# FOLLOWERINFO/OBSERVERINFO of a few dozen bytes.  Anyone can connect, so until then a
# length is held to this, not to MAX_FRAME (which would let each stranger make us
# buffer half a gigabyte).
MAX_FIRST_FRAME = 64 * 1024
_LEN = struct.Struct(">i")
_ids = itertools.count(1)


# ACKEPOCH may carry a follower's history, up to MAX_FRAME (see the module docstring).
_BIG_TYPES = frozenset({int(T.ACKEPOCH)})


# -- length-prefixed frames: the election port's notifications (QuorumCnxManager) ---------


def _length(buf: bytearray, limit: int) -> int | None:
    """The length of the frame starting ``buf``, checked; None until enough bytes tell."""
    if len(buf) < 4:
        return None
    (n,) = _LEN.unpack_from(buf)
    if n < 0 or n > limit:
        raise FrameError(f"bad frame length {n} (limit {limit})")
    return n


async def read_frame(stream: trio.abc.ReceiveStream, buf: bytearray, limit: int = MAX_FRAME) -> bytes | None:
    """One length-prefixed frame from ``stream`` (``buf`` keeps leftovers); None at EOF."""
    while True:
        n = _length(buf, limit)
        if n is not None and len(buf) >= 4 + n:
            frame = bytes(buf[4 : 4 + n])
            del buf[: 4 + n]
            return frame
        data = await stream.receive_some(1 << 20)
        if not data:
            return None
        buf += data


def _frame_nowait(buf: bytearray, limit: int = MAX_FRAME) -> bytes | None:
    """The next complete frame already in ``buf``, or None (no I/O)."""
    n = _length(buf, limit)
    if n is None or len(buf) < 4 + n:
        return None
    data = bytes(buf[4 : 4 + n])
    del buf[: 4 + n]
    return data


def frame(payload: bytes) -> bytes:
    return _LEN.pack(len(payload)) + payload


# -- unframed QuorumPackets: the quorum port (Learner / LearnerHandler) -------------------


async def read_packet(stream: trio.abc.ReceiveStream, reader: PacketReader) -> r.QuorumPacket | None:
    """The next QuorumPacket from ``stream`` (``reader`` keeps leftovers); None at EOF."""
    while True:
        pkt = reader.next_packet()
        if pkt is not None:
            return pkt
        data = await stream.receive_some(1 << 20)
        if not data:
            return None
        reader.feed(data)


@attrs.define(eq=False)
class Link:
    """One quorum TCP connection with one peer (see the module docstring)."""

    sid: int
    send: trio.MemorySendChannel[bytes]
    recv: trio.MemoryReceiveChannel[bytes]
    outgoing: bool
    # Sequence number of the peer Ready that was current when the link was registered:
    # messages of older Readys were meant for a previous connection and are dropped.
    since: int = 0
    id: int = attrs.Factory(lambda: next(_ids))
    scope: trio.CancelScope = attrs.Factory(trio.CancelScope)
    closed: bool = False
    last_heard: float = 0.0  # trio time of the last packet received
    # The connected socket's descriptor (-1 while connecting and once the link ends), and how
    # many chunks were handed to the sender and are not written yet: with none, a chunk can go
    # straight to the socket (see QuorumTransport.send_frames).
    fd: int = -1
    queued: int = 0
    ended: trio.Event = attrs.Factory(trio.Event)  # set once its tasks are done


class QuorumTransport:
    """The quorum port of one member.  Synchronous methods belong to the peer-owning task."""

    def __init__(
        self,
        my_id: int,
        addresses: dict[int, tuple[str, int]],
        post: Callable[[QuorumAccepted | QuorumReceived], Any],
        post_nowait: Callable[[QuorumLinkLost], None],
        *,
        heartbeat_s: float = 10.0,
        connect_retry_s: float = 0.05,
        max_queued: int = MAX_QUEUED,
        max_packet: int = packet_limit(0xFFFFF),
        tls: PeerTls | None = None,
    ) -> None:
        self.max_queued = max_queued
        self.max_packet = max_packet  # see packet_limit
        self.tls = tls  # sslQuorum / portUnification (None: plain TCP only)
        self.my_id = my_id
        self.addresses = addresses
        self._post = post  # async: await post(msg) delivers to the inbox (back-pressure)
        self._post_nowait = post_nowait  # sync wake-up for link-lost reports
        self.heartbeat_s = heartbeat_s
        self.connect_retry_s = connect_retry_s
        self.links: dict[int, Link] = {}
        self.lost: list[Link] = []
        self._nursery: trio.Nursery | None = None
        self.listen_address: tuple[str, int] | None = None

    # -- tasks -------------------------------------------------------------------------

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen on our quorum port and own every link's task group."""
        host, port = self.addresses[self.my_id]
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.listen_address = tuple(listeners[0].socket.getsockname()[:2])  # type: ignore[assignment]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(trio.serve_listeners, self._accept, listeners)
            task_status.started(self.listen_address)

    async def _accept(self, socket_stream: trio.SocketStream) -> None:
        first = PacketReader(min(self.max_packet, MAX_FIRST_FRAME))
        stream: trio.abc.Stream = socket_stream
        if self.tls is not None:
            secured = await self.tls.accept(socket_stream, "quorum")
            if secured is None:
                await trio.aclose_forcefully(socket_stream)
                return
            stream = secured
        try:
            with trio.fail_after(self.heartbeat_s):
                pkt = await read_packet(stream, first)
            if pkt is None:
                return
            if pkt.type not in (T.FOLLOWERINFO, T.OBSERVERINFO) or not pkt.data:
                raise FrameError(f"first quorum packet has type {pkt.type}, expected FOLLOWERINFO")
            sid = decode(r.LearnerInfo, pkt.data).serverid
        except (
            trio.TooSlowError,
            FrameError,
            JuteError,
            trio.BrokenResourceError,
            trio.ClosedResourceError,
        ) as e:
            log.warning("rejecting quorum connection: %s", e)
            await trio.aclose_forcefully(stream)
            return
        if not await self._previous_link_ended(sid):
            log.warning(
                "rejecting quorum connection that says it is server %d: our link with %d is alive", sid, sid
            )
            await trio.aclose_forcefully(stream)
            return
        send, recv = trio.open_memory_channel[bytes](self.max_queued)
        link = Link(sid, send, recv, outgoing=False)
        # The peer-owning task registers the link, then steps the first packet.
        await self._post(QuorumAccepted(link, pkt))
        await self._run_link(link, stream, bytes(first.buf[first.pos :]))

    async def _connect(self, link: Link) -> None:
        host, port = self.addresses[link.sid]
        stream: trio.abc.Stream | None = None
        while stream is None:
            if link.closed:  # given up on by the peer-owning task while connecting
                self._report_lost(link)
                return
            with trio.move_on_after(self.heartbeat_s):
                try:
                    stream = await trio.open_tcp_stream(host, port)
                except OSError:
                    await trio.sleep(self.connect_retry_s)
                    continue
                if self.tls is not None:
                    assert isinstance(stream, trio.SocketStream)
                    secured = await self.tls.connect(stream, host, "quorum")
                    if secured is None:
                        await trio.aclose_forcefully(stream)
                        stream = None
                        await trio.sleep(self.connect_retry_s)
                        continue
                    stream = secured
        await self._run_link(link, stream, b"")

    async def _run_link(self, link: Link, stream: trio.abc.Stream, leftover: bytes) -> None:
        raw = stream if isinstance(stream, trio.SocketStream) else None
        if isinstance(stream, trio.SSLStream) and isinstance(stream.transport_stream, trio.SocketStream):
            with contextlib.suppress(OSError):
                stream.transport_stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        if raw is not None:
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        try:
            with link.scope:
                link.last_heard = trio.current_time()
                # Direct writes only to a plain socket: TLS goes through the sender task.
                link.fd = raw.socket.fileno() if raw is not None else -1
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._sender, link, stream)
                    nursery.start_soon(self._heartbeat, link)
                    await self._receiver(link, stream, leftover)
                    nursery.cancel_scope.cancel()
        except Exception as e:  # a broken connection is routine; say why once
            log.info("quorum link with %d ended: %r", link.sid, e)
        finally:
            link.fd = -1  # before the close: the number may name another file after it
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(stream)
            self._report_lost(link)

    async def _sender(self, link: Link, stream: trio.abc.Stream) -> None:
        recv = link.recv
        try:
            while True:
                chunk = await recv.receive()
                chunks = [chunk]
                size = len(chunk)
                while size < (1 << 20):
                    try:
                        chunk = recv.receive_nowait()
                    except trio.WouldBlock:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                with trio.fail_after(self.heartbeat_s):
                    await stream.send_all(b"".join(chunks) if len(chunks) > 1 else chunks[0])
                link.queued -= len(chunks)
        except (trio.BrokenResourceError, trio.ClosedResourceError, trio.EndOfChannel, trio.TooSlowError):
            link.scope.cancel()

    async def _heartbeat(self, link: Link) -> None:
        """End a link that has been silent too long (the ZAB pings keep a live one busy)."""
        while True:
            await trio.sleep(self.heartbeat_s / 4)
            if trio.current_time() - link.last_heard > self.heartbeat_s:
                log.info("quorum link with %d silent for %.1f s; closing it", link.sid, self.heartbeat_s)
                link.scope.cancel()
                return

    async def _receiver(self, link: Link, stream: trio.abc.Stream, leftover: bytes) -> None:
        """Post every packet that one read completed as one inbox message.

        At high load a read brings many PROPOSALs/ACKs/COMMITs; one inbox message (one
        checkpoint, one wake-up of the peer task) per read instead of per packet.
        """
        reader = PacketReader(self.max_packet, big_types=_BIG_TYPES, big_limit=MAX_FRAME)
        reader.feed(leftover)
        while True:
            pkts: list[r.QuorumPacket] = []
            malformed = False
            while True:
                try:
                    pkt = reader.next_packet()
                except FrameError as e:
                    log.warning("malformed quorum packet from %d: %s", link.sid, e)
                    malformed = True
                    break
                if pkt is None:
                    break
                pkts.append(pkt)
            if pkts:
                await self._post(QuorumReceived(link, pkts))
            if malformed:
                return
            try:
                data = await stream.receive_some(1 << 20)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            link.last_heard = trio.current_time()
            reader.feed(data)

    async def _previous_link_ended(self, sid: int) -> bool:
        """Wait until our established link with ``sid``, if any, has ended; False if it lives on.

        The first packet names a server, and nothing proves it: anyone who can reach the port
        could say they are server 2 and, by replacing our link with the real server 2, cut it
        off (a learner from its leader, or a leader from a follower).  A server that really
        reconnects has closed its old connection (we see that end at once) or lost it (the
        heartbeat ends it); the link of a server that is still talking to us, and the one we
        opened ourselves, are not taken over.
        """
        old = self.links.get(sid)
        if old is None or old.closed:
            return True
        # Our own connection to that server (a learner's to its leader, or one still being
        # opened) is never taken over: a leader does not connect to its learners.  An
        # accepted one silent for half the heartbeat limit (a live peer pings every tick)
        # belongs to a server that gave up on it and made this one: no need to wait.
        if not old.outgoing and trio.current_time() - old.last_heard > self.heartbeat_s / 2:
            return True
        with trio.move_on_after(self.heartbeat_s * 1.5):  # the heartbeat checks every quarter
            await old.ended.wait()
        return old.ended.is_set()

    def _report_lost(self, link: Link) -> None:
        link.ended.set()
        self.lost.append(link)
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            self._post_nowait(QuorumLinkLost())

    # -- the peer-owning task's API ---------------------------------------------------------

    def current(self, link: Link) -> bool:
        return not link.closed and self.links.get(link.sid) is link

    def register(self, link: Link, since: int) -> Link | None:
        """Make ``link`` the connection with its peer; returns the one it replaced (now closed)."""
        old = self.links.get(link.sid)
        if old is not None:
            self._close(old)
        link.since = since
        self.links[link.sid] = link
        if link.ended.is_set():
            # It ended before the peer task got to register it, and its loss may have been
            # taken (and ignored: it was nobody's link yet) with an earlier batch's; report it
            # again, or a dead link would stay registered, and its peer connected, for good.
            if link not in self.lost:
                self._report_lost(link)
        return old

    def take_lost(self) -> list[int]:
        """Peers whose current link broke since the last call (each needs a Disconnected)."""
        lost, self.lost = self.lost, []
        out = []
        for link in lost:
            if self.links.get(link.sid) is link:
                del self.links[link.sid]
                link.closed = True
                out.append(link.sid)
        return out

    def send(self, to: int, msg: QuorumMessage, ready_seq: int, *, connect: bool) -> bool:
        """Queue ``msg``; opens a link to ``to`` if ``connect`` (a learner to its leader).

        Returns False if the link overflowed and was dropped: the caller must step
        ``Disconnected(to)``.
        """
        return self.send_many(to, [to_packet(msg)], ready_seq, connect=connect)

    def send_packet(self, to: int, pkt: r.QuorumPacket, ready_seq: int, *, connect: bool) -> bool:
        return self.send_many(to, [pkt], ready_seq, connect=connect)

    def send_many(self, to: int, pkts: list[r.QuorumPacket], ready_seq: int, *, connect: bool) -> bool:
        """Queue ``pkts`` (in order) as one chunk: one socket write for all of them."""
        if len(pkts) == 1:
            data = encode_packet(pkts[0])
        else:
            data = b"".join([encode_packet(p) for p in pkts])
        return self.send_frames(to, data, ready_seq, connect=connect)

    def send_frames(self, to: int, data: bytes, ready_seq: int, *, connect: bool) -> bool:
        """Queue ``data`` (whole encoded frames) as one chunk: one socket write.

        When the link's sender has nothing unwritten, the chunk is written to the socket
        right here (nothing can overtake it), saving the sender task a wake-up per
        message; what the socket does not take goes to the sender, which also reports
        any error.  Same return value as :meth:`send`.
        """
        link = self.links.get(to)
        if connect and link is not None and not link.outgoing:
            # A learner reaches its leader on a connection it opened itself, to the address in
            # its configuration; one accepted from someone who said they were that server
            # (while we were looking, say) is not it.  Close that and open ours.
            self.links.pop(to)
            self._close(link)
            link = None
        if link is not None and ready_seq < link.since:
            return True  # meant for an earlier connection with this peer
        if link is None:
            if not connect or to not in self.addresses or self._nursery is None:
                return True  # nobody to send to; the ZAB core times this out
            send, recv = trio.open_memory_channel[bytes](self.max_queued)
            link = Link(to, send, recv, outgoing=True)
            self.register(link, ready_seq)
            self._nursery.start_soon(self._connect, link)
        if link.queued == 0 and link.fd >= 0:
            try:
                sent = os.write(link.fd, data)
            except OSError:
                sent = 0  # full, or broken: the sender finds out and ends the link
            if sent == len(data):
                return True
            data = data[sent:]
        try:
            link.send.send_nowait(data)
            link.queued += 1
        except trio.WouldBlock:
            log.warning("quorum peer %d is %d packets behind; disconnecting it", to, self.max_queued)
            self.disconnect(to)
            return False
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        return True

    def disconnect(self, to: int) -> None:
        link = self.links.pop(to, None)
        if link is not None:
            self._close(link)

    def refuse(self, link: Link) -> None:
        """Close an accepted link that is not registered (it is not wanted), and only it."""
        if self.links.get(link.sid) is not link:
            self._close(link)

    def _close(self, link: Link) -> None:
        link.closed = True
        link.scope.cancel()
        with contextlib.suppress(Exception):
            link.send.close()

    def statistics(self) -> dict[int, int]:
        """Packets queued per peer."""
        return {sid: link.send.statistics().current_buffer_used for sid, link in self.links.items()}
