"""Log floods: a line that a peer can make us repeat thousands of times a second is rate-limited.

Theory of operation
-------------------
A misconfigured or hostile peer can make a server log the same line for every
connection it opens: an Apache ZooKeeper member pointed at a trizab ensemble's
quorum port logged ``rejecting quorum connection: truncated QuorumPacket`` 5,334
times in 20 s.  :class:`FloodFilter` is a :class:`logging.Filter` that lets such a
line through ``burst`` times, then holds the rest back and counts them; once the
window of ``interval`` seconds is over it emits one summary line, the last held
line followed by ``(1,234 more in the last 10 s)`` (and a ``suppressed`` field for
the JSON format).  While the flood goes on, each later window gives one summary
line and nothing else; a window without any of them ends the flood, and the next
one is logged as usual.

Lines are told apart by logger, message template (``record.msg``, not the
formatted text, so the reason or the port in the arguments does not matter) and
the ``peer`` field of the record (``extra={"peer": host}``: the host, not host:port,
so a flood of connections from one machine is one flood).  Time is the record's
``created`` time, so unit tests drive it with records they make; :meth:`flush`
(called periodically by the server, so that a flood that stops is still summed up)
reads the clock given to the filter.

The runtime attaches the one :data:`FLOODS` filter to the loggers of the paths a
peer can flood (quorum and election accepts, client connection errors, TLS
handshakes) with :func:`limit_floods`; it limits only the lines that name their
peer (``extra={"peer": host}``), so the other lines of those loggers (the start-up
line, a server started many times in one test process) are never held back.  A
``--log-config`` may attach its own instance elsewhere
(``"()": "trizab.logflood.FloodFilter"``, which limits every line it sees).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import attrs

__all__ = ["DEFAULT_BURST", "DEFAULT_INTERVAL_S", "FLOODS", "FloodFilter", "limit_floods"]

DEFAULT_INTERVAL_S = 10.0
DEFAULT_BURST = 5
MAX_KEYS = 4096  # distinct (logger, template, peer) kept; beyond it the peer is left out of the key

_Key = tuple[str, str, str | None]


@attrs.define
class _Window:
    start: float
    passed: int = 0
    suppressed: int = 0
    # The previous window held lines back: this one only sums up (the flood goes on).
    flooding: bool = False
    last: logging.LogRecord | None = None  # the last record held back, for the summary


class FloodFilter(logging.Filter):
    """Let a repeated line through ``burst`` times per flood, then one summary per ``interval``."""

    def __init__(
        self,
        interval: float = DEFAULT_INTERVAL_S,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.time,
        *,
        peers_only: bool = False,
    ) -> None:
        super().__init__()
        # Only lines that name a peer (extra={"peer": ...}) are limited; the others pass.
        self.peers_only = peers_only
        self.interval = float(interval)
        self.burst = int(burst)
        self._clock = clock  # the same time base as LogRecord.created
        self._windows: dict[_Key, _Window] = {}
        self._lock = threading.Lock()  # records may come from worker threads

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "flood_summary", False):
            return True
        if self.peers_only and not hasattr(record, "peer"):
            return True
        now = record.created
        with self._lock:
            key = self._key(record)
            w = self._windows.get(key)
            if w is None:
                w = self._windows[key] = _Window(now)
            summary = self._roll(w, now)
            if not w.flooding and w.passed < self.burst:
                w.passed += 1
                allowed = True
            else:
                w.suppressed += 1
                w.last = record
                allowed = False
        if summary is not None:
            _emit(summary)
        return allowed

    def flush(self) -> int:
        """Sum up every window that has ended (a flood that stopped); how many lines it logged."""
        now = self._clock()
        summaries = []
        with self._lock:
            for key, w in list(self._windows.items()):
                if now < w.start + self.interval:
                    continue  # its window is still open
                summary = self._roll(w, now)
                if summary is not None:
                    summaries.append(summary)
                if not w.flooding:
                    # Nothing held back and no flood going on: forget the key, so that peers
                    # seen once do not hold memory for ever.
                    del self._windows[key]
        for s in summaries:
            _emit(s)
        return len(summaries)

    def reset(self) -> None:
        """Forget every flood (nothing held back is logged)."""
        with self._lock:
            self._windows.clear()

    def _key(self, record: logging.LogRecord) -> _Key:
        """The flood ``record`` belongs to (under the lock)."""
        peer = getattr(record, "peer", None)
        key = (record.name, str(record.msg), None if peer is None else str(peer))
        if key not in self._windows and len(self._windows) >= MAX_KEYS:
            return (record.name, str(record.msg), None)  # many peers: one flood per template
        return key

    def _roll(self, w: _Window, now: float) -> logging.LogRecord | None:
        """Close ``w``'s window if it has ended by ``now``: its summary record, if it held lines back."""
        if now < w.start + self.interval:
            return None
        summary = None
        if w.suppressed and w.last is not None:
            summary = _summary(w.last, w.suppressed, self.interval, w.start + self.interval)
        # The flood goes on only if it reached into the window that starts now.
        w.flooding = w.suppressed > 0 and now < w.start + 2 * self.interval
        w.start, w.passed, w.suppressed, w.last = now, 0, 0, None
        return summary


def _summary(last: logging.LogRecord, count: int, interval: float, at: float) -> logging.LogRecord:
    record = logging.makeLogRecord(last.__dict__)
    record.msg = f"{last.getMessage()} ({count:,} more in the last {interval:g} s)"
    record.args = None
    record.exc_info = record.exc_text = None
    record.created = at
    record.msecs = (at - int(at)) * 1000
    record.flood_summary = True
    record.suppressed = count
    return record


def _emit(record: logging.LogRecord) -> None:
    logging.getLogger(record.name).handle(record)


FLOODS = FloodFilter(peers_only=True)


def limit_floods(*loggers: logging.Logger) -> None:
    """Attach :data:`FLOODS` to ``loggers`` (once each)."""
    for logger in loggers:
        if FLOODS not in logger.filters:
            logger.addFilter(FLOODS)
