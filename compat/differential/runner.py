"""Run one operation sequence against one server and record everything it answers.

Theory of operation
-------------------
An :class:`Executor` owns a long-lived *admin* session (authenticated with the
super digest both servers are configured with) and, per example, opens the
sequence's sessions, sends each operation, and records:

* every frame that arrives on the operation's connection up to and including
  its reply (so a notification that arrives before the reply is seen there);
* then a **barrier**: a ping on every open session, recording the frames that
  arrive before each ping's reply.  Both servers emit the notifications a
  transaction causes before any later reply on the same connection (ZooKeeper's
  ordering guarantee), so after the barrier every event the operation caused
  has been attributed to that step, deterministically, without sleeping;
* whether each connection is still open.

After the sequence it closes the sessions (which also deletes their
ephemerals) and the admin session deletes everything except ``/zookeeper``,
``/zookeeper/quota`` and ``/zookeeper/config``, so the server is reused for
the next example (starting a JVM per example would cost seconds).  Every
example works under a fresh base node ``/dt<N>``, the same name on both
servers.

:func:`compare` normalizes two transcripts (:mod:`.normalize`) and returns a
readable description of the first difference, or ``None``.
"""

from __future__ import annotations

import contextlib
import pprint
from collections.abc import Sequence
from typing import Any

import attrs

from compat.differential import ops as o
from compat.differential.client import Closed, Frame, RawClient, TimedOut
from compat.differential.normalize import normalize
from trizab.wire import jute
from trizab.wire import records as r
from trizab.wire.codes import OpCode

__all__ = ["SUPER_AUTH", "SUPER_DIGEST_CONFIG", "Executor", "OpSequence", "compare"]

SUPER_USER, SUPER_PASSWORD = "super", "differential"
SUPER_AUTH = f"{SUPER_USER}:{SUPER_PASSWORD}".encode()
# The zoo.cfg line both servers get (ZooKeeper turns it into a zookeeper.* system property).
SUPER_DIGEST_CONFIG = f"DigestAuthenticationProvider.superDigest={o.digest_id(SUPER_USER, SUPER_PASSWORD)}"
RESERVED = ("/zookeeper", "/zookeeper/quota", "/zookeeper/config")
SESSION_TIMEOUT_MS = 10_000
# A sync always gets a reply, so waiting long for it costs nothing when the members are healthy;
# three seconds (the reply timeout) were once too few for a ZooKeeper 3.8 ensemble of six JVMs on
# a loaded 2-core machine, and the ZooKeeper-against-ZooKeeper comparison saw a "no-reply".
SYNC_TIMEOUT_S = 15.0
GRACE_S = 0.1
CLOSE_WAIT_S = 2.0  # for a close both servers make (closeSession, failed auth)
UNIMPLEMENTED = -6


@attrs.frozen
class OpSequence:
    sessions: int
    ops: tuple[o.Op, ...]

    def __repr__(self) -> str:
        body = "".join(f"\n    {op!r}," for op in self.ops)
        return f"OpSequence(sessions={self.sessions}, ops=({body}\n))"


class _Session:
    def __init__(self, slot: int, generation: int) -> None:
        self.label = f"s{slot}.{generation}"
        self.client: RawClient | None = None
        self.session_id = 0
        self.passwd = b"\0" * 16
        self.last_zxid = 0
        self.alive = False  # the session exists on the server (not closed/expired)

    @property
    def connected(self) -> bool:
        return self.client is not None and not self.client.closed


