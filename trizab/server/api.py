"""The contract between the sans-I/O server core and whatever drives it.

Theory of operation
-------------------
:class:`trizab.server.core.ServerCore` is Apache ZooKeeper's request pipeline
(``PrepRequestProcessor`` → ``SyncRequestProcessor`` → ``FinalRequestProcessor``,
plus ``SessionTrackerImpl``) as a synchronous object with no sockets, clocks or
disk.  A driver (the Trio runtime in ``trizab.runtime``, or a test) feeds it:

* ``connect(conn_id, request, now_ms, ...)`` when a connection completed its
  ``ConnectRequest``;
* ``receive(conn_id, xid, opcode, body, now_ms)`` for every decoded request;
* ``connection_lost(conn_id, now_ms)`` when a socket goes away;
* ``tick(now_ms)`` periodically (session expiry, container and TTL reaping);
* ``committed(txns, now_ms)`` once the transactions it asked to be logged are
  durable (standalone: after the storage barrier; ensemble: after a ZAB commit).

and after any of these it calls ``ready()`` and carries out what it returns, in
this order: hand ``to_log`` to storage (or to the ZAB peer), then send each
``outputs`` item to its connection, in list order, then close ``close`` ones.

Ordering guarantees the core keeps (so that drivers need not):

* replies to one connection leave in request order (a read queued behind a
  pending write of the same session waits for it, as ZooKeeper's
  ``CommitProcessor`` does);
* a watch notification caused by a transaction is emitted before the reply to
  any request that observes that transaction.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import attrs

from trizab.txn import Txn
from trizab.wire import records as r

ConnId = int


class Reply(NamedTuple):
    """A ``ReplyHeader`` and, when ``header.err == 0`` and the op has one, its body record.

    A named tuple rather than an attrs class: one is built per request, and a tuple is
    built in about half the time.
    """

    header: r.ReplyHeader
    body: Any = None


@attrs.frozen
class Notification:
    """A watch event: sent as ``ReplyHeader(xid=-1, zxid, err=0)`` + ``WatcherEvent``."""

    zxid: int
    event: r.WatcherEvent


@attrs.frozen
class Connected:
    """The handshake answer; ``response.time_out == 0`` means the session is invalid."""

    response: r.ConnectResponse
    # False for a pre-3.4 client: encode the response without its readOnly flag.
    send_read_only_flag: bool = True


Output = Reply | Notification | Connected


@attrs.frozen
class Ready:
    """What the driver must do next, in field order."""

    to_log: list[Txn] = attrs.Factory(list)
    outputs: list[tuple[ConnId, Output]] = attrs.Factory(list)
    close: list[ConnId] = attrs.Factory(list)

    def empty(self) -> bool:
        return not (self.to_log or self.outputs or self.close)
