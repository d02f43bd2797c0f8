"""The server core's per-connection and per-request state, shared by :class:`ServerCore`
and :class:`~trizab.server.replica.ReplicaCore`.

A :class:`CoreConnection` holds what the core knows of one client connection (its
session, auth ids, FIFO of requests); a :class:`PendingRequest` is one entry of that
FIFO, answered in order (``CommitProcessor``'s per-session queue).  Both use
``__slots__``: one of each is made per connection and per request.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from typing import Any

from trizab.wire import records as r

__all__ = ["CONNECT_KIND", "FIXED_KIND", "READ_KIND", "WRITE_KIND", "CoreConnection", "PendingRequest"]

# Pending request kinds.
# A read runs when it reaches the head of its queue; a write, a handshake and a fixed reply
# (answered without the tree, e.g. sync or a refused request) wait until marked done.
READ_KIND, WRITE_KIND, CONNECT_KIND, FIXED_KIND = 0, 1, 2, 3


class PendingRequest:
    """One request waiting in its connection's FIFO for its turn (and, if a write, its commit)."""

    __slots__ = ("conn", "done", "kind", "op", "payload", "reply", "timeout", "xid")

    def __init__(
        self, conn: CoreConnection | None, kind: int, xid: int, op: int, payload: Any = None
    ) -> None:
        self.conn = conn
        self.kind = kind
        self.xid = xid
        self.op = op
        self.payload = payload
        self.done = False
        self.reply: Any = None
        self.timeout = 0


class CoreConnection:
    """The core's view of one client connection."""

    __slots__ = (
        "auth_enforced",
        "cert_ids",
        "client_addr",
        "client_ip",
        "conn_id",
        "established",
        "ids",
        "last_zxid",
        "queue",
        "received",
        "sasl_rounds",
        "sasl_server",
        "send_ro_flag",
        "sent",
        "session_id",
        "started_ms",
        "touched_ms",
    )

    def __init__(self, conn_id: int, client_addr: str, send_ro_flag: bool, now_ms: int) -> None:
        self.conn_id = conn_id
        self.client_addr = client_addr
        self.client_ip = client_ip_of(client_addr)
        self.ids: list[r.Id] = [r.Id("ip", self.client_ip)]
        self.cert_ids: list[r.Id] = []  # x509 (and super) ids of a verified client certificate
        self.send_ro_flag = send_ro_flag
        self.session_id = 0
        self.established = False
        self.queue: deque[PendingRequest] = deque()
        self.received = 0
        self.sasl_rounds = 0
        self.sasl_server: Any = None  # the SASL exchange in progress or done (sasl_digest, sasl_gssapi)
        self.auth_enforced = False  # passed enforce.auth once (ids only ever grow)
        self.sent = 0
        self.last_zxid = -1
        self.started_ms = now_ms
        self.touched_ms = -1  # when this connection's requests last touched its session


def client_ip_of(addr: str) -> str:
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        pass
    host = addr.rsplit(":", 1)[0] if ":" in addr else addr
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host
