"""The server core's clock: session expiry and the reaping of containers and TTL nodes.

Theory of operation
-------------------
:meth:`Reaping.tick` is what ZooKeeper's ``SessionTrackerImpl`` expiry thread and its
``ContainerManager`` timer do, as one call the driver makes on each tick: an expired
session becomes a closeSession transaction, and every ``container_check_interval_ms``
the empty containers (that once had a child) and the TTL nodes past their TTL become
deleteContainer transactions (``ContainerManager.getCandidates``).  Beside that periodic
check, :meth:`Reaping._check_containers_after` reaps a container as soon as a committed
transaction takes its last child (``reap_containers_immediately``; ZooKeeper only has
the periodic check).

``_reaping`` holds the paths whose deleteContainer is logged but not applied yet, so
none is logged twice; applying it (or abandoning every prepared transaction) takes
the path out again.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from trizab.tree.datatree import NORMAL, TTL, DataTree, ephemeral_kind, ttl_of
from trizab.tree.prep import Prep, PrepError
from trizab.txn import Txn
from trizab.wire.codes import OpCode
from trizab.wire.jute import JuteError
from trizab.wire.requests import decode_request

if TYPE_CHECKING:
    from trizab.server.core import CoreConfig
    from trizab.server.sessions import SessionTracker

# The server core's one logger, whichever of its parts logs (log configurations name it).
log = logging.getLogger("trizab.server.core")


class Reaping:
    """Part of :class:`~trizab.server.core.ServerCore`: expiry and reaping (see the module docstring).

    Reads ``config``, ``tree`` and ``prep`` (whether a path may be reaped now, against the
    changes in flight) and asks ``tracker`` which sessions expired; writes ``now_ms``,
    ``_next_container_check`` and ``_reaping``.  Its transactions go out through
    :meth:`~trizab.server.writes.Writes._log` with zxids from
    :meth:`~trizab.server.core.ServerCore.next_zxid`.
    """

    config: CoreConfig
    tree: DataTree
    prep: Prep
    tracker: SessionTracker
    now_ms: int
    _next_container_check: int  # when the next periodic check runs (ms)
    _reaping: set[str]  # paths whose deleteContainer is logged and not applied yet

    def tick(self, now_ms: int) -> None:
        """Expire sessions (closeSession txns) and reap containers and TTL nodes."""
        self.now_ms = now_ms
        for sid in self.tracker.expired(now_ms):
            session = self.tracker.sessions.get(sid)
            timeout = session.timeout if session is not None else 0
            log.info(
                "expiring session 0x%x, timeout of %d ms exceeded",
                sid,
                timeout,
                extra={"session_id": f"0x{sid:x}"},
            )
            zxid = self.next_zxid()
            txn_type, body = self.prep.close_session(sid, zxid)
            self._log(sid, 0, txn_type, body, None, now_ms, zxid)
        if now_ms >= self._next_container_check:
            self._next_container_check = now_ms + self.config.container_check_interval_ms
            self._reap(self._candidates(now_ms), now_ms)

    def _candidates(self, now_ms: int) -> list[str]:
        """``ContainerManager.getCandidates``."""
        tree = self.tree
        out = []
        for path in tree.containers:
            node = tree.nodes.get(path)
            if node is not None and not node.children and node.cversion > 0:
                out.append(path)
        for path in tree.ttls:
            node = tree.nodes.get(path)
            if node is not None and not node.children:
                if ephemeral_kind(node.ephemeral_owner, self.config.extended_types_enabled) == TTL:
                    ttl = ttl_of(node.ephemeral_owner)
                    if ttl and now_ms - node.mtime > ttl:
                        out.append(path)
        return out

    def _reap(self, paths: list[str], now_ms: int) -> None:
        if self.config.read_only:
            return
        for path in paths:
            if path in self._reaping:
                continue
            try:
                rec = self.prep.record(path)
            except PrepError:
                continue
            if rec.child_count or ephemeral_kind(rec.owner, self.config.extended_types_enabled) == NORMAL:
                continue
            zxid = self.next_zxid()
            try:
                txn_type, body = self.prep.delete_container(path, zxid)
            except PrepError:  # pragma: no cover - checked just above
                continue
            self._reaping.add(path)
            self._log(0, 0, txn_type, body, None, now_ms, zxid)

    def _check_containers_after(self, txn: Txn) -> None:
        """Reap a container as soon as its last child goes (beside the periodic check)."""
        tree = self.tree
        t = txn.header.type
        body = txn.body
        if t == OpCode.DELETE_CONTAINER:
            self._reaping.discard(body.path)
        paths: list[str] = []
        if t in (OpCode.DELETE, OpCode.DELETE_CONTAINER):
            paths = [body.path]
        elif t == OpCode.CLOSE_SESSION:
            paths = list(body.paths2_delete or ()) if body else []
        elif t == OpCode.MULTI:
            for sub in body.txns or ():
                if sub.type == OpCode.DELETE:
                    try:
                        paths.append(decode_request(OpCode.DELETE, sub.data or b"").path)
                    except JuteError:
                        pass
        candidates = []
        for p in paths:
            parent = p[: p.rfind("/")] or "/"
            node = tree.nodes.get(parent)
            if node is not None and parent in tree.containers and not node.children and node.cversion > 0:
                candidates.append(parent)
        if candidates:
            self._reap(candidates, self.now_ms)