class Executor:
    """Runs sequences against the server at ``address``; keep one per server across examples.

    With several addresses (the client ports of one ensemble's members), session slot ``k`` of
    every sequence connects to member ``k mod n`` and the admin session to the first.  A write
    made through one member then shows on another only once that member has applied it, so
    the ensemble mode makes every session ``sync`` before it first runs anything and in every
    barrier (not recorded: only the events that arrive before the sync's reply are): after a
    sync a member has applied every transaction committed before it, and sent the
    notifications they cause, as ZooKeeper orders them (before the sync's reply).  Each
    step's effects are then seen by every session before the next step, whichever member it
    is on, so the transcript does not depend on timing.
    """

    def __init__(
        self, address: tuple[str, int] | Sequence[tuple[str, int]], *, reply_timeout: float = 3.0
    ) -> None:
        addresses = [address] if isinstance(address[0], str) else list(address)  # type: ignore[list-item]
        self.addresses: list[tuple[str, int]] = addresses  # type: ignore[assignment]
        self.address = self.addresses[0]
        self.ensemble = len(self.addresses) > 1
        self.reply_timeout = reply_timeout
        self._admin: RawClient | None = None
        self.session_ids: dict[int, str] = {}

    # -- admin -------------------------------------------------------------

    def _admin_client(self) -> RawClient:
        if self._admin is not None and not self._admin.closed:
            return self._admin
        client = RawClient(self.address, timeout=self.reply_timeout)
        resp = client.connect(time_out=40_000)
        if not isinstance(resp, r.ConnectResponse | r.ConnectResponseNoRO) or resp.time_out <= 0:
            raise RuntimeError(f"admin session refused by {self.address}: {resp!r}")
        self._admin = client
        reply = self._admin_call(OpCode.AUTH, jute.encode(r.AuthPacket(0, "digest", SUPER_AUTH)), xid=-4)
        if reply.header.err != 0:
            raise RuntimeError(f"super digest auth refused by {self.address}: {reply.header}")
        return client

    def _admin_call(self, opcode: int, body: bytes, xid: int | None = None) -> Frame:
        client = self._admin
        assert client is not None
        xid = client.next_xid() if xid is None else xid
        client.send(xid, opcode, body)
        for frame in client.read_until_xid(xid):
            if isinstance(frame, Frame) and frame.header.xid == xid:
                return frame
        raise RuntimeError(f"admin session on {self.address} lost while calling opcode {opcode}")

    def _wipe(self, path: str) -> None:
        frame = self._admin_call(OpCode.GET_CHILDREN, jute.encode(r.GetChildrenRequest(path, False)))
        if frame.header.err == 0:
            children = jute.decode(r.GetChildrenResponse, frame.body).children or []
            for child in children:
                self._wipe(("" if path == "/" else path) + "/" + child)
        if path not in RESERVED and path != "/":
            self._admin_call(OpCode.DELETE, jute.encode(r.DeleteRequest(path, -1)))

    def reset(self) -> None:
        """Delete every znode but the reserved ones (as the super user)."""
        self._admin_client()
        self._wipe("/")

    def prepare(self, base: str) -> None:
        self._admin_client()
        rec = r.CreateRequest(base, b"", [r.ACL(31, r.Id("world", "anyone"))], 0)
        frame = self._admin_call(OpCode.CREATE, jute.encode(rec))
        if frame.header.err != 0:
            raise RuntimeError(f"cannot create base {base} on {self.address}: err {frame.header.err}")

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(OSError):
                self._admin.send(self._admin.next_xid(), OpCode.CLOSE_SESSION)
            self._admin.close()
            self._admin = None

    # -- sessions ------------------------------------------------------------

    def _connect(self, sess: _Session, *, resume: bool) -> Any:
        if sess.client is not None:
            sess.client.close()
        address = self.addresses[int(sess.label[1:].split(".")[0]) % len(self.addresses)]
        try:
            client = RawClient(address, timeout=self.reply_timeout)
        except OSError as exc:
            return ("connect-failed", type(exc).__name__)
        sess.client = client
        if resume:
            resp = client.connect(
                time_out=SESSION_TIMEOUT_MS,
                session_id=sess.session_id,
                passwd=sess.passwd,
                last_zxid_seen=sess.last_zxid,
            )
        else:
            resp = client.connect(time_out=SESSION_TIMEOUT_MS)
        if not isinstance(resp, r.ConnectResponse | r.ConnectResponseNoRO):
            sess.alive = False
            return ("connect", sess.label, _frame_value(resp, 0))
        if resp.time_out > 0:
            sess.session_id, sess.passwd, sess.alive = resp.session_id, resp.passwd, True
            self.session_ids[resp.session_id] = sess.label
        else:
            sess.alive = False
        return (
            "connect",
            sess.label,
            {
                "record": type(resp).__name__,
                "protocolVersion": resp.protocol_version,
                "timeOut": resp.time_out,
                "sessionId": o.Sid(resp.session_id),
                "passwdLength": None if resp.passwd is None else len(resp.passwd),
                "passwdZero": resp.passwd == b"\0" * 16,
                "readOnly": getattr(resp, "read_only", None),
            },
        )

    def _exchange(self, sess: _Session, opcode: int, xid: int, body: bytes) -> list[Any]:
        client = sess.client
        assert client is not None
        if not client.send(xid, opcode, body):
            return [("closed-before-send",)]
        # ZooKeeper 3.8 never answers a standalone check (op 13); do not wait long for it.
        frames = client.read_until_xid(xid, timeout=0.5 if opcode == OpCode.CHECK else None)
        out = []
        for frame in frames:
            if isinstance(frame, Frame) and frame.header.zxid > 0:
                sess.last_zxid = max(sess.last_zxid, frame.header.zxid)
            out.append(_frame_value(frame, xid, opcode))
        return out

    def _pipeline(self, sess: _Session, op: o.Pipeline, base: str) -> list[Any]:
        client = sess.client
        assert client is not None
        opcodes: dict[int, int] = {}
        for sub in op.ops:
            opcode, _, body = o.encode_request(sub, base, sess.last_zxid)
            xid = client.next_xid()
            opcodes[xid] = opcode
            if not client.send(xid, opcode, body):
                return [("closed-before-send",)]
        if not opcodes:
            return []
        last = max(opcodes)
        out: list[Any] = []
        for frame in client.read_until_xid(last):
            if isinstance(frame, Frame) and frame.header.zxid > 0:
                sess.last_zxid = max(sess.last_zxid, frame.header.zxid)
            xid = frame.header.xid if isinstance(frame, Frame) else last
            out.append(
                _frame_value(frame, xid, opcodes.get(xid))
                if xid in opcodes or xid == -1
                else _frame_value(frame, last, None)
            )
        return out

    def _drop_old_watches(self, sess: _Session, paths: list[str]) -> None:
        """Deliberate difference (compat/README.md): a session's watches survive a new TCP
        connection on trizab, ZooKeeper drops them with the old one.  After a resume, remove
        whatever survived (removeWatches of every type on every path the sequence names) and
        swallow the events queued while the session had no connection, so both servers go on
        with the watches ZooKeeper has.  Nothing of this enters the transcript; on ZooKeeper
        every removeWatches answers NoWatcher and nothing is queued."""
        client = sess.client
        assert client is not None
        for path in paths:
            xid = client.next_xid()
            if not client.send(xid, OpCode.REMOVE_WATCHES, jute.encode(r.RemoveWatchesRequest(path, 3))):
                return
            client.read_until_xid(xid)
        client.ping()

    def _sync(self, sess: _Session) -> list[Frame | Closed | TimedOut]:
        """Ensemble mode: the frames before the reply to a ``sync`` of ``/`` (see the class doc)."""
        client = sess.client
        assert client is not None
        xid = client.next_xid()
        if not client.send(xid, OpCode.SYNC, jute.encode(r.SyncRequest("/"))):
            return []
        frames = client.read_until_xid(xid, timeout=SYNC_TIMEOUT_S)
        return [f for f in frames if not (isinstance(f, Frame) and f.header.xid == xid)]

    def _barrier(self, sessions: Sequence[_Session], unordered: bool) -> list[Any]:
        out: list[Any] = []
        for sess in sessions:
            if not sess.connected:
                continue
            assert sess.client is not None
            frames = self._sync(sess) if self.ensemble else []
            frames += sess.client.ping()
            values = [_frame_value(f, -2) for f in frames]
            if values and values[-1] == ("ping",):
                values.pop()
            if values:
                out.append(("events", sess.label, ("unordered", *values) if unordered else values))
        return out

    # -- one example -----------------------------------------------------------

    def run(self, seq: OpSequence, base: str) -> tuple[list[Any], dict[int, str]]:
        """The raw transcript of ``seq`` under ``base`` and the session-id labels it used."""
        self.session_ids = {}
        self.prepare(base)
        watch_paths = _paths_of(seq.ops, base)
        slots = [_Session(i, 0) for i in range(seq.sessions)]
        transcript: list[Any] = []
        try:
            for sess in slots:
                transcript.append(self._connect(sess, resume=False))
            for sess in slots:
                # Every member has applied the base node (created through the first member) and
                # every session's creation (a transaction) before the first step reads a zxid.
                if self.ensemble and sess.connected:
                    self._sync(sess)
            for index, op in enumerate(seq.ops):
                slot = op.s % len(slots)
                sess = slots[slot]
                step: list[Any] = [index, sess.label]
                if isinstance(op, o.Reconnect):
                    if not sess.alive:
                        sess = slots[slot] = _Session(slot, int(sess.label.split(".")[1]) + 1)
                        step.append(self._connect(sess, resume=False))
                    else:
                        step.append(self._connect(sess, resume=True))
                        if sess.connected and sess.alive:
                            self._drop_old_watches(sess, watch_paths)
                elif not sess.connected:
                    step.append(("not-connected",))
                elif isinstance(op, o.Pipeline):
                    step.append(self._pipeline(sess, op, base))
                else:
                    assert sess.client is not None
                    opcode, forced_xid, body = o.encode_request(op, base, sess.last_zxid)
                    xid = sess.client.next_xid() if forced_xid is None else forced_xid
                    if opcode == OpCode.PING:
                        xid = -2  # ZooKeeper answers a ping on xid -2 whatever xid it came with
                    frames = self._exchange(sess, opcode, xid, body)
                    if isinstance(op, o.Check):
                        frames = _standalone_check(frames)
                    if isinstance(op, o.RawRequest | o.Auth | o.CloseSession) and sess.connected:
                        # ZooKeeper closes the connection after an unknown opcode, a failed auth or
                        # closeSession by queueing a close behind the reply, so the close comes a
                        # moment later; wait for it here rather than let a later step see it.
                        assert sess.client is not None
                        unimplemented = _has_reply(frames, UNIMPLEMENTED)
                        both_close = isinstance(op, o.CloseSession) or _has_reply(frames, -115)
                        late = sess.client.read_frame(CLOSE_WAIT_S if both_close else GRACE_S)
                        if not isinstance(late, TimedOut):
                            frames.append(_frame_value(late, xid, opcode))
                        elif unimplemented:
                            # Deliberate difference (compat/README.md): trizab keeps the connection
                            # open after Unimplemented, ZooKeeper closes it.  Close it here, so
                            # both servers go on from the same state.
                            sess.client.close()
                            frames.append(("closed",))
                    step.append(frames)
                    if isinstance(op, o.CloseSession):
                        sess.alive = False
                step.append(("open", sess.connected))
                transcript.append(("step", *step))
                transcript.extend(self._barrier(slots, unordered=isinstance(op, o.CloseSession)))
        finally:
            # Close every session that still exists, reconnecting first if the server dropped its
            # connection: a session left to expire would delete its ephemerals (and use a zxid)
            # at a moment that depends on timing, in the middle of a later example.
            for sess in slots:
                if sess.alive and not sess.connected:
                    self._connect(sess, resume=True)
                if sess.connected and sess.alive:
                    assert sess.client is not None
                    with contextlib.suppress(OSError):
                        xid = sess.client.next_xid()
                        sess.client.send(xid, OpCode.CLOSE_SESSION)
                        sess.client.read_until_xid(xid, timeout=self.reply_timeout)
                if sess.client is not None:
                    sess.client.close()
            self.reset()
        return transcript, dict(self.session_ids)


