"""Session liveness: ``SessionTrackerImpl`` and the session id and password rules.

Theory of operation
-------------------
Which sessions exist is replicated state (createSession / closeSession
transactions, kept in the data tree); *when* a session expires is local to the
server that owns its connection, as in ZooKeeper.  The tracker keeps
``SessionTrackerImpl``'s expiry buckets: a touch moves the session to the bucket
``roundToNextInterval(now + timeout)`` (a multiple of tickTime), and
:meth:`SessionTracker.expired` hands back every session whose bucket time has
passed.  The tracker never reads a clock: callers pass ``now_ms``.

Session ids are ``((now_ms << 24) >>> 8) | (server_id << 56)`` at start-up, then
counted up (``initializeNextSessionId``), so they are unique across restarts.
Passwords are not stored: they are 16 bytes of ``java.util.Random(session_id ^
0xB3415C00).nextBytes`` (``ZooKeeperServer.generatePasswd``), reproduced here
bit for bit so any server of an ensemble (or Apache ZooKeeper) agrees.
"""

from __future__ import annotations

import attrs

__all__ = ["JavaRandom", "Session", "SessionTracker", "generate_password", "initial_session_id"]

_MASK64 = (1 << 64) - 1
_MASK48 = (1 << 48) - 1
_MULT = 0x5DEECE66D
SUPER_SECRET = 0xB3415C00
CONTAINER_EPHEMERAL_OWNER = -(1 << 63)


def to_signed64(v: int) -> int:
    v &= _MASK64
    return v - (1 << 64) if v >> 63 else v


class JavaRandom:
    """``java.util.Random``'s 48-bit LCG (only what generatePasswd needs)."""

    def __init__(self, seed: int) -> None:
        self._seed = (seed ^ _MULT) & _MASK48

    def _next(self, bits: int) -> int:
        self._seed = (self._seed * _MULT + 0xB) & _MASK48
        v = self._seed >> (48 - bits)
        # (int) cast: keep the low 32 bits, signed.
        v &= 0xFFFFFFFF
        return v - (1 << 32) if v >> 31 else v

    def next_int(self) -> int:
        return self._next(32)

    def next_bytes(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            rnd = self.next_int()
            for _ in range(min(n - len(out), 4)):
                out.append(rnd & 0xFF)
                rnd >>= 8
        return bytes(out)


def generate_password(session_id: int) -> bytes:
    return JavaRandom(to_signed64(session_id ^ SUPER_SECRET)).next_bytes(16)


def initial_session_id(now_ms: int, server_id: int) -> int:
    """``SessionTrackerImpl.initializeNextSessionId``."""
    sid = ((now_ms << 24) & _MASK64) >> 8
    sid |= (server_id << 56) & _MASK64
    sid = to_signed64(sid)
    if sid == CONTAINER_EPHEMERAL_OWNER:
        sid += 1  # never hand out the container marker as a session id
    return sid


@attrs.define
class Session:
    session_id: int
    timeout: int
    expire_at: int = 0
    closing: bool = False


class SessionTracker:
    """Expiry buckets keyed by tick-aligned deadline (``ExpiryQueue``)."""

    def __init__(self, tick_ms: int, next_session_id: int) -> None:
        self.tick_ms = max(1, tick_ms)
        self.next_session_id = next_session_id
        self.sessions: dict[int, Session] = {}
        # The sessions that are not closing: the per-request liveness check is one lookup.
        self.live: dict[int, Session] = {}
        self._buckets: dict[int, dict[int, None]] = {}

    def _round(self, t: int) -> int:
        return (t // self.tick_ms + 1) * self.tick_ms

    def new_session_id(self) -> int:
        sid = self.next_session_id
        self.next_session_id = to_signed64(sid + 1)
        if self.next_session_id == CONTAINER_EPHEMERAL_OWNER:
            self.next_session_id += 1
        return sid

    def add(self, session_id: int, timeout: int, now_ms: int) -> Session:
        s = self.sessions.get(session_id)
        if s is None:
            s = self.sessions[session_id] = Session(session_id, timeout)
            self.live[session_id] = s
        self.touch(session_id, now_ms)
        return s

    def touch(self, session_id: int, now_ms: int, timeout: int | None = None) -> bool:
        """Push the session's deadline; False if it is unknown or closing (``touchSession``)."""
        s = self.sessions.get(session_id)
        if s is None or s.closing:
            return False
        deadline = self._round(now_ms + (s.timeout if timeout is None else timeout))
        if deadline != s.expire_at:
            old = self._buckets.get(s.expire_at)
            if old is not None:
                old.pop(session_id, None)
                if not old:
                    del self._buckets[s.expire_at]
            s.expire_at = deadline
            self._buckets.setdefault(deadline, {})[session_id] = None
        return True

    def set_closing(self, session_id: int) -> None:
        s = self.sessions.get(session_id)
        if s is not None:
            s.closing = True
        self.live.pop(session_id, None)

    def remove(self, session_id: int) -> None:
        s = self.sessions.pop(session_id, None)
        self.live.pop(session_id, None)
        if s is not None:
            b = self._buckets.get(s.expire_at)
            if b is not None:
                b.pop(session_id, None)
                if not b:
                    del self._buckets[s.expire_at]

    def is_live(self, session_id: int) -> bool:
        return session_id in self.live

    def expired(self, now_ms: int) -> list[int]:
        """Sessions whose deadline has passed; they are marked closing."""
        out: list[int] = []
        for deadline in sorted(t for t in self._buckets if t <= now_ms):
            for sid in self._buckets.pop(deadline):
                s = self.sessions.get(sid)
                if s is not None and not s.closing:
                    s.closing = True
                    del self.live[sid]
                    out.append(sid)
        return out
