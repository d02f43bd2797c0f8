"""The runtime's time: one object, so that a ``MockClock`` drives all of it in tests.

Two readings, both from trio's clock (never ``time`` directly):

* :meth:`Clock.now_ms` is wall-clock milliseconds since the epoch, anchored once
  and then advanced by trio's clock: session ids and txn times look like
  ZooKeeper's, while a ``MockClock`` still drives expiry.
* :meth:`Clock.monotonic` is trio's clock in seconds, for the runtime's own
  decisions (is the disk slow? are other clients writing?).
"""

from __future__ import annotations

import time

import trio

__all__ = ["Clock"]


class Clock:
    """Wall-clock milliseconds and monotonic seconds, both advancing with trio's clock."""

    def __init__(self, epoch_ms: int | None = None) -> None:
        self._epoch_ms = epoch_ms
        self._offset_ms: float | None = None

    def now_ms(self) -> int:
        now = trio.current_time() * 1000.0
        if self._offset_ms is None:
            epoch = self._epoch_ms if self._epoch_ms is not None else time.time_ns() // 1_000_000
            self._offset_ms = epoch - now
        return int(now + self._offset_ms)

    def monotonic(self) -> float:
        """Seconds on trio's clock (call from the event loop's thread only)."""
        return trio.current_time()