def _has_reply(frames: list[Any], err: int) -> bool:
    return any(f[0] == "reply" and f[1] == err for f in frames)


def _standalone_check(frames: list[Any]) -> list[Any]:
    """Deliberate difference (compat/README.md): ZooKeeper 3.8 never answers a check (op 13)
    outside a multi, trizab does.  The reply (or its absence) is not compared; events are."""
    out = [f for f in frames if f[0] not in ("reply", "no-reply")]
    return [*out, ("standalone-check-reply",)] if len(out) < len(frames) else out


def _paths_of(ops: Sequence[Any], base: str) -> list[str]:
    """Every path an operation of the sequence names (where a session may have set a watch)."""
    out: dict[str, None] = {}
    for op in ops:
        if isinstance(op, o.Multi | o.Pipeline):
            out.update(dict.fromkeys(_paths_of(op.ops, base)))
        elif isinstance(op, o.SetWatchesOp):
            for group in (op.data, op.exist, op.child, op.persistent, op.recursive):
                out.update(dict.fromkeys(p for p in (o.resolve(x, base) for x in group) if p is not None))
        else:
            path = o.resolve(getattr(op, "path", None), base)
            if path is not None:
                out[path] = None
    return list(out)


def _frame_value(frame: Frame | Closed | TimedOut, xid: int, opcode: int | None = None) -> Any:
    if isinstance(frame, Closed):
        return ("closed",)
    if isinstance(frame, TimedOut):
        return ("no-reply",)
    h = frame.header
    if h.xid == -1:
        try:
            ev = jute.decode(r.WatcherEvent, frame.body)
        except jute.JuteError:
            return ("bad-event", h.zxid, h.err, frame.body.hex())
        return ("event", o.Z(h.zxid), h.err, ev.type, ev.state, ev.path)
    if h.xid == -2 and xid == -2:
        return ("ping",) if h.err == 0 and not frame.body else ("ping", h.err, frame.body.hex())
    if h.xid != xid:
        return ("unexpected-frame", h.xid, o.Z(h.zxid), h.err, frame.body.hex())
    if h.err != 0:
        if frame.body and opcode in (OpCode.MULTI, OpCode.MULTI_READ):
            # ZooKeeper sends the MultiResponse built so far with some errors; decode it so that
            # its Stats are normalized like any other.
            return ("reply", h.err, o.Z(h.zxid), o.decode_body(opcode, frame.body))
        return ("reply", h.err, o.Z(h.zxid), frame.body.hex() if frame.body else None)
    body = o.decode_body(opcode, frame.body) if opcode is not None else frame.body.hex()
    return ("reply", 0, o.Z(h.zxid), body)


