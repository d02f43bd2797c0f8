"""A synchronous harness around ServerCore: fake clock, in-memory log, auto-commit."""

from __future__ import annotations

from typing import Any

from trizab.server.api import Connected, Notification, Reply
from trizab.server.core import CoreConfig, ServerCore
from trizab.txn import Txn
from trizab.wire import records as r
from trizab.wire.codes import OpCode
from trizab.wire.jute import encode

T0 = 1_700_000_000_000


class Harness:
    """Drives a core like the runtime does: after each event, log then commit (unless paused)."""

    def __init__(self, config: CoreConfig | None = None, now: int = T0) -> None:
        self.now = now
        self.core = ServerCore(config or CoreConfig(), now_ms=now)
        self.log: list[Txn] = []
        self.uncommitted: list[Txn] = []
        self.auto_commit = True
        self.out: dict[int, list[Any]] = {}
        self.closed: list[int] = []
        self._next_conn = 1
        self._xids: dict[int, int] = {}

    def pump(self) -> None:
        while True:
            rd = self.core.ready()
            if rd.empty():
                if self.auto_commit and self.uncommitted:
                    batch, self.uncommitted = self.uncommitted, []
                    self.log.extend(batch)
                    self.core.committed(batch, self.now)
                    continue
                return
            self.uncommitted.extend(rd.to_log)
            for conn_id, o in rd.outputs:
                # Round-trip every output through the codec as the frontend would.
                if isinstance(o, Reply):
                    out = bytearray()
                    o.header.jute_encode(out)
                    if o.body is not None:
                        o.body.jute_encode(out)
                self.out.setdefault(conn_id, []).append(o)
            self.closed.extend(rd.close)

    def commit(self) -> None:
        batch, self.uncommitted = self.uncommitted, []
        self.log.extend(batch)
        self.core.committed(batch, self.now)
        self.pump()

    def advance(self, ms: int) -> None:
        self.now += ms
        self.core.tick(self.now)
        self.pump()

    def take(self, conn_id: int) -> list[Any]:
        return self.out.pop(conn_id, [])

    def connect(
        self,
        session_id: int = 0,
        passwd: bytes = bytes(16),
        timeout: int = 10_000,
        last_zxid: int = 0,
        addr: str = "127.0.0.1:40000",
    ) -> int:
        conn_id = self._next_conn
        self._next_conn += 1
        req = r.ConnectRequest(0, last_zxid, timeout, session_id, passwd, False)
        self.core.connect(conn_id, req, has_read_only_flag=True, client_addr=addr, now_ms=self.now)
        self.pump()
        return conn_id

    def session(self, timeout: int = 10_000) -> tuple[int, r.ConnectResponse]:
        c = self.connect(timeout=timeout)
        outs = self.take(c)
        assert len(outs) == 1 and isinstance(outs[0], Connected), outs
        return c, outs[0].response

    def send(self, conn_id: int, opcode: int, req: Any = None, xid: int | None = None) -> int:
        if xid is None:
            xid = self._xids.get(conn_id, 0) + 1
            self._xids[conn_id] = xid
        payload = b"" if req is None else (req if isinstance(req, bytes | bytearray) else encode(req))
        self.core.receive(conn_id, xid, opcode, payload, self.now)
        self.pump()
        return xid

    def call(self, conn_id: int, opcode: int, req: Any = None) -> Reply:
        """Send one request and return its reply (notifications stay in ``events``)."""
        xid = self.send(conn_id, opcode, req)
        replies = [o for o in self.out.get(conn_id, []) if isinstance(o, Reply) and o.header.xid == xid]
        assert len(replies) == 1, self.out.get(conn_id)
        self.out[conn_id].remove(replies[0])
        return replies[0]

    def events(self, conn_id: int) -> list[tuple[int, str]]:
        outs = self.out.get(conn_id, [])
        evs = [(o.event.type, o.event.path) for o in outs if isinstance(o, Notification)]
        self.out[conn_id] = [o for o in outs if not isinstance(o, Notification)]
        return evs

    # conveniences
    def create(self, c: int, path: str, data: bytes = b"", flags: int = 0, acl: Any = None) -> Reply:
        from trizab.tree.acl import OPEN_ACL_UNSAFE

        return self.call(
            c,
            OpCode.CREATE,
            r.CreateRequest(path, data, list(OPEN_ACL_UNSAFE if acl is None else acl), flags),
        )

    def stat(self, c: int, path: str, watch: bool = False) -> r.Stat | None:
        rep = self.call(c, OpCode.EXISTS, r.ExistsRequest(path, watch))
        return rep.body.stat if rep.header.err == 0 else None
