"""The workload of a fault-injection run: kazoo clients, each pinned to one member, recording every op.

Theory of operation
-------------------
A :class:`Workload` owns one thread per client.  Client *c* talks to one member only (its
connect string names that member alone, as an application pinned to a nearby server would) and
loops over random operations on a few registers (``/chaos/r/<k>``), a sequential-create parent
(``/chaos/seq/n-``) and the session's own ephemeral node (``/chaos/eph/c<c>-<session>``):

* ``cas``: read the register, then setData with the version read (the read itself is recorded
  as a plain ``read`` only when it came from ``sync``; the version it yields is just a guess);
* ``write``: setData without a version;
* ``read``: ``sync`` then ``getData`` on the same connection (what a linearizable read needs);
* ``seq_create``: create a sequential node.

Every op becomes a :class:`~compat.chaos.history.Op`: its call time, its return time and its
outcome, ``ok``, ``fail`` (BadVersion, NoNode, NodeExists: a definite answer) or ``unknown``
(timeout, connection loss, session expired: it may or may not have happened).  After an
unknown outcome the request may still be queued in kazoo and run later, so the client takes a
new *process* number (Jepsen's rule): one process never has two ops in flight, which the
linearizability and per-session checkers rely on.

Sessions: a kazoo state listener records ``expired`` when kazoo reports the session LOST, and
``established`` when a new session comes up; each new session creates its ephemeral node first.
:meth:`Workload.pause_ops` stops issuing ops but keeps the sessions, so that the harness can
read the final state and each client's :class:`~compat.chaos.history.ClientEnd` while the
sessions are still open.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError

from compat.chaos.history import ClientEnd, Op, SessionEvent

__all__ = ["EPH_PARENT", "REGISTER_PARENT", "SEQ_PREFIX", "Workload", "register_keys"]

log = logging.getLogger("compat.chaos.workload")

ROOT = "/chaos"
REGISTER_PARENT = f"{ROOT}/r"
SEQ_PARENT = f"{ROOT}/seq"
SEQ_PREFIX = f"{SEQ_PARENT}/n-"
EPH_PARENT = f"{ROOT}/eph"
DEFINITE = (BadVersionError, NoNodeError, NodeExistsError)
# A process number per client generation: client c's processes are c * _GEN + 0, 1, 2, ...
_GEN = 1000


def register_keys(count: int) -> list[str]:
    return [f"{REGISTER_PARENT}/{k}" for k in range(count)]


def prepare(hosts: str, registers: int, timeout: float = 30.0) -> None:
    """Create the run's znodes (registers start as b"" at version 0)."""
    zk = KazooClient(hosts=hosts, timeout=timeout)
    zk.start(timeout=timeout)
    try:
        for path in (ROOT, REGISTER_PARENT, SEQ_PARENT, EPH_PARENT):
            zk.ensure_path(path)
        for key in register_keys(registers):
            if zk.exists(key) is None:
                zk.create(key, b"")
    finally:
        zk.stop()
        zk.close()