def first_difference(
    expected: tuple[list[Any], dict[int, str]], actual: tuple[list[Any], dict[int, str]]
) -> tuple[int, Any, Any] | None:
    """``(entry index, expected entry, actual entry)`` of the first normalized difference."""
    a = normalize(*expected)
    b = normalize(*actual)
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i, x, y
    n = min(len(a), len(b))
    return n, a[n] if n < len(a) else None, b[n] if n < len(b) else None


def step_of(transcript: list[Any], index: int) -> int | None:
    """The operation index of the step at or before transcript entry ``index``."""
    for entry in reversed(transcript[: index + 1]):
        if entry[0] == "step":
            return int(entry[1])
    return None


def compare(
    expected: tuple[list[Any], dict[int, str]],
    actual: tuple[list[Any], dict[int, str]],
    *,
    expected_name: str = "zookeeper",
    actual_name: str = "trizab",
) -> str | None:
    """``None`` if the normalized transcripts agree, else a description of the first difference."""
    a = normalize(*expected)
    b = normalize(*actual)
    if a == b:
        return None
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return (
                f"first difference at transcript entry {i}:\n"
                f"  {expected_name}: {pprint.pformat(x, width=150)}\n"
                f"  {actual_name}: {pprint.pformat(y, width=150)}\n"
                f"preceding entries ({expected_name}):\n"
                + "\n".join(f"    {pprint.pformat(e, width=150)}" for e in a[max(0, i - 3) : i])
            )
    return (
        f"transcripts differ in length: {expected_name} {len(a)}, {actual_name} {len(b)}; "
        f"first extra entry: {pprint.pformat((a + b)[min(len(a), len(b))], width=150)}"
    )
