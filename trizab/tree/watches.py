"""Watch tables: ZooKeeper's ``WatchManager`` keyed by session instead of connection.

Theory of operation
-------------------
The data tree owns two of these, as ``DataTree`` does: ``data`` (data and exists
watches, plus persistent and persistent-recursive ones) and ``child`` (child
watches and persistent ones).  A watcher is a session id, so a session's
watches survive a dropped TCP connection and a reconnect (ZooKeeper keeps them on
the connection and relies on the client's setWatches; holding them per session
gives the client the same events with less traffic).

Each (path, watcher) pair has a set of mode bits (standard, persistent,
persistent-recursive), as ``WatchStats`` in ZooKeeper 3.9 does: a one-shot watch
set on a path that also has a persistent watch does not downgrade it.  Firing:
at the changed path every mode fires (a recursive-only watcher not for
NodeChildrenChanged) and the standard bit is cleared; on ancestors only
recursive watchers fire, never for NodeChildrenChanged.  Ancestors are only
walked while some recursive watch exists (``PathParentIterator``).
"""

from __future__ import annotations

from collections.abc import Iterable

from trizab.wire.codes import EventType

__all__ = ["PERSISTENT", "RECURSIVE", "STANDARD", "WatchManager"]

STANDARD = 1
PERSISTENT = 2
RECURSIVE = 4

_CHILDREN_CHANGED = int(EventType.NODE_CHILDREN_CHANGED)


def _ancestors(path: str) -> Iterable[str]:
    while path != "/":
        i = path.rfind("/")
        path = path[:i] or "/"
        yield path


class WatchManager:
    __slots__ = ("_recursive", "by_watcher", "table")

    def __init__(self) -> None:
        self.table: dict[str, dict[int, int]] = {}
        self.by_watcher: dict[int, dict[str, None]] = {}
        self._recursive = 0

    def add(self, path: str, watcher: int, mode: int = STANDARD) -> None:
        entry = self.table.get(path)
        if entry is None:
            entry = self.table[path] = {}
        old = entry.get(watcher, 0)
        if mode == RECURSIVE and not old & RECURSIVE:
            self._recursive += 1
        entry[watcher] = old | mode
        paths = self.by_watcher.get(watcher)
        if paths is None:
            paths = self.by_watcher[watcher] = {}
        paths[path] = None

    def _drop(self, path: str, watcher: int, entry: dict[int, int]) -> None:
        del entry[watcher]
        if not entry:
            del self.table[path]
        paths = self.by_watcher.get(watcher)
        if paths is not None:
            paths.pop(path, None)
            if not paths:
                del self.by_watcher[watcher]

    def trigger(self, path: str, event_type: int, suppress: Iterable[int] = ()) -> list[int]:
        """The watchers to notify of ``event_type`` on ``path``; one-shot watches are consumed."""
        entry = self.table.get(path)
        if not entry and not self._recursive:
            return []  # the common case on the write path: nobody watches
        fired: dict[int, None] = {}
        if entry:
            for watcher, bits in list(entry.items()):
                if bits & (STANDARD | PERSISTENT) or event_type != _CHILDREN_CHANGED:
                    fired[watcher] = None
                if bits & STANDARD:
                    if bits == STANDARD:
                        self._drop(path, watcher, entry)
                    else:
                        entry[watcher] = bits & ~STANDARD
        if self._recursive and event_type != _CHILDREN_CHANGED:
            for parent in _ancestors(path):
                entry = self.table.get(parent)
                if entry:
                    for watcher, bits in entry.items():
                        if bits & RECURSIVE:
                            fired[watcher] = None
        if suppress:
            for w in suppress:
                fired.pop(w, None)
        return list(fired)

    def contains(self, path: str, watcher: int, mode: int | None) -> bool:
        bits = self.table.get(path, {}).get(watcher, 0)
        return bool(bits) if mode is None else bool(bits & mode)

    def remove(self, path: str, watcher: int, mode: int | None) -> bool:
        """Remove the watcher's ``mode`` (None: every mode) on ``path``; False if it had none."""
        entry = self.table.get(path)
        if not entry or watcher not in entry:
            return False
        bits = entry[watcher]
        drop = bits if mode is None else bits & mode
        if not drop:
            return False
        if drop & RECURSIVE:
            self._recursive -= 1
        if bits & ~drop:
            entry[watcher] = bits & ~drop
        else:
            self._drop(path, watcher, entry)
        return True

    def remove_watcher(self, watcher: int) -> None:
        for path in list(self.by_watcher.get(watcher, ())):
            self.remove(path, watcher, None)