class _Client:
    """One kazoo client and the thread that drives it."""

    def __init__(self, workload: Workload, number: int, member: int, address: str, seed: int) -> None:
        self.w = workload
        self.number = number
        self.member = member
        self.rng = random.Random(seed)
        self.generation = 0
        self.zk = KazooClient(hosts=address, timeout=workload.session_timeout)
        self.session: int | None = None
        self.ephemeral_path: str | None = None
        self._needs_ephemeral = threading.Event()
        self.in_op = False  # set by the client's thread around each request
        self._lock = threading.Lock()
        self.zk.add_listener(self._on_state)
        self.thread = threading.Thread(target=self._run, name=f"chaos-client-{number}", daemon=True)

    @property
    def process(self) -> int:
        return self.number * _GEN + self.generation

    def _on_state(self, state: str) -> None:
        # Runs on kazoo's thread: record only, never block.
        now = time.monotonic()
        with self._lock:
            if state == KazooState.LOST and self.session is not None:
                self.w.events.append(SessionEvent(self.process, self.session, "expired", now))
                self.session = None
                self.ephemeral_path = None
            elif state == KazooState.CONNECTED:
                cid = self.zk.client_id
                sid = cid[0] if cid else None
                if sid is not None and sid != self.session:
                    if self.session is not None:
                        # A new session without a LOST first (kazoo reconnected with a new id).
                        self.w.events.append(SessionEvent(self.process, self.session, "expired", now))
                    self.session = sid
                    self.ephemeral_path = None
                    self.w.events.append(SessionEvent(self.process, sid, "established", now))
                    self._needs_ephemeral.set()

    def start(self) -> None:
        # Connects in the background: a member may be down when the run starts a client.
        self.zk.start_async()
        self.thread.start()

    # -- the loop ------------------------------------------------------------------

    def _run(self) -> None:
        w = self.w
        while not w.stopping.is_set():
            if w.paused.is_set() or not self.zk.connected:
                time.sleep(0.05)
                continue
            if self._needs_ephemeral.is_set():
                self._needs_ephemeral.clear()
                self._create_ephemeral()
                continue
            kind = self.rng.choices(("cas", "write", "read", "seq_create"), weights=(4, 2, 3, 1))[0]
            key = self.rng.choice(w.keys)
            if kind == "cas":
                self._cas(key)
            elif kind == "write":
                self._write(key)
            elif kind == "read":
                self._read(key)
            else:
                self._record("seq_create", SEQ_PREFIX, None, None, self._seq_async)
            time.sleep(self.rng.uniform(0.0, w.think_time))

    def _value(self) -> bytes:
        return f"{self.number}-{next(self.w.values)}".encode()

    def _write(self, key: str) -> None:
        value = self._value()
        self._record("write", key, value, None, lambda: self.zk.set_async(key, value))

    def _seq_async(self) -> Any:
        return self.zk.create_async(SEQ_PREFIX, b"", sequence=True)

    def _create_ephemeral(self) -> None:
        sid = self.session
        if sid is None:
            return
        path = f"{EPH_PARENT}/c{self.number}-{sid:x}"
        op = self._record("ephemeral", path, None, None, lambda: self.zk.create_async(path, ephemeral=True))
        if op.outcome == "ok" or op.error == "NodeExistsError":
            with self._lock:
                if self.session == sid:
                    self.ephemeral_path = path
        elif op.outcome == "unknown":
            self._needs_ephemeral.set()  # try again (NodeExists then says it was made)

    def _cas(self, key: str) -> None:
        # The version to expect: a plain getData (not recorded: it is only a guess).
        try:
            _data, stat = self.zk.get_async(key).get(timeout=self.w.op_timeout)
        except Exception:
            return
        value = self._value()
        self._record(
            "cas", key, value, stat.version, lambda: self.zk.set_async(key, value, version=stat.version)
        )

    def _read(self, key: str) -> None:
        # sync then getData, one op: the sync is the barrier that makes the read linearizable.
        def run() -> Any:
            self.zk.sync_async(key).get(timeout=self.w.op_timeout)
            return self.zk.get_async(key)

        self._record("read", key, None, None, run)

    def _record(
        self,
        kind: str,
        key: str,
        value: bytes | None,
        expected_version: int | None,
        start: Callable[[], Any],
    ) -> Op:
        w = self.w
        session = self._session_now()
        process = self.process
        call = time.monotonic()
        result: Any = None
        error: BaseException | None = None
        self.in_op = True
        try:
            result = start().get(timeout=w.op_timeout)
        except Exception as exc:  # every outcome is recorded, none is fatal to the run
            error = exc
        finally:
            self.in_op = False
        ret = time.monotonic()
        if self._session_now() != session:
            # The session changed while the request was out: which one ran it is unknown.
            session = None
        fields: dict[str, Any] = {}
        if error is None:
            outcome = "ok"
            if kind in ("write", "cas"):
                fields = {"version": result.version, "mzxid": result.mzxid}
            elif kind == "read":
                data, stat = result
                fields = {"version": stat.version, "read_value": data, "mzxid": stat.mzxid}
            else:
                fields = {"path": result}
        elif isinstance(error, DEFINITE):
            outcome = "fail"
        else:
            outcome = "unknown"
        op = Op(
            index=next(w.indexes),
            process=process,
            member=self.member,
            session=session,
            kind=kind,
            key=key,
            value=value,
            expected_version=expected_version,
            call=call,
            ret=None if outcome == "unknown" else ret,
            outcome=outcome,
            error=None if error is None else type(error).__name__,
            client_zxid=self.zk.last_zxid or None,
            **fields,
        )
        w.ops.append(op)
        if outcome == "unknown":
            # The request may still run later: later ops belong to a new process.
            self.generation += 1
            if isinstance(error, KazooTimeoutError | TimeoutError):
                log.debug("client %d: %s timed out", self.number, kind)
        return op

    def _session_now(self) -> int | None:
        # kazoo's own view, not the listener's copy, which may lag behind a new session.
        cid = self.zk.client_id
        return cid[0] if cid else None

    def end(self) -> ClientEnd:
        with self._lock:
            connected = self.zk.state == KazooState.CONNECTED and self.session is not None
            return ClientEnd(self.process, self.session, connected, self.ephemeral_path)

    def stop(self) -> None:
        self.thread.join(timeout=self.w.op_timeout + 5)
        try:
            self.zk.stop()
        finally:
            self.zk.close()


class Workload:
    """``len(pins)`` clients, client *i* pinned to member ``pins[i]`` (see the module docstring)."""

    def __init__(
        self,
        addresses: dict[int, str],
        pins: Sequence[int],
        *,
        seed: int,
        registers: int = 3,
        session_timeout: float = 6.0,
        op_timeout: float | None = None,
        think_time: float = 0.02,
    ) -> None:
        self.session_timeout = session_timeout
        # Long enough for a request to wait out a brief leader pause when sessions are long.
        self.op_timeout = op_timeout if op_timeout is not None else max(5.0, session_timeout / 2)
        self.think_time = think_time
        self.keys = register_keys(registers)
        self.ops: list[Op] = []  # list.append is atomic: threads share these without a lock
        self.events: list[SessionEvent] = []
        self.indexes = itertools.count()
        self.values = itertools.count(1)
        self.stopping = threading.Event()
        self.paused = threading.Event()
        rng = random.Random(seed)
        self.clients = [
            _Client(self, n, member, addresses[member], rng.randrange(1 << 30))
            for n, member in enumerate(pins)
        ]

    def start(self) -> None:
        for c in self.clients:
            c.start()

    def pause_ops(self) -> None:
        """Issue no more ops (those in flight finish); the sessions stay open."""
        self.paused.set()
        deadline = time.monotonic() + self.op_timeout + 1
        while time.monotonic() < deadline and any(self._busy(c) for c in self.clients):
            time.sleep(0.05)

    @staticmethod
    def _busy(c: _Client) -> bool:
        return c.in_op

    def ends(self) -> list[ClientEnd]:
        return [c.end() for c in self.clients]

    def stop(self) -> None:
        self.stopping.set()
        for c in self.clients:
            c.stop()
