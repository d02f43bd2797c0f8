"""Showing how far long work got: a bar on a terminal, a log line every few seconds otherwise.

The work itself (loading a snapshot, replaying or reading a log, purging) only calls
a callback ``report(what, done, total, unit)`` now and then; it never prints.
:class:`ProgressReporter` is that callback for the command line.  When its stream
is a terminal it redraws one line, once the work has lasted ``bar_delay`` seconds,
at most ten times a second::

    loading snapshot  [###############               ]  52%  161,480,704/310,000,000 bytes

Otherwise it logs ``loading snapshot: 161,480,704 of 310,000,000 bytes (52%)`` at
INFO at most every ``every`` seconds, and a last line when work that took that long
is done.  Work shorter than that shows nothing (the engines log their own summary).
Reports may come from a worker thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["BAR_WIDTH", "ProgressReporter"]

BAR_WIDTH = 30
_REDRAW_S = 0.1

log = logging.getLogger("trizab.progress")


class ProgressReporter:
    """``report(what, done, total, unit)``: a bar when ``stream`` is a terminal, log lines otherwise."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every: float = 5.0,
        bar_delay: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        terminal: bool | None = None,
        logger: logging.Logger = log,
    ) -> None:
        self.stream = stream
        self.every = every
        self.bar_delay = bar_delay
        self._clock = clock
        self.terminal = stream.isatty() if terminal is None else terminal
        self._log = logger
        self._lock = threading.Lock()
        self._what: str | None = None
        self._started = 0.0
        self._last_shown = 0.0
        self._shown_any = False

    def __call__(self, what: str, done: int, total: int, unit: str) -> None:
        now = self._clock()
        with self._lock:
            if what != self._what:
                self._end_line()
                self._what, self._started, self._last_shown, self._shown_any = what, now, now, False
            finished = total > 0 and done >= total
            if self.terminal:
                if now - self._started < self.bar_delay:
                    pass  # short work shows no bar at all
                elif finished or now - self._last_shown >= _REDRAW_S or not self._shown_any:
                    self._draw(what, done, total, unit)
                    self._last_shown, self._shown_any = now, True
                if finished:
                    self._end_line()
                    self._what = None
            elif now - self._last_shown >= self.every or (finished and self._shown_any):
                self._log.info("%s: %s", what, _amount(done, total, unit))
                self._last_shown, self._shown_any = now, True
                if finished:
                    self._what = None

    def close(self) -> None:
        """End the bar's line (the next output starts on a line of its own)."""
        with self._lock:
            self._end_line()
            self._what = None

    def _draw(self, what: str, done: int, total: int, unit: str) -> None:
        if total > 0:
            filled = min(BAR_WIDTH, BAR_WIDTH * done // total)
            bar = f"[{'#' * filled}{' ' * (BAR_WIDTH - filled)}] {100 * done // total:3d}%  "
        else:
            bar = ""
        self.stream.write(f"\r{what}  {bar}{done:,}{f'/{total:,}' if total > 0 else ''} {unit}\x1b[K")
        self.stream.flush()

    def _end_line(self) -> None:
        if self.terminal and self._shown_any and self._what is not None:
            self.stream.write("\n")
            self.stream.flush()
            self._shown_any = False


def _amount(done: int, total: int, unit: str) -> str:
    if total > 0:
        return f"{done:,} of {total:,} {unit} ({100 * done // total}%)"
    return f"{done:,} {unit}"
