"""Election connections: Fast Leader Election notifications over TCP (``QuorumCnxManager``).

Theory of operation
-------------------
Every pair of servers keeps at most one TCP connection on the election ports, and,
as in ZooKeeper's ``QuorumCnxManager``, the connection initiated by the server
with the *higher* id wins:

* for every peer with a lower id we run a **connector** task that keeps one
  connection open (reconnecting after ``retry_s`` when it breaks);
* a connection accepted from a lower id is only a nudge: we close it and wake
  our connector to that peer... which does not exist, since it is *their* job to
  be connected to by us: so we open our connection to them (``_wake``);
* a connection accepted from a higher id replaces any earlier one with it.

A connection starts with ZooKeeper's header (``long protocolVersion (-65536),
long sid, int addressLength, address``; we also read the other two forms ZooKeeper 3.8
reads, see :func:`parse_header`) and then carries notifications framed as ``int length``
+ the FLE message (:func:`trizab.zab.messages.encode_notification`), exactly as
``QuorumCnxManager`` and ``FastLeaderElection.buildMsg`` write them, so trizab and
ZooKeeper members elect together.

Election traffic is lossy by design (FLE re-sends): each peer has a small
outgoing buffer; when it is full the oldest notification is dropped, and
notifications for a peer we are not connected to wait there until a
connection exists.  Received notifications go to the member's inbox.  All
state is owned by this object's tasks; :meth:`send` is synchronous and never
blocks the caller.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable

import attrs
import trio

from trizab.logflood import limit_floods
from trizab.runtime.events import ElectionReceived
from trizab.runtime.quorum import FrameError, frame, peer_host, read_frame
from trizab.runtime.quorum_auth import QuorumAuthError, QuorumSasl
from trizab.runtime.tls import PeerTls
from trizab.zab.messages import Notification, ProtocolError, decode_notification, encode_notification

__all__ = ["ElectionTransport", "parse_header", "peer_address"]

log = logging.getLogger("trizab.election")
limit_floods(log)  # any stranger can connect: its refusals are rate-limited

# QuorumCnxManager.PROTOCOL_VERSION_V1, what we send (and ZooKeeper unless multiAddress.enabled),
# and PROTOCOL_VERSION_V2, which we accept: several addresses separated by "|".
PROTOCOL_VERSION = -65536
PROTOCOL_VERSION_V2 = -65535
SEND_CAPACITY = 8
# Servers not in our configuration that we keep election connections with at once (a new
# server joining by reconfig talks to us before the reconfig commits).  Anyone can claim
# to be one, so they are bounded and forgotten when their connection ends.
MAX_GUESTS = 16
MAX_NOTIFICATION = 64 * 1024
MAX_ADDRESS = 1024
_HEADER = struct.Struct(">qqi")
_LONG = struct.Struct(">q")


@attrs.define(eq=False)
class _Peer:
    sid: int
    queue: deque[bytes] = attrs.Factory(lambda: deque(maxlen=SEND_CAPACITY))
    wakeup: trio.Event = attrs.Factory(trio.Event)
    connected: trio.Event = attrs.Factory(trio.Event)
    scope: trio.CancelScope | None = None
    last_nudge: float = -1e9
    closed: bool = False  # removed from the configuration: the connector stops
    # Not in our configuration: known only from its own connection header (see MAX_GUESTS).
    guest: bool = False


def parse_header(buf: bytes | bytearray) -> tuple[int, str, int] | None:
    """The connection header at the start of ``buf``: ``(sid, address, bytes used)``.

    As ``QuorumCnxManager.handleConnection`` reads it: a first long that is not negative is
    the server id of a pre-3.5 server (no address follows); otherwise it is the protocol
    version, ``PROTOCOL_VERSION_V1`` (one ``host:port``) or ``PROTOCOL_VERSION_V2`` (what a
    server with ``multiAddress.enabled`` sends: ``host:port|host:port...``, of which we keep
    the first that is not a wildcard, as ZooKeeper connects to any), then the sid and the
    address's length (1..1024) and bytes.  None while ``buf`` is too short to hold it;
    :class:`FrameError` if it is not one.
    """
    if len(buf) < 8:
        return None
    (first,) = _LONG.unpack_from(buf)
    if first >= 0:
        return first, "", 8
    if len(buf) < _HEADER.size:
        return None
    version, sid, n = _HEADER.unpack_from(buf)
    if version not in (PROTOCOL_VERSION, PROTOCOL_VERSION_V2) or not 0 < n <= MAX_ADDRESS:
        raise FrameError(f"unsupported election protocol header {version} {sid} {n}")
    if len(buf) < _HEADER.size + n:
        return None
    text = bytes(buf[_HEADER.size : _HEADER.size + n]).decode("utf-8", "replace")
    addresses = text.split("|") if version == PROTOCOL_VERSION_V2 else [text]
    usable = [a for a in addresses if a.rpartition(":")[0].strip("[]") not in _WILDCARDS]
    return sid, (usable[0] if usable else ""), _HEADER.size + n


# NetUtils.isWildcardAddress: an address a peer listens on but cannot be connected to.
_WILDCARDS = frozenset({"0.0.0.0", "::", "0:0:0:0:0:0:0:0"})


_HOST = re.compile(r"\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*|[A-Za-z0-9_.-]{1,253}")


def peer_address(address: str) -> tuple[str, int] | None:
    """``host:port`` from a connection header, for a server not in our configuration; None if
    it is not one (we would connect to it: a host name or IP literal and a port 1..65535, in
    ASCII, nothing that getaddrinfo would choke on)."""
    host, _, port = address.rpartition(":")
    if not _HOST.fullmatch(host) or not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    if not 0 < int(port) < 65536:
        return None
    try:
        host.encode("idna")  # what the resolver will do with it: no empty or overlong labels
    except UnicodeError:
        return None
    return host.strip("[]"), int(port)


class ElectionTransport:
    """The election port of one member (see the module docstring)."""

    def __init__(
        self,
        my_id: int,
        addresses: dict[int, tuple[str, int]],
        post: Callable[[ElectionReceived], Awaitable[None]],
        *,
        retry_s: float = 0.1,
        handshake_s: float = 5.0,
        tls: PeerTls | None = None,
        auth: QuorumSasl | None = None,
        policy: str | None = None,
    ) -> None:
        self.tls = tls  # sslQuorum / portUnification (None: plain TCP only)
        self.auth = auth  # quorum.auth.enableSasl: SASL right after the connection header
        # The election policy's name (None: the default, fast): only ``fast`` orders votes as
        # ZooKeeper's members do.
        self.policy = policy or "fast"
        # Senders seen with ZooKeeper's notifications (no policy marker): ZooKeeper members,
        # or trizab members with election=fast; only told apart by a policy other than fast.
        self.zookeeper_peers: set[int] = set()
        self.my_id = my_id
        self.addresses = addresses
        self._post = post
        self.retry_s = retry_s
        self.handshake_s = handshake_s
        self.peers = {sid: _Peer(sid) for sid in addresses if sid != my_id}
        self.listen_address: tuple[str, int] | None = None
        self._nursery: trio.Nursery | None = None

    async def serve(
        self, *, task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED
    ) -> None:
        host, port = self.addresses[self.my_id]
        listeners = await trio.open_tcp_listeners(port, host=host)
        self.listen_address = tuple(listeners[0].socket.getsockname()[:2])  # type: ignore[assignment]
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(trio.serve_listeners, self._accept, listeners)
            for sid in self.peers:
                if sid < self.my_id:
                    nursery.start_soon(self._connector, self.peers[sid])
            task_status.started(self.listen_address)

    # -- API (synchronous) -----------------------------------------------------------

    def add_peer(self, sid: int, address: tuple[str, int], *, guest: bool = False) -> None:
        """A member joined the configuration (reconfig): accept and, if lower, connect to it.

        ``guest``: not a member (yet), only a connection that said where it listens.
        """
        if sid in self.peers:
            if not guest:
                self.addresses[sid] = address
                self.peers[sid].guest = False
            return
        if sid == self.my_id:
            return
        self.addresses[sid] = address
        p = self.peers[sid] = _Peer(sid, guest=guest)
        if sid < self.my_id and self._nursery is not None:
            self._nursery.start_soon(self._connector, p)

    def remove_peer(self, sid: int) -> None:
        """A member left the configuration (reconfig): close our connection to it."""
        p = self.peers.pop(sid, None)
        self.addresses.pop(sid, None)
        if p is not None:
            if p.scope is not None:
                p.scope.cancel()
            p.closed = True
            p.wakeup.set()

    def _forget_guest(self, p: _Peer) -> None:
        if p.guest and self.peers.get(p.sid) is p:
            self.remove_peer(p.sid)

    def send(self, to: int, n: Notification) -> None:
        p = self.peers.get(to)
        if p is None:
            return
        if self.policy != "fast":
            n = attrs.evolve(n, policy_marker=True)  # see POLICY_MARKER; fast sends ZooKeeper's bytes
        p.queue.append(frame(encode_notification(n)))
        p.wakeup.set()
        if to > self.my_id and not p.connected.is_set():
            self._nudge(p)

    def connected(self) -> list[int]:
        return sorted(sid for sid, p in self.peers.items() if p.connected.is_set())

    # -- connections -------------------------------------------------------------------

    def _nudge(self, p: _Peer) -> None:
        """Ask a higher-id peer to connect to us (it may be backing off)."""
        now = trio.current_time()
        if self._nursery is None or now - p.last_nudge < self.retry_s * 5:
            return
        p.last_nudge = now
        self._nursery.start_soon(self._send_nudge, p.sid)

    async def _open(self, sid: int) -> trio.abc.Stream:
        """A connection to a peer's election port, secured as configured (OSError if not)."""
        host, port = self.addresses[sid]
        stream = await trio.open_tcp_stream(host, port)
        if self.tls is None:
            return stream
        secured = await self.tls.connect(stream, host, "election")
        if secured is None:
            await trio.aclose_forcefully(stream)
            raise OSError(f"TLS with election peer {sid} failed")
        return secured

    async def _send_nudge(self, sid: int) -> None:
        address = self.addresses.get(sid)
        if address is None:
            return  # removed (reconfig, or a guest whose connection ended) since the nudge was due
        with trio.move_on_after(self.handshake_s):
            try:
                stream = await self._open(sid)
            except (OSError, ValueError, OverflowError):
                return
            async with stream:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, QuorumAuthError):
                    await stream.send_all(self._header())
                    if self.auth is not None:
                        await self.auth.as_learner(
                            stream, bytearray(), f"election connection to server {sid}", address[0]
                        )

    def _header(self) -> bytes:
        host, port = self.addresses[self.my_id]
        addr = f"{host}:{port}".encode()
        return _HEADER.pack(PROTOCOL_VERSION, self.my_id, len(addr)) + addr

    async def _connector(self, p: _Peer) -> None:
        """Keep our (winning) connection to a lower-id peer open."""
        while not p.closed and self.addresses.get(p.sid) is not None:
            buf = bytearray()
            try:
                with trio.fail_after(self.handshake_s):
                    stream = await self._open(p.sid)
                    await stream.send_all(self._header())
                    if self.auth is not None:
                        try:
                            what = f"election connection to server {p.sid}"
                            await self.auth.as_learner(stream, buf, what, self.addresses[p.sid][0])
                        except QuorumAuthError:
                            await trio.aclose_forcefully(stream)
                            await trio.sleep(1.0)  # refused (logged): retry, not spin
                            raise
            except (
                OSError,
                ValueError,
                OverflowError,
                trio.TooSlowError,
                trio.BrokenResourceError,
                QuorumAuthError,
            ):
                if p.guest:  # one try for a server we only know from its own word
                    self._forget_guest(p)
                    return
                with trio.move_on_after(self.retry_s):
                    await p.wakeup.wait()  # something to send: no need to wait the full retry
                await trio.sleep(self.retry_s / 4)
                continue
            if p.closed:
                await trio.aclose_forcefully(stream)
                return
            await self._run(p, stream, buf)
            if p.guest:
                self._forget_guest(p)
                return
            await trio.sleep(self.retry_s / 4)

    async def _accept(self, socket_stream: trio.SocketStream) -> None:
        buf = bytearray()
        stream: trio.abc.Stream = socket_stream
        if self.tls is not None:
            secured = await self.tls.accept(socket_stream, "election")
            if secured is None:
                await trio.aclose_forcefully(socket_stream)
                return
            stream = secured
        try:
            with trio.fail_after(self.handshake_s):
                while (header := parse_header(buf)) is None:
                    data = await stream.receive_some(4096)
                    if not data:
                        raise FrameError("closed during the handshake")
                    buf += data
        except (FrameError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError) as e:
            host = peer_host(socket_stream)
            log.info("rejecting election connection from %s: %s", host, e, extra={"peer": host})
            await trio.aclose_forcefully(stream)
            return
        sid, address, used = header
        del buf[:used]
        if self.auth is not None and not await self.auth.as_server(
            stream, buf, f"election connection from server {sid}", self.handshake_s
        ):
            await trio.aclose_forcefully(stream)
            return
        p = self.peers.get(sid)
        if p is None:
            # QuorumCnxManager accepts a server it does not know (a new server joining by
            # reconfig): its header says where it listens.
            where = peer_address(address)
            if sid == self.my_id or where is None:
                log.warning("election connection from unknown server %d (%r); closing", sid, address)
                await trio.aclose_forcefully(stream)
                return
            if sum(q.guest for q in self.peers.values()) >= MAX_GUESTS:
                log.warning(
                    "election connection from server %d at %s, not in our configuration, and %d such "
                    "servers are connected already; closing",
                    sid,
                    address,
                    MAX_GUESTS,
                )
                await trio.aclose_forcefully(stream)
                return
            log.info("election connection from server %d at %s, not in our configuration", sid, address)
            self.add_peer(sid, where, guest=True)
            p = self.peers[sid]
        if sid < self.my_id:
            # Their connection loses: make sure ours exists (the connector retries now).
            p.wakeup.set()
            await trio.aclose_forcefully(stream)
            return
        await self._run(p, stream, buf)
        if p.scope is None:  # no newer connection with it took over
            self._forget_guest(p)

    async def _run(self, p: _Peer, stream: trio.abc.Stream, buf: bytearray) -> None:
        if p.scope is not None:
            p.scope.cancel()  # the newer connection wins
        scope = p.scope = trio.CancelScope()
        raw = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        if isinstance(raw, trio.SocketStream):
            with contextlib.suppress(OSError):
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
        try:
            with scope:
                p.connected.set()
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._sender, p, stream)
                    await self._receiver(p, stream, buf)
                    nursery.cancel_scope.cancel()
        except Exception as e:  # a broken connection (maybe in an ExceptionGroup) is routine
            log.debug("election connection with %d ended: %r", p.sid, e)
        finally:
            if p.scope is scope:
                p.scope = None
                p.connected = trio.Event()
            with contextlib.suppress(Exception):
                await trio.aclose_forcefully(stream)

    async def _sender(self, p: _Peer, stream: trio.abc.Stream) -> None:
        while True:
            while p.queue:
                data = p.queue.popleft()
                with trio.fail_after(self.handshake_s):
                    await stream.send_all(data)
            p.wakeup = trio.Event()
            if p.queue:
                continue
            await p.wakeup.wait()

    async def _receiver(self, p: _Peer, stream: trio.abc.Stream, buf: bytearray) -> None:
        malformed = 0
        while True:
            try:
                data = await read_frame(stream, buf, MAX_NOTIFICATION)
            except FrameError as e:
                log.info("closing election connection with %d: %s", p.sid, e)
                return
            if data is None:
                return
            try:
                note = decode_notification(data, p.sid)
            except ProtocolError as e:
                # FastLeaderElection skips a malformed notification and keeps the connection
                # (its framing is intact); one line per connection, not one per message.
                malformed += 1
                if malformed == 1:
                    log.warning("skipping a malformed election notification from %d: %s", p.sid, e)
                continue
            if not note.policy_marker and p.sid not in self.zookeeper_peers:
                self._saw_zookeeper(p.sid)
            await self._post(ElectionReceived(note))

    def _saw_zookeeper(self, sid: int) -> None:
        """A member that sends ZooKeeper's notifications takes part in our elections: say once
        what that means for a policy other than ``fast`` (ZooKeeper's members order votes by
        epoch, zxid and server id only, and know nothing of ``election.prefer`` or
        ``election.leader``; a trizab member with ``fast`` neither).  The two cannot be told
        apart: a trizab member with ``fast`` sends exactly ZooKeeper's bytes."""
        self.zookeeper_peers.add(sid)
        if self.policy != "fast":
            log.error(
                "server %d sends Apache ZooKeeper's election notifications (an Apache ZooKeeper "
                "member, or a trizab member with election=fast), but election=%s: such members "
                "ignore this policy and may elect a leader it would not, or leave this member out; "
                "use election=fast until every member runs trizab with the same policy",
                sid,
                self.policy,
            )
